// trace.read: formatted lines per second read from `trace` (4 CPUs merged by time stamp,
// trace_printk and kvm_entry records, 5.0-era layout), against a calibration that builds the
// same lines with plain string operations from plain arrays (no ring decoding, no merging).
// ratio = simulator rate / plain rate. Goal: ≥ 3 M lines/s. Both outputs must be identical.

import { BenchCheckFailed, bestRate, result, verify, type Benchmark } from "./harness.ts"
import { IRQS_OFF_CONTEXT, ManualClock, StaticTaskNames, TASK_CONTEXT } from "../src/trace/context.ts"
import { KvmTracepoints } from "../src/trace/kvm-tracepoints.ts"
import { TraceSnapshotReader } from "../src/trace/readers.ts"
import { Tracer, type PrintkSite } from "../src/trace/tracer.ts"

const NAME = "trace.read"
const EVENTS = 200_000
const CPUS = 4
const BASE_NS = 10747_677_382_000

const build = (): Tracer => {
  const clock = new ManualClock(0)
  const tasks = new StaticTaskNames(Array.from({ length: CPUS }, (_, c) => [12398 + c, "qemu-system-x86"] as const))
  const tracer = new Tracer({ cpuCount: CPUS, clock, tasks, expanded: true })
  const kvm = new KvmTracepoints(tracer)
  tracer.setEventEnabled(tracer.eventIndex("kvm_entry"), true)
  const site = tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n") as PrintkSite
  for (let i = 0; i < EVENTS; i++) {
    const cpu = i % CPUS
    clock.set(BASE_NS + i * 1_000)
    if ((i & 4) === 0) {
      tracer.argLo[0] = cpu
      tracer.printk(cpu, 12398 + cpu, TASK_CONTEXT, site)
    } else {
      kvm.entry(cpu, 12398 + cpu, IRQS_OFF_CONTEXT, cpu, 0, 0)
    }
  }
  return tracer
}

/** The same lines built directly: what formatting alone costs in plain JavaScript. */
const plainLines = (): string => {
  const columns = Array.from({ length: CPUS }, (_, c) => ` qemu-system-x86-${12398 + c} [00${c}] `)
  let text = ""
  for (let i = 0; i < EVENTS; i++) {
    const cpu = i % CPUS
    const us = Math.floor((BASE_NS + i * 1_000 + 500) / 1000)
    const secs = Math.floor(us / 1e6)
    const frac = String(us - secs * 1e6).padStart(6, "0")
    const stamp = String(secs).padStart(5, " ") + "." + frac
    text +=
      (i & 4) === 0
        ? columns[cpu] + ".... " + stamp + ": kvm_emulate_hypercall: vcpu id: " + cpu + "\n"
        : columns[cpu] + "d... " + stamp + ": kvm_entry: vcpu " + cpu + "\n"
  }
  return text
}

const readTrace = (tracer: Tracer): string => {
  const reader = new TraceSnapshotReader(tracer)
  const text = reader.readAll()
  reader.close()
  return text
}

const benchmark: Benchmark = {
  name: NAME,
  description:
    "lines/s read from `trace` (200,000 events on 4 CPUs, trace_printk + kvm_entry, 5.0 era, merged by time); " +
    "calibration: the identical lines built with plain string operations from arrays; ratio = simulator/plain",
  run: () => {
    const tracer = build()
    verify(NAME, "events in buffer", EVENTS, tracer.totals().inBuffer)
    const text = readTrace(tracer)
    const expectedLength = checkAgainstPlain(text)
    let last = ""
    const rate = bestRate(() => {
      last = readTrace(tracer)
    }, EVENTS)
    // Every timed read produced the verified text (the last one is compared in full).
    if (last !== text) throw new BenchCheckFailed(NAME, "timed read", "the verified text", "different text")
    let plainLength = 0
    const plainRate = bestRate(() => {
      plainLength = plainLines().length
    }, EVENTS)
    verify(NAME, "calibration length", expectedLength, plainLength)
    return result(NAME, "lines/s", rate, { name: "plain string formatting", unit: "lines/s", value: plainRate })
  },
}

/**
 * Throws unless the event lines of `text` are exactly the calibration's lines; returns their
 * length. (A function of its own so that the big temporary strings are garbage before timing.)
 */
const checkAgainstPlain = (text: string): number => {
  const expected = plainLines()
  const body = text.split("\n").filter((l) => !l.startsWith("#")).join("\n")
  if (body !== expected) throw new BenchCheckFailed(NAME, "trace text", "the calibration's lines", "different text")
  return expected.length
}

export default benchmark
