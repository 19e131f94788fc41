// Property tests of the per-CPU ring buffers under random interleavings of writers, consuming
// readers, snapshot iterators, resizes, overwrite toggles, clears and tracing_on switches.
// fast-check picks the shape of each run (buffer sizes 1–1,024 pages for 8 CPUs, seed, event
// mix); a seeded generator drives the run itself so that a million events stay fast.
// Every count is measured independently of the counter it is compared with.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { TASK_CONTEXT } from "../../src/trace/context.ts"
import { EventCursor, MIN_PAGES, RingIterator } from "../../src/trace/ring-buffer.ts"
import { makeTrace } from "../../src/trace/service.ts"
import { StaticTaskNames } from "../../src/trace/context.ts"
import { TRACE_BPRINT, type PrintkSite } from "../../src/trace/tracer.ts"

/** A cheap assertion for the hot loops (vitest's expect costs microseconds per call). */
const check = (ok: boolean, what: () => string): void => {
  if (!ok) throw new Error(what())
}

const CPUS = 8
const RUNS = Number(process.env.TRACE_PROP_RUNS ?? 16)
const EVENTS_PER_RUN = Number(process.env.TRACE_PROP_EVENTS ?? 62_500) // 16 × 62,500 = 1,000,000 events

/** mulberry32: a small seeded generator for the operations inside one run. */
const generator = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A per-CPU clock as the host keeps it (local clocks move independently). */
class PerCpuClock {
  readonly cpuNs = new Float64Array(CPUS).fill(5e9)
  nowNs(): number {
    return this.cpuNs[0]!
  }
  nowOn(cpu: number): number {
    return this.cpuNs[cpu]!
  }
}

/** The text a given event sequence number carries: lengths cross the 112-byte small-record limit. */
const payloadText = (seq: number): string => {
  const length = seq % 17 === 0 ? (seq * 31) % 300 : seq % 9
  let s = ""
  for (let i = 0; i < length; i++) s += String.fromCharCode(97 + ((seq + i) % 26))
  return s
}

interface CpuModel {
  nextSeq: number
  /** First sequence number since the last clear: gaps are measured from here. */
  lastConsumed: number
  written: number
  refused: number
  consumed: number
  lostReported: number
  expectedTs: Float64Array
}

const checkRecord = (words: Uint32Array, bytes: Uint8Array, cursor: EventCursor, cpu: number, model: CpuModel): number => {
  const w = cursor.word
  check((words[w]! & 0xffff) === TRACE_BPRINT, () => `cpu ${cpu}: record type ${words[w]! & 0xffff}`)
  check(words[w + 1] === 1000 + cpu, () => `cpu ${cpu}: pid ${words[w + 1]}`)
  const seq = words[w + 6]!
  check(seq < model.nextSeq, () => `cpu ${cpu}: seq ${seq} was never written`)
  const text = payloadText(seq)
  const at = (w + 7) * 4
  for (let i = 0; i < text.length; i++) {
    if (bytes[at + i] !== text.charCodeAt(i)) throw new Error(`cpu ${cpu} seq ${seq}: payload byte ${i} damaged`)
  }
  check(bytes[at + text.length] === 0, () => `cpu ${cpu} seq ${seq}: string not terminated`)
  check(cursor.ts === model.expectedTs[seq], () => `cpu ${cpu} seq ${seq}: ts ${cursor.ts}, written at ${model.expectedTs[seq]}`)
  return seq
}

/** What the runs exercised, so that a test that never wraps or drops cannot pass silently. */
const seen = { overrun: 0, lostReported: 0, dropped: 0 }

const runOnce = (seed: number, pages: ReadonlyArray<number>, writeWeight: number): number => {
  const random = generator(seed)
  const clock = new PerCpuClock()
  const { tracer } = makeTrace({ cpuCount: CPUS, clock, tasks: new StaticTaskNames(), expanded: true })
  const site = tracer.registerPrintk("prop_writer", "seq %u %s\n") as PrintkSite
  pages.forEach((p, cpu) => {
    expect(tracer.resizeBytes(p * 4080, cpu)).toBe(0)
    expect(tracer.rings[cpu]!.pageCount).toBe(Math.max(MIN_PAGES, p))
  })
  const models: Array<CpuModel> = Array.from({ length: CPUS }, () => ({
    nextSeq: 0, lastConsumed: -1, written: 0, refused: 0, consumed: 0, lostReported: 0,
    expectedTs: new Float64Array(EVENTS_PER_RUN + 1),
  }))
  const cursor = new EventCursor()
  let events = 0
  const lastTs = new Float64Array(CPUS)

  const consume = (cpu: number, count: number): void => {
    const ring = tracer.rings[cpu]!
    const model = models[cpu]!
    for (let i = 0; i < count && ring.peek(cursor); i++) {
      const seq = checkRecord(ring.words, ring.bytes, cursor, cpu, model)
      check(seq > model.lastConsumed, () => `cpu ${cpu}: seq ${seq} after ${model.lastConsumed}`)
      // Every [LOST N] equals the events missing between two consumed ones.
      check(cursor.lost === seq - model.lastConsumed - 1, () => `cpu ${cpu}: lost ${cursor.lost} before seq ${seq}, last consumed ${model.lastConsumed}`)
      check(cursor.ts >= lastTs[cpu]!, () => `cpu ${cpu}: time went back`)
      lastTs[cpu] = cursor.ts
      model.lostReported += cursor.lost
      model.lastConsumed = seq
      ring.consume()
      model.consumed++
    }
  }

  const walk = (cpu: number): number => {
    const ring = tracer.rings[cpu]!
    const it = new RingIterator(ring)
    ring.iterReset(it)
    let count = 0
    let previous = models[cpu]!.lastConsumed
    let previousTs = -1
    while (ring.iterPeek(it, cursor)) {
      const seq = checkRecord(ring.words, ring.bytes, cursor, cpu, models[cpu]!)
      check(seq > previous, () => `cpu ${cpu}: iterator seq ${seq} after ${previous}`)
      check(cursor.ts >= previousTs, () => `cpu ${cpu}: iterator time went back`)
      previous = seq
      previousTs = cursor.ts
      ring.iterAdvance(it)
      count++
    }
    return count
  }

  const checkAccounting = (cpu: number, inBuffer: number): void => {
    const ring = tracer.rings[cpu]!
    const m = models[cpu]!
    expect(ring.entries).toBe(m.written)
    expect(ring.read).toBe(m.consumed)
    expect(ring.dropped).toBe(m.refused)
    // written = read + in-buffer + overrun, with in-buffer counted by walking the pages.
    expect(m.written).toBe(m.consumed + inBuffer + ring.overrun)
    expect(ring.readable).toBe(inBuffer)
    // Everything overwritten is either already announced or still to be announced.
    expect(m.lostReported).toBeLessThanOrEqual(ring.overrun)
  }

  while (events < EVENTS_PER_RUN) {
    const r = random()
    const cpu = Math.floor(random() * CPUS)
    const model = models[cpu]!
    if (r < writeWeight) {
      const burst = 1 + Math.floor(random() * 64)
      for (let b = 0; b < burst && events < EVENTS_PER_RUN; b++) {
        const gap = random()
        clock.cpuNs[cpu]! += gap < 0.01 ? 200_000_000 + Math.floor(random() * 5e9) : gap < 0.05 ? 0 : Math.floor(random() * 50_000)
        const seq = model.nextSeq
        tracer.setArg(0, seq)
        tracer.setArgString(1, payloadText(seq))
        const recording = tracer.recording
        const stored = tracer.printk(cpu, 1000 + cpu, TASK_CONTEXT, site)
        events++
        if (stored) {
          model.expectedTs[seq] = clock.cpuNs[cpu]!
          model.nextSeq++
          model.written++
        } else if (recording) {
          // reserved = written + dropped: a refused write is counted as dropped (overwrite off).
          check(!tracer.overwrite, () => `cpu ${cpu}: write refused with overwrite on`)
          model.refused++
        }
      }
    } else if (r < 0.97) {
      consume(cpu, 1 + Math.floor(random() * 200))
    } else {
      // Rare operations: a snapshot walk, overwrite toggle, resize, clear, tracing_on switch.
      const op = random()
      if (op < 0.4) {
        checkAccounting(cpu, walk(cpu))
      } else if (op < 0.6) {
        tracer.setOverwrite(!tracer.overwrite)
      } else if (op < 0.8) {
        const requested = 1 + Math.floor(random() * 1024)
        tracer.resizeBytes(requested * 4080, cpu)
        expect(tracer.rings[cpu]!.pageCount).toBe(Math.max(MIN_PAGES, requested))
        checkAccounting(cpu, walk(cpu))
      } else if (op < 0.9) {
        tracer.clear(cpu)
        model.written = model.consumed = model.refused = model.lostReported = 0
        model.lastConsumed = model.nextSeq - 1
        lastTs[cpu] = 0
        checkAccounting(cpu, walk(cpu))
      } else {
        tracer.tracingOn = !tracer.tracingOn
      }
    }
  }
  for (let cpu = 0; cpu < CPUS; cpu++) {
    checkAccounting(cpu, walk(cpu))
    // Drain: what is left is read in order and the total loss is announced exactly.
    consume(cpu, Number.MAX_SAFE_INTEGER)
    const ring = tracer.rings[cpu]!
    expect(ring.readable).toBe(0)
    seen.overrun += ring.overrun
    seen.lostReported += models[cpu]!.lostReported
    seen.dropped += ring.dropped
    expect(models[cpu]!.lostReported + (models[cpu]!.nextSeq - 1 - models[cpu]!.lastConsumed)).toBe(ring.overrun)
    checkAccounting(cpu, 0)
  }
  return events
}

describe("ring buffer properties (8 CPUs, 1–1,024 pages, 1,000,000 events)", () => {
  it("accounting, order, payloads and lost-event counts hold under random interleavings", () => {
    let total = 0
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x7fffffff }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 1024 })), { minLength: CPUS, maxLength: CPUS }),
        // Share of steps that write (the rest read, and 3% do something rare).
        fc.double({ min: 0.5, max: 0.96, noNaN: true }),
        (seed, pages, writeWeight) => {
          total += runOnce(seed, pages, writeWeight)
        },
      ),
      { numRuns: RUNS },
    )
    expect(total).toBe(RUNS * EVENTS_PER_RUN)
    expect(seen.overrun).toBeGreaterThan(0)
    expect(seen.lostReported).toBeGreaterThan(0)
    expect(seen.dropped).toBeGreaterThan(0)
  })
})
