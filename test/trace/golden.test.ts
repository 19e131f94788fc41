// Golden tests: the simulator's trace files, character for character against the shared
// samples (ftrace-samples/) and the exact headers of ftrace.md §1.2, and the Perfetto check.

import { describe, expect, it } from "vitest"
import { IRQS_OFF_CONTEXT, TASK_CONTEXT } from "../../src/trace/context.ts"
import { formatFileText } from "../../src/trace/events.ts"
import { TracePipeReader, TraceSnapshotReader } from "../../src/trace/readers.ts"
import { O_RDONLY } from "../../src/trace/tracefs.ts"
import { ns, perfettoLine, reference, sample, testTrace, type TestTrace } from "./support.ts"

const readTrace = (t: TestTrace): string => {
  const reader = new TraceSnapshotReader(t.tracer)
  const text = reader.readAll()
  reader.close()
  return text
}

/** The code block that follows a line starting with `title` in ftrace.md. */
const headerBlock = (title: string): string => {
  const md = reference("ftrace.md")
  const at = md.indexOf(title)
  const open = md.indexOf("```\n", at) + 4
  return md.slice(open, md.indexOf("```", open))
}

const homeworkSample01 = (t: TestTrace): void => {
  const site = t.tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n")
  if (site instanceof Error) throw site
  const events: Array<[number, number, number, number]> = []
  for (let i = 0; i < 8; i++) events.push([ns("10747.677382") + i * 1_250_000, 3, 12398, 0])
  for (let i = 0; i < 4; i++) events.push([ns("10747.681906") + i * 2_500_000, 1, 12399, 1])
  events.sort((a, b) => a[0] - b[0])
  for (const [time, cpu, pid, id] of events) {
    t.clock.set(time)
    t.tracer.printkValues(cpu, pid, TASK_CONTEXT, site, [id])
  }
}

/** Sample 03's buffer: 160,000 events on CPU 3 (10 µs apart), 12 on CPU 1 (125 µs apart). */
const overrunBuffer = (): TestTrace => {
  const t = testTrace({ era: "A" })
  const site = t.tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n")
  if (site instanceof Error) throw site
  const firstSurvivor = 115_062
  const cpu3 = (k: number): number => ns("10747.677382") + (k - firstSurvivor) * 10_000
  const cpu1 = (j: number): number => ns("10747.677395") + j * 125_000
  let j = 0
  for (let k = 0; k < 160_000; k++) {
    while (j < 12 && cpu1(j) < cpu3(k)) {
      t.clock.set(cpu1(j++))
      t.tracer.printkValues(1, 12399, TASK_CONTEXT, site, [1])
    }
    t.clock.set(cpu3(k))
    t.tracer.setArg(0, 0)
    t.tracer.printk(3, 12398, TASK_CONTEXT, site)
  }
  while (j < 12) {
    t.clock.set(cpu1(j++))
    t.tracer.printkValues(1, 12399, TASK_CONTEXT, site, [1])
  }
  return t
}

describe("golden: trace and trace_pipe against the shared samples", () => {
  it("01: trace_printk lines in the 5.0 era, CPUs merged by time stamp", () => {
    const t = testTrace({ era: "A" })
    homeworkSample01(t)
    expect(readTrace(t)).toBe(sample("01-nop-trace_printk-5.0-era.txt"))
  })

  it("02: KVM events and trace_printk in the 6.x era", () => {
    const t = testTrace({ era: "D" })
    const { kvm, tracer, clock } = t
    for (const name of ["kvm_exit", "kvm_hypercall", "kvm_entry", "kvm_pio", "kvm_userspace_exit", "kvm_vcpu_wakeup", "kvm_inj_virq", "kvm_msr"]) {
      tracer.setEventEnabled(tracer.eventIndex(name), true)
    }
    const site = tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n")
    if (site instanceof Error) throw site
    const at = (us: string): void => clock.set(ns(`5123.${us}`))
    const pid = 12398
    const rip = (lo: number): [number, number] => [lo, 0xffffffff]
    at("401201"); kvm.exit(3, pid, IRQS_OFF_CONTEXT, 0, 18, ...rip(0xa40b7d3a), 0, 0, 0, 0, 0, 0)
    at("401202"); kvm.hypercall(3, pid, TASK_CONTEXT, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0)
    at("401203"); tracer.printkValues(3, pid, TASK_CONTEXT, site, [0])
    at("401205"); kvm.entry(3, pid, IRQS_OFF_CONTEXT, 0, ...rip(0xa40b7d3d))
    at("401289"); kvm.exit(3, pid, IRQS_OFF_CONTEXT, 0, 30, ...rip(0xa48f1c47), 0x03f80000, 0, 0, 0, 0, 0)
    at("401291"); kvm.pio(3, pid, TASK_CONTEXT, true, 0x3f8, 1, 1, 0x41)
    at("401292"); kvm.userspaceExit(3, pid, TASK_CONTEXT, 2, 0)
    at("401309"); kvm.entry(3, pid, IRQS_OFF_CONTEXT, 0, ...rip(0xa48f1c48))
    at("401921"); kvm.exit(3, pid, IRQS_OFF_CONTEXT, 0, 12, ...rip(0xa48f0e6e), 0, 0, 0, 0, 0, 0)
    at("405801"); kvm.vcpuWakeup(3, pid, TASK_CONTEXT, 3_877_402, true, true)
    at("405803"); kvm.injVirq(3, pid, TASK_CONTEXT, 0xec, false, false)
    at("405805"); kvm.entry(3, pid, IRQS_OFF_CONTEXT, 0, ...rip(0xa48f0e6f))
    at("405814"); kvm.exit(3, pid, IRQS_OFF_CONTEXT, 0, 32, ...rip(0xa4083524), 0, 0, 0, 0, 0, 0)
    at("405814"); kvm.msr(3, pid, IRQS_OFF_CONTEXT, true, 0x6e0, 0x5f2f1c48, 0x12a0, false)
    at("405815"); kvm.entry(3, pid, IRQS_OFF_CONTEXT, 0, ...rip(0xa4083526))
    expect(readTrace(t)).toBe(sample("02-kvm-events-6.x.txt"))
  })

  it("03: overrun header, stats and `##### CPU N buffer started ####` after CPU 3 wrapped", () => {
    const t = overrunBuffer()
    const expected = sample("03-overrun-trace-5.0-era.txt")
    const reader = new TraceSnapshotReader(t.tracer)
    const text = reader.read(expected.length)
    reader.close()
    expect(text).toBe(expected)
    // The worked example of ftrace.md §3.5.
    const stats = t.tracer.statsText(3).split("\n")
    expect(stats.slice(0, 4)).toEqual(["entries: 44938", "overrun: 115062", "commit overrun: 0", "bytes: 1443664"])
    expect(stats[4]).toBe("oldest event ts: 10747.677382")
  })

  it("04: trace_pipe on the same buffer announces the loss instead", () => {
    const t = overrunBuffer()
    const expected = sample("04-overrun-trace_pipe-5.0-era.txt")
    const pipe = new TracePipeReader(t.tracer)
    let text = ""
    while (text.length < expected.length) {
      const chunk = pipe.read(4095)
      if (typeof chunk !== "string") throw new Error(`trace_pipe read failed: ${chunk}`)
      text += chunk
    }
    expect(text.slice(0, expected.length)).toBe(expected)
    // Consumed events leave both numbers of the header.
    const consumed = t.tracer.rings[3]!.read + t.tracer.rings[1]!.read
    expect(t.tracer.totals()).toEqual({ inBuffer: 44_950 - consumed, written: 160_012 - consumed })
  })

  it("05: the format file of kvm_hypercall", () => {
    const t = testTrace({ era: "D" })
    const handle = t.tracefs.open("events/kvm/kvm_hypercall/format", O_RDONLY)
    if (typeof handle === "number") throw new Error(`open failed: ${handle}`)
    expect(handle.read(65536)).toBe(sample("05-kvm_hypercall-format-5.x-6.x.txt"))
    expect(formatFileText(testTrace({ era: "A" }).tracer.kvm.kvm_hypercall)).toBe(sample("05-kvm_hypercall-format-5.x-6.x.txt"))
  })

  it("empty buffers print exactly the headers of ftrace.md §1.2 for both eras", () => {
    expect(readTrace(testTrace({ era: "A" }))).toBe(headerBlock("Era A — Linux 5.0"))
    expect(readTrace(testTrace({ era: "D" }))).toBe(headerBlock("Era D — 5.17"))
  })

  it("the era A and era D examples of ftrace.md §1.3", () => {
    for (const era of ["A", "D"] as const) {
      const t = testTrace({ era })
      const site = t.tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n")
      if (site instanceof Error) throw site
      t.tracer.setEventEnabled(t.tracer.eventIndex("kvm_entry"), true)
      t.clock.set(ns("10747.677382"))
      t.tracer.printkValues(3, 12398, TASK_CONTEXT, site, [0])
      t.clock.set(ns("10747.677384"))
      t.kvm.entry(3, 12398, IRQS_OFF_CONTEXT, 0, 0xa40b7d3d, 0xffffffff)
      t.clock.set(ns("10748.002119"))
      t.tracer.writeMarker(0, 2211, new TextEncoder().encode("hypercall test start"))
      const lines = readTrace(t).split("\n").filter((l) => !l.startsWith("#") && l !== "")
      expect(lines).toEqual(
        era === "A"
          ? [
              " qemu-system-x86-12398 [003] .... 10747.677382: kvm_emulate_hypercall: vcpu id: 0",
              " qemu-system-x86-12398 [003] d... 10747.677384: kvm_entry: vcpu 0",
              "            bash-2211  [000] .... 10748.002119: tracing_mark_write: hypercall test start",
            ]
          : [
              " qemu-system-x86-12398   [003] ..... 10747.677382: kvm_emulate_hypercall: vcpu id: 0",
              " qemu-system-x86-12398   [003] d.... 10747.677384: kvm_entry: vcpu 0, rip 0xffffffffa40b7d3d",
              "            bash-2211    [000] ..... 10748.002119: tracing_mark_write: hypercall test start",
            ],
      )
    }
  })

  it("the era A hypercall round trip of ftrace.md §4.2", () => {
    const t = testTrace({ era: "A" })
    const { kvm, tracer, clock } = t
    tracer.setEventEnabled(tracer.eventIndex("kvm_entry"), true)
    tracer.setEventEnabled(tracer.eventIndex("kvm_exit"), true)
    tracer.setEventEnabled(tracer.eventIndex("kvm_hypercall"), true)
    const site = tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n")
    if (site instanceof Error) throw site
    const at = (us: string): void => clock.set(ns(`10747.${us}`))
    at("677371"); kvm.entry(3, 12398, IRQS_OFF_CONTEXT, 0, 0, 0)
    at("677380"); kvm.exit(3, 12398, TASK_CONTEXT, 0, 18, 0xa40b7d3a, 0xffffffff, 0, 0, 0, 0, 0, 0)
    at("677381"); kvm.hypercall(3, 12398, TASK_CONTEXT, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0)
    at("677382"); tracer.printkValues(3, 12398, TASK_CONTEXT, site, [0])
    at("677384"); kvm.entry(3, 12398, IRQS_OFF_CONTEXT, 0, 0, 0)
    const md = reference("ftrace.md")
    const start = md.indexOf("Era-A versions of the same round trip:")
    const block = md.slice(md.indexOf("```\n", start) + 4, md.indexOf("```", md.indexOf("```\n", start) + 4))
    const lines = readTrace(t).split("\n").filter((l) => !l.startsWith("#"))
    expect(lines.join("\n")).toBe(block)
  })

  it("every event line carries what Perfetto's text importer keys on", () => {
    const texts: Array<[string, number]> = []
    const a = testTrace({ era: "A" })
    homeworkSample01(a)
    texts.push([readTrace(a), 4])
    for (const name of ["01-nop-trace_printk-5.0-era.txt", "03-overrun-trace-5.0-era.txt", "04-overrun-trace_pipe-5.0-era.txt"]) {
      texts.push([sample(name), 4])
    }
    texts.push([sample("02-kvm-events-6.x.txt"), 5])
    let checked = 0
    for (const [text, flags] of texts) {
      for (const line of text.split("\n")) {
        if (line === "" || line.startsWith("#") || /^CPU:\d+ \[LOST/.test(line)) continue
        const m = perfettoLine(flags).exec(line)
        expect(m, line).not.toBeNull()
        // The `[cpu]` anchor, the `secs.usecs:` stamp and the event name up to the colon.
        expect(m![3]).toMatch(/^\d{3}$/)
        expect(m![4]).toMatch(/^\d+\.\d{6}$/)
        expect(line).toContain(` ${m![5]}:`)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(60)
  })
})
