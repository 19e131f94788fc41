// The trace instance (the kernel's global trace_array): one ring buffer per CPU, the options
// and switches of tracefs, the writers (trace_printk, trace_marker, tracepoints) and the code
// that turns a binary record into its line of text. Writing stores binary records only; text
// is made when a reader asks for it.

import { TASK_CONTEXT, type TaskNames, type TraceClockSource, type TraceContext } from "./context.ts"
import type { TraceEra, TraceEventType } from "./events.ts"
import { KVM_EVENT_NAMES, kvmEvents, type KvmEventName } from "./kvm-events.ts"
import { commForDisplay, flagChars, formatSecondsUs, formatStampColumn, taskColumns } from "./output.ts"
import { latin1Bytes, type LineBytes } from "./line-bytes.ts"
import { KvmCpuWriter } from "./kvm-cpu-writer.ts"
import { appendPacked, compileFormat, formatPacked, plainConversions, type CompiledFormat, FormatError } from "./printf.ts"
import { type EventCursor, MAX_PAYLOAD_BYTES, MAX_SMALL_PAYLOAD, pagesForBytes, PAGE_DATA_BYTES, recordLength } from "./ring-buffer.ts"

/** Fixed ftrace record types (enum trace_type). */
export const TRACE_PRINT = 5
export const TRACE_BPRINT = 6
export const TRACE_BPUTS = 14

/** The kernel's default trace_buf_size (1,441,792 bytes = 1408 KiB per CPU). */
export const DEFAULT_BUFFER_BYTES = 1_441_792
/** TRACE_BUF_SIZE: the longest trace_marker write and the largest trace_printk argument area. */
export const TRACE_BUF_SIZE = 1024

/** Clocks of trace_clock, in the order the file lists them. */
export const TRACE_CLOCKS_5_0 = ["local", "global", "counter", "uptime", "perf", "mono", "mono_raw", "boot", "x86-tsc"] as const
export const TRACE_CLOCKS_6_X = ["local", "global", "counter", "uptime", "perf", "mono", "mono_raw", "boot", "tai", "x86-tsc"] as const
export type TraceClockName = (typeof TRACE_CLOCKS_6_X)[number]

/** The symbol of the kernel function that writes trace_marker records (what `tracing_mark_write:` shows). */
const MARKER_SYMBOL = "tracing_mark_write"
// Records carry kernel-like addresses: ip/fmt = 0xffffffff_c0000000 + 16 × index.
const ADDRESS_LOW_BASE = 0xc000_0000
/** The high half of every record address; an enum member so that the bundler writes it in as a literal (writePrintkHead stores it twice per trace_printk). */
const enum Address {
  HIGH = 0xffff_ffff,
}
export const ADDRESS_HIGH = Address.HIGH

/**
 * Writes the head every trace_printk record shares — type and context, pid, then the ip and fmt
 * pointers (both the site's address) — and returns the index of the first argument word.
 */
export const writePrintkHead = (words: Uint32Array, w: number, type: number, context: number, pid: number, address: number): number => {
  words[w] = type | ((context & 0xffff) << 16)
  words[w + 1] = pid
  words[w + 2] = address
  words[w + 3] = Address.HIGH
  words[w + 4] = address
  words[w + 5] = Address.HIGH
  return w + 6
}

/**
 * Stores up to four unsigned 32-bit numbers as the first `n` conversions take them from word
 * `at` on: a 4-byte conversion one word, an 8-byte one (its bit set in `wideMask`) two, high 0.
 */
export const writeNumberArgs = (words: Uint32Array, at: number, n: number, wideMask: number, a0: number, a1: number, a2: number, a3: number): void => {
  for (let i = 0; i < n; i++) {
    words[at++] = i === 0 ? a0 : i === 1 ? a1 : i === 2 ? a2 : a3
    if (((wideMask >> i) & 1) !== 0) words[at++] = 0
  }
}

export interface TracerOptions {
  readonly cpuCount: number
  readonly clock: TraceClockSource
  readonly tasks: TaskNames
  /** Output layout; default "A" (Linux 5.0, the homework's kernel). */
  readonly era?: TraceEra
  /** trace_buf_size= in bytes; default 1,441,792. */
  readonly bufferBytes?: number
  /** Start with the buffers already expanded (default false: 2 pages each until first use, as after boot). */
  readonly expanded?: boolean
  /** CONFIG_HZ for the `uptime` clock (jiffies); default 250. */
  readonly hz?: number
  /** TSC frequency for the `x86-tsc` clock; default 2.4 GHz. */
  readonly tscHz?: number
  /** Largest per-CPU buffer a write to buffer_size_kb may ask for, in pages; default 65,536 (ENOMEM beyond). */
  readonly maxPagesPerCpu?: number
}

/** A trace_printk call site: the calling function and its format, registered once. */
export class PrintkSite {
  constructor(
    readonly index: number,
    readonly functionName: string,
    readonly format: CompiledFormat,
    /** No arguments: recorded as bputs (the format printed verbatim), as the trace_printk macro does. */
    readonly puts: boolean,
    /** Packed argument bytes when no %s makes the size vary, else -1. */
    readonly fixedArgBytes: number,
  ) {
    this.wordPacked = !puts && fixedArgBytes >= 0 && format.conversions.every((c) => c.storage === 4 || c.storage === 8)
    this.address = ADDRESS_LOW_BASE + index * 16
    this.textPrefix = functionName + ": " + format.literals[0]!
    this.payloadBytes = puts ? 24 : fixedArgBytes >= 0 ? 24 + ((fixedArgBytes + 3) & ~3) : -1
    this.recordLength = this.payloadBytes >= 0 ? recordLength(this.payloadBytes) : -1
    this.is64 = Uint8Array.from(format.conversions, (c) => (c.storage === 8 ? 1 : 0))
    this.words32 = this.wordPacked && this.is64.every((b) => b === 0) ? this.is64.length : -1
    this.fastArgs = this.wordPacked && this.payloadBytes <= MAX_SMALL_PAYLOAD ? this.is64.length : -1
    this.wideMask = this.is64.reduce((mask, b, i) => (i < 31 && b === 1 ? mask | (1 << i) : mask), 0)
    this.numeric = format.conversions.every((c) => c.storage !== "str")
    const literals = [this.textPrefix, ...format.literals.slice(1)].map(latin1Bytes)
    this.literalBytes = literals.every((l) => l !== null) ? (literals as Array<Uint8Array>) : null
    this.plain = plainConversions(format)
    this.plainWords32 =
      this.words32 >= 0 && format.conversions.every((c, i) => this.plain[i] === 1 && c.storage === 4 && (c.conv === "d" || c.conv === "i" || c.conv === "u" || c.conv === "x"))
  }
  /** Every argument a 32-bit %d, %i, %u or %x without flags, width or precision. */
  readonly plainWords32: boolean
  /** textPrefix and the format's later literals as Latin-1 bytes, for formatting into a LineBytes; null if one cannot be. */
  readonly literalBytes: ReadonlyArray<Uint8Array> | null
  /** Per conversion: 1 when it has no flags, width or precision. */
  readonly plain: Uint8Array
  /** Only 4- and 8-byte integers: the arguments are stored as whole words (the fast path). */
  readonly wordPacked: boolean
  /** Per argument: 1 when it takes two words. */
  readonly is64: Uint8Array
  /** is64 of the first 31 arguments as bits (bit i: argument i takes two words), read without touching the array. */
  readonly wideMask: number
  /** Record payload when it does not depend on string arguments, else -1. */
  readonly payloadBytes: number
  /** Number of arguments when all are 4- or 8-byte integers and the record is small (no length word): printk's inlined path; else -1. */
  readonly fastArgs: number
  /** No %s conversion: every argument is a number. */
  readonly numeric: boolean
  /** Bytes the record takes in a page (recordLength of payloadBytes), or -1. */
  readonly recordLength: number
  /** Low word of the site's ip and fmt pointers. */
  readonly address: number
  /** `FUNC: ` and the format's text before its first conversion. */
  readonly textPrefix: string
  /** Number of arguments when all are 32-bit integers (one word each), else -1. */
  readonly words32: number
}

const LINE_PREFIX_SLOTS = 256

/** A reader's cache of line prefixes (`comm-pid [cpu] flags `) as bytes; null when one is not Latin-1. */
export class LinePrefixes {
  readonly byKey = new Map<number, Uint8Array | null>()
  readonly slotPid = new Int32Array(LINE_PREFIX_SLOTS).fill(-1)
  readonly slotKey = new Int32Array(LINE_PREFIX_SLOTS)
  readonly slotPrefix: Array<Uint8Array | null> = new Array<Uint8Array | null>(LINE_PREFIX_SLOTS).fill(null)
}

export class Tracer {
  // What every write reads comes first (declaration order is field order: one cache line).
  /**
   * How a write finds its time stamp, kept in one number so the hot writers test one field:
   * 0 recording with the per-CPU local clock (`nowOn`), 1 recording with a clock read by
   * `nowNs()`, 2 anything else (recording off, counter/uptime/x86-tsc clocks): take `now()`.
   */
  private writeGate = 0
  readonly clockSource: TraceClockSource
  /** Each CPU's ring buffer, which is also its KVM record writer (KvmCpuWriter extends CpuRingBuffer). */
  readonly rings: ReadonlyArray<KvmCpuWriter>
  /** The enable switches of the KVM events (indexed like KVM_EVENT_NAMES). */
  readonly eventEnabled: Uint8Array

  readonly era: TraceEra
  readonly cpuCount: number
  readonly tasks: TaskNames
  readonly defaultBufferBytes: number
  readonly maxPagesPerCpu: number
  private readonly hz: number
  private readonly tscHz: number

  private tracingOnSwitch = true
  /** Readers of `trace` holding recording off (5.0 era: an open `trace` pauses recording). */
  private stoppers = 0
  private overwriteOn = true
  expanded: boolean
  clockName: TraceClockName = "local"
  /** 0 local (per-CPU when the source has it), 1 other ns clocks, 2 counter, 3 uptime, 4 x86-tsc. */
  private clockMode = 0
  private readonly hasLocalClocks: boolean
  private counterClock = 0

  /** The KVM events of this era (indexed like KVM_EVENT_NAMES). */
  readonly kvm: Record<KvmEventName, TraceEventType>
  readonly events: ReadonlyArray<TraceEventType>
  // Indexed by event id (up to ~1600): filled densely so lookups stay fast array accesses.
  private readonly eventsById: Array<TraceEventType | undefined>
  /** `name: ` of each event, by id. */
  private readonly eventPrefix: Array<string | undefined>
  /** The same as bytes. */
  private readonly eventPrefixBytes: Array<Uint8Array | undefined>

  private readonly sites: Array<PrintkSite> = []
  private readonly siteKeys = new Map<string, PrintkSite>()
  /** Staged trace_printk arguments (see setArg*): 64-bit values as halves, strings by reference. */
  readonly argLo = new Uint32Array(32)
  readonly argHi = new Uint32Array(32)
  readonly argStr: Array<string> = []

  private waiters: Array<() => void> = []
  private readonly wake = (): void => this.wakeReaders()
  /** Copies of writeGate kept by per-CPU writers (mirrorWriteGate). */
  private readonly gateMirrors: Array<{ gate: number }> = []

  constructor(options: TracerOptions) {
    if (!Number.isInteger(options.cpuCount) || options.cpuCount < 1) throw new RangeError(`cpuCount must be a positive integer, got ${options.cpuCount}`)
    this.era = options.era ?? "A"
    this.cpuCount = options.cpuCount
    this.tasks = options.tasks
    this.clockSource = options.clock
    this.defaultBufferBytes = options.bufferBytes ?? DEFAULT_BUFFER_BYTES
    this.maxPagesPerCpu = options.maxPagesPerCpu ?? 65_536
    this.hz = options.hz ?? 250
    this.tscHz = options.tscHz ?? 2_400_000_000
    this.expanded = options.expanded ?? false
    this.hasLocalClocks = options.clock.nowOn !== undefined
    this.updateWriteGate()
    this.kvm = kvmEvents(this.era)
    this.events = KVM_EVENT_NAMES.map((n) => this.kvm[n])
    this.eventEnabled = new Uint8Array(this.events.length)
    // The rings are the per-CPU KVM writers, which read the era's events, switches and clock.
    const pages = this.expanded ? pagesForBytes(this.defaultBufferBytes) : 2
    this.rings = Array.from({ length: this.cpuCount }, (_, cpu) => {
      const ring = new KvmCpuWriter(this, cpu, pages)
      ring.consumeLowersBytes = this.era === "D"
      return ring
    })
    const ids = Math.max(...this.events.map((e) => e.id)) + 1
    this.eventsById = new Array<TraceEventType | undefined>(ids).fill(undefined)
    this.eventPrefix = new Array<string | undefined>(ids).fill(undefined)
    this.eventPrefixBytes = new Array<Uint8Array | undefined>(ids).fill(undefined)
    for (const e of this.events) {
      this.eventsById[e.id] = e
      this.eventPrefix[e.id] = e.name + ": "
      this.eventPrefixBytes[e.id] = latin1Bytes(e.name + ": ")!
    }
  }

  // ---- switches ----

  /** tracing_on. */
  get tracingOn(): boolean {
    return this.tracingOnSwitch
  }
  set tracingOn(on: boolean) {
    this.tracingOnSwitch = on
    this.updateWriteGate()
  }

  /** Whether a write now would be stored. */
  get recording(): boolean {
    return this.tracingOnSwitch && this.stoppers === 0
  }

  /** tracing_stop()/tracing_start() around an open `trace` file in the 5.0 era. */
  pauseRecording(): void {
    this.stoppers++
    this.updateWriteGate()
  }
  resumeRecording(): void {
    if (this.stoppers > 0) this.stoppers--
    this.updateWriteGate()
  }

  private updateWriteGate(): void {
    const recording = this.tracingOnSwitch && this.stoppers === 0
    const gate = !recording || this.clockMode > 1 ? 2 : this.clockMode === 0 && this.hasLocalClocks ? 0 : 1
    this.writeGate = gate
    for (const mirror of this.gateMirrors) mirror.gate = gate
  }

  /**
   * Keeps `mirror.gate` equal to the write gate from now on (0: recording with the per-CPU local
   * clock): per-CPU writers hold it in their own first field so that a record need not touch the tracer.
   */
  mirrorWriteGate(mirror: { gate: number }): void {
    this.gateMirrors.push(mirror)
    mirror.gate = this.writeGate
  }

  /**
   * The time stamp of a write on `cpu` now, or -1 when nothing may be recorded (tracing_on 0,
   * or paused by an open `trace`). Advances the counter clock: call it once per stored write.
   */
  writeStamp(cpu: number): number {
    const gate = this.writeGate
    if (gate === 0) return this.clockSource.nowOn!(cpu)
    if (gate === 1) return this.clockSource.nowNs()
    return this.recording ? this.now(cpu) : -1
  }

  get overwrite(): boolean {
    return this.overwriteOn
  }
  setOverwrite(on: boolean): void {
    this.overwriteOn = on
    for (const ring of this.rings) ring.overwrite = on
  }

  /** Buffers grow from their boot-time 2 pages to the configured size on first use. */
  expand(): void {
    if (this.expanded) return
    this.expanded = true
    const pages = pagesForBytes(this.defaultBufferBytes)
    for (const ring of this.rings) ring.resize(pages)
  }

  /** Resizes one CPU's buffer, or all, to hold `bytes` (rounded up to pages, at least 2). Returns 0 or -errno. */
  resizeBytes(bytes: number, cpu?: number): number {
    const pages = pagesForBytes(bytes)
    if (pages > this.maxPagesPerCpu) return -12 // ENOMEM
    this.expanded = true
    if (cpu === undefined) for (const ring of this.rings) ring.resize(pages)
    else this.rings[cpu]!.resize(pages)
    return 0
  }

  /** Empties one CPU's buffer or all of them, zeroing their counters. */
  clear(cpu?: number): void {
    if (cpu === undefined) for (const ring of this.rings) ring.reset()
    else this.rings[cpu]!.reset()
    this.counterClock = 0
    this.wakeReaders()
  }

  get availableClocks(): ReadonlyArray<TraceClockName> {
    return this.era === "A" ? TRACE_CLOCKS_5_0 : TRACE_CLOCKS_6_X
  }

  /** Switches trace_clock (clears the buffers); false for an unknown name. */
  setClock(name: string): boolean {
    const found = this.availableClocks.find((c) => c === name)
    if (found === undefined) return false
    this.clockName = found
    this.clockMode = found === "local" ? 0 : found === "counter" ? 2 : found === "uptime" ? 3 : found === "x86-tsc" ? 4 : 1
    this.updateWriteGate()
    this.clear()
    return true
  }

  /** Whether the current clock counts nanoseconds (printed as secs.usecs) rather than raw units. */
  get clockInNs(): boolean {
    return this.clockMode <= 1
  }

  /** The trace clock on one CPU now. */
  now(cpu: number): number {
    const mode = this.clockMode
    if (mode === 0) return this.hasLocalClocks ? this.clockSource.nowOn!(cpu) : this.clockSource.nowNs()
    if (mode === 1) return this.clockSource.nowNs()
    if (mode === 2) return ++this.counterClock
    const ns = this.clockSource.nowNs()
    return mode === 3 ? Math.floor((ns * this.hz) / 1e9) : Math.floor((ns / 1e9) * this.tscHz)
  }

  // ---- events ----

  eventIndex(name: string): number {
    return this.events.findIndex((e) => e.name === name)
  }

  /** Turns one event on or off; enabling expands the buffers, as in the kernel. */
  setEventEnabled(index: number, on: boolean): void {
    if (on) this.expand()
    this.eventEnabled[index] = on ? 1 : 0
  }

  isEnabled(event: KvmEventName): boolean {
    return this.eventEnabled[KVM_EVENT_NAMES.indexOf(event)] === 1
  }

  /**
   * Reserves a tracepoint record on `cpu` and writes its common header; returns the payload's
   * word index in `rings[cpu].words`, or -1 if the event is off, recording is off or the
   * buffer refused it. The caller writes the fields and calls `rings[cpu].commit()`.
   */
  beginEvent(cpu: number, pid: number, context: TraceContext, index: number): number {
    if (this.eventEnabled[index] !== 1) return -1
    const ts = this.writeStamp(cpu)
    if (ts < 0) return -1
    const event = this.events[index]!
    const ring = this.rings[cpu]!
    const w = ring.reserve(event.payloadBytes, ts)
    if (w < 0) return -1
    const words = ring.words
    const end = w + (event.payloadBytes >> 2)
    for (let i = w + 2; i < end; i++) words[i] = 0
    words[w] = event.id | ((context & 0xff) << 16) | (((context >> 8) & 0xff) << 24)
    words[w + 1] = pid
    return w
  }

  /** Writes any event from named field values (for tests and cold paths; the KVM writers are faster). */
  emit(name: string, cpu: number, pid: number, context: TraceContext, values: Readonly<Record<string, number | bigint | boolean>>): boolean {
    const index = this.eventIndex(name)
    if (index < 0) throw new RangeError(`unknown trace event ${name}`)
    const event = this.events[index]!
    for (const key of Object.keys(values)) {
      if (!event.fields.some((f) => f.name === key)) throw new RangeError(`event ${name} has no field ${key}`)
    }
    const w = this.beginEvent(cpu, pid, context, index)
    if (w < 0) return false
    const ring = this.rings[cpu]!
    const view = new DataView(ring.words.buffer)
    for (const f of event.fields) {
      const v = values[f.name] ?? 0
      const at = w * 4 + f.offset
      if (f.size === 8) view.setBigUint64(at, BigInt.asUintN(64, BigInt(v)), true)
      else if (f.size === 4) view.setUint32(at, Number(BigInt.asUintN(32, BigInt(v))), true)
      else if (f.size === 2) view.setUint16(at, Number(BigInt.asUintN(16, BigInt(v))), true)
      else view.setUint8(at, Number(BigInt.asUintN(8, BigInt(v))))
    }
    ring.commit()
    return true
  }

  // ---- trace_printk ----

  /**
   * Registers a trace_printk call site in `functionName` (what the line shows before the colon)
   * with a printf format. Loading code that contains trace_printk expands the buffers.
   */
  registerPrintk(functionName: string, format: string): PrintkSite | FormatError {
    const key = `${functionName}\u0000${format}`
    const known = this.siteKeys.get(key)
    if (known !== undefined) return known
    const compiled = compileFormat(format)
    if (compiled instanceof FormatError) return compiled
    if (compiled.conversions.length > this.argLo.length) return new FormatError(format, `more than ${this.argLo.length} arguments`)
    let fixed = 0
    for (const c of compiled.conversions) {
      if (c.storage === "str") {
        fixed = -1
        break
      }
      const align = c.storage === 8 ? 4 : c.storage
      fixed = ((fixed + align - 1) & ~(align - 1)) + c.storage
    }
    const site = new PrintkSite(this.sites.length, functionName, compiled, compiled.conversions.length === 0, fixed)
    this.sites.push(site)
    this.siteKeys.set(key, site)
    this.expand()
    return site
  }

  /** Stages argument `i` from a number (integers; negative values are sign-extended to 64 bits). */
  setArg(i: number, value: number): void {
    if (value >= 0 && value <= 0xffff_ffff) {
      this.argLo[i] = value
      this.argHi[i] = 0
    } else {
      const hi = Math.floor(value / 0x1_0000_0000)
      this.argLo[i] = value - hi * 0x1_0000_0000
      this.argHi[i] = hi
    }
  }
  /** Stages argument `i` from 32-bit halves. */
  setArgWords(i: number, lo: number, hi: number): void {
    this.argLo[i] = lo
    this.argHi[i] = hi
  }
  setArgBigInt(i: number, value: bigint): void {
    const v = BigInt.asUintN(64, value)
    this.argLo[i] = Number(v & 0xffff_ffffn)
    this.argHi[i] = Number(v >> 32n)
  }
  setArgString(i: number, value: string): void {
    this.argStr[i] = value
  }

  /** trace_printk from `site` with the staged arguments. Returns whether the record was stored. */
  printk(cpu: number, pid: number, context: TraceContext, site: PrintkSite): boolean {
    // The common case is kept small enough for the JIT to inline into the caller: 4- and
    // 8-byte integer arguments only, a small record, a nanosecond clock, recording on.
    const n = site.fastArgs
    const gate = this.writeGate
    if (n < 0 || gate > 1) return this.printkGeneral(cpu, pid, context, site)
    const ring = this.rings[cpu]!
    const w = ring.reserveSmallCommitted(site.recordLength, gate === 0 ? this.clockSource.nowOn!(cpu) : this.clockSource.nowNs())
    if (w < 0) return false
    const words = ring.words
    const first = writePrintkHead(words, w, TRACE_BPRINT, context, pid, site.address)
    const argLo = this.argLo
    if (site.words32 >= 0) {
      for (let i = 0; i < n; i++) words[first + i] = argLo[i]!
    } else {
      const argHi = this.argHi
      const is64 = site.is64
      let at = first
      for (let i = 0; i < n; i++) {
        words[at++] = argLo[i]!
        if (is64[i] === 1) words[at++] = argHi[i]!
      }
    }
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /**
   * trace_printk from `site` with up to four arguments passed directly as numbers, nothing staged
   * (the hot path of kernel code printing counters and ids). Integers; negative ones sign-extend
   * to 64 bits. Arguments past the site's conversions are ignored; conversions past the fourth
   * print 0. A %s conversion prints the number's decimal text. Returns whether the record was stored.
   */
  printkNumbers(cpu: number, pid: number, context: TraceContext, site: PrintkSite, a0: number, a1: number, a2: number, a3: number): boolean {
    const n = site.fastArgs
    const gate = this.writeGate
    // Records of up to four 4- or 8-byte arguments, each an unsigned 32-bit value (the high word 0).
    if (n < 0 || n > 4 || gate > 1 || a0 >>> 0 !== a0 || a1 >>> 0 !== a1 || a2 >>> 0 !== a2 || a3 >>> 0 !== a3) {
      return this.printkNumbersStaged(cpu, pid, context, site, a0, a1, a2, a3)
    }
    const ring = this.rings[cpu]!
    const w = ring.reserveSmallCommitted(site.recordLength, gate === 0 ? this.clockSource.nowOn!(cpu) : this.clockSource.nowNs())
    if (w < 0) return false
    const words = ring.words
    writeNumberArgs(words, writePrintkHead(words, w, TRACE_BPRINT, context, pid, site.address), n, site.wideMask, a0, a1, a2, a3)
    if (ring.onCommit !== undefined) ring.wakeReaders()
    return true
  }

  /** printkNumbers through the staging area (wide or negative values, strings, other clocks). */
  private printkNumbersStaged(cpu: number, pid: number, context: TraceContext, site: PrintkSite, a0: number, a1: number, a2: number, a3: number): boolean {
    const conversions = site.format.conversions
    for (let i = 0; i < conversions.length; i++) {
      const v = i === 0 ? a0 : i === 1 ? a1 : i === 2 ? a2 : i === 3 ? a3 : 0
      if (conversions[i]!.storage === "str") this.setArgString(i, String(v))
      else this.setArg(i, v)
    }
    return this.printk(cpu, pid, context, site)
  }

  /** trace_printk for every site and clock (printk handles the common case). */
  private printkGeneral(cpu: number, pid: number, context: TraceContext, site: PrintkSite): boolean {
    if (!this.recording) return false
    const ring = this.rings[cpu]!
    if (site.wordPacked) {
      // Only 4- and 8-byte integer arguments, stored as whole words.
      const w = ring.reserve(site.payloadBytes, this.now(cpu))
      if (w < 0) return false
      const words = ring.words
      const is64 = site.is64
      let at = writePrintkHead(words, w, TRACE_BPRINT, context, pid, site.address)
      for (let i = 0; i < is64.length; i++) {
        words[at++] = this.argLo[i]!
        if (is64[i] === 1) words[at++] = this.argHi[i]!
      }
      ring.commit()
      return true
    }
    if (site.puts) {
      const w = ring.reserve(24, this.now(cpu))
      if (w < 0) return false
      writePrintkHead(ring.words, w, TRACE_BPUTS, context, pid, ADDRESS_LOW_BASE + site.index * 16)
      ring.commit()
      return true
    }
    let argBytes = site.fixedArgBytes
    if (argBytes < 0) argBytes = Math.min(this.stringArgBytes(site), TRACE_BUF_SIZE)
    const w = ring.reserve(24 + ((argBytes + 3) & ~3), this.now(cpu))
    if (w < 0) return false
    const first = writePrintkHead(ring.words, w, TRACE_BPRINT, context, pid, ADDRESS_LOW_BASE + site.index * 16)
    this.packArgs(ring.bytes, first * 4, argBytes, site)
    ring.commit()
    return true
  }

  /** trace_printk with the arguments given directly (convenient; allocates for the array). */
  printkValues(cpu: number, pid: number, context: TraceContext, site: PrintkSite, values: ReadonlyArray<number | bigint | string>): boolean {
    this.stageValues(values)
    return this.printk(cpu, pid, context, site)
  }

  /** Stages arguments 0.. from values (setArg, setArgBigInt or setArgString by type). */
  stageValues(values: ReadonlyArray<number | bigint | string>): void {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!
      if (typeof v === "number") this.setArg(i, v)
      else if (typeof v === "bigint") this.setArgBigInt(i, v)
      else this.setArgString(i, v)
    }
  }

  private stringArgBytes(site: PrintkSite): number {
    let at = 0
    const conversions = site.format.conversions
    for (let i = 0; i < conversions.length; i++) {
      const c = conversions[i]!
      if (c.storage === "str") at += (this.argStr[i] ?? "").length + 1
      else {
        const align = c.storage === 8 ? 4 : c.storage
        at = ((at + align - 1) & ~(align - 1)) + c.storage
      }
    }
    return at
  }

  /** vbin_printf: packs the staged arguments into `bytes` at `start`, at most `limit` bytes. */
  private packArgs(bytes: Uint8Array, start: number, limit: number, site: PrintkSite): void {
    const end = start + limit
    let p = start
    const conversions = site.format.conversions
    for (let i = 0; i < conversions.length; i++) {
      const c = conversions[i]!
      if (c.storage === "str") {
        const s = this.argStr[i] ?? ""
        for (let k = 0; k < s.length && p < end; k++) bytes[p++] = s.charCodeAt(k) & 0xff
        if (p < end) bytes[p++] = 0
        continue
      }
      const align = c.storage === 8 ? 4 : c.storage
      p = (p + align - 1) & ~(align - 1)
      if (p + c.storage > end) break
      const lo = this.argLo[i]!
      bytes[p] = lo & 0xff
      if (c.storage >= 2) bytes[p + 1] = (lo >>> 8) & 0xff
      if (c.storage >= 4) {
        bytes[p + 2] = (lo >>> 16) & 0xff
        bytes[p + 3] = lo >>> 24
      }
      if (c.storage === 8) {
        const hi = this.argHi[i]!
        bytes[p + 4] = hi & 0xff
        bytes[p + 5] = (hi >>> 8) & 0xff
        bytes[p + 6] = (hi >>> 16) & 0xff
        bytes[p + 7] = hi >>> 24
      }
      p += c.storage
    }
    // Pad the last word with zeros so records are deterministic.
    while (p < end && (p & 3) !== 0) bytes[p++] = 0
  }

  // ---- trace_marker ----

  /**
   * A write to trace_marker from task `pid` on `cpu`: returns the bytes accepted (at most
   * TRACE_BUF_SIZE; the kernel cuts longer writes) or -errno (EBADF when recording is off or
   * the buffer refused the event).
   */
  writeMarker(cpu: number, pid: number, text: Uint8Array, context: TraceContext = TASK_CONTEXT): number {
    if (text.length === 0) return 0
    const count = Math.min(text.length, TRACE_BUF_SIZE)
    if (!this.recording) return -9
    const ring = this.rings[cpu]!
    const payload = 16 + count + 2
    if (payload > MAX_PAYLOAD_BYTES) return -22
    const w = ring.reserve(payload, this.now(cpu))
    if (w < 0) return -9
    const words = ring.words
    words[w] = TRACE_PRINT | ((context & 0xff) << 16) | (((context >> 8) & 0xff) << 24)
    words[w + 1] = pid
    words[w + 2] = ADDRESS_LOW_BASE + 0xfff0
    words[w + 3] = ADDRESS_HIGH
    const bytes = ring.bytes
    const at = (w + 4) * 4
    bytes.set(text.subarray(0, count), at)
    if (text[count - 1] !== 0x0a) {
      bytes[at + count] = 0x0a
      bytes[at + count + 1] = 0
    } else {
      bytes[at + count] = 0
      bytes[at + count + 1] = 0
    }
    ring.commit()
    return count
  }

  // ---- reading ----

  /** The text of one record after the timestamp (`FUNC: message` or `event: fields`), newline included. */
  eventText(words: Uint32Array, bytes: Uint8Array, cursor: EventCursor): string {
    const w = cursor.word
    const type = words[w]! & 0xffff
    switch (type) {
      case TRACE_BPRINT: {
        const site = this.siteAt(words[w + 2]!)
        if (site === undefined) return "<unknown trace_printk site>\n"
        return formatPacked(site.format, bytes, (w + 6) * 4, cursor.payloadBytes - 24, site.textPrefix)
      }
      case TRACE_BPUTS: {
        const site = this.siteAt(words[w + 2]!)
        return (site?.functionName ?? "<unknown>") + ": " + (site?.format.text ?? "")
      }
      case TRACE_PRINT:
        return MARKER_SYMBOL + ": " + cString(bytes, (w + 4) * 4, w * 4 + cursor.payloadBytes)
      default: {
        const event = this.eventsById[type]
        if (event === undefined) return `Unknown type ${type}\n`
        return this.eventPrefix[type] + event.format(words, bytes, w) + "\n"
      }
    }
  }

  private siteAt(address: number): PrintkSite | undefined {
    const offset = address - ADDRESS_LOW_BASE
    return offset >= 0 && (offset & 15) === 0 ? this.sites[offset >>> 4] : undefined
  }

  /** The timestamp column: `%5lu.%06lu` for nanosecond clocks, `%12llu` otherwise. */
  timestampText(ts: number): string {
    return this.clockMode <= 1 ? formatSecondsUs(ts) : String(ts).padStart(12, " ")
  }

  /** One full line as `trace` and `trace_pipe` print it. */
  formatLine(cpu: number, cursor: EventCursor, commCache?: Map<number, string>): string {
    const ring = this.rings[cpu]!
    const words = ring.words
    const w = cursor.word
    const head = words[w]!
    const pid = words[w + 1]! | 0
    // The `comm-pid [cpu] flags ` prefix depends only on pid, CPU and the context bits: cache it per read.
    const key = (pid * 4096 + cpu) * 65536 + (head >>> 16)
    let prefix = commCache?.get(key)
    if (prefix === undefined) {
      const flags = (head >>> 16) & 0xff
      const preempt = head >>> 24
      prefix = taskColumns(this.era, commForDisplay(pid, this.tasks.commOf(pid)), pid, cpu) + flagChars(this.era, flags, preempt) + " "
      commCache?.set(key, prefix)
    }
    const stamp = this.clockMode <= 1 ? formatStampColumn(cursor.ts) : this.timestampText(cursor.ts) + ": "
    return prefix + stamp + this.eventText(words, ring.bytes, cursor)
  }

  /**
   * formatLine into a byte buffer: appends the same line's bytes to `out` and returns true, or
   * appends nothing and returns false when the line has a character beyond Latin-1 (or an
   * unusual time stamp); the caller then uses formatLine. `prefixes` caches the line's
   * `comm-pid [cpu] flags ` part per reader (null when it is not Latin-1).
   */
  appendLine(out: LineBytes, cpu: number, cursor: EventCursor, prefixes: LinePrefixes): boolean {
    const ring = this.rings[cpu]!
    const words = ring.words
    const w = cursor.word
    const head = words[w]!
    const pid = words[w + 1]! | 0
    const context = head >>> 16
    // A small direct-mapped cache in front of the map: no number boxing on a hit.
    const slot = ((cpu << 3) | ((pid ^ context ^ (context >>> 8)) & 7)) & (LINE_PREFIX_SLOTS - 1)
    let prefix: Uint8Array | null | undefined
    if (prefixes.slotPid[slot] === pid && prefixes.slotKey[slot] === ((cpu << 16) | context)) prefix = prefixes.slotPrefix[slot]
    else {
      const key = (pid * 4096 + cpu) * 65536 + context
      prefix = prefixes.byKey.get(key)
      if (prefix === undefined) {
        const flags = context & 0xff
        const preempt = context >>> 8
        prefix = latin1Bytes(taskColumns(this.era, commForDisplay(pid, this.tasks.commOf(pid)), pid, cpu) + flagChars(this.era, flags, preempt) + " ")
        prefixes.byKey.set(key, prefix)
      }
      prefixes.slotPid[slot] = pid
      prefixes.slotKey[slot] = (cpu << 16) | context
      prefixes.slotPrefix[slot] = prefix
    }
    const ts = cursor.ts
    if (prefix === null || prefix === undefined || this.clockMode > 1 || !(ts >= 0 && ts < 2 ** 53)) return false
    const start = out.length
    out.prefixAndStamp(prefix, ts)
    if (this.appendEventText(out, words, ring.bytes, cursor)) return true
    out.length = start
    return false
  }

  /** eventText into a byte buffer; false when it is not all Latin-1 (what was appended is then garbage). */
  private appendEventText(out: LineBytes, words: Uint32Array, bytes: Uint8Array, cursor: EventCursor): boolean {
    const w = cursor.word
    const type = words[w]! & 0xffff
    if (type === TRACE_BPRINT) {
      const site = this.siteAt(words[w + 2]!)
      if (site === undefined || site.literalBytes === null) return false
      if (site.plainWords32 && cursor.payloadBytes === site.payloadBytes) {
        // Every argument a bare 32-bit %d/%i/%u/%x: one word each, read as words.
        const literals = site.literalBytes
        const conversions = site.format.conversions
        out.raw(literals[0]!)
        for (let i = 0; i < conversions.length; i++) {
          const value = words[w + 6 + i]!
          const conv = conversions[i]!.conv
          if (conv === "x") out.hex32(value)
          else if (conv === "u" || (value & 0x80000000) === 0) out.uint(value)
          else {
            out.byte(0x2d) // "-"
            out.uint(0x100000000 - value)
          }
          out.raw(literals[i + 1]!)
        }
        return true
      }
      return appendPacked(out, site.format, site.literalBytes, site.plain, bytes, (w + 6) * 4, cursor.payloadBytes - 24)
    }
    if (type === TRACE_PRINT) {
      out.latin1(MARKER_SYMBOL + ": ")
      // cString: ASCII is copied; UTF-8 is decoded, which the string path does.
      const end = w * 4 + cursor.payloadBytes
      for (let p = (w + 4) * 4; p < end; p++) {
        const c = bytes[p]!
        if (c === 0) break
        if (c >= 0x80) return false
        out.byte(c)
      }
      return true
    }
    const prefix = this.eventPrefixBytes[type]
    if (prefix !== undefined) {
      out.raw(prefix)
      const event = this.eventsById[type]!
      const formatBytes = event.formatBytes
      if (formatBytes !== undefined) formatBytes(out, words, bytes, w)
      else if (!out.latin1(event.format(words, bytes, w))) return false
      out.byte(0x0a)
      return true
    }
    return out.latin1(this.eventText(words, bytes, cursor))
  }

  /** entries-in-buffer and entries-written over all CPUs (get_total_entries). */
  totals(): { readonly inBuffer: number; readonly written: number } {
    let inBuffer = 0
    let written = 0
    for (const ring of this.rings) {
      inBuffer += ring.readable
      written += ring.readable + ring.overrun
    }
    return { inBuffer, written }
  }

  /** The text of per_cpu/cpuN/stats. */
  statsText(cpu: number): string {
    const ring = this.rings[cpu]!
    const ts = (v: number): string => (this.clockInNs ? formatSecondsUs(v) : String(v))
    return (
      `entries: ${ring.readable}\n` +
      `overrun: ${ring.overrun}\n` +
      `commit overrun: ${ring.commitOverrun}\n` +
      `bytes: ${ring.bytesInBuffer}\n` +
      `oldest event ts: ${ts(ring.oldestPageTs)}\n` +
      `now ts: ${ts(this.clockInNs ? this.now(cpu) : this.peekClock(cpu))}\n` +
      `dropped events: ${ring.dropped}\n` +
      `read events: ${ring.read}\n`
    )
  }

  /** The current raw clock without advancing the counter clock. */
  private peekClock(cpu: number): number {
    return this.clockName === "counter" ? this.counterClock : this.now(cpu)
  }

  /** KiB one CPU's buffer holds (buffer_size_kb of per_cpu/cpuN). */
  sizeKb(cpu: number): number {
    return Math.floor((this.rings[cpu]!.pageCount * PAGE_DATA_BYTES) / 1024)
  }

  // ---- waiting for data (trace_pipe) ----

  /** Calls `wake` once, the next time any CPU commits an event (or the buffers are cleared). */
  onNextCommit(wake: () => void): () => void {
    this.waiters.push(wake)
    for (const ring of this.rings) ring.onCommit = this.wake
    return () => {
      this.waiters = this.waiters.filter((w) => w !== wake)
    }
  }

  private wakeReaders(): void {
    const waiters = this.waiters
    if (waiters.length === 0) return
    this.waiters = []
    for (const ring of this.rings) ring.onCommit = undefined
    for (const wake of waiters) wake()
  }
}

/** A NUL-terminated string from record bytes (UTF-8). */
const cString = (bytes: Uint8Array, start: number, end: number): string => {
  let p = start
  let ascii = true
  while (p < end && bytes[p] !== 0) {
    if (bytes[p]! >= 0x80) ascii = false
    p++
  }
  if (ascii) {
    let s = ""
    for (let i = start; i < p; i++) s += String.fromCharCode(bytes[i]!)
    return s
  }
  return new TextDecoder().decode(bytes.subarray(start, p))
}

