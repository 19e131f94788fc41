// The KVM records of one CPU written through as few objects as possible: a traced VM round trip
// writes kvm_entry, kvm_exit, kvm_hypercall and a trace_printk line, and in the middle of the
// simulator's own work each object a record touches costs map checks, typed-array length and
// data-pointer loads and likely cache misses that a tight loop would hoist. So the writer IS its
// CPU's ring buffer (the tracer's rings are these writers): a record's reservation reads the tail
// page's offset, limit and base, the last time stamp and the words array as fields of this one
// object, tests one bound and writes the payload into the same words; page turns, time extends,
// overwrite and refusal stay out of line in CpuRingBuffer. It also holds a copy of the tracer's
// write gate, the clock's per-CPU times, the enable switches and the record lengths of the era.
// Timestamps, bytes and ring accounting are exactly those of CpuRingBuffer.reserve/commit,
// KvmTracepoints (which delegates here) and Tracer.printk.

import { IRQS_OFF_CONTEXT, TASK_CONTEXT, type TraceContext } from "./context.ts"
import { KVM_EVENT_IDS, KVM_EVENT_NAMES, KVM_ISA_VMX } from "./kvm-events.ts"
import { CpuRingBuffer, recordLength } from "./ring-buffer.ts"
import { TRACE_BPRINT, writeNumberArgs, writePrintkHead, type PrintkSite, type Tracer } from "./tracer.ts"

const I_ENTRY = KVM_EVENT_NAMES.indexOf("kvm_entry")
const I_EXIT = KVM_EVENT_NAMES.indexOf("kvm_exit")
const I_HYPERCALL = KVM_EVENT_NAMES.indexOf("kvm_hypercall")
const ID_ENTRY = KVM_EVENT_IDS.kvm_entry
const ID_EXIT = KVM_EVENT_IDS.kvm_exit
const ID_HYPERCALL = KVM_EVENT_IDS.kvm_hypercall
/**
 * Constant words of the round trip's records as KVM writes them: header words (event id, and the
 * context in the high half) and kvm_exit's isa. An enum because the bundler writes its members in
 * as literals, where module-level consts stay context-slot loads and number checks per record;
 * checked against the tables below.
 */
const enum RoundTripWord {
  /** kvm_entry (1616), interrupts off. */
  ENTRY_HEAD_IRQS_OFF = 1616 | (1 << 16),
  /** kvm_exit (1625), task context (5.0). */
  EXIT_HEAD_TASK = 1625,
  /** kvm_exit (1625), interrupts off (5.10 on). */
  EXIT_HEAD_IRQS_OFF = 1625 | (1 << 16),
  /** kvm_hypercall (1617), task context. */
  HYPERCALL_HEAD_TASK = 1617,
  ISA_VMX = 1,
}
/** A record header's time delta has 27 bits (the 5 below are type_len); a larger gap needs a time extend. */
const enum Stamp {
  DELTA_LIMIT = 1 << 27,
  /**
   * A ring's word indices stay far below 2^30 (at most 65,536 pages of 1,024 words), so masking a
   * record's index with this changes nothing but tells the JIT that index + k cannot overflow:
   * every payload store then skips an overflow check.
   */
  WORD_INDEX_MASK = 0x3fffffff,
}
/** Bytes in a page of the round trip's records (recordLength of the era's payload; checked per writer). */
const enum RecordLength {
  ENTRY_A = 16,
  ENTRY_D = 28,
  EXIT_A = 52,
  EXIT_D = 68,
  HYPERCALL = 52,
}
const RECORD_LENGTHS_A: ReadonlyArray<number> = [RecordLength.ENTRY_A, RecordLength.EXIT_A, RecordLength.HYPERCALL]
const RECORD_LENGTHS_D: ReadonlyArray<number> = [RecordLength.ENTRY_D, RecordLength.EXIT_D, RecordLength.HYPERCALL]
const roundTripWordsExpected: ReadonlyArray<readonly [number, number]> = [
  [RoundTripWord.ENTRY_HEAD_IRQS_OFF, ID_ENTRY | (IRQS_OFF_CONTEXT << 16)],
  [RoundTripWord.EXIT_HEAD_TASK, ID_EXIT | (TASK_CONTEXT << 16)],
  [RoundTripWord.EXIT_HEAD_IRQS_OFF, ID_EXIT | (IRQS_OFF_CONTEXT << 16)],
  [RoundTripWord.HYPERCALL_HEAD_TASK, ID_HYPERCALL | (TASK_CONTEXT << 16)],
  [RoundTripWord.ISA_VMX, KVM_ISA_VMX],
]
for (const [word, expected] of roundTripWordsExpected) {
  if (word !== expected) throw new Error(`KvmCpuWriter: round-trip word ${word} is not ${expected}`)
}

export class KvmCpuWriter extends CpuRingBuffer {
  // What every record reads is declared in CpuRingBuffer, next to its tail state (the write gate,
  // the clock's per-CPU times, the CPU, the era): a subclass's fields come after all the base's.
  private readonly on: Uint8Array
  private readonly tracer: Tracer

  /** `cpu`'s ring of `pages` pages; the tracer's era, KVM events, switches and clock are set up. */
  constructor(tracer: Tracer, cpu: number, pages: number) {
    super(pages)
    this.cpu = cpu
    this.eraD = tracer.era === "D"
    this.on = tracer.eventEnabled
    this.tracer = tracer
    // The record lengths written in as literals must be the era's.
    const lengths = this.eraD ? RECORD_LENGTHS_D : RECORD_LENGTHS_A
    const expected = [tracer.kvm.kvm_entry.payloadBytes, tracer.kvm.kvm_exit.payloadBytes, tracer.kvm.kvm_hypercall.payloadBytes].map(recordLength)
    if (expected.some((length, i) => length !== lengths[i])) throw new Error(`KvmCpuWriter: record lengths ${lengths.join(",")} are not era ${tracer.era}'s ${expected.join(",")}`)
    // Per-CPU times read directly only when the clock keeps them in an array; otherwise the gate
    // stays 2 and every record asks the tracer.
    const cpuTimes = tracer.clockSource.nowOn !== undefined ? tracer.clockSource.cpuNs : undefined
    if (cpuTimes !== undefined) {
      this.localNs = cpuTimes
      tracer.mirrorWriteGate(this)
    } else {
      // Read but unused by the records (the gate stays 2): in bounds, so the read stays a plain load.
      this.localNs = new Float64Array(cpu + 1)
    }
  }

  /** Time stamp of a record written now, -1 when nothing may be recorded (Tracer.writeStamp). */
  private stamp(): number {
    // Gate 0 implies per-CPU local clocks (the tracer opens it only when the clock has them).
    if (this.gate === 0) return this.localNs[this.cpu]!
    return this.tracer.writeStamp(this.cpu)
  }

  /**
   * Everything but the common case of a round-trip record's reservation (kept out of the record
   * methods so that their bytecode stays small enough for V8 to inline them into KVM's handlers):
   * stamps the record as the write gate says, then reserves and accounts it. -1 if nothing is stored.
   */
  private reserveStamped(length: number): number {
    const ts = this.stamp()
    return ts < 0 ? -1 : this.reserveSmallCommitted(length, ts)
  }

  /** Reserves and accounts a record of `length` bytes and writes its header; -1 if nothing is stored. */
  private begin(pid: number, ctx: TraceContext, id: number, length: number): number {
    const ts = this.stamp()
    if (ts < 0) return -1
    const w = this.reserveSmallCommitted(length, ts)
    if (w < 0) return -1
    const words = this.words
    words[w] = id | ((ctx & 0xffff) << 16)
    words[w + 1] = pid
    return w
  }

  // ---- KVM's round trip: kvm_entry, kvm_exit, kvm_hypercall with the kernel's contexts ----
  // These have the shape of KVM's per-CPU trace sink, so KVM's run loop and VMCALL handler call
  // the writer itself (no sink object in between). The caller has checked the event's enable
  // switch. Each reserves its record in its own body rather than through begin(): they are called
  // from KVM's largest functions, where V8's inlining budget is spent and begin() stayed a call.

  /** kvm_entry from vcpu_enter_guest, interrupts off (`d...`). */
  entry(pid: number, vcpuId: number, ripLo: number, ripHi: number): void {
    // The local clock's time, used only when the gate is 0 (otherwise a harmless read).
    const ts = this.localNs[this.cpu]!
    const length = this.eraD ? RecordLength.ENTRY_D : RecordLength.ENTRY_A
    const words = this.words
    const used = this.tailUsed
    const delta = ts - this.lastStamp
    let w: number
    if (this.gate === 0 && delta >= 0 && delta < Stamp.DELTA_LIMIT && used !== 0 && used + length <= this.tailLimit) {
      // reserveSmallCommitted's common case: the record fits the tail page, no time extend.
      w = this.tailBase + (used >> 2)
      words[w] = ((length - 4) >> 2) | (delta << 5)
      this.tailUsed = used + length
      this.tailEntries++
      this.lastStamp = ts
      w++
    } else {
      w = this.reserveStamped(length)
      if (w < 0) return
    }
    w &= Stamp.WORD_INDEX_MASK
    words[w] = RoundTripWord.ENTRY_HEAD_IRQS_OFF
    words[w + 1] = pid
    words[w + 2] = vcpuId
    if (this.eraD) {
      words[w + 3] = 0
      words[w + 4] = ripLo
      words[w + 5] = ripHi
    }
    if (this.onCommit !== undefined) this.wakeReaders()
  }

  /** kvm_exit from vmx_handle_exit: interrupts off from 5.10 on, on in 5.0 (the header word depends on the era). */
  exit(pid: number, vcpuId: number, exitReason: number, ripLo: number, ripHi: number, info1Lo: number, info1Hi: number, info2Lo: number, info2Hi: number, intrInfo: number, errorCode: number): void {
    // The local clock's time, used only when the gate is 0 (otherwise a harmless read).
    const ts = this.localNs[this.cpu]!
    const length = this.eraD ? RecordLength.EXIT_D : RecordLength.EXIT_A
    const words = this.words
    const used = this.tailUsed
    const delta = ts - this.lastStamp
    let w: number
    if (this.gate === 0 && delta >= 0 && delta < Stamp.DELTA_LIMIT && used !== 0 && used + length <= this.tailLimit) {
      // reserveSmallCommitted's common case: the record fits the tail page, no time extend.
      w = this.tailBase + (used >> 2)
      words[w] = ((length - 4) >> 2) | (delta << 5)
      this.tailUsed = used + length
      this.tailEntries++
      this.lastStamp = ts
      w++
    } else {
      w = this.reserveStamped(length)
      if (w < 0) return
    }
    w &= Stamp.WORD_INDEX_MASK
    words[w] = this.eraD ? RoundTripWord.EXIT_HEAD_IRQS_OFF : RoundTripWord.EXIT_HEAD_TASK
    words[w + 1] = pid
    words[w + 2] = exitReason
    words[w + 3] = 0
    words[w + 4] = ripLo
    words[w + 5] = ripHi
    words[w + 6] = RoundTripWord.ISA_VMX
    words[w + 7] = 0
    words[w + 8] = info1Lo
    words[w + 9] = info1Hi
    words[w + 10] = info2Lo
    words[w + 11] = info2Hi
    if (this.eraD) {
      words[w + 12] = intrInfo
      words[w + 13] = errorCode
      words[w + 14] = vcpuId
      words[w + 15] = 0
    }
    if (this.onCommit !== undefined) this.wakeReaders()
  }

  /** kvm_hypercall from kvm_emulate_hypercall, in task context: nr and a0..a3 as halves. */
  hypercall(pid: number, nrLo: number, nrHi: number, a0Lo: number, a0Hi: number, a1Lo: number, a1Hi: number, a2Lo: number, a2Hi: number, a3Lo: number, a3Hi: number): void {
    // The local clock's time, used only when the gate is 0 (otherwise a harmless read).
    const ts = this.localNs[this.cpu]!
    const length = RecordLength.HYPERCALL
    const words = this.words
    const used = this.tailUsed
    const delta = ts - this.lastStamp
    let w: number
    if (this.gate === 0 && delta >= 0 && delta < Stamp.DELTA_LIMIT && used !== 0 && used + length <= this.tailLimit) {
      // reserveSmallCommitted's common case: the record fits the tail page, no time extend.
      w = this.tailBase + (used >> 2)
      words[w] = ((length - 4) >> 2) | (delta << 5)
      this.tailUsed = used + length
      this.tailEntries++
      this.lastStamp = ts
      w++
    } else {
      w = this.reserveStamped(length)
      if (w < 0) return
    }
    w &= Stamp.WORD_INDEX_MASK
    words[w] = RoundTripWord.HYPERCALL_HEAD_TASK
    words[w + 1] = pid
    words[w + 2] = nrLo
    words[w + 3] = nrHi
    words[w + 4] = a0Lo
    words[w + 5] = a0Hi
    words[w + 6] = a1Lo
    words[w + 7] = a1Hi
    words[w + 8] = a2Lo
    words[w + 9] = a2Hi
    words[w + 10] = a3Lo
    words[w + 11] = a3Hi
    if (this.onCommit !== undefined) this.wakeReaders()
  }

  // ---- the same records with any context (KvmTracepoints) ----

  /** kvm_entry: `vcpu %u` (5.0) / `vcpu %u, rip 0x%lx` (6.x). */
  entryAs(pid: number, ctx: TraceContext, vcpuId: number, ripLo: number, ripHi: number): boolean {
    if (this.on[I_ENTRY] !== 1) return false
    const w = this.begin(pid, ctx, ID_ENTRY, (this.eraD ? RecordLength.ENTRY_D : RecordLength.ENTRY_A))
    if (w < 0) return false
    const words = this.words
    words[w + 2] = vcpuId
    if (this.eraD) {
      words[w + 3] = 0
      words[w + 4] = ripLo
      words[w + 5] = ripHi
    }
    if (this.onCommit !== undefined) this.wakeReaders()
    return true
  }

  /** kvm_exit; exitReason is the full 32-bit exit-reason field (bit 31 = failed VM entry). */
  exitAs(
    pid: number, ctx: TraceContext, vcpuId: number, exitReason: number,
    ripLo: number, ripHi: number, info1Lo: number, info1Hi: number, info2Lo: number, info2Hi: number,
    intrInfo: number, errorCode: number, isa: number = KVM_ISA_VMX,
  ): boolean {
    if (this.on[I_EXIT] !== 1) return false
    const w = this.begin(pid, ctx, ID_EXIT, (this.eraD ? RecordLength.EXIT_D : RecordLength.EXIT_A))
    if (w < 0) return false
    const words = this.words
    words[w + 2] = exitReason
    words[w + 3] = 0
    words[w + 4] = ripLo
    words[w + 5] = ripHi
    words[w + 6] = isa
    words[w + 7] = 0
    words[w + 8] = info1Lo
    words[w + 9] = info1Hi
    words[w + 10] = info2Lo
    words[w + 11] = info2Hi
    if (this.eraD) {
      words[w + 12] = intrInfo
      words[w + 13] = errorCode
      words[w + 14] = vcpuId
      words[w + 15] = 0
    }
    if (this.onCommit !== undefined) this.wakeReaders()
    return true
  }

  /** kvm_hypercall: nr and a0..a3 (RAX, RBX, RCX, RDX, RSI) as halves. */
  hypercallAs(
    pid: number, ctx: TraceContext, nrLo: number, nrHi: number, a0Lo: number, a0Hi: number,
    a1Lo: number, a1Hi: number, a2Lo: number, a2Hi: number, a3Lo: number, a3Hi: number,
  ): boolean {
    if (this.on[I_HYPERCALL] !== 1) return false
    const w = this.begin(pid, ctx, ID_HYPERCALL, RecordLength.HYPERCALL)
    if (w < 0) return false
    const words = this.words
    words[w + 2] = nrLo
    words[w + 3] = nrHi
    words[w + 4] = a0Lo
    words[w + 5] = a0Hi
    words[w + 6] = a1Lo
    words[w + 7] = a1Hi
    words[w + 8] = a2Lo
    words[w + 9] = a2Hi
    words[w + 10] = a3Lo
    words[w + 11] = a3Hi
    if (this.onCommit !== undefined) this.wakeReaders()
    return true
  }

  /**
   * Tracer.printkNumbers on this CPU (same record): its common case — up to four unsigned 32-bit
   * numbers, a word-packed site, the local clock — written here, anything else handed to it.
   */
  printkNumbers(pid: number, ctx: TraceContext, site: PrintkSite, a0: number, a1: number, a2: number, a3: number): boolean {
    const n = site.fastArgs
    if (n < 0 || n > 4 || this.gate !== 0 || a0 >>> 0 !== a0 || a1 >>> 0 !== a1 || a2 >>> 0 !== a2 || a3 >>> 0 !== a3) {
      return this.tracer.printkNumbers(this.cpu, pid, ctx, site, a0, a1, a2, a3)
    }
    const w = this.reserveSmallCommitted(site.recordLength, this.localNs[this.cpu]!)
    if (w < 0) return false
    const words = this.words
    writeNumberArgs(words, writePrintkHead(words, w, TRACE_BPRINT, ctx, pid, site.address), n, site.wideMask, a0, a1, a2, a3)
    if (this.onCommit !== undefined) this.wakeReaders()
    return true
  }

  /**
   * trace_printk from `site` with arguments 0..count-1 given as unsigned 32-bit halves in `lo` and
   * `hi` (any number of them, nothing allocated): 4-byte conversions print the low half, 8-byte
   * ones both; conversions past `count` print 0; a %s prints the value's decimal text. The record
   * is the one Tracer.printk writes for the same arguments staged with setArgWords.
   */
  printkWords(pid: number, ctx: TraceContext, site: PrintkSite, lo: Uint32Array, hi: Uint32Array, count: number): boolean {
    const n = site.fastArgs
    if (n < 0 || this.gate !== 0) return this.printkWordsStaged(pid, ctx, site, lo, hi, count)
    const ts = this.localNs[this.cpu]!
    const length = site.recordLength
    const words = this.words
    const used = this.tailUsed
    const delta = ts - this.lastStamp
    let w: number
    if (delta >= 0 && delta < Stamp.DELTA_LIMIT && used !== 0 && used + length <= this.tailLimit) {
      // reserveSmallCommitted's common case, as in entry().
      w = this.tailBase + (used >> 2)
      words[w] = ((length - 4) >> 2) | (delta << 5)
      this.tailUsed = used + length
      this.tailEntries++
      this.lastStamp = ts
      w++
    } else {
      w = this.reserveSmallCommitted(length, ts)
      if (w < 0) return false
    }
    w &= Stamp.WORD_INDEX_MASK
    // Which conversions take 8 bytes, as bits (a fast site has at most 22 arguments).
    const wide = site.wideMask
    let at = writePrintkHead(words, w, TRACE_BPRINT, ctx, pid, site.address)
    for (let i = 0; i < n; i++) {
      const given = i < count
      words[at++] = given ? lo[i]! : 0
      if (((wide >> i) & 1) !== 0) words[at++] = given ? hi[i]! : 0
    }
    if (this.onCommit !== undefined) this.wakeReaders()
    return true
  }

  /** printkWords through the tracer's staging area (strings, large records, other clocks, recording off). */
  private printkWordsStaged(pid: number, ctx: TraceContext, site: PrintkSite, lo: Uint32Array, hi: Uint32Array, count: number): boolean {
    const tracer = this.tracer
    const conversions = site.format.conversions
    for (let i = 0; i < conversions.length; i++) {
      const l = i < count ? lo[i]! : 0
      const h = i < count ? hi[i]! : 0
      if (conversions[i]!.storage === "str") tracer.setArgString(i, h === 0 ? String(l) : ((BigInt(h) << 32n) | BigInt(l)).toString())
      else tracer.setArgWords(i, l, h)
    }
    return tracer.printk(this.cpu, pid, ctx, site)
  }
}
