// Readers format lines into a byte buffer (Tracer.appendLine) and fall back to the string
// formatter (Tracer.formatLine) only for text beyond Latin-1. The two must print the same line
// for every record: random KVM events with random field values in both eras, trace_printk with
// random formats and arguments, trace_marker text, odd pids, task names and contexts.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { StaticTaskNames, traceContext } from "../../src/trace/context.ts"
import type { TraceEra } from "../../src/trace/events.ts"
import { LineBytes } from "../../src/trace/line-bytes.ts"
import { EventCursor, RingIterator } from "../../src/trace/ring-buffer.ts"
import { traceHeader } from "../../src/trace/output.ts"
import { TracePipeReader, TraceSnapshotReader } from "../../src/trace/readers.ts"
import { LinePrefixes, Tracer, type PrintkSite } from "../../src/trace/tracer.ts"
import { ManualClock } from "../../src/trace/context.ts"

type Writer =
  | { readonly kind: "event"; readonly index: number; readonly seeds: ReadonlyArray<bigint> }
  | { readonly kind: "printk"; readonly format: string; readonly args: ReadonlyArray<bigint | string> }
  | { readonly kind: "marker"; readonly text: string }

interface Step {
  readonly writer: Writer
  readonly cpu: number
  readonly pid: number
  readonly context: number
  readonly gapNs: number
}

const CONVERSIONS = ["%d", "%u", "%x", "%i", "%lld", "%llu", "%llx", "%hd", "%hhu", "%c", "%s", "%5d", "%-4x", "%08X", "%.3s", "%+d", "%#o", "%lu"]

const writerArbitrary: fc.Arbitrary<Writer> = fc.oneof(
  fc.record({
    kind: fc.constant("event" as const),
    index: fc.nat(10),
    seeds: fc.array(fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 80n })), { minLength: 8, maxLength: 8 }),
  }),
  fc
    .array(fc.record({ text: fc.string({ maxLength: 6 }), conv: fc.constantFrom(...CONVERSIONS), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), str: fc.string({ maxLength: 8 }) }), { maxLength: 4 })
    .map((parts) => ({
      kind: "printk" as const,
      format: parts.map((p) => p.text.replaceAll("%", "%%") + p.conv).join("") + "\n",
      args: parts.map((p) => (p.conv.endsWith("s") ? p.str : p.conv === "%c" ? 32n + (p.value % 200n) : p.value)),
    })),
  fc.record({ kind: fc.constant("marker" as const), text: fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 })) }),
)

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  writer: writerArbitrary,
  cpu: fc.nat(2),
  pid: fc.oneof(fc.constantFrom(0, 12398, 2211, 7, 31337), fc.integer({ min: 1, max: 4_194_304 })),
  context: fc.record({ flags: fc.nat(255), preempt: fc.nat(255) }).map(({ flags, preempt }) => traceContext(flags, preempt)),
  gapNs: fc.oneof(fc.nat(3_000), fc.nat(5_000_000_000)),
})

const build = (era: TraceEra, steps: ReadonlyArray<Step>, comm: string, bufferBytes?: number): Tracer => {
  const clock = new ManualClock(1_000_000)
  const tasks = new StaticTaskNames([
    [12398, "qemu-system-x86"],
    [2211, comm],
    [7, "a-very-long-task-name-indeed"],
  ])
  const tracer = new Tracer({ cpuCount: 3, clock, tasks, era, expanded: true, ...(bufferBytes === undefined ? {} : { bufferBytes }) })
  tracer.events.forEach((_, i) => tracer.setEventEnabled(i, true))
  for (const step of steps) {
    clock.advance(step.gapNs)
    const w = step.writer
    if (w.kind === "event") {
      const event = tracer.events[w.index]!
      const values: Record<string, bigint> = {}
      event.fields.forEach((f, i) => {
        values[f.name] = w.seeds[i % w.seeds.length]!
      })
      tracer.emit(event.name, step.cpu, step.pid, step.context, values)
    } else if (w.kind === "printk") {
      const site = tracer.registerPrintk("some_function", w.format) as PrintkSite
      tracer.printkValues(step.cpu, step.pid, step.context, site, w.args)
    } else {
      tracer.writeMarker(step.cpu, step.pid, new TextEncoder().encode(w.text), step.context)
    }
  }
  return tracer
}

/** Every record of every CPU: the line from the byte path (or null if it declined) and from the string path. */
const bothLines = (tracer: Tracer): Array<{ bytes: string | null; text: string }> => {
  const lines: Array<{ bytes: string | null; text: string }> = []
  const out = new LineBytes(16)
  const prefixes = new LinePrefixes()
  const cursor = new EventCursor()
  tracer.rings.forEach((ring, cpu) => {
    const it = new RingIterator(ring)
    ring.iterReset(it)
    while (ring.iterPeek(it, cursor)) {
      const start = out.length
      const fast = tracer.appendLine(out, cpu, cursor, prefixes)
      if (!fast) expect(out.length).toBe(start)
      lines.push({ bytes: fast ? out.text(start, out.length) : null, text: tracer.formatLine(cpu, cursor) })
      ring.iterAdvance(it)
    }
  })
  return lines
}

describe("lines formatted as bytes", () => {
  for (const era of ["A", "D"] as const) {
    it(`match the string formatter for random records (era ${era})`, () => {
      fc.assert(
        fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 60 }), fc.constantFrom("bash", "naïve", "名前"), (steps, comm) => {
          const tracer = build(era, steps, comm)
          for (const { bytes, text } of bothLines(tracer)) {
            if (bytes !== null) expect(bytes).toBe(text)
            // Only text beyond Latin-1 (a task name, UTF-8 marker text, a format) may take the string path.
            else expect([...text].some((ch) => ch.charCodeAt(0) >= 0x80)).toBe(true)
          }
        }),
        { numRuns: 200 },
      )
    })
  }

  it("take the byte path for the usual KVM and trace_printk records", () => {
    const steps: Array<Step> = []
    for (let i = 0; i < 11; i++) steps.push({ writer: { kind: "event", index: i, seeds: [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n] }, cpu: i % 3, pid: 12398, context: 1, gapNs: 1000 })
    steps.push({ writer: { kind: "printk", format: "vcpu id: %d\n", args: [3n] }, cpu: 0, pid: 12398, context: 0, gapNs: 10 })
    steps.push({ writer: { kind: "marker", text: "hello" }, cpu: 0, pid: 2211, context: 0, gapNs: 10 })
    const lines = bothLines(build("A", steps, "bash"))
    expect(lines).toHaveLength(13)
    for (const { bytes, text } of lines) expect(bytes).toBe(text)
  })

  it("make readAll() the concatenation of read() chunks of any size, overruns and lost events included", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("A" as const, "D" as const),
        fc.array(stepArbitrary, { minLength: 1, maxLength: 400 }),
        fc.constantFrom("bash", "名前"),
        fc.integer({ min: 1, max: 3000 }),
        (era, steps, comm, chunk) => {
          const tracer = build(era, steps, comm, 4096)
          const whole = new TraceSnapshotReader(tracer)
          const all = whole.readAll()
          whole.close()
          const reader = new TraceSnapshotReader(tracer)
          let text = ""
          for (let part = reader.read(chunk); part !== ""; part = reader.read(chunk)) {
            expect(part.length).toBeLessThanOrEqual(chunk)
            text += part
          }
          reader.close()
          expect(all).toBe(text)
        },
      ),
      { numRuns: 60 },
    )
  })

  it("make trace_pipe print what trace lists, in reads of any size", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("A" as const, "D" as const),
        fc.array(stepArbitrary, { minLength: 1, maxLength: 200 }),
        fc.constantFrom("bash", "名前"),
        fc.integer({ min: 1, max: 5000 }),
        (era, steps, comm, chunk) => {
          const tracer = build(era, steps, comm)
          const { inBuffer, written } = tracer.totals()
          const snapshot = new TraceSnapshotReader(tracer)
          const listed = snapshot.readAll().slice(traceHeader(era, inBuffer, written, tracer.cpuCount).length)
          snapshot.close()
          const pipe = new TracePipeReader(tracer)
          let text = ""
          for (let part = pipe.read(chunk); typeof part === "string" && part !== ""; part = pipe.read(chunk)) {
            expect(part.length).toBeLessThanOrEqual(Math.min(chunk, 4095))
            text += part
          }
          expect(text).toBe(listed)
          expect(tracer.totals().inBuffer).toBe(0)
        },
      ),
      { numRuns: 60 },
    )
  })

  it("grow past their initial size", () => {
    const out = new LineBytes(4)
    const long = "x".repeat(10_000)
    expect(out.latin1(long)).toBe(true)
    out.uint(2 ** 53 - 1)
    out.hex64(0xdeadbeef, 0x1234)
    out.stampColumn(10747_677_382_499)
    expect(out.text(0, out.length)).toBe(long + "9007199254740991" + "1234deadbeef" + "10747.677382: ")
  })
})
