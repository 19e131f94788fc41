// What writers tell the tracer about the context an event happens in, and the two small
// interfaces the tracer needs from the host kernel (its clock and its task names). The host's
// virtual clock and task table satisfy them structurally; trace never imports host.

/** Bits of the common_flags byte (include/linux/trace_events.h / kernel/trace/trace.h). */
export const TraceFlag = {
  IRQS_OFF: 0x01,
  IRQS_NOSUPPORT: 0x02,
  NEED_RESCHED: 0x04,
  HARDIRQ: 0x08,
  SOFTIRQ: 0x10,
  PREEMPT_RESCHED: 0x20,
  NMI: 0x40,
  /** Era D only: bottom halves disabled. */
  BH_OFF: 0x80,
} as const

/**
 * A writer's context packed in one number: common_flags in bits 0–7, common_preempt_count in
 * bits 8–15 (in era D its low nibble is the preempt depth, the high nibble the migrate-disable depth).
 */
export type TraceContext = number
export const traceContext = (flags: number, preemptCount = 0): TraceContext => (flags & 0xff) | ((preemptCount & 0xff) << 8)
/** Task context, interrupts on, nothing pending: `....` / `.....`. */
export const TASK_CONTEXT: TraceContext = 0
/** Interrupts off (kvm_entry, and kvm_exit from 5.10 on): `d...` / `d....`. */
export const IRQS_OFF_CONTEXT: TraceContext = TraceFlag.IRQS_OFF

/** The trace clock's source: nanoseconds since boot. `nowOn` gives one CPU's local clock when the host keeps them apart. */
export interface TraceClockSource {
  nowNs(): number
  nowOn?(cpu: number): number
  /**
   * The per-CPU local times `nowOn` reads, when the clock keeps them in one array (the host's
   * VirtualClock does): the KVM writers then read a CPU's time with one load. Must always hold
   * exactly what `nowOn(cpu)` returns.
   */
  readonly cpuNs?: Float64Array
}

/** pid → comm, like the kernel's saved_cmdlines cache; undefined when the pid is not known. */
export interface TaskNames {
  commOf(pid: number): string | undefined
}

/** A clock that only moves when told to: for tests and for tools that replay recorded times. */
export class ManualClock implements TraceClockSource {
  constructor(public ns = 0) {}
  nowNs(): number {
    return this.ns
  }
  set(ns: number): void {
    this.ns = ns
  }
  advance(ns: number): void {
    this.ns += ns
  }
}

/** A fixed pid → comm table. */
export class StaticTaskNames implements TaskNames {
  private readonly names = new Map<number, string>()
  constructor(entries: Iterable<readonly [number, string]> = []) {
    for (const [pid, comm] of entries) this.names.set(pid, comm)
  }
  set(pid: number, comm: string): void {
    this.names.set(pid, comm)
  }
  commOf(pid: number): string | undefined {
    return this.names.get(pid)
  }
}
