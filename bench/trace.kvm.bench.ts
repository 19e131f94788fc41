// trace.kvm: the four trace records of one traced VMCALL round trip — kvm_entry, kvm_exit,
// kvm_hypercall and VCPU_INFO's trace_printk line ("unknown cpu id: %lu") — written through
// KVM's FtraceSink as the run loop and the hypercall handler call it (the run loop through its
// CPU's sink, `forCpu`), in ns per set of four.
// Era A (linux-5.0), per-CPU local clocks, default 1410 KiB buffers (so pages wrap and are reused).
//   trace.kvm          printf with an argument array (the handler's rest parameter, allocated per call)
//   trace.kvm.staged   printfWords with the argument staged as 32-bit halves (VCPU_INFO's printfStaged: nothing allocated)
// Calibration: the same 39 words (4 + 13 + 13 + 9) stored by plain JavaScript into a Uint32Array
// ring of the same size; ratio = sink / plain.

import { bestRate, result, verify, type Benchmark, type BenchResult } from "./harness.ts"
import { FtraceSink } from "../src/hypervisor/kvm/ftrace-sink.ts"
import type { KvmTraceSink } from "../src/hypervisor/kvm/trace-sink.ts"
import { StaticTaskNames } from "../src/trace/context.ts"
import { TraceSnapshotReader } from "../src/trace/readers.ts"
import { makeTrace } from "../src/trace/service.ts"

const SETS = 250_000
const CPU = 1
const PID = 12398
const FN = "kvm_emulate_hypercall"
const FORMAT = "unknown cpu id: %lu\n"

/** The host's per-CPU virtual clocks. */
class HostClock {
  readonly cpuNs = new Float64Array(4).fill(10_000_000_000)
  nowNs(): number {
    return this.cpuNs[0]!
  }
  nowOn(cpu: number): number {
    return this.cpuNs[cpu]!
  }
}

/** ns per set of the plain typed-array writes of the same words. */
const plainSetNs = (): number => {
  const ring = new Uint32Array(354 * 1024)
  let at = 0
  let stamp = 10_000_000_000
  let id = 0
  const run = (): void => {
    for (let i = 0; i < SETS; i++) {
      if (at + 39 > ring.length) at = 0
      stamp += 250
      ring[at] = 3 | ((stamp & 0x7ffffff) << 5)
      ring[at + 1] = 1616 | (1 << 16)
      ring[at + 2] = PID
      ring[at + 3] = 0
      stamp += 700
      ring[at + 4] = 12 | ((stamp & 0x7ffffff) << 5)
      ring[at + 5] = 1625
      ring[at + 6] = PID
      ring[at + 7] = 18
      ring[at + 8] = 0
      ring[at + 9] = 0x100010
      ring[at + 10] = 0
      ring[at + 11] = 1
      ring[at + 12] = 0
      ring[at + 13] = 0
      ring[at + 14] = 0
      ring[at + 15] = 0
      ring[at + 16] = 0
      ring[at + 17] = 12 | ((stamp & 0x7ffffff) << 5)
      ring[at + 18] = 1617
      ring[at + 19] = PID
      ring[at + 20] = 11
      ring[at + 21] = 0
      ring[at + 22] = id
      ring[at + 23] = 0
      ring[at + 24] = id
      ring[at + 25] = 0
      ring[at + 26] = 0xe9
      ring[at + 27] = 0
      ring[at + 28] = 0
      ring[at + 29] = 0
      ring[at + 30] = 8 | ((stamp & 0x7ffffff) << 5)
      ring[at + 31] = 6
      ring[at + 32] = PID
      ring[at + 33] = 0xc0000000
      ring[at + 34] = 0xffffffff
      ring[at + 35] = 0xc0000000
      ring[at + 36] = 0xffffffff
      ring[at + 37] = id
      ring[at + 38] = 0
      at += 39
      id++
    }
  }
  const rate = bestRate(run, SETS)
  if (ring[at - 2] !== id - 1) throw new Error("trace.kvm: calibration ring damaged")
  return 1e9 / rate
}

const measure = (name: string, staged: boolean): BenchResult => {
  const clock = new HostClock()
  const trace = makeTrace({ cpuCount: 4, clock, tasks: new StaticTaskNames([[PID, "qemu-system-x86"]]), era: "A" })
  for (const event of ["kvm_entry", "kvm_exit", "kvm_hypercall"]) trace.tracer.setEventEnabled(trace.tracer.eventIndex(event), true)
  const sink: KvmTraceSink = new FtraceSink(trace)
  // The handler's printf(format, ...args): the rest parameter is a new array per call.
  const handlerPrintf = (format: string, ...args: ReadonlyArray<number | bigint | string>): void => sink.printf(CPU, PID, FN, format, args)
  const cpuSink = sink.forCpu(CPU)
  const stagedLo = new Uint32Array(32)
  const stagedHi = new Uint32Array(32)
  let id = 0
  const run = (): void => {
    const cpuNs = clock.cpuNs
    const on = sink.on
    for (let i = 0; i < SETS; i++) {
      cpuNs[CPU]! += 250
      if (on[0] === 1) cpuSink.entry(PID, 0, 0x100010, 0)
      cpuNs[CPU]! += 700
      if (on[1] === 1) cpuSink.exit(PID, 0, 18, 0x100010, 0, 0, 0, 0, 0, 0, 0)
      if (on[2] === 1) cpuSink.hypercall(PID, 11, 0, id, 0, id, 0, 0xe9, 0, 0, 0)
      if (staged) {
        stagedLo[0] = id
        stagedHi[0] = 0
        sink.printfWords(CPU, PID, FN, FORMAT, stagedLo, stagedHi, 1)
      } else handlerPrintf(FORMAT, id)
      id++
    }
  }
  const rate = bestRate(run, SETS)
  const ring = trace.tracer.rings[CPU]!
  verify(name, "records written", 4 * id, ring.entries)
  verify(name, "written = in-buffer + overrun", 4 * id, ring.readable + ring.overrun)
  const reader = new TraceSnapshotReader(trace.tracer)
  const text = reader.readAll()
  reader.close()
  const tail = text.slice(text.lastIndexOf("\n", text.length - 2) + 1)
  verify(name, "last line", true, tail.endsWith(`: ${FN}: unknown cpu id: ${id - 1}\n`))
  return result(name, "ns/set", 1e9 / rate, { name: "plain typed-array writes of the same 39 words", unit: "ns/set", value: plainSetNs() })
}

const benchmarks: ReadonlyArray<Benchmark> = [
  {
    name: "trace.kvm",
    description: "kvm_entry + kvm_exit + kvm_hypercall + trace_printk (argument array) through FtraceSink, ns per set of four; calibration: plain stores of the same words",
    run: () => measure("trace.kvm", false),
  },
  {
    name: "trace.kvm.staged",
    description: "the same set with trace_printk through printfWords (staged halves, no argument array, as VCPU_INFO does), ns per set; calibration: plain stores of the same words",
    run: () => measure("trace.kvm.staged", true),
  },
]
export default benchmarks
