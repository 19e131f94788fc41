import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { makeHostKernel } from "../../src/host/kernel.ts"
import { loadKvm } from "../../src/hypervisor/kvm/module.ts"
import { statFiles, VcpuStat, VcpuStats, VM_STAT_COUNT, VmStat } from "../../src/hypervisor/kvm/stats.ts"
import { mountKvmDebugfs, type DebugfsVm } from "../../src/sysfs/debugfs-kvm.ts"
import { EACCES, EINVAL, EIO, ENOENT } from "../../src/sysfs/errno.ts"
import { O_RDONLY, userCred } from "../../src/sysfs/pseudo-fs.ts"
import { makeTree } from "../../src/sysfs/service.ts"

// VMs shaped like the KVM module's (name PID-FD, per-VM and per-vCPU counters from stats.ts).
const vm = (name: string, vcpuPids: Array<number>) => {
  const vcpus = new Map(vcpuPids.map((pid, id) => [id, { id, pid, stats: new VcpuStats() }]))
  return { name, destroyed: false, stats: new Float64Array(VM_STAT_COUNT), vcpus }
}

describe("debugfs /sys/kernel/debug/kvm", () => {
  const setup = (profile: "linux-5.0" | "linux-6.x" = "linux-5.0") => {
    const a = vm("12396-12", [12398, 12399])
    const b = vm("13000-11", [13002])
    const vms: Array<DebugfsVm & ReturnType<typeof vm>> = [a, b]
    const fs = makeTree()
    mountKvmDebugfs(fs, { allVms: () => vms.filter((v) => !v.destroyed) }, profile)
    return { fs, a, b, vms }
  }

  it("lists the profile's statistics and one PID-FD directory per VM, with vcpuN inside", () => {
    const { fs } = setup()
    const names = statFiles("linux-5.0").map((s) => s.name)
    expect(fs.ls("/sys/kernel/debug/kvm")).toEqual([...names, "12396-12", "13000-11"].sort())
    expect(names).toContain("irq_window")
    expect(fs.ls("/sys/kernel/debug/kvm/12396-12")).toEqual([...names, "vcpu0", "vcpu1"].sort())
    expect(fs.ls("/sys/kernel/debug/kvm/12396-12/vcpu1")).toEqual(["tsc-offset", "tsc-scaling-ratio", "tsc-scaling-ratio-frac-bits"])
    const six = setup("linux-6.x")
    expect(six.fs.ls("/sys/kernel/debug/kvm")).toContain("irq_window_exits")
    expect(six.fs.readFile("/sys/kernel/debug/kvm/12396-12/vcpu1/pid")).toBe("12399\n")
    expect(fs.ls("/sys/kernel/debug/kvm", userCred())).toBe(-EACCES)
  })

  it("top-level files are the sums over VMs; per-VM files that VM only; writing 0 clears", () => {
    const { fs, a, b } = setup()
    a.vcpus.get(0)!.stats.counters[VcpuStat.exits] = 5
    a.vcpus.get(1)!.stats.counters[VcpuStat.exits] = 7
    b.vcpus.get(0)!.stats.counters[VcpuStat.exits] = 100
    a.stats[VmStat.mmu_cache_miss] = 3
    expect(fs.readFile("/sys/kernel/debug/kvm/exits")).toBe("112\n")
    expect(fs.readFile("/sys/kernel/debug/kvm/12396-12/exits")).toBe("12\n")
    expect(fs.readFile("/sys/kernel/debug/kvm/mmu_cache_miss")).toBe("3\n")
    expect(fs.writeFile("/sys/kernel/debug/kvm/12396-12/exits", "1\n")).toBe(-EINVAL)
    expect(fs.writeFile("/sys/kernel/debug/kvm/12396-12/exits", "0\n")).toBe(2)
    expect(fs.readFile("/sys/kernel/debug/kvm/exits")).toBe("100\n")
    expect(fs.writeFile("/sys/kernel/debug/kvm/exits", "0")).toBe(1)
    expect(fs.readFile("/sys/kernel/debug/kvm/exits")).toBe("0\n")
  })

  it("a destroyed VM's directory vanishes and its open files read EIO", () => {
    const { fs, a } = setup()
    const fd = fs.open("/sys/kernel/debug/kvm/12396-12/exits", O_RDONLY)
    a.destroyed = true
    expect(fs.pread(fd, 0)).toBe(-EIO)
    expect(fs.ls("/sys/kernel/debug/kvm/12396-12")).toBe(-ENOENT)
    expect(fs.ls("/sys/kernel/debug/kvm")).not.toContain("12396-12")
  })

  it("mounts the KVM module's VMs and vCPUs: PID-FD directories, vcpuN, live counters", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const host = yield* makeHostKernel({ profile: "linux-6.x", cpus: 2 })
          const kvm = yield* loadKvm(host)
          const fs = makeTree()
          mountKvmDebugfs(fs, kvm, host.profile.name)
          const qemu = host.tasks.spawnProcess("qemu-system-x86")
          const created = kvm.createVm(qemu)
          if (!created.ok) throw new Error(created.error.message)
          const vm = created.value
          const thread = host.tasks.spawnThread(qemu, "CPU 0/KVM")
          const vcpu = vm.createVcpu(thread, 0)
          if (!vcpu.ok) throw new Error(vcpu.error.message)
          expect(fs.ls("/sys/kernel/debug/kvm")).toContain(vm.name)
          expect(vm.name).toBe(`${qemu.pid}-${vm.fd}`)
          expect(fs.ls(`/sys/kernel/debug/kvm/${vm.name}`)).toContain("vcpu0")
          expect(fs.readFile(`/sys/kernel/debug/kvm/${vm.name}/vcpu0/pid`)).toBe(`${thread.pid}\n`)
          vcpu.value.stats.counters[VcpuStat.hypercalls] = 3
          expect(fs.readFile("/sys/kernel/debug/kvm/hypercalls")).toBe("3\n")
          expect(fs.readFile(`/sys/kernel/debug/kvm/${vm.name}/hypercalls`)).toBe("3\n")
          vm.destroy()
          expect(fs.ls("/sys/kernel/debug/kvm")).not.toContain(vm.name)
          expect(fs.readFile("/sys/kernel/debug/kvm/hypercalls")).toBe("0\n")
        }),
      ),
    ))
})
