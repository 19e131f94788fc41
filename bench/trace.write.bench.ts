// trace.write: events per second stored into a per-CPU ring buffer by trace_printk (the
// homework's 32-byte "vcpu id: %d" record), against a calibration that writes the same eight
// words into a plain Uint32Array ring. ratio = simulator rate / plain rate: 1 means as fast as
// a bare array store loop; the goal is ≥ 0.05 (at most 20× the calibration's cost per event)
// and ≥ 40 M events/s.

import { BenchCheckFailed, bestRate, result, verify, type Benchmark } from "./harness.ts"
import { StaticTaskNames, TASK_CONTEXT } from "../src/trace/context.ts"
import { Tracer, type PrintkSite } from "../src/trace/tracer.ts"

const EVENTS = 1_000_000
const NAME = "trace.write"

/** A clock that moves 100 ns per reading, like a busy vCPU between two trace_printk calls. */
class SteppingClock {
  ns = 1e9
  nowNs(): number {
    return (this.ns += 100)
  }
}

const benchmark: Benchmark = {
  name: NAME,
  description:
    "trace_printk records (32 bytes) per second into one CPU's ring buffer (default 354 pages, overwrite on); " +
    "calibration: the same 8 words stored into a plain Uint32Array ring; ratio = simulator/plain (goal ≥ 0.05, i.e. ≤ 20× the cost per event)",
  run: () => {
    const tracer = new Tracer({ cpuCount: 1, clock: new SteppingClock(), tasks: new StaticTaskNames(), expanded: true })
    const site = tracer.registerPrintk("kvm_emulate_hypercall", "vcpu id: %d\n") as PrintkSite
    let seq = 0
    const simulated = (): void => {
      for (let i = 0; i < EVENTS; i++) {
        tracer.argLo[0] = seq++
        tracer.printk(0, 12398, TASK_CONTEXT, site)
      }
    }
    const rate = bestRate(simulated, EVENTS)
    const ring = tracer.rings[0]!
    verify(NAME, "events stored", seq, ring.entries)
    verify(NAME, "written = in-buffer + overrun", seq, ring.readable + ring.overrun)
    // The newest record holds the last sequence number.
    const tail = ring.tail
    const lastWord = tail * 1024 + 4 + (ring.usedOnPage(tail) >> 2) - 1
    verify(NAME, "last payload", seq - 1, ring.words[lastWord])

    const plain = new Uint32Array(354 * 1024)
    let at = 0
    let plainSeq = 0
    let stamp = 1e9
    const calibration = (): void => {
      for (let i = 0; i < EVENTS; i++) {
        if (at + 8 > plain.length) at = 0
        stamp += 100
        plain[at] = 7 | ((stamp & 0x7ffffff) << 5)
        plain[at + 1] = 6
        plain[at + 2] = 12398
        plain[at + 3] = 0xc0000000
        plain[at + 4] = 0xffffffff
        plain[at + 5] = 0xc0000000
        plain[at + 6] = 0xffffffff
        plain[at + 7] = plainSeq++
        at += 8
      }
    }
    const plainRate = bestRate(calibration, EVENTS)
    if (plain[at - 1] !== plainSeq - 1) throw new BenchCheckFailed(NAME, "calibration payload", plainSeq - 1, plain[at - 1])
    return result(NAME, "events/s", rate, { name: "plain typed-array ring", unit: "events/s", value: plainRate })
  },
}

export default benchmark
