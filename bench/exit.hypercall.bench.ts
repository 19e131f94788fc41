// exit.hypercall: ../shared/bench/hypercall.asm (VMCALL with RAX = 11, the VCPU_INFO number of
// linux-5.0) through the whole KVM module — VM exit, the exit-handler table, kvm_emulate_hypercall,
// the VCPU_INFO handler (an unknown id: one trace_printk line, -KVM_EINVAL), RIP advance, VM
// entry — in nanoseconds per round trip. Two figures:
//   exit.hypercall         tracing off; calibration: one guest instruction of ../shared/bench/loop.asm
//                          as guest.loop runs it (no VM) but ON THE INTERPRETER (compiled blocks off:
//                          the yardstick predates compiled blocks, which run loop.asm at
//                          ~1 ns/instruction), same process (goal: ratio <= 30)
//   exit.hypercall.vs-blocks  the same round trip against the blocks-on instruction, for comparison
//   exit.hypercall.traced  kvm_entry, kvm_exit, kvm_hypercall enabled and the trace_printk recorded;
//                          calibration: the untraced round trip (goal: ratio <= 1.3)
// Only the run phase is timed (the VM starts paused, as with QEMU -S); best of ten runs of 20,000
// round trips (~10-20 ms each: short runs are less likely to be preempted on a shared machine),
// the traced and untraced runs alternating so that both see the same machine load.
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import type { Benchmark, BenchResult, Figure } from "./harness.ts"
import { result, verify } from "./harness.ts"
import { guestInstructionNs, interpreterInstruction } from "./exit.vmcall.bench.ts"
import { assemble } from "../src/guest/asm/index.ts"
import { Reg } from "../src/guest/cpu/state.ts"
import { Machine } from "../src/hypervisor/vmm/machine.ts"
import { bootHost } from "../src/hypervisor/vmm/system.ts"

const shared = (name: string): string => readFileSync(new URL(`../../shared/bench/${name}`, import.meta.url), "utf8")
const hypercallImage = assemble(shared("hypercall.asm")).bytes

/**
 * Wall-clock ms of the run phase of one bare machine with RDI = count: the VM starts paused (QEMU
 * -S), its vCPU thread creates and sets up the vCPU, and only "cont" to the final HLT is timed.
 */
const timedRun = (image: Uint8Array, count: number, traced: boolean, check: (rax: bigint, hypercalls: number) => void): Promise<number> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootHost({ events: traced ? ["kvm_entry", "kvm_exit", "kvm_hypercall"] : [] })
        sim.trace.tracer.tracingOn = traced
        const created = Machine.create(sim.kvm, sim.host, { image, memoryBytes: 2 << 20, registers: { rdi: BigInt(count) }, startPaused: true })
        if (!created.ok) throw new Error(created.error.message)
        const m = created.value
        yield* m.start()
        yield* sim.host.scheduler.run()
        const start = performance.now()
        m.resume()
        yield* sim.host.scheduler.run()
        const elapsed = performance.now() - start
        m.close()
        verify("exit.hypercall", "machine end", "halted", m.end.kind)
        check(m.vcpus[0]!.regs.getReg(Reg.RAX), m.vcpus[0]!.stats.get("hypercalls"))
        return elapsed
      }),
    ),
  )

const ROUND_TRIPS = 20_000
const ROUNDS = 10

/** ns per round trip of one run of hypercall.asm, its hypercall count checked. */
const oneRun = async (traced: boolean): Promise<number> =>
  ((await timedRun(hypercallImage, ROUND_TRIPS, traced, (_rax, hypercalls) => verify("exit.hypercall", "hypercalls counted", ROUND_TRIPS, hypercalls))) * 1e6) /
  ROUND_TRIPS

/**
 * Best (lowest) ns per round trip with tracing off and on, measured in alternating runs so that
 * both see the same machine load (on a shared machine, load drifts between separate series).
 */
const measurePair = async (): Promise<{ readonly untraced: number; readonly traced: number }> => {
  await oneRun(false)
  await oneRun(true)
  let untraced = Infinity
  let traced = Infinity
  for (let i = 0; i < ROUNDS; i++) {
    untraced = Math.min(untraced, await oneRun(false))
    traced = Math.min(traced, await oneRun(true))
  }
  return { untraced, traced }
}

let pair: Promise<{ readonly untraced: number; readonly traced: number }> | undefined
const roundTrips = (): Promise<{ readonly untraced: number; readonly traced: number }> => (pair ??= measurePair())
const untracedRoundTrip = async (): Promise<number> => (await roundTrips()).untraced

const benchmarks: ReadonlyArray<Benchmark> = [
  {
    name: "exit.hypercall",
    description: "VMCALL round trip through KVM (tracing off), ns; calibration: one loop.asm instruction on the interpreter (compiled blocks off) (goal: ratio <= 30)",
    run: async (): Promise<BenchResult> => {
      const calibration = interpreterInstruction()
      return result("exit.hypercall", "ns", await untracedRoundTrip(), calibration)
    },
  },
  {
    name: "exit.hypercall.vs-blocks",
    description: "the exit.hypercall round trip against one loop.asm instruction with compiled blocks on (guest.loop's mode), for comparison",
    run: async (): Promise<BenchResult> => {
      const calibration = guestInstructionNs(true)
      return result("exit.hypercall.vs-blocks", "ns", await untracedRoundTrip(), calibration)
    },
  },
  {
    name: "exit.hypercall.traced",
    description: "VMCALL round trip with kvm_entry/kvm_exit/kvm_hypercall and the VCPU_INFO trace_printk recorded, ns; calibration: untraced round trip (goal: ratio <= 1.3)",
    run: async (): Promise<BenchResult> => {
      const calibration: Figure = { name: "untraced round trip", unit: "ns", value: await untracedRoundTrip() }
      return result("exit.hypercall.traced", "ns", (await roundTrips()).traced, calibration)
    },
  },
]
export default benchmarks
