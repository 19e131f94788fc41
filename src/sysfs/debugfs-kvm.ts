// debugfs /sys/kernel/debug/kvm as kvm_stat's debugfs provider reads it (ftrace.md §6.1): one file
// per statistic at the top (summed over every vCPU of every VM, or every VM), one directory per
// VM named PID-FD with the same files for that VM, and vcpuN directories with the per-vCPU x86
// files. Counters are 0644 (writing 0 clears them; anything else is EINVAL); files of a VM that
// has been destroyed read EIO, as debugfs files removed under an open handle do.

import type { KernelProfileName } from "../host/profile.ts"
import { statFiles, type StatFile } from "../hypervisor/kvm/stats.ts"
import { EINVAL, EIO } from "./errno.ts"
import { kstrtoull } from "./kstrtox.ts"
import { attach, DirNode, type DynamicEntries, FileNode, permanent } from "./nodes.ts"
import type { PseudoFs } from "./pseudo-fs.ts"

/** The part of a KVM vCPU debugfs shows (the KVM module's Vcpu satisfies it). */
export interface DebugfsVcpu {
  readonly id: number
  /** pid of the vCPU's thread. */
  readonly pid: number
  readonly stats: { readonly counters: Float64Array; clear(): void }
}

/** The part of a KVM VM debugfs shows (the KVM module's Vm satisfies it). */
export interface DebugfsVm {
  /** "PID-FD". */
  readonly name: string
  readonly destroyed: boolean
  readonly stats: Float64Array
  readonly vcpus: ReadonlyMap<number, DebugfsVcpu>
}

export interface DebugfsKvm {
  allVms(): ReadonlyArray<DebugfsVm>
}

// TSC scaling on the simulated Skylake: ratio 1.0 in 16.48 fixed point.
const TSC_SCALING_FRAC_BITS = 48
const TSC_SCALING_DEFAULT_RATIO = 1n << 48n

const statValue = (stat: StatFile, vms: ReadonlyArray<DebugfsVm>): number => {
  let sum = 0
  for (const vm of vms) {
    if (stat.scope === "vm") sum += vm.stats[stat.slot] ?? 0
    else for (const vcpu of vm.vcpus.values()) sum += vcpu.stats.counters[stat.slot] ?? 0
  }
  return sum
}

const clearStat = (stat: StatFile, vms: ReadonlyArray<DebugfsVm>): void => {
  for (const vm of vms) {
    if (stat.scope === "vm") vm.stats[stat.slot] = 0
    else for (const vcpu of vm.vcpus.values()) vcpu.stats.counters[stat.slot] = 0
  }
}

/** One statistic file over the VMs `scope()` returns (all of them, or one). */
const statFile = (stat: StatFile, scope: () => ReadonlyArray<DebugfsVm> | undefined): FileNode => {
  const node = new FileNode(
    stat.name,
    0o644,
    permanent,
    () => {
      const vms = scope()
      return vms === undefined ? -EIO : `${statValue(stat, vms)}\n`
    },
    (text) => {
      const vms = scope()
      if (vms === undefined) return -EIO
      // kvm_stat_data_clear: only 0 may be written.
      const value = kstrtoull(text)
      if (typeof value === "number") return value
      if (value !== 0n) return -EINVAL
      clearStat(stat, vms)
      return text.length
    },
  )
  node.kernfsModeChecks = false
  node.size = 0
  return node
}

const roFile = (name: string, show: () => string | number): FileNode => {
  const node = new FileNode(name, 0o444, permanent, show, undefined)
  node.kernfsModeChecks = false
  node.size = 0
  return node
}

const vcpuDir = (vm: DebugfsVm, vcpu: DebugfsVcpu, profile: KernelProfileName): DirNode => {
  const dir = new DirNode(`vcpu${vcpu.id}`, 0o755, permanent)
  const alive = (text: () => string) => () => (vm.destroyed ? -EIO : text())
  attach(dir, roFile("tsc-offset", alive(() => "0\n")))
  attach(dir, roFile("tsc-scaling-ratio", alive(() => `${TSC_SCALING_DEFAULT_RATIO}\n`)))
  attach(dir, roFile("tsc-scaling-ratio-frac-bits", alive(() => `${TSC_SCALING_FRAC_BITS}\n`)))
  if (profile === "linux-6.x") {
    attach(dir, roFile("guest_mode", alive(() => "0\n")))
    attach(dir, roFile("pid", alive(() => `${vcpu.pid}\n`)))
  }
  return dir
}

const vmDir = (vm: DebugfsVm, profile: KernelProfileName, stats: ReadonlyArray<StatFile>): DirNode => {
  const dir = new DirNode(vm.name, 0o755, permanent)
  const only = () => (vm.destroyed ? undefined : [vm])
  for (const stat of stats) attach(dir, statFile(stat, only))
  const vcpuDirs = new WeakMap<DebugfsVcpu, DirNode>()
  dir.dynamic = {
    list: () => (vm.destroyed ? [] : [...vm.vcpus.keys()].map((id) => `vcpu${id}`)),
    lookup: (name) => {
      const match = /^vcpu(\d+)$/.exec(name)
      const vcpu = match === null || vm.destroyed ? undefined : vm.vcpus.get(Number(match[1]))
      if (vcpu === undefined) return undefined
      let node = vcpuDirs.get(vcpu)
      if (node === undefined) vcpuDirs.set(vcpu, (node = vcpuDir(vm, vcpu, profile)))
      return node
    },
  }
  return dir
}

/** Mounts /sys/kernel/debug/kvm for `kvm` with the statistics names of `profile`. */
export const mountKvmDebugfs = (fs: PseudoFs, kvm: DebugfsKvm, profile: KernelProfileName): DirNode => {
  fs.mkdirs("/sys/kernel/debug", 0o700)
  const root = fs.mkdirs("/sys/kernel/debug/kvm", 0o755)
  const stats = statFiles(profile)
  for (const stat of stats) attach(root, statFile(stat, () => kvm.allVms()))
  const vmDirs = new WeakMap<DebugfsVm, DirNode>()
  const entries: DynamicEntries = {
    list: () => kvm.allVms().map((vm) => vm.name),
    lookup: (name) => {
      const vm = kvm.allVms().find((v) => v.name === name)
      if (vm === undefined) return undefined
      let node = vmDirs.get(vm)
      if (node === undefined) vmDirs.set(vm, (node = vmDir(vm, profile, stats)))
      return node
    },
  }
  root.dynamic = entries
  return root
}
