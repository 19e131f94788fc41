// Hot-path writers of the KVM tracepoints: one method per event, plain numbers in (64-bit
// values as lo/hi 32-bit halves), one binary record out, nothing allocated. Each returns
// whether the record was stored (false: event disabled, tracing off, or buffer full with
// overwrite off). Fields an era does not have are ignored for that era.
//
// Each writer is a few typed-array stores: the record length per event is computed once here,
// the time stamp comes from Tracer.writeStamp (one field test for the usual local clock),
// reserve and the commit accounting are one step (CpuRingBuffer.reserveSmallCommitted), and
// every payload word is stored explicitly — era fields a record lacks and padding as zeros —
// so a reused page never leaks old bytes. kvm_entry, kvm_exit and kvm_hypercall — the records of
// every traced VM round trip — are written by per-CPU writers (kvm-cpu-writer.ts: each is its
// CPU's ring buffer, tracer.rings[cpu]), which hot callers may hold themselves (`forCpu`).

import type { TraceContext } from "./context.ts"
import { KVM_EVENT_IDS, KVM_EVENT_NAMES, KVM_ISA_VMX, type KvmEventName } from "./kvm-events.ts"
import { MAX_SMALL_PAYLOAD, recordLength } from "./ring-buffer.ts"
import type { Tracer } from "./tracer.ts"
import type { KvmCpuWriter } from "./kvm-cpu-writer.ts"

const I_PIO = KVM_EVENT_NAMES.indexOf("kvm_pio")
const I_CPUID = KVM_EVENT_NAMES.indexOf("kvm_cpuid")
const I_MSR = KVM_EVENT_NAMES.indexOf("kvm_msr")
const I_CR = KVM_EVENT_NAMES.indexOf("kvm_cr")
const I_INJ_EXCEPTION = KVM_EVENT_NAMES.indexOf("kvm_inj_exception")
const I_INJ_VIRQ = KVM_EVENT_NAMES.indexOf("kvm_inj_virq")
const I_USERSPACE_EXIT = KVM_EVENT_NAMES.indexOf("kvm_userspace_exit")
const I_VCPU_WAKEUP = KVM_EVENT_NAMES.indexOf("kvm_vcpu_wakeup")
const ID_PIO = KVM_EVENT_IDS.kvm_pio
const ID_CPUID = KVM_EVENT_IDS.kvm_cpuid
const ID_MSR = KVM_EVENT_IDS.kvm_msr
const ID_CR = KVM_EVENT_IDS.kvm_cr
const ID_INJ_EXCEPTION = KVM_EVENT_IDS.kvm_inj_exception
const ID_INJ_VIRQ = KVM_EVENT_IDS.kvm_inj_virq
const ID_USERSPACE_EXIT = KVM_EVENT_IDS.kvm_userspace_exit
const ID_VCPU_WAKEUP = KVM_EVENT_IDS.kvm_vcpu_wakeup

/** The record's first word: event type in the low half, common_flags and common_preempt_count above. */
const headWord = (id: number, ctx: TraceContext): number => id | ((ctx & 0xffff) << 16)

export class KvmTracepoints {
  private readonly eraD: boolean
  private readonly enabledSwitch: Uint8Array
  // Record length in a page of each event in this era (recordLength of its payload).
  private readonly pioLength: number
  private readonly cpuidLength: number
  private readonly msrLength: number
  private readonly crLength: number
  private readonly injExceptionLength: number
  private readonly injVirqLength: number
  private readonly userspaceExitLength: number
  private readonly vcpuWakeupLength: number
  private readonly cpuWriters: ReadonlyArray<KvmCpuWriter>

  constructor(private readonly tracer: Tracer) {
    this.eraD = tracer.era === "D"
    this.enabledSwitch = tracer.eventEnabled
    const length = (name: KvmEventName): number => {
      const event = tracer.kvm[name]
      // The writers store whole words, rely on the one-word record header, and use the fixed ids.
      if (event.payloadBytes > MAX_SMALL_PAYLOAD || event.payloadBytes % 4 !== 0) throw new Error(`${name}: payload of ${event.payloadBytes} bytes does not fit the small-record writers`)
      if (event.id !== KVM_EVENT_IDS[name]) throw new Error(`${name}: id ${event.id} is not ${KVM_EVENT_IDS[name]}`)
      return recordLength(event.payloadBytes)
    }
    // kvm_entry, kvm_exit and kvm_hypercall are written by the per-CPU writers: checked here too.
    length("kvm_entry")
    length("kvm_exit")
    length("kvm_hypercall")
    this.pioLength = length("kvm_pio")
    this.cpuidLength = length("kvm_cpuid")
    this.msrLength = length("kvm_msr")
    this.crLength = length("kvm_cr")
    this.injExceptionLength = length("kvm_inj_exception")
    this.injVirqLength = length("kvm_inj_virq")
    this.userspaceExitLength = length("kvm_userspace_exit")
    this.vcpuWakeupLength = length("kvm_vcpu_wakeup")
    this.cpuWriters = tracer.rings
  }

  /** Whether an event is enabled (callers may skip gathering fields when it is not). */
  enabled(name: (typeof KVM_EVENT_NAMES)[number]): boolean {
    return this.tracer.eventEnabled[KVM_EVENT_NAMES.indexOf(name)] === 1
  }

  /**
   * Reserves and accounts the record of event `index` on `cpu` and writes its common header;
   * returns the payload's word index in `rings[cpu].words`, or -1 when nothing is stored. The
   * caller stores every payload word from w + 2 on, then calls `rings[cpu].wakeReaders()` if
   * `onCommit` is set.
   */
  private begin(cpu: number, pid: number, ctx: TraceContext, index: number, id: number, length: number): number {
    if (this.enabledSwitch[index] !== 1) return -1
    const t = this.tracer
    const ts = t.writeStamp(cpu)
    if (ts < 0) return -1
    const ring = t.rings[cpu]!
    const w = ring.reserveSmallCommitted(length, ts)
    if (w < 0) return -1
    const words = ring.words
    words[w] = headWord(id, ctx)
    words[w + 1] = pid
    return w
  }

  /** The writer of `cpu`'s records (what entry, exit and hypercall use; hot callers may hold it). */
  forCpu(cpu: number): KvmCpuWriter {
    return this.cpuWriters[cpu]!
  }

  /** kvm_entry: `vcpu %u` (5.0) / `vcpu %u, rip 0x%lx` (6.x). */
  entry(cpu: number, pid: number, ctx: TraceContext, vcpuId: number, ripLo: number, ripHi: number): boolean {
    return this.cpuWriters[cpu]!.entryAs(pid, ctx, vcpuId, ripLo, ripHi)
  }

  /** kvm_exit; exitReason is the full 32-bit exit-reason field (bit 31 = failed VM entry). */
  exit(
    cpu: number, pid: number, ctx: TraceContext, vcpuId: number, exitReason: number,
    ripLo: number, ripHi: number, info1Lo: number, info1Hi: number, info2Lo: number, info2Hi: number,
    intrInfo: number, errorCode: number, isa: number = KVM_ISA_VMX,
  ): boolean {
    return this.cpuWriters[cpu]!.exitAs(pid, ctx, vcpuId, exitReason, ripLo, ripHi, info1Lo, info1Hi, info2Lo, info2Hi, intrInfo, errorCode, isa)
  }

  /** kvm_hypercall: nr and a0..a3 (RAX, RBX, RCX, RDX, RSI) as halves. */
  hypercall(
    cpu: number, pid: number, ctx: TraceContext, nrLo: number, nrHi: number, a0Lo: number, a0Hi: number,
    a1Lo: number, a1Hi: number, a2Lo: number, a2Hi: number, a3Lo: number, a3Hi: number,
  ): boolean {
    return this.cpuWriters[cpu]!.hypercallAs(pid, ctx, nrLo, nrHi, a0Lo, a0Hi, a1Lo, a1Hi, a2Lo, a2Hi, a3Lo, a3Hi)
  }

  /** kvm_pio: one port access (count > 1 for string I/O). */
  pio(cpu: number, pid: number, ctx: TraceContext, write: boolean, port: number, size: number, count: number, val: number): boolean {
    const w = this.begin(cpu, pid, ctx, I_PIO, ID_PIO, this.pioLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = write ? 1 : 0
    words[w + 3] = port
    words[w + 4] = size
    words[w + 5] = count
    words[w + 6] = val
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_cpuid: leaf, subleaf (6.x only), results as halves, and whether the entry was found. */
  cpuid(
    cpu: number, pid: number, ctx: TraceContext, fn: number, index: number,
    raxLo: number, raxHi: number, rbxLo: number, rbxHi: number, rcxLo: number, rcxHi: number, rdxLo: number, rdxHi: number,
    found: boolean, usedMaxBasic: boolean,
  ): boolean {
    const w = this.begin(cpu, pid, ctx, I_CPUID, ID_CPUID, this.cpuidLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = fn
    words[w + 3] = this.eraD ? index : 0
    words[w + 4] = raxLo
    words[w + 5] = raxHi
    words[w + 6] = rbxLo
    words[w + 7] = rbxHi
    words[w + 8] = rcxLo
    words[w + 9] = rcxHi
    words[w + 10] = rdxLo
    words[w + 11] = rdxHi
    words[w + 12] = (found ? 1 : 0) | (this.eraD && usedMaxBasic ? 0x100 : 0)
    words[w + 13] = 0
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_msr: RDMSR/WRMSR of `ecx`; `exception` marks a #GP. */
  msr(cpu: number, pid: number, ctx: TraceContext, write: boolean, ecx: number, dataLo: number, dataHi: number, exception: boolean): boolean {
    const w = this.begin(cpu, pid, ctx, I_MSR, ID_MSR, this.msrLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = write ? 1 : 0
    words[w + 3] = ecx
    words[w + 4] = dataLo
    words[w + 5] = dataHi
    words[w + 6] = exception ? 1 : 0
    words[w + 7] = 0
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_cr: MOV to/from control register `cr`. */
  cr(cpu: number, pid: number, ctx: TraceContext, write: boolean, cr: number, valLo: number, valHi: number): boolean {
    const w = this.begin(cpu, pid, ctx, I_CR, ID_CR, this.crLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = write ? 1 : 0
    words[w + 3] = cr
    words[w + 4] = valLo
    words[w + 5] = valHi
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_inj_exception: vector, error code when it has one, re-injection (6.x). */
  injException(cpu: number, pid: number, ctx: TraceContext, vector: number, hasError: boolean, errorCode: number, reinjected: boolean): boolean {
    const w = this.begin(cpu, pid, ctx, I_INJ_EXCEPTION, ID_INJ_EXCEPTION, this.injExceptionLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = (vector & 0xff) | (hasError ? 0x100 : 0)
    words[w + 3] = errorCode
    if (this.eraD) words[w + 4] = reinjected ? 1 : 0
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_inj_virq: `irq %u` (5.0) / `IRQ 0x%x` or `Soft/INTn 0x%x` (6.x). */
  injVirq(cpu: number, pid: number, ctx: TraceContext, vector: number, soft: boolean, reinjected: boolean): boolean {
    const w = this.begin(cpu, pid, ctx, I_INJ_VIRQ, ID_INJ_VIRQ, this.injVirqLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = vector
    if (this.eraD) words[w + 3] = (soft ? 1 : 0) | (reinjected ? 0x100 : 0)
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_userspace_exit: the KVM_EXIT_* reason, or a negative errno when KVM_RUN failed. */
  userspaceExit(cpu: number, pid: number, ctx: TraceContext, reason: number, errno: number): boolean {
    const w = this.begin(cpu, pid, ctx, I_USERSPACE_EXIT, ID_USERSPACE_EXIT, this.userspaceExitLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    words[w + 2] = reason
    words[w + 3] = errno
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** kvm_vcpu_wakeup: how long the vCPU waited (or polled), and whether polling was valid. */
  vcpuWakeup(cpu: number, pid: number, ctx: TraceContext, ns: number, waited: boolean, valid: boolean): boolean {
    const w = this.begin(cpu, pid, ctx, I_VCPU_WAKEUP, ID_VCPU_WAKEUP, this.vcpuWakeupLength)
    if (w < 0) return false
    const ring = this.tracer.rings[cpu]!
    const words = ring.words
    const hi = Math.floor(ns / 0x1_0000_0000)
    words[w + 2] = ns - hi * 0x1_0000_0000
    words[w + 3] = hi
    words[w + 4] = (waited ? 1 : 0) | (valid ? 0x100 : 0)
    words[w + 5] = 0
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }
}
