// The tracefs files as a user drives them (echo / cat), with the kernel's numbers and errno.

import { Effect, Fiber, Stream } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { itEffect } from "../support/effect.ts"
import { TASK_CONTEXT } from "../../src/trace/context.ts"
import { O_NONBLOCK, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, type TraceFs } from "../../src/trace/tracefs.ts"
import type { PrintkSite } from "../../src/trace/tracer.ts"
import { testTrace, type TestTrace } from "./support.ts"

const EINVAL = -22
const EBADF = -9
const EAGAIN = -11
const EBUSY = -16

/** `cat path`. */
const cat = (fs: TraceFs, path: string): string => {
  const h = fs.open(path, O_RDONLY)
  if (typeof h === "number") throw new Error(`open ${path}: ${h}`)
  let text = ""
  for (;;) {
    const chunk = h.read(4096)
    if (typeof chunk === "number") throw new Error(`read ${path}: ${chunk}`)
    if (chunk === "") break
    text += chunk
  }
  h.close()
  return text
}

/** `echo -n text > path` (O_TRUNC, as the shell opens it): the write's result. */
const echo = (fs: TraceFs, path: string, text: string, flags = O_WRONLY | O_TRUNC, caller = { pid: 2211, cpu: 0 }): number => {
  const h = fs.open(path, flags, caller)
  if (typeof h === "number") return h
  const r = h.write(text)
  h.close()
  return r
}

const printkSite = (t: TestTrace): PrintkSite => {
  const site = t.tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n")
  if (site instanceof Error) throw site
  return site
}

const eventLines = (text: string): Array<string> => text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))

describe("tracefs: buffer sizes", () => {
  it("reads `7 (expanded: 1408)` after boot and 1410 once tracing is used (ftrace.md §2)", () => {
    const t = testTrace({ expanded: false })
    expect(cat(t.tracefs, "buffer_size_kb")).toBe("7 (expanded: 1408)\n")
    expect(cat(t.tracefs, "buffer_total_size_kb")).toBe("28 (expanded: 5632)\n")
    expect(cat(t.tracefs, "per_cpu/cpu2/buffer_size_kb")).toBe("7\n")
    expect(echo(t.tracefs, "events/kvm/kvm_exit/enable", "1\n")).toBe(2)
    expect(cat(t.tracefs, "buffer_size_kb")).toBe("1410\n")
    expect(cat(t.tracefs, "buffer_total_size_kb")).toBe("5640\n")
    expect(t.tracer.rings[0]!.pageCount).toBe(354)
  })

  it("registering code with trace_printk expands the buffers too", () => {
    const t = testTrace({ expanded: false })
    printkSite(t)
    expect(cat(t.tracefs, "buffer_size_kb")).toBe("1410\n")
  })

  it("rounds a written size up to whole 4080-byte pages, at least 2", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8192 }), fc.boolean(), (kb, newline) => {
        const t = testTrace({ cpus: 2, bufferBytes: 8160 })
        const text = `${kb}${newline ? "\n" : ""}`
        expect(echo(t.tracefs, "buffer_size_kb", text)).toBe(text.length)
        const pages = Math.max(2, Math.ceil((kb * 1024) / 4080))
        const shown = Math.floor((pages * 4080) / 1024)
        expect(cat(t.tracefs, "buffer_size_kb")).toBe(`${shown}\n`)
        expect(cat(t.tracefs, "buffer_total_size_kb")).toBe(`${shown * 2}\n`)
        expect(shown).toBeGreaterThanOrEqual(kb)
        expect(t.tracer.rings[1]!.pageCount).toBe(pages)
      }),
      { numRuns: 100 },
    )
  })

  it("a per-CPU size makes the top-level file read X", () => {
    const t = testTrace()
    expect(echo(t.tracefs, "per_cpu/cpu1/buffer_size_kb", "100")).toBe(3)
    // 102,400 bytes need 26 pages of 4080 bytes: 106,080 bytes, shown as 103 KiB.
    expect(cat(t.tracefs, "per_cpu/cpu1/buffer_size_kb")).toBe("103\n")
    expect(cat(t.tracefs, "buffer_size_kb")).toBe("X\n")
  })

  it("malformed sizes are EINVAL (ERANGE past 64 bits) and change nothing", () => {
    const t = testTrace()
    const bad = ["", "\n", "0", "0\n", "-1", "abc", " 5", "5 ", "1.5", "0x10", "5\n\n", "1e3", "+", "12abc", "۵"]
    for (const text of bad) {
      expect(echo(t.tracefs, "buffer_size_kb", text), JSON.stringify(text)).toBe(EINVAL)
      expect(cat(t.tracefs, "buffer_size_kb")).toBe("1410\n")
    }
    expect(echo(t.tracefs, "buffer_size_kb", "99999999999999999999")).toBe(-34)
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }).filter((s) => !/^\+?[0-9]+\n?$/.test(s.slice(0, 22))), (text) => {
        expect(echo(t.tracefs, "buffer_size_kb", text)).toBeLessThan(0)
        expect(cat(t.tracefs, "buffer_size_kb")).toBe("1410\n")
      }),
      { numRuns: 300 },
    )
  })
})

describe("tracefs: trace, trace_marker, tracing_on", () => {
  it("trace_marker cuts writes at 1 KiB, adds the newline, and needs tracing_on", () => {
    const t = testTrace()
    const long = "x".repeat(3000)
    expect(echo(t.tracefs, "trace_marker", long)).toBe(1024)
    expect(echo(t.tracefs, "trace_marker", "done\n")).toBe(5)
    const lines = eventLines(cat(t.tracefs, "trace"))
    expect(lines).toHaveLength(2)
    expect(lines[0]).toBe(`            bash-2211  [000] ....     0.000000: tracing_mark_write: ${"x".repeat(1024)}`)
    expect(lines[1]!.endsWith("tracing_mark_write: done")).toBe(true)
    expect(echo(t.tracefs, "tracing_on", "0")).toBe(1)
    expect(cat(t.tracefs, "tracing_on")).toBe("0\n")
    expect(echo(t.tracefs, "trace_marker", "lost")).toBe(EBADF)
    expect(t.tracer.rings[0]!.entries).toBe(2)
  })

  it("tracing_on 0 stores nothing and moves no counter", () => {
    const t = testTrace()
    const site = printkSite(t)
    echo(t.tracefs, "tracing_on", "0\n")
    expect(t.tracer.printkValues(1, 12398, TASK_CONTEXT, site, [1])).toBe(false)
    expect(t.tracer.rings[1]!.entries + t.tracer.rings[1]!.dropped).toBe(0)
    expect(echo(t.tracefs, "tracing_on", "yes")).toBe(EINVAL)
    expect(cat(t.tracefs, "tracing_on")).toBe("0\n")
    echo(t.tracefs, "tracing_on", "1")
    expect(t.tracer.printkValues(1, 12398, TASK_CONTEXT, site, [1])).toBe(true)
  })

  it("opening trace with O_TRUNC clears every buffer and zeroes the counters; per_cpu clears one CPU", () => {
    const t = testTrace()
    const site = printkSite(t)
    for (let i = 0; i < 5; i++) {
      t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [i])
      t.tracer.printkValues(2, 12399, TASK_CONTEXT, site, [i])
    }
    expect(echo(t.tracefs, "trace", "", O_WRONLY | O_APPEND_FLAG)).toBe(0)
    expect(t.tracer.totals()).toEqual({ inBuffer: 10, written: 10 })
    expect(echo(t.tracefs, "per_cpu/cpu2/trace", "")).toBe(0)
    expect(t.tracer.totals()).toEqual({ inBuffer: 5, written: 5 })
    expect(cat(t.tracefs, "per_cpu/cpu2/stats").split("\n")[0]).toBe("entries: 0")
    echo(t.tracefs, "trace", "\n")
    expect(cat(t.tracefs, "trace")).toContain("# entries-in-buffer/entries-written: 0/0   #P:4\n")
  })

  it("reading trace consumes nothing; in the 5.0 era an open trace pauses recording", () => {
    const t = testTrace({ era: "A" })
    const site = printkSite(t)
    t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [0])
    const h = t.tracefs.open("trace", O_RDONLY)
    if (typeof h === "number") throw new Error("open")
    expect(t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [1])).toBe(false)
    h.close()
    expect(t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [2])).toBe(true)
    expect(cat(t.tracefs, "trace")).toBe(cat(t.tracefs, "trace"))
    expect(eventLines(cat(t.tracefs, "trace")).map((l) => l.slice(-1))).toEqual(["0", "2"])
    // 6.x keeps recording while trace is open.
    const d = testTrace({ era: "D" })
    const siteD = printkSite(d)
    const hd = d.tracefs.open("trace", O_RDWR)
    if (typeof hd === "number") throw new Error("open")
    expect(d.tracer.printkValues(0, 12398, TASK_CONTEXT, siteD, [1])).toBe(true)
    hd.close()
  })

  it("per_cpu stats has the kernel's eight lines", () => {
    const t = testTrace()
    const site = printkSite(t)
    t.clock.set(10747_677_382_400)
    t.tracer.printkValues(3, 12398, TASK_CONTEXT, site, [0])
    t.clock.set(10751_204_117_600)
    expect(cat(t.tracefs, "per_cpu/cpu3/stats")).toBe(
      "entries: 1\noverrun: 0\ncommit overrun: 0\nbytes: 32\noldest event ts: 10747.677382\nnow ts: 10751.204118\ndropped events: 0\nread events: 0\n",
    )
  })

  it("with overwrite off a full buffer refuses events and counts them as dropped", () => {
    const t = testTrace()
    const site = printkSite(t)
    echo(t.tracefs, "per_cpu/cpu0/buffer_size_kb", "1")
    expect(echo(t.tracefs, "options/overwrite", "0")).toBe(1)
    expect(echo(t.tracefs, "options/overwrite", "2")).toBe(EINVAL)
    expect(cat(t.tracefs, "options/overwrite")).toBe("0\n")
    let stored = 0
    for (let i = 0; i < 300; i++) if (t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [i])) stored++
    expect(stored).toBe(2 * 127)
    const stats = cat(t.tracefs, "per_cpu/cpu0/stats")
    expect(stats).toContain("entries: 254\noverrun: 0\n")
    expect(stats).toContain("dropped events: 46\n")
    // The header counts neither dropped events nor anything else but what is readable.
    expect(cat(t.tracefs, "trace")).toContain("entries-in-buffer/entries-written: 254/254 ")
  })
})

const O_APPEND_FLAG = 0o2000

describe("tracefs: clocks, tracers, events", () => {
  it("trace_clock lists the era's clocks, switches and clears; unknown is EINVAL", () => {
    const a = testTrace({ era: "A" })
    expect(cat(a.tracefs, "trace_clock")).toBe("[local] global counter uptime perf mono mono_raw boot x86-tsc\n")
    const t = testTrace({ era: "D" })
    expect(cat(t.tracefs, "trace_clock")).toBe("[local] global counter uptime perf mono mono_raw boot tai x86-tsc\n")
    const site = printkSite(t)
    t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [0])
    expect(echo(t.tracefs, "trace_clock", "bogus")).toBe(EINVAL)
    expect(t.tracer.totals().written).toBe(1)
    expect(echo(t.tracefs, "trace_clock", "counter\n")).toBe(8)
    expect(cat(t.tracefs, "trace_clock")).toBe("local global [counter] uptime perf mono mono_raw boot tai x86-tsc\n")
    expect(t.tracer.totals().written).toBe(0)
    t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [0])
    t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [0])
    // Raw clocks print as %12llu.
    expect(eventLines(cat(t.tracefs, "trace"))[1]).toBe(" qemu-system-x86-12398   [000] .....            2: kvm_emulate_hypercall: vcpu id: 0")
  })

  it("current_tracer accepts only nop", () => {
    const t = testTrace()
    expect(cat(t.tracefs, "current_tracer")).toBe("nop\n")
    expect(echo(t.tracefs, "current_tracer", "nop\n")).toBe(4)
    expect(echo(t.tracefs, "current_tracer", "function\n")).toBe(EINVAL)
  })

  it("set_event and the enable files agree; an unknown event is EINVAL and changes nothing", () => {
    const t = testTrace()
    expect(echo(t.tracefs, "set_event", "kvm:kvm_exit kvm_entry")).toBe(22)
    expect(cat(t.tracefs, "set_event")).toBe("kvm:kvm_entry\nkvm:kvm_exit\n")
    expect(cat(t.tracefs, "events/kvm/kvm_exit/enable")).toBe("1\n")
    expect(cat(t.tracefs, "events/kvm/enable")).toBe("X\n")
    expect(echo(t.tracefs, "set_event", "kvm:kvm_pio kvm:no_such_event", O_WRONLY | O_APPEND_FLAG)).toBe(EINVAL)
    expect(cat(t.tracefs, "set_event")).toBe("kvm:kvm_entry\nkvm:kvm_exit\n")
    expect(echo(t.tracefs, "set_event", "!kvm:kvm_exit", O_WRONLY | O_APPEND_FLAG)).toBe(13)
    expect(cat(t.tracefs, "set_event")).toBe("kvm:kvm_entry\n")
    expect(echo(t.tracefs, "events/kvm/enable", "1")).toBe(1)
    expect(cat(t.tracefs, "events/enable")).toBe("1\n")
    expect(echo(t.tracefs, "events/kvm/kvm_pio/enable", "2")).toBe(EINVAL)
    expect(echo(t.tracefs, "set_event", "")).toBe(0) // `> set_event` alone disables everything
    expect(cat(t.tracefs, "events/enable")).toBe("0\n")
  })

  it("event ids match the record type and the format file", () => {
    const t = testTrace({ era: "D" })
    for (const event of t.tracer.events) {
      const id = Number(cat(t.tracefs, `events/kvm/${event.name}/id`))
      expect(id).toBe(event.id)
      expect(cat(t.tracefs, `events/kvm/${event.name}/format`)).toContain(`\nID: ${id}\n`)
    }
    echo(t.tracefs, "events/kvm/kvm_pio/enable", "1")
    t.kvm.pio(1, 12398, TASK_CONTEXT, false, 0x60, 1, 1, 0)
    expect(t.tracer.rings[1]!.words[5]! & 0xffff).toBe(Number(cat(t.tracefs, "events/kvm/kvm_pio/id")))
  })

  it("lists the tree the way ls would", () => {
    const t = testTrace({ cpus: 2 })
    const root = t.tracefs.readdir("/")
    expect(root).toEqual(expect.arrayContaining(["trace", "trace_pipe", "tracing_on", "trace_marker", "buffer_size_kb", "buffer_total_size_kb", "trace_clock", "current_tracer", "set_event", "options", "per_cpu", "events"]))
    expect(t.tracefs.readdir("per_cpu")).toEqual(["cpu0", "cpu1"])
    expect(t.tracefs.readdir("per_cpu/cpu1")).toEqual(["trace", "trace_pipe", "stats", "buffer_size_kb"])
    expect(t.tracefs.readdir("events/kvm/kvm_exit")).toEqual(["enable", "format", "id"])
    expect(t.tracefs.open("nope", O_RDONLY)).toBe(-2)
    expect(t.tracefs.open("events", O_RDONLY)).toBe(-21)
    expect(t.tracefs.stat("trace_marker")?.mode).toBe(0o220)
    expect(t.tracefs.stat("per_cpu/cpu0/stats")?.mode).toBe(0o444)
    expect(testTrace({ era: "D" }).tracefs.stat("trace")?.mode).toBe(0o640)
  })
})

describe("tracefs: trace_pipe", () => {
  it("consumes what it prints; O_NONBLOCK on empty is EAGAIN; EOF once tracing is off", () => {
    const t = testTrace()
    const site = printkSite(t)
    const h = t.tracefs.open("trace_pipe", O_RDONLY | O_NONBLOCK)
    if (typeof h === "number") throw new Error("open")
    expect(h.read(4096)).toBe(EAGAIN)
    t.tracer.printkValues(2, 12398, TASK_CONTEXT, site, [7])
    expect(h.read(4096)).toBe(" qemu-system-x86-12398 [002] ....     0.000000: kvm_emulate_hypercall: vcpu id: 7\n")
    expect(t.tracer.rings[2]!.read).toBe(1)
    expect(t.tracer.totals()).toEqual({ inBuffer: 0, written: 0 })
    expect(h.read(4096)).toBe(EAGAIN)
    echo(t.tracefs, "tracing_on", "0")
    expect(h.read(4096)).toBe("")
    h.close()
  })

  it("hands out whole lines, at most 4095 bytes per read", () => {
    const t = testTrace()
    const site = printkSite(t)
    for (let i = 0; i < 200; i++) t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [i])
    const h = t.tracefs.open("trace_pipe", O_RDONLY | O_NONBLOCK)
    if (typeof h === "number") throw new Error("open")
    const first = h.read(1 << 20)
    expect(typeof first).toBe("string")
    expect((first as string).length).toBeLessThanOrEqual(4095)
    expect((first as string).endsWith("\n")).toBe(true)
    expect(t.tracer.rings[0]!.read).toBe((first as string).split("\n").length - 1)
  })

  it("6.x allows one reader per CPU (EBUSY)", () => {
    const t = testTrace({ era: "D" })
    const first = t.tracefs.open("trace_pipe", O_RDONLY)
    expect(typeof first).not.toBe("number")
    expect(t.tracefs.open("per_cpu/cpu1/trace_pipe", O_RDONLY)).toBe(EBUSY)
    if (typeof first !== "number") first.close()
    expect(typeof t.tracefs.open("per_cpu/cpu1/trace_pipe", O_RDONLY)).not.toBe("number")
  })

  itEffect("blocks until data arrives, as a Stream", () =>
    Effect.gen(function* () {
      const t = testTrace()
      const site = printkSite(t)
      const fiber = yield* Effect.forkChild(Stream.runCollect(Stream.take(t.tracefs.tracePipe(), 1)))
      yield* Effect.yieldNow
      yield* Effect.sleep(5)
      t.tracer.printkValues(1, 12399, TASK_CONTEXT, site, [1])
      const chunks = yield* Fiber.join(fiber)
      expect(Array.from(chunks)).toEqual([" qemu-system-x86-12399 [001] ....     0.000000: kvm_emulate_hypercall: vcpu id: 1\n"])
    }),
  )
})

describe("tracefs: trace while the writer laps the reader (6.x)", () => {
  it("prints CPU:N [LOST EVENTS] and carries on from the oldest data", () => {
    const t = testTrace({ era: "D", cpus: 1 })
    const site = printkSite(t)
    echo(t.tracefs, "buffer_size_kb", "8") // 3 pages
    for (let i = 0; i < 300; i++) {
      t.clock.advance(1000)
      t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [i])
    }
    const h = t.tracefs.open("trace", O_RDONLY)
    if (typeof h === "number") throw new Error("open")
    const first = h.read(2000) as string
    expect(first).toContain("vcpu id: ")
    // The writer now wraps the whole buffer under the open reader.
    for (let i = 300; i < 1000; i++) {
      t.clock.advance(1000)
      t.tracer.printkValues(0, 12398, TASK_CONTEXT, site, [i])
    }
    let rest = ""
    for (let chunk = h.read(4096); chunk !== ""; chunk = h.read(4096)) rest += chunk as string
    h.close()
    expect(rest).toContain("CPU:0 [LOST EVENTS]\n")
    const after = rest.slice(rest.indexOf("[LOST EVENTS]"))
    const ids = [...after.matchAll(/vcpu id: (\d+)/g)].map((m) => Number(m[1]))
    expect(ids.at(-1)).toBe(999)
    expect(ids).toEqual([...ids].sort((x, y) => x - y))
  })
})
