// KVM's statistics as its debugfs files show them (ftrace.md §6.1): per-vCPU counters and per-VM
// counters, named as the profile's kernel names them, plus exits by basic exit reason (what the
// kvm_exit tracepoint lets kvm_stat count). Counters are Float64Array slots: exact to 2^53 and
// incremented on the hot path without allocation.

import type { KernelProfileName } from "../../host/profile.ts"

/** Slots of the per-vCPU counters the run loop increments. */
export const VcpuStat = {
  exits: 0,
  io_exits: 1,
  mmio_exits: 2,
  signal_exits: 3,
  irq_window_exits: 4,
  nmi_window_exits: 5,
  halt_exits: 6,
  halt_successful_poll: 7,
  halt_attempted_poll: 8,
  halt_poll_invalid: 9,
  halt_wakeup: 10,
  request_irq_exits: 11,
  irq_exits: 12,
  host_state_reload: 13,
  fpu_reload: 14,
  insn_emulation: 15,
  insn_emulation_fail: 16,
  hypercalls: 17,
  irq_injections: 18,
  nmi_injections: 19,
  req_event: 20,
  pf_fixed: 21,
  pf_guest: 22,
  tlb_flush: 23,
  invlpg: 24,
  l1d_flush: 25,
  preemption_reported: 26,
  directed_yield_attempted: 27,
  directed_yield_successful: 28,
} as const
export type VcpuStatName = keyof typeof VcpuStat
export const VCPU_STAT_COUNT = 29

/** Slots of the per-VM counters. */
export const VmStat = {
  remote_tlb_flush: 0,
  mmu_shadow_zapped: 1,
  mmu_pte_write: 2,
  mmu_pde_zapped: 3,
  mmu_flooded: 4,
  mmu_recycled: 5,
  mmu_cache_miss: 6,
  mmu_unsync: 7,
  max_mmu_page_hash_collisions: 8,
} as const
export const VM_STAT_COUNT = 9

/** Exits by basic reason: one slot per reason number 0..MAX. */
export const EXIT_REASON_SLOTS = 96

export interface StatFile {
  /** The debugfs file name in this profile. */
  readonly name: string
  readonly scope: "vcpu" | "vm"
  readonly slot: number
}

// debugfs names in 5.0 (x86.c debugfs_entries) where they differ from the slot names.
const renames50: Partial<Record<VcpuStatName, string>> = {
  irq_window_exits: "irq_window",
  nmi_window_exits: "nmi_window",
  request_irq_exits: "request_irq",
}
const only6x = new Set<VcpuStatName>(["preemption_reported", "directed_yield_attempted", "directed_yield_successful"])

/** The statistics files of /sys/kernel/debug/kvm for a profile, in the kernel's order. */
export const statFiles = (profile: KernelProfileName): ReadonlyArray<StatFile> => {
  const vcpu: Array<StatFile> = (Object.entries(VcpuStat) as Array<[VcpuStatName, number]>)
    .filter(([name]) => profile === "linux-6.x" || !only6x.has(name))
    .map(([name, slot]) => ({ name: profile === "linux-5.0" ? (renames50[name] ?? name) : name, scope: "vcpu" as const, slot }))
  const vm: Array<StatFile> = Object.entries(VmStat).map(([name, slot]) => ({ name, scope: "vm" as const, slot }))
  return [...vcpu, ...vm]
}

export class VcpuStats {
  readonly counters = new Float64Array(VCPU_STAT_COUNT)
  readonly exitsByReason = new Float64Array(EXIT_REASON_SLOTS)

  get(stat: VcpuStatName): number {
    return this.counters[VcpuStat[stat]]!
  }

  /** Writing 0 to a debugfs counter clears it. */
  clear(): void {
    this.counters.fill(0)
    this.exitsByReason.fill(0)
  }
}
