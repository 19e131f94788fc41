import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { Errno } from "../../../src/host/errno.ts"
import { makeHostKernel } from "../../../src/host/kernel.ts"
import type { HostKernelOptions, HostKernelShape } from "../../../src/host/kernel.ts"
import type { Kvm } from "../../../src/hypervisor/kvm/kvm.ts"
import { loadKvm, openDevKvm } from "../../../src/hypervisor/kvm/module.ts"
import { KVM_API_VERSION, KvmCap } from "../../../src/hypervisor/kvm/uapi.ts"
import type { Vm } from "../../../src/hypervisor/kvm/vm.ts"

const withKvm = <A>(body: (kvm: Kvm, host: HostKernelShape) => A, options: HostKernelOptions = {}): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const host = yield* makeHostKernel(options)
        const kvm = yield* loadKvm(host)
        return body(kvm, host)
      }),
    ),
  )

const mustVm = (kvm: Kvm, host: HostKernelShape): { vm: Vm; pid: number } => {
  const qemu = host.tasks.spawnProcess("qemu-system-x86_64")
  const r = kvm.createVm(qemu)
  if (!r.ok) throw new Error(r.error.message)
  return { vm: r.value, pid: qemu.pid }
}

describe("KVM system ioctls", () => {
  it("answers GET_API_VERSION 12 and CHECK_EXTENSION like x86 KVM", async () => {
    await withKvm((kvm) => {
      expect(kvm.getApiVersion()).toBe(KVM_API_VERSION)
      expect(kvm.getApiVersion()).toBe(12)
      expect(kvm.checkExtension(KvmCap.USER_MEMORY)).toBe(1)
      expect(kvm.checkExtension(KvmCap.NR_MEMSLOTS)).toBe(509)
      expect(kvm.checkExtension(KvmCap.MAX_VCPUS)).toBe(288)
      expect(kvm.checkExtension(KvmCap.NR_VCPUS)).toBe(4)
      expect(kvm.checkExtension(0x7fff)).toBe(0)
      expect(kvm.getVcpuMmapSize()).toBe(8192)
    })
  })

  it("opens /dev/kvm only while kvm_intel is loaded; rmmod is refused while a VM exists", async () => {
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const host = yield* makeHostKernel({})
          const qemu = host.tasks.spawnProcess("qemu-system-x86_64")
          expect(openDevKvm(host, qemu)).toEqual({ ok: false, errno: Errno.ENOENT })
          const kvm = yield* loadKvm(host)
          const dev = openDevKvm(host, qemu)
          expect(dev.ok && dev.file.fd).toBe(3)
          const vm = kvm.createVm(qemu)
          expect(vm.ok && vm.value.fd).toBe(4)
          expect(vm.ok && vm.value.name).toBe(`${qemu.pid}-4`)
          const busy = yield* Effect.exit(host.modules.rmmod("kvm_intel"))
          expect(Exit.isFailure(busy)).toBe(true)
          if (vm.ok) vm.value.destroy()
          yield* host.modules.rmmod("kvm_intel")
          expect(openDevKvm(host, qemu)).toEqual({ ok: false, errno: Errno.ENOENT })
        }),
      ),
    )
  })
})

describe("VM and vCPU ioctls", () => {
  it("fails with the errno and the call's name", async () => {
    await withKvm((kvm, host) => {
      const { vm } = mustVm(kvm, host)
      const other = host.tasks.spawnProcess("intruder")
      const wrongProcess = vm.createVcpu(other, 0)
      expect(!wrongProcess.ok && wrongProcess.error.call).toBe("KVM_CREATE_VCPU")
      expect(!wrongProcess.ok && wrongProcess.error.errno).toBe(Errno.EIO)
      const me = host.tasks.spawnThread(host.tasks.get(vm.creatorPid)!)
      expect(vm.createVcpu(me, 0).ok).toBe(true)
      const twice = vm.createVcpu(me, 0)
      expect(!twice.ok && twice.error.errno).toBe(Errno.EEXIST)
      const badId = vm.createVcpu(me, 999)
      expect(!badId.ok && badId.error.errno).toBe(Errno.EINVAL)
      const misaligned = vm.setUserMemoryRegion({ slot: 0, flags: 0, guest_phys_addr: 0x123n, memory_size: 4096n, userspace: new Uint8Array(4096) })
      expect(!misaligned.ok && misaligned.error.errno).toBe(Errno.EINVAL)
      expect(!misaligned.ok && misaligned.error.message).toContain("KVM_SET_USER_MEMORY_REGION")
      const short = vm.setUserMemoryRegion({ slot: 1, flags: 0, guest_phys_addr: 0n, memory_size: 8192n, userspace: new Uint8Array(4096) })
      expect(!short.ok && short.error.errno).toBe(Errno.EFAULT)
      expect(vm.setUserMemoryRegion({ slot: 0, flags: 0, guest_phys_addr: 0n, memory_size: 8192n, userspace: new Uint8Array(8192) }).ok).toBe(true)
      const overlap = vm.setUserMemoryRegion({ slot: 2, flags: 0, guest_phys_addr: 4096n, memory_size: 4096n, userspace: new Uint8Array(4096) })
      expect(!overlap.ok && overlap.error.errno).toBe(Errno.EEXIST)
    })
  })

  it("round-trips GET/SET_REGS, SREGS and MSRs with bigint values", async () => {
    await withKvm((kvm, host) => {
      const { vm } = mustVm(kvm, host)
      const me = host.tasks.spawnThread(host.tasks.get(vm.creatorPid)!)
      const created = vm.createVcpu(me, 0)
      if (!created.ok) throw new Error(created.error.message)
      const vcpu = created.value
      const get = <T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T => {
        if (!r.ok) throw new Error(r.error.message)
        return r.value
      }
      const reset = get(vcpu.getRegs())
      expect(reset.rip).toBe(0xfff0n)
      expect(reset.rflags).toBe(2n)
      expect(get(vcpu.getSregs()).cs.selector).toBe(0xf000)
      expect(get(vcpu.getSregs()).cr0).toBe(0x60000010n)
      const regs = { ...reset, rax: 0xffff_ffff_ffff_fffen, r15: 0x8000_0000_0000_0001n, rsp: 0x7fff_0000n, rip: 0xffff_ffff_8100_0000n, rflags: 0x246n }
      vcpu.setRegs(regs)
      expect(get(vcpu.getRegs())).toEqual(regs)
      const sregs = get(vcpu.getSregs())
      const next = { ...sregs, cr0: 0x80050033n, cr4: 0x20n, efer: 0x500n, cr3: 0x1000n, cs: { ...sregs.cs, selector: 8, l: 1, db: 0, base: 0n } }
      vcpu.setSregs(next)
      const back = get(vcpu.getSregs())
      expect(back.cr0).toBe(0x80050033n)
      expect(back.cr4).toBe(0x20n) // VMXE is forced on in hardware but hidden by the read shadow
      expect(back.efer & 0x500n).toBe(0x500n)
      expect(back.cs.l).toBe(1)
      expect(get(vcpu.setMsrs([{ index: 0xc0000082, data: 0xffff_ffff_8160_0000n }, { index: 0x12345, data: 1n }]))).toBe(1)
      expect(get(vcpu.getMsrs([0xc0000082, 0x12345, 0x10]))).toEqual([{ index: 0xc0000082, data: 0xffff_ffff_8160_0000n }])
    })
  })
})

describe("VMCS lifecycle hooks", () => {
  it("announces VMXON on every CPU at the first VM, VMCS alloc/free per vCPU with the creating thread's pid, VMXOFF at the last VM", async () => {
    await withKvm((kvm, host) => {
      const events: Array<string> = []
      kvm.hooks.vmxon.subscribe((e) => events.push(`vmxon ${e.cpu}`))
      kvm.hooks.vmxoff.subscribe((e) => events.push(`vmxoff ${e.cpu}`))
      kvm.hooks.vmcsAlloc.subscribe((e) => events.push(`alloc ${e.ownerPid} vcpu${e.vcpuId}`))
      kvm.hooks.vmcsFree.subscribe((e) => events.push(`free ${e.ownerPid} vcpu${e.vcpuId}`))
      const { vm } = mustVm(kvm, host)
      const leader = host.tasks.get(vm.creatorPid)!
      const t0 = host.tasks.spawnThread(leader)
      const t1 = host.tasks.spawnThread(leader)
      vm.createVcpu(t0, 0)
      vm.createVcpu(t1, 1)
      expect(kvm.vmcsList().map((e) => e.ownerPid)).toEqual([t0.pid, t1.pid])
      vm.destroy()
      expect(events).toEqual([
        "vmxon 0",
        "vmxon 1",
        "vmxon 2",
        "vmxon 3",
        `alloc ${t0.pid} vcpu0`,
        `alloc ${t1.pid} vcpu1`,
        `free ${t0.pid} vcpu0`,
        `free ${t1.pid} vcpu1`,
        "vmxoff 0",
        "vmxoff 1",
        "vmxoff 2",
        "vmxoff 3",
      ])
      expect(kvm.lp(0).vmxOperation).toBe(false)
    })
  })

  it("10,000 VM create/destroy cycles leave no host pages, VMCSs, fds or tasks behind", async () => {
    await withKvm((kvm, host) => {
      const qemu = host.tasks.spawnProcess("qemu-system-x86_64")
      const vcpuThread = host.tasks.spawnThread(qemu)
      const pages = kvm.hostMemory.allocatedPages
      const files = qemu.files.openCount
      const tasks = host.tasks.size
      for (let i = 0; i < 10_000; i++) {
        const vm = kvm.createVm(qemu)
        if (!vm.ok) throw new Error(vm.error.message)
        const v = vm.value.createVcpu(vcpuThread, 0)
        if (!v.ok) throw new Error(v.error.message)
        vm.value.destroy()
      }
      expect(kvm.hostMemory.allocatedPages).toBe(pages)
      expect(kvm.platform.activeCount).toBe(0)
      expect(qemu.files.openCount).toBe(files)
      expect(host.tasks.size).toBe(tasks)
      expect(kvm.vmCount).toBe(0)
      expect(host.modules.refcount("kvm_intel")).toBe(0)
    })
  })
})
