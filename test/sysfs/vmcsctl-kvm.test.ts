import { Effect, Exit } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { makeHostKernel } from "../../src/host/kernel.ts"
import type { HostKernelShape } from "../../src/host/kernel.ts"
import type { Task } from "../../src/host/task.ts"
import type { Kvm } from "../../src/hypervisor/kvm/kvm.ts"
import { loadKvm } from "../../src/hypervisor/kvm/module.ts"
import type { Vm } from "../../src/hypervisor/kvm/vm.ts"
import { ENOENT } from "../../src/sysfs/errno.ts"
import { makeSysfs, type SysfsShape } from "../../src/sysfs/service.ts"
import { legacyVmcsForKvm, vmcsctlForKvm } from "../../src/sysfs/vmcsctl/kvm-adapter.ts"
import type { VmcsctlDirectory } from "../../src/sysfs/vmcsctl/module.ts"

interface Machine {
  readonly host: HostKernelShape
  readonly kvm: Kvm
  readonly sysfs: SysfsShape
  state: VmcsctlDirectory | undefined
}

const withMachine = <A>(body: (m: Machine) => Effect.Effect<A, unknown>, cpus = 2): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const host = yield* makeHostKernel({ cpus })
        const kvm = yield* loadKvm(host)
        const machine: Machine = { host, kvm, sysfs: makeSysfs(), state: undefined }
        return yield* body(machine)
      }),
    ) as Effect.Effect<A>,
  )

const insmod = (m: Machine, params: Record<string, string> = {}) =>
  m.host.modules.insmod(vmcsctlForKvm(m.sysfs, m.kvm, (s) => (m.state = s)), params)

const newVm = (m: Machine): { vm: Vm; qemu: Task } => {
  const qemu = m.host.tasks.spawnProcess("qemu-system-x86")
  const r = m.kvm.createVm(qemu)
  if (!r.ok) throw new Error(r.error.message)
  return { vm: r.value, qemu }
}

const newVcpu = (m: Machine, vm: Vm, qemu: Task, id: number): Task => {
  const thread = m.host.tasks.spawnThread(qemu)
  const r = vm.createVcpu(thread, id)
  if (!r.ok) throw new Error(r.error.message)
  return thread
}

describe("vmcsctl on the KVM module", () => {
  it("one directory per vCPU VMCS named after the creating thread, showing KVM's reset state", () =>
    withMachine((m) =>
      Effect.gen(function* () {
        yield* insmod(m)
        const { vm, qemu } = newVm(m)
        const t0 = newVcpu(m, vm, qemu, 0)
        const t1 = newVcpu(m, vm, qemu, 1)
        const fs = m.sysfs.fs
        expect(fs.ls("/sys/kernel/vmcsctl")).toEqual([`vmcs${t0.pid}`, `vmcs${t1.pid}`])
        const dir = `/sys/kernel/vmcsctl/vmcs${t1.pid}`
        expect(fs.readFile(`${dir}/GUEST_RIP`)).toBe(`${0xfff0}\n`)
        expect(fs.readFile(`${dir}/GUEST_CS_SELECTOR`)).toBe(`${0xf000}\n`)
        expect(fs.readFile(`${dir}/VMCS_LINK_POINTER`)).toBe(`${0xffffffffffffffffn}\n`)
        expect(fs.readFile(`${dir}/revision_id`)).toBe(`${m.kvm.lp(0).caps.revisionId}\n`)
        // the two vCPUs have different VPIDs: each file reads its own VMCS
        expect(fs.readFile(`${dir}/VIRTUAL_PROCESSOR_ID`)).not.toBe(fs.readFile(`/sys/kernel/vmcsctl/vmcs${t0.pid}/VIRTUAL_PROCESSOR_ID`))
        // rmmod kvm_intel is refused while vmcsctl depends on it
        const busy = yield* Effect.exit(m.host.modules.rmmod("kvm_intel"))
        expect(Exit.isFailure(busy)).toBe(true)
        vm.destroy()
        expect(fs.ls("/sys/kernel/vmcsctl")).toEqual([])
        yield* m.host.modules.rmmod("vmcsctl")
        expect(fs.ls("/sys/kernel/vmcsctl")).toBe(-ENOENT)
      }),
    ))

  it("loaded after the VMs exist, it enumerates their VMCSs", () =>
    withMachine((m) =>
      Effect.gen(function* () {
        const { vm, qemu } = newVm(m)
        const t0 = newVcpu(m, vm, qemu, 0)
        yield* insmod(m)
        expect(m.sysfs.fs.ls("/sys/kernel/vmcsctl")).toEqual([`vmcs${t0.pid}`])
        vm.destroy()
      }),
    ))

  it("a write through sysfs is a VMWRITE into that vCPU's VMCS", () =>
    withMachine((m) =>
      Effect.gen(function* () {
        yield* insmod(m)
        const { vm, qemu } = newVm(m)
        const t0 = newVcpu(m, vm, qemu, 0)
        const vcpu = vm.vcpuById(0)!
        expect(m.sysfs.fs.writeFile(`/sys/kernel/vmcsctl/vmcs${t0.pid}/GUEST_RSP`, "0x7000\n")).toBe(7)
        // KVM reads it back through its own VMREAD on the CPU where the VMCS is loaded
        const lp = vcpu.lp
        lp.vmread(0x681c)
        expect(lp.value).toBe(0x7000n)
        vm.destroy()
      }),
    ))

  it("legacy /sys/vmcs reads the current VMCS of CPU 0 for a caller outside any thread", () =>
    withMachine((m) =>
      Effect.gen(function* () {
        yield* m.host.modules.insmod(legacyVmcsForKvm(m.sysfs, m.kvm))
        const { vm, qemu } = newVm(m)
        newVcpu(m, vm, qemu, 0)
        const lp = vm.vcpuById(0)!.lp
        expect(lp.id).toBe(0)
        expect(m.sysfs.fs.readFile("/sys/vmcs/g_rip_a")).toBe(`${0xfff0}\n`)
        vm.destroy()
      }),
    ))

  type Op = { op: "vm" } | { op: "vcpu"; vm: number } | { op: "destroy"; vm: number } | { op: "insmod" } | { op: "rmmod" }
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.constant({ op: "vm" as const }),
    fc.record({ op: fc.constant("vcpu" as const), vm: fc.nat(5) }),
    fc.record({ op: fc.constant("destroy" as const), vm: fc.nat(5) }),
    fc.constant({ op: "insmod" as const }),
    fc.constant({ op: "rmmod" as const }),
  )

  it("property: directories match KVM's VMCSs across random VM/vCPU lifecycles, VMXON/VMXOFF and module load/unload", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 25 }), (ops) =>
        withMachine((m) =>
          Effect.gen(function* () {
            const vms: Array<{ vm: Vm; qemu: Task; next: number }> = []
            for (const step of ops) {
              if (step.op === "vm") vms.push({ ...newVm(m), next: 0 })
              else if (step.op === "vcpu" && vms.length > 0) {
                const entry = vms[step.vm % vms.length]!
                newVcpu(m, entry.vm, entry.qemu, entry.next++)
              } else if (step.op === "destroy" && vms.length > 0) {
                vms.splice(step.vm % vms.length, 1)[0]!.vm.destroy()
              } else if (step.op === "insmod" && !m.host.modules.isLoaded("vmcsctl")) yield* insmod(m)
              else if (step.op === "rmmod" && m.host.modules.isLoaded("vmcsctl")) yield* m.host.modules.rmmod("vmcsctl")
              // VMX is on exactly while a VM exists
              expect(m.kvm.lp(1).vmxOperation).toBe(vms.length > 0)
              const listing = m.sysfs.fs.ls("/sys/kernel/vmcsctl")
              if (!m.host.modules.isLoaded("vmcsctl")) {
                expect(listing).toBe(-ENOENT)
                continue
              }
              const expected = m.kvm.vmcsList().map((v) => m.state!.nameOf(v.vmcs))
              expect(expected.every((n) => n !== undefined)).toBe(true)
              expect(listing).toEqual([...expected].sort())
              for (const name of expected) expect(m.sysfs.fs.readFile(`/sys/kernel/vmcsctl/${name}/GUEST_RIP`)).toBe(`${0xfff0}\n`)
            }
            for (const { vm } of vms) vm.destroy()
          }),
        ),
      ),
      { numRuns: 150 },
    )
  })
})
