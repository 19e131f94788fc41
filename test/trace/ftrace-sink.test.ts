// trace_printk on its fast path (records of 4- and 8-byte integer arguments) and through KVM's
// FtraceSink (printf with an argument array, printfWords with staged halves): the text read back is
// what C's printf makes of the same 64-bit values, computed here from BigInt, and the fast
// path's records equal the general path's (taken with the counter clock).

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { FtraceSink } from "../../src/hypervisor/kvm/ftrace-sink.ts"
import { NullTraceSink } from "../../src/hypervisor/kvm/trace-sink.ts"
import { StaticTaskNames, TASK_CONTEXT } from "../../src/trace/context.ts"
import { makeTrace } from "../../src/trace/service.ts"
import { EventCursor } from "../../src/trace/ring-buffer.ts"
import type { PrintkSite } from "../../src/trace/tracer.ts"
import { testTrace, type TestTrace } from "./support.ts"

/** Small buffers: each case builds its own tracer. */
const small = { cpus: 3, bufferBytes: 2 * 4080 }

/** Integer conversions with their C argument size: [text, bits, signed, hex]. */
const CONVERSIONS: ReadonlyArray<readonly [string, 32 | 64, boolean, boolean]> = [
  ["%d", 32, true, false],
  ["%i", 32, true, false],
  ["%u", 32, false, false],
  ["%x", 32, false, true],
  ["%ld", 64, true, false],
  ["%lu", 64, false, false],
  ["%lx", 64, false, true],
  ["%lld", 64, true, false],
  ["%llu", 64, false, false],
  ["%llx", 64, false, true],
]

/** What printf prints for `value` passed as the conversion's C type (the value truncated to its size). */
const expected = (conversion: readonly [string, 32 | 64, boolean, boolean], value: bigint): string => {
  const [, bits, signed, hex] = conversion
  const v = signed ? BigInt.asIntN(bits, value) : BigInt.asUintN(bits, value)
  return hex ? v.toString(16) : v.toString()
}

/** The text of the newest record on `cpu` (after `FUNC: `'s function name, newline included). */
const lastText = (t: TestTrace, cpu: number): string => {
  const ring = t.tracer.rings[cpu]!
  const cursor = new EventCursor()
  let text = ""
  while (ring.peek(cursor)) {
    text = t.tracer.eventText(ring.words, ring.bytes, cursor)
    ring.consume()
  }
  return text
}

/** The newest record's payload words on `cpu`. */
const lastRecord = (t: TestTrace, cpu: number): Array<number> => {
  const ring = t.tracer.rings[cpu]!
  const cursor = new EventCursor()
  let words: Array<number> = []
  while (ring.peek(cursor)) {
    words = Array.from(ring.words.subarray(cursor.word, cursor.word + cursor.payloadBytes / 4))
    ring.consume()
  }
  return words
}

const formatArb = fc.array(fc.tuple(fc.nat(CONVERSIONS.length - 1), fc.string({ unit: fc.constantFrom("a", "b", " ", "=", ","), maxLength: 4 })), { minLength: 1, maxLength: 8 })
const value64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })

describe("trace_printk with integer arguments", () => {
  it("prints 32- and 64-bit arguments as C does, and the fast path stores the general path's record", () => {
    fc.assert(
      fc.property(formatArb, fc.array(value64, { minLength: 8, maxLength: 8 }), (parts, values) => {
        const format = "v: " + parts.map(([c, lit]) => CONVERSIONS[c]![0] + lit).join("") + "\n"
        const text = "f: v: " + parts.map(([c, lit], i) => expected(CONVERSIONS[c]!, values[i]!) + lit).join("") + "\n"
        const fast = testTrace(small)
        const general = testTrace(small)
        general.tracer.setClock("counter")
        for (const t of [fast, general]) {
          const site = t.tracer.registerPrintk("f", format) as PrintkSite
          parts.forEach((_, i) => t.tracer.setArgBigInt(i, values[i]!))
          expect(t.tracer.printk(1, 12398, TASK_CONTEXT, site)).toBe(true)
        }
        expect(lastRecord(fast, 1)).toEqual(lastRecord(general, 1))
        // lastRecord consumed them: write again for the text.
        for (const t of [fast, general]) {
          const site = t.tracer.registerPrintk("f", format) as PrintkSite
          parts.forEach((_, i) => t.tracer.setArgBigInt(i, values[i]!))
          t.tracer.printk(1, 12398, TASK_CONTEXT, site)
          expect(lastText(t, 1)).toBe(text)
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe("FtraceSink trace_printk", () => {
  const int = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }))

  it("printf with up to four numbers (the direct path, no staging) prints what C prints for them", () => {
    fc.assert(
      fc.property(formatArb.filter((p) => p.length <= 4), fc.array(int, { minLength: 4, maxLength: 4 }), (parts, values) => {
        const format = "v: " + parts.map(([c, lit]) => CONVERSIONS[c]![0] + lit).join("") + "\n"
        const text = "kvm_emulate_hypercall: v: " + parts.map(([c, lit], i) => expected(CONVERSIONS[c]!, BigInt(values[i]!)) + lit).join("") + "\n"
        const t = testTrace(small)
        const sink = new FtraceSink(t)
        sink.printf(2, 12398, "kvm_emulate_hypercall", format, values.slice(0, parts.length))
        expect(lastText(t, 2)).toBe(text)
        sink.printf(2, 12398, "kvm_emulate_hypercall", format, values)
        expect(lastText(t, 2)).toBe(text)
      }),
      { numRuns: 300 },
    )
  })

  it("printf of up to four numbers prints 0 for conversions past the fourth; a string argument takes the staged path", () => {
    const t = testTrace(small)
    const sink = new FtraceSink(t)
    sink.printf(0, 12398, "fn", "%d %d %d %d %d %lu\n", [1, 2, 3, 4])
    expect(lastText(t, 0)).toBe("fn: 1 2 3 4 0 0\n")
    sink.printf(0, 12398, "fn", "id %d name %s\n", [7, "42"])
    expect(lastText(t, 0)).toBe("fn: id 7 name 42\n")
    sink.printf(0, 12398, "fn", "no arguments\n", [])
    expect(lastText(t, 0)).toBe("fn: no arguments\n")
  })

  it("finds each call site again when functions and formats alternate", () => {
    const t = testTrace(small)
    const sink = new FtraceSink(t)
    const lines: Array<string> = []
    for (let i = 0; i < 20; i++) {
      const fn = i % 3 === 0 ? "kvm_emulate_hypercall" : "vcpu_info"
      const format = i % 2 === 0 ? "even %d\n" : "odd %lx\n"
      sink.printf(0, 12398, fn, format, [i])
      lines.push(`${fn}: ${i % 2 === 0 ? "even" : "odd"} ${i % 2 === 0 ? i : i.toString(16)}\n`)
      expect(lastText(t, 0)).toBe(lines[i])
    }
    // Four distinct (function, format) pairs: four sites, registered once each.
    expect(t.tracer.registerPrintk("vcpu_info", "odd %lx\n")).toBe(t.tracer.registerPrintk("vcpu_info", "odd %lx\n"))
  })

  it("printfWords prints what C prints for up to eight 64-bit values given as halves (0 past count), the same record with per-CPU local clocks as through the tracer's staging", () => {
    // Per-CPU local times in an array, as the host's clock keeps them: the per-CPU writer's fast path.
    const localTrace = (): TestTrace => {
      const cpuNs = new Float64Array(3).fill(5e9)
      const clock = { cpuNs, nowNs: () => cpuNs[0]!, nowOn: (cpu: number) => cpuNs[cpu]! }
      const shape = makeTrace({ cpuCount: 3, clock, tasks: new StaticTaskNames([]), era: "A", bufferBytes: 2 * 4080, expanded: true })
      return { ...testTrace(small), ...shape }
    }
    fc.assert(
      fc.property(formatArb, fc.array(value64, { minLength: 8, maxLength: 8 }), fc.nat(8), (parts, values, given) => {
        const count = Math.min(given, parts.length)
        const format = "v: " + parts.map(([c, lit]) => CONVERSIONS[c]![0] + lit).join("") + "\n"
        const text = "kvm_emulate_hypercall: v: " + parts.map(([c, lit], i) => expected(CONVERSIONS[c]!, i < count ? values[i]! : 0n) + lit).join("") + "\n"
        const lo = Uint32Array.from(values, (v) => Number(BigInt.asUintN(32, v)))
        const hi = Uint32Array.from(values, (v) => Number(BigInt.asUintN(64, v) >> 32n))
        const records: Array<Array<number>> = []
        for (const t of [testTrace(small), localTrace()]) {
          const sink = new FtraceSink(t)
          sink.printfWords(1, 12398, "kvm_emulate_hypercall", format, lo, hi, count)
          expect(lastText(t, 1)).toBe(text)
          sink.printfWords(1, 12398, "kvm_emulate_hypercall", format, lo, hi, count)
          records.push(lastRecord(t, 1))
        }
        expect(records[1]).toEqual(records[0])
      }),
      { numRuns: 300 },
    )
  })

  it("printfWords prints a %s argument as its decimal text", () => {
    const t = testTrace(small)
    const sink = new FtraceSink(t)
    sink.printfWords(0, 12398, "fn", "id %d name %s big %s\n", Uint32Array.of(7, 42, 0), Uint32Array.of(0, 0, 1), 3)
    expect(lastText(t, 0)).toBe("fn: id 7 name 42 big 4294967296\n")
  })

  it("recording says whether a trace_printk would be stored; the null sink never records", () => {
    const t = testTrace(small)
    const sink = new FtraceSink(t)
    expect(sink.recording).toBe(true)
    t.tracer.tracingOn = false
    expect(sink.recording).toBe(false)
    t.tracer.tracingOn = true
    t.tracer.pauseRecording()
    expect(sink.recording).toBe(false)
    t.tracer.resumeRecording()
    expect(sink.recording).toBe(true)
    expect(new NullTraceSink().recording).toBe(false)
  })

  it("with tracing off stores nothing but still registers the site (which expands the buffers)", () => {
    const t = testTrace({ ...small, expanded: false })
    const sink = new FtraceSink(t)
    t.tracer.tracingOn = false
    sink.printf(0, 12398, "fn", "x %d\n", [1])
    sink.printf(0, 12398, "fn", "y %d\n", [2])
    expect(t.tracer.rings[0]!.entries).toBe(0)
    expect(t.tracer.expanded).toBe(true)
    t.tracer.tracingOn = true
    sink.printf(0, 12398, "fn", "y %d\n", [3])
    expect(lastText(t, 0)).toBe("fn: y 3\n")
  })

  it("refuses a format the kernel's trace_printk cannot take, naming it", () => {
    const sink = new FtraceSink(testTrace(small))
    expect(() => sink.printf(0, 1, "fn", "%f\n", [1])).toThrow(/%f/)
    expect(() => sink.printf(0, 1, "fn", "%p\n", [1])).toThrow(/%p/)
  })
})
