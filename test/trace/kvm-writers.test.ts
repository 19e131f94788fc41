// The hot-path KVM tracepoint writers (KvmTracepoints) against the generic field-name writer
// (Tracer.emit, which lays fields out from the event's format and zero-fills the record): the
// same random operations applied to two tracers must leave byte-identical ring buffers, the same
// counters and the same text. Small buffers make pages wrap, so records land on reused pages
// holding old bytes; random clock gaps cross the time-extend limit; tracing_on, overwrite,
// event switches, clocks, pauses and clears change underneath.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { IRQS_OFF_CONTEXT, TASK_CONTEXT, traceContext, type TraceClockSource } from "../../src/trace/context.ts"
import { StaticTaskNames } from "../../src/trace/context.ts"
import type { TraceEra } from "../../src/trace/events.ts"
import { KVM_EVENT_NAMES, type KvmEventName } from "../../src/trace/kvm-events.ts"
import type { KvmTracepoints } from "../../src/trace/kvm-tracepoints.ts"
import { TraceSnapshotReader } from "../../src/trace/readers.ts"
import { makeTrace, type TraceShape } from "../../src/trace/service.ts"
import type { Tracer } from "../../src/trace/tracer.ts"

const CPUS = 2
/** Fields every writer takes after (cpu, pid, ctx): random 32-bit words, booleans from their low bit. */
const WORDS = 13
const TWO32 = 0x1_0000_0000

const u64 = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
const bit = (v: number): boolean => (v & 1) === 1

interface Writer {
  /** The hot-path call. */
  readonly write: (kvm: KvmTracepoints, cpu: number, pid: number, ctx: number, v: ReadonlyArray<number>) => boolean
  /** The same record as named field values (fields the era lacks are dropped before emit). */
  readonly fields: (v: ReadonlyArray<number>) => Record<string, number | bigint>
}

const WRITERS: Record<KvmEventName, Writer> = {
  kvm_entry: {
    write: (k, c, p, x, v) => k.entry(c, p, x, v[0]!, v[1]!, v[2]!),
    fields: (v) => ({ vcpu_id: v[0]!, rip: u64(v[1]!, v[2]!) }),
  },
  kvm_exit: {
    write: (k, c, p, x, v) => k.exit(c, p, x, v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!, v[8]!, v[9]!),
    fields: (v) => ({
      vcpu_id: v[0]!, exit_reason: v[1]!, guest_rip: u64(v[2]!, v[3]!), isa: 1,
      info1: u64(v[4]!, v[5]!), info2: u64(v[6]!, v[7]!), intr_info: v[8]!, error_code: v[9]!,
    }),
  },
  kvm_hypercall: {
    write: (k, c, p, x, v) => k.hypercall(c, p, x, v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!, v[8]!, v[9]!),
    fields: (v) => ({ nr: u64(v[0]!, v[1]!), a0: u64(v[2]!, v[3]!), a1: u64(v[4]!, v[5]!), a2: u64(v[6]!, v[7]!), a3: u64(v[8]!, v[9]!) }),
  },
  kvm_pio: {
    write: (k, c, p, x, v) => k.pio(c, p, x, bit(v[0]!), v[1]!, v[2]!, v[3]!, v[4]!),
    fields: (v) => ({ rw: v[0]! & 1, port: v[1]!, size: v[2]!, count: v[3]!, val: v[4]! }),
  },
  kvm_cpuid: {
    write: (k, c, p, x, v) => k.cpuid(c, p, x, v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!, v[8]!, v[9]!, bit(v[10]!), bit(v[11]!)),
    fields: (v) => ({
      function: v[0]!, index: v[1]!, rax: u64(v[2]!, v[3]!), rbx: u64(v[4]!, v[5]!), rcx: u64(v[6]!, v[7]!), rdx: u64(v[8]!, v[9]!),
      found: v[10]! & 1, used_max_basic: v[11]! & 1,
    }),
  },
  kvm_msr: {
    write: (k, c, p, x, v) => k.msr(c, p, x, bit(v[0]!), v[1]!, v[2]!, v[3]!, bit(v[4]!)),
    fields: (v) => ({ write: v[0]! & 1, ecx: v[1]!, data: u64(v[2]!, v[3]!), exception: v[4]! & 1 }),
  },
  kvm_cr: {
    write: (k, c, p, x, v) => k.cr(c, p, x, bit(v[0]!), v[1]!, v[2]!, v[3]!),
    fields: (v) => ({ rw: v[0]! & 1, cr: v[1]!, val: u64(v[2]!, v[3]!) }),
  },
  kvm_inj_exception: {
    write: (k, c, p, x, v) => k.injException(c, p, x, v[0]!, bit(v[1]!), v[2]!, bit(v[3]!)),
    fields: (v) => ({ exception: v[0]! & 0xff, has_error: v[1]! & 1, error_code: v[2]!, reinjected: v[3]! & 1 }),
  },
  kvm_inj_virq: {
    write: (k, c, p, x, v) => k.injVirq(c, p, x, v[0]!, bit(v[1]!), bit(v[2]!)),
    fields: (v) => ({ irq: v[0]!, vector: v[0]!, soft: v[1]! & 1, reinjected: v[2]! & 1 }),
  },
  kvm_userspace_exit: {
    write: (k, c, p, x, v) => k.userspaceExit(c, p, x, v[0]!, v[1]! | 0),
    fields: (v) => ({ reason: v[0]!, errno: v[1]! | 0 }),
  },
  kvm_vcpu_wakeup: {
    // ns up to 2^53 − 1 (a JS number), from two words.
    write: (k, c, p, x, v) => k.vcpuWakeup(c, p, x, (v[1]! & 0x1fffff) * TWO32 + v[0]!, bit(v[2]!), bit(v[3]!)),
    fields: (v) => ({ ns: BigInt((v[1]! & 0x1fffff) * TWO32 + v[0]!), waited: v[2]! & 1, valid: v[3]! & 1 }),
  },
}

/** One global clock (no nowOn). */
class TestClock implements TraceClockSource {
  readonly times = new Float64Array(CPUS).fill(1e9)
  nowNs(): number {
    return this.times[0]!
  }
  advance(cpu: number, ns: number): void {
    this.times[cpu]! += ns
  }
}
/** Per-CPU local clocks kept in one array, as the host keeps them: the per-CPU writers read it directly. */
class PerCpuTestClock extends TestClock {
  get cpuNs(): Float64Array {
    return this.times
  }
  nowOn(cpu: number): number {
    return this.times[cpu]!
  }
}
/** Per-CPU local clocks without the array: every write asks nowOn. */
class OpaquePerCpuTestClock extends TestClock {
  nowOn(cpu: number): number {
    return this.times[cpu]!
  }
}
const CLOCK_KINDS = 3
const makeClock = (kind: number): TestClock => (kind === 0 ? new TestClock() : kind === 1 ? new PerCpuTestClock() : new OpaquePerCpuTestClock())

type Op =
  | { readonly kind: "write"; readonly event: number; readonly cpu: number; readonly ctx: number; readonly gap: number; readonly v: ReadonlyArray<number> }
  | { readonly kind: "tracingOn" | "overwrite" | "pause" | "resume" | "clear"; readonly cpu: number }
  | { readonly kind: "enable"; readonly event: number; readonly on: boolean }
  | { readonly kind: "clock"; readonly which: number }

const gapArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 50_000 }) },
  { weight: 1, arbitrary: fc.constant(0) },
  // Past the 27-bit delta: a time-extend record.
  { weight: 1, arbitrary: fc.integer({ min: 1 << 27, max: 2 ** 40 }) },
  // Fractional nanoseconds (a clock charging fractions of an instruction time) and a clock
  // stepping back (the ring then stamps the record with its last time).
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 50_000 }).map((n) => n + 0.375) },
  { weight: 1, arbitrary: fc.integer({ min: -50_000, max: -1 }) },
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 40,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      event: fc.nat(KVM_EVENT_NAMES.length - 1),
      cpu: fc.nat(CPUS - 1),
      ctx: fc.nat(0xffff).map((c) => traceContext(c & 0xff, c >> 8)),
      gap: gapArb,
      v: fc.array(fc.nat(0xffffffff), { minLength: WORDS, maxLength: WORDS }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom("tracingOn" as const, "overwrite" as const, "pause" as const, "resume" as const, "clear" as const), cpu: fc.nat(CPUS - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("enable" as const), event: fc.nat(KVM_EVENT_NAMES.length - 1), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("clock" as const), which: fc.nat(9) }) },
)

const build = (era: TraceEra, clockKind: number): { trace: TraceShape; clock: TestClock } => {
  const clock = makeClock(clockKind)
  const trace = makeTrace({ cpuCount: CPUS, clock, tasks: new StaticTaskNames([[1000, "qemu-system-x86"]]), era, bufferBytes: 3 * 4080, expanded: true })
  for (let i = 0; i < KVM_EVENT_NAMES.length; i++) trace.tracer.setEventEnabled(i, true)
  // Start on pages full of old bytes, as a long-running buffer is.
  for (const ring of trace.tracer.rings) new Uint8Array(ring.words.buffer).fill(0xa5)
  return { trace, clock }
}

const apply = (t: TraceShape, clock: TestClock, op: Op, viaEmit: boolean): boolean | undefined => {
  const tracer: Tracer = t.tracer
  switch (op.kind) {
    case "write": {
      clock.advance(op.cpu, op.gap)
      const name = KVM_EVENT_NAMES[op.event]!
      const writer = WRITERS[name]
      if (!viaEmit) return writer.write(t.kvm, op.cpu, 1000, op.ctx, op.v)
      const event = tracer.kvm[name]
      const values = Object.fromEntries(Object.entries(writer.fields(op.v)).filter(([k]) => event.fields.some((f) => f.name === k)))
      return tracer.emit(name, op.cpu, 1000, op.ctx, values)
    }
    case "tracingOn":
      tracer.tracingOn = !tracer.tracingOn
      return undefined
    case "overwrite":
      tracer.setOverwrite(!tracer.overwrite)
      return undefined
    case "pause":
      tracer.pauseRecording()
      return undefined
    case "resume":
      tracer.resumeRecording()
      return undefined
    case "clear":
      tracer.clear(op.cpu)
      return undefined
    case "enable":
      tracer.setEventEnabled(op.event, op.on)
      return undefined
    case "clock":
      tracer.setClock(tracer.availableClocks[op.which % tracer.availableClocks.length]!)
      return undefined
  }
}

const state = (t: TraceShape): unknown => {
  const reader = new TraceSnapshotReader(t.tracer)
  const text = reader.readAll()
  reader.close()
  return {
    text,
    rings: t.tracer.rings.map((r) => ({
      bytes: Buffer.from(r.bytes).toString("base64"),
      entries: r.entries,
      overrun: r.overrun,
      dropped: r.dropped,
      bytesInBuffer: r.bytesInBuffer,
      readable: r.readable,
    })),
    stats: t.tracer.rings.map((_, cpu) => t.tracer.statsText(cpu)),
  }
}

describe("KVM tracepoint writers", () => {
  for (const era of ["A", "D"] as const) {
    it(`store the same bytes, counters and text as emit under random operations (era ${era})`, () => {
      fc.assert(
        fc.property(fc.nat(CLOCK_KINDS - 1), fc.array(opArb, { minLength: 50, maxLength: 600 }), (clockKind, ops) => {
          const fast = build(era, clockKind)
          const slow = build(era, clockKind)
          for (const op of ops) {
            const a = apply(fast.trace, fast.clock, op, false)
            const b = apply(slow.trace, slow.clock, op, true)
            if (a !== b) throw new Error(`${JSON.stringify(op)}: writer returned ${a}, emit ${b}`)
          }
          // The 5.0 era pauses recording while `trace` is open; resume what the ops paused first.
          for (let i = 0; i < ops.length; i++) {
            fast.trace.tracer.resumeRecording()
            slow.trace.tracer.resumeRecording()
          }
          expect(state(fast.trace)).toEqual(state(slow.trace))
        }),
        { numRuns: 60 },
      )
    })
  }

  // KVM's run loop and VMCALL handler write kvm_entry, kvm_exit and kvm_hypercall through the
  // per-CPU writer's context-free methods (KvmCpuTraceSink's shape), having checked the switch.
  for (const era of ["A", "D"] as const) {
    it(`the per-CPU round-trip writers store what emit stores with the kernel's contexts (era ${era})`, () => {
      const kernelContext: Partial<Record<KvmEventName, number>> = {
        kvm_entry: IRQS_OFF_CONTEXT,
        kvm_exit: era === "D" ? IRQS_OFF_CONTEXT : TASK_CONTEXT,
        kvm_hypercall: TASK_CONTEXT,
      }
      const roundTrip = (t: TraceShape, op: Op & { kind: "write" }): void => {
        const name = KVM_EVENT_NAMES[op.event]!
        if (t.tracer.eventEnabled[op.event] !== 1) return
        const w = t.kvm.forCpu(op.cpu)
        const v = op.v
        if (name === "kvm_entry") w.entry(1000, v[0]!, v[1]!, v[2]!)
        else if (name === "kvm_exit") w.exit(1000, v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!, v[8]!, v[9]!)
        else w.hypercall(1000, v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!, v[8]!, v[9]!)
      }
      const roundTripOpArb = opArb.map((op) => {
        if (op.kind !== "write") return op
        const event = op.event % 3
        return { ...op, event, ctx: kernelContext[KVM_EVENT_NAMES[event]!]! }
      })
      fc.assert(
        fc.property(fc.nat(CLOCK_KINDS - 1), fc.array(roundTripOpArb, { minLength: 50, maxLength: 600 }), (clockKind, ops) => {
          const fast = build(era, clockKind)
          const slow = build(era, clockKind)
          for (const op of ops) {
            if (op.kind === "write") {
              fast.clock.advance(op.cpu, op.gap)
              roundTrip(fast.trace, op)
            } else apply(fast.trace, fast.clock, op, false)
            apply(slow.trace, slow.clock, op, true)
          }
          for (let i = 0; i < ops.length; i++) {
            fast.trace.tracer.resumeRecording()
            slow.trace.tracer.resumeRecording()
          }
          expect(state(fast.trace)).toEqual(state(slow.trace))
        }),
        { numRuns: 60 },
      )
    })
  }

  it("store nothing and move no counter while tracing is off or an open trace pauses it", () => {
    const { trace, clock } = build("A", 1)
    const ring = trace.tracer.rings[1]!
    const v = Array.from({ length: WORDS }, (_, i) => i + 1)
    trace.tracer.setClock("counter")
    trace.tracer.tracingOn = false
    clock.advance(1, 1000)
    for (const name of KVM_EVENT_NAMES) expect(WRITERS[name].write(trace.kvm, 1, 1000, 0, v)).toBe(false)
    trace.tracer.tracingOn = true
    trace.tracer.pauseRecording()
    for (const name of KVM_EVENT_NAMES) expect(WRITERS[name].write(trace.kvm, 1, 1000, 0, v)).toBe(false)
    expect([ring.entries, ring.dropped, ring.bytesInBuffer]).toEqual([0, 0, 0])
    trace.tracer.resumeRecording()
    // The counter clock was not advanced by the refused writes: the first stored event is 1.
    expect(WRITERS.kvm_entry.write(trace.kvm, 1, 1000, 0, v)).toBe(true)
    const reader = new TraceSnapshotReader(trace.tracer)
    expect(reader.readAll()).toMatch(/\[001\] \.\.\.\. +1: kvm_entry: vcpu 1\n$/)
    reader.close()
  })
})
