// Where KVM's tracepoints and trace_printk go. The run loop calls these on the hot path with
// plain numbers (64-bit values as unsigned 32-bit halves), and checks `on` first — the
// tracepoint's static key — so a disabled event costs one typed-array read. The indices follow
// the trace subsystem's KVM_EVENT_NAMES, so its enable switches can serve as `on` directly.
// FtraceSink (ftrace-sink.ts) writes binary ring-buffer records; NullTraceSink drops everything.

/** Tracepoints KVM emits, as indices into `KvmTraceSink.on`. */
export const KvmEvent = {
  entry: 0,
  exit: 1,
  hypercall: 2,
  pio: 3,
  cpuid: 4,
  msr: 5,
  cr: 6,
  inj_exception: 7,
  inj_virq: 8,
  userspace_exit: 9,
  vcpu_wakeup: 10,
  mmio: 11,
  printk: 12,
} as const
export const KVM_EVENT_COUNT = 13

/**
 * The records of every traced round trip, for one host CPU: the run loop takes this once per
 * stretch on a CPU, so a record costs the writer and the ring, not a CPU lookup per call.
 */
export interface KvmCpuTraceSink {
  entry(pid: number, vcpuId: number, ripLo: number, ripHi: number): void
  exit(pid: number, vcpuId: number, reason: number, ripLo: number, ripHi: number, info1Lo: number, info1Hi: number, info2Lo: number, info2Hi: number, intrInfo: number, errorCode: number): void
  hypercall(pid: number, nrLo: number, nrHi: number, a0Lo: number, a0Hi: number, a1Lo: number, a1Hi: number, a2Lo: number, a2Hi: number, a3Lo: number, a3Hi: number): void
}

export interface KvmTraceSink {
  /** 1 when the event is enabled (events/kvm/<name>/enable; printk is always on). */
  readonly on: Uint8Array
  /**
   * Whether a trace_printk now would be recorded (tracing_on, not paused by an open `trace`).
   * When false, KVM builds no arguments for printf and only calls registerPrintk.
   */
  readonly recording: boolean
  /**
   * Registers the trace_printk call site of (fn, format) if this is its first use, recording
   * nothing: what a trace_printk that is not recorded still does (a site's first use expands the
   * ring buffers, as loading code with trace_printk does).
   */
  registerPrintk(fn: string, format: string): void
  /** entry, exit and hypercall of host CPU `cpu`, with the kernel's contexts filled in (the only way KVM writes them). */
  forCpu(cpu: number): KvmCpuTraceSink
  /** rw: 0 read (IN), 1 write (OUT). */
  pio(cpu: number, pid: number, rw: number, port: number, size: number, count: number, val: number): void
  cpuid(cpu: number, pid: number, fn: number, index: number, rax: number, rbx: number, rcx: number, rdx: number, found: boolean, usedMaxBasic: boolean): void
  msr(cpu: number, pid: number, write: number, ecx: number, dataLo: number, dataHi: number, exception: boolean): void
  /** rw: 0 read, 1 write. */
  cr(cpu: number, pid: number, rw: number, cr: number, valLo: number, valHi: number): void
  injException(cpu: number, pid: number, vector: number, hasError: boolean, errorCode: number, reinjected: boolean): void
  injVirq(cpu: number, pid: number, vector: number, soft: boolean, reinjected: boolean): void
  userspaceExit(cpu: number, pid: number, reason: number, errno: number): void
  vcpuWakeup(cpu: number, pid: number, ns: number, waited: boolean, valid: boolean): void
  /** type: 0 unsatisfied-read, 1 read, 2 write (KVM_TRACE_MMIO_*). */
  mmio(cpu: number, pid: number, type: number, len: number, gpaLo: number, gpaHi: number, valLo: number, valHi: number): void
  /** trace_printk(format, args...) from kernel function `fn`; formats end with "\n" as kernel ones do. */
  printf(cpu: number, pid: number, fn: string, format: string, args: ReadonlyArray<number | bigint | string>): void
  /**
   * printf for formats whose arguments are all integers, any number of them, given as unsigned
   * 32-bit halves: argument i is hi[i] * 2^32 + lo[i] for i < count (nothing allocated; the arrays
   * are only read during the call). Conversions past `count` print 0; %s prints the decimal text.
   */
  printfWords(cpu: number, pid: number, fn: string, format: string, lo: Uint32Array, hi: Uint32Array, count: number): void
}

class NullCpuTraceSink implements KvmCpuTraceSink {
  entry(): void {}
  exit(): void {}
  hypercall(): void {}
}
const nullCpuTraceSink = new NullCpuTraceSink()

/** Drops every event (tracing compiled out). */
export class NullTraceSink implements KvmTraceSink {
  readonly on = new Uint8Array(KVM_EVENT_COUNT)
  readonly recording = false
  registerPrintk(): void {}
  forCpu(): KvmCpuTraceSink {
    return nullCpuTraceSink
  }
  pio(): void {}
  cpuid(): void {}
  msr(): void {}
  cr(): void {}
  injException(): void {}
  injVirq(): void {}
  userspaceExit(): void {}
  vcpuWakeup(): void {}
  mmio(): void {}
  printf(): void {}
  printfWords(): void {}
}
