// exit.hypercall: ../shared/bench/hypercall.asm (VMCALL with RAX = 11, the VCPU_INFO number of
// linux-5.0) through the whole KVM module — VM exit, the exit-handler table, kvm_emulate_hypercall,
// the VCPU_INFO handler (an unknown id: one trace_printk line, -KVM_EINVAL), RIP advance, VM
// entry — in nanoseconds per round trip. Two figures:
//   exit.hypercall         tracing off; calibration: one guest instruction of ../shared/bench/loop.asm
//                          as guest.loop runs it (no VM) but ON THE INTERPRETER (compiled blocks off:
//                          the yardstick predates compiled blocks, which run loop.asm at
//                          ~1 ns/instruction), timed between the round-trip runs (goal: ratio <= 30)
//   exit.hypercall.vs-blocks  the same round trip against the blocks-on instruction, for comparison
//   exit.hypercall.traced  tracing on as a booted kernel has it (tracing_on = 1, no event enabled): the
//                          VCPU_INFO handler's trace_printk line is recorded — the issue's "VCPU_INFO-style
//                          tracepoints on"; calibration: the untraced round trip of the same round, both in CPU time,
//                          (goal: ratio <= 1.3)
//   exit.hypercall.traced.kvm-events  the same with the kvm_entry, kvm_exit and kvm_hypercall events
//                          enabled too (four records per round trip), against the same calibration
//   exit.hypercall.userspace  the same loop with OUT dx, al to port 0xE9 instead of VMCALL
//                          (hypercall.asm -DEXIT_OUT): every exit goes to the VMM in user space
//                          (KVM_RUN returns KVM_EXIT_IO, the debug console takes the byte, KVM_RUN
//                          again), ns per round trip; calibration: interpreter instruction
//   exit.hypercall.kvm     KVM's own code per round trip: the round trip through KVM minus the
//                          same guest on the same VMCS (KVM's configuration) driven by a bare
//                          VMRESUME loop from an exit observer; both in CPU time (see
//                          measureKvmOwnCode); calibration: interpreter instruction
// Only the run phase is timed (the VM starts paused, as with QEMU -S); best of ten runs of 20,000
// round trips (~10-20 ms each: short runs are less likely to be preempted on a shared machine),
// the untraced and traced runs alternating so that all see the same machine load.
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import type { Benchmark, BenchResult, Figure } from "./harness.ts"
import { bestRate, result, verify } from "./harness.ts"
import { instructionFigure, interpreterInstruction, loopInstructionWork } from "./exit.vmcall.bench.ts"
import { ExitReason } from "../src/arch/exit-reasons.ts"
import { VmcsField as F } from "../src/arch/vmx/vmcs-fields.ts"
import { assemble } from "../src/guest/asm/index.ts"
import { Reg } from "../src/guest/cpu/state.ts"
import { Machine } from "../src/hypervisor/vmm/machine.ts"
import { bootHost } from "../src/hypervisor/vmm/system.ts"
import { VmxStatus } from "../src/hypervisor/vmx/outcome.ts"

const shared = (name: string): string => readFileSync(new URL(`../../shared/bench/${name}`, import.meta.url), "utf8")
const hypercallImage = assemble(shared("hypercall.asm")).bytes
const outImage = assemble(`%define EXIT_OUT\n${shared("hypercall.asm")}`).bytes

/** Wall-clock milliseconds. */
const wallMs = (): number => performance.now()
/** CPU time of this process in milliseconds (user + system): not advanced while other tenants run. */
const cpuMs = (): number => {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1000
}

/**
 * What a run records: nothing (tracing_on = 0); the VCPU_INFO trace_printk line (tracing_on = 1
 * with no event enabled, as after boot); or that plus the kvm_entry, kvm_exit and kvm_hypercall
 * events.
 */
type Tracing = "off" | "printk" | "kvm-events"

/**
 * Milliseconds (by `now`: wall clock unless asked) of the run phase of one bare machine with
 * RDI = count: the VM starts paused (QEMU -S), its vCPU thread creates and sets up the vCPU, and
 * only "cont" to the final HLT is timed.
 */
const timedRun = (
  image: Uint8Array,
  count: number,
  tracing: Tracing,
  check: (rax: bigint, hypercalls: number) => void,
  now: () => number = wallMs,
  checkMachine: (m: Machine) => void = () => {},
): Promise<number> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootHost({ events: tracing === "kvm-events" ? ["kvm_entry", "kvm_exit", "kvm_hypercall"] : [] })
        sim.trace.tracer.tracingOn = tracing !== "off"
        const created = Machine.create(sim.kvm, sim.host, { image, memoryBytes: 2 << 20, registers: { rdi: BigInt(count) }, startPaused: true })
        if (!created.ok) throw new Error(created.error.message)
        const m = created.value
        yield* m.start()
        yield* sim.host.scheduler.run()
        const start = now()
        m.resume()
        yield* sim.host.scheduler.run()
        const elapsed = now() - start
        m.close()
        verify("exit.hypercall", "machine end", "halted", m.end.kind)
        check(m.vcpus[0]!.regs.getReg(Reg.RAX), m.vcpus[0]!.stats.get("hypercalls"))
        checkMachine(m)
        return elapsed
      }),
    ),
  )

const ROUND_TRIPS = 20_000
const ROUNDS = 10

/** ns per round trip of one run of hypercall.asm, its hypercall count checked. */
const oneRun = async (tracing: Tracing, now: () => number = wallMs): Promise<number> =>
  ((await timedRun(hypercallImage, ROUND_TRIPS, tracing, (_rax, hypercalls) => verify("exit.hypercall", "hypercalls counted", ROUND_TRIPS, hypercalls), now)) * 1e6) /
  ROUND_TRIPS

/** ns per round trip of one round's three adjacent runs. */
interface Round {
  readonly untraced: number
  readonly traced: number
  readonly tracedEvents: number
}

/**
 * Best (lowest) ns per round trip with tracing off and on, measured in alternating runs so that
 * all see the same machine load (on a shared machine, load drifts between separate series), and
 * each round's three runs.
 */
interface Pair {
  readonly untraced: number
  /** The VCPU_INFO trace_printk recorded (tracing_on, no event enabled). */
  readonly traced: number
  /** kvm_entry, kvm_exit and kvm_hypercall enabled as well. */
  readonly tracedEvents: number
  /** ns per loop.asm instruction: on the interpreter timed between the pair's runs, blocks on after them. */
  readonly interpreterNs: number
  readonly blocksNs: number
  readonly rounds: ReadonlyArray<Round>
}

const measurePair = async (now: () => number): Promise<Pair> => {
  const interpreter = loopInstructionWork(false)
  await oneRun("off", now)
  await oneRun("printk", now)
  await oneRun("kvm-events", now)
  let untraced = Infinity
  let traced = Infinity
  let tracedEvents = Infinity
  let interpreterRate = 0
  const rounds: Array<Round> = []
  for (let i = 0; i < ROUNDS; i++) {
    const round = { untraced: await oneRun("off", now), traced: await oneRun("printk", now), tracedEvents: await oneRun("kvm-events", now) }
    rounds.push(round)
    untraced = Math.min(untraced, round.untraced)
    traced = Math.min(traced, round.traced)
    tracedEvents = Math.min(tracedEvents, round.tracedEvents)
    // The yardstick in the same stretches of machine load as the round trips it calibrates.
    interpreterRate = Math.max(interpreterRate, bestRate(interpreter.work, interpreter.operations, 40, 1))
  }
  // The blocks-on loop only after the pair: run between the round trips, compiled blocks in the
  // same process slowed the next hypercall runs by 80-100 ns (JIT feedback of the shared core).
  const blocks = loopInstructionWork(true)
  const blocksRate = bestRate(blocks.work, blocks.operations, 300)
  return { untraced, traced, tracedEvents, interpreterNs: 1e9 / interpreterRate, blocksNs: 1e9 / blocksRate, rounds }
}

/**
 * The round whose traced/untraced ratio is the median (the lower middle of an even count, so a
 * measured pair): each round's runs follow each other within milliseconds, while the best traced
 * and the best untraced run of a series can come from stretches of different load — on this
 * shared machine their quotient read 0.79 in one series.
 */
const medianRound = (rounds: ReadonlyArray<Round>, traced: (round: Round) => number): Round => {
  const sorted = [...rounds].sort((a, b) => traced(a) / a.untraced - traced(b) / b.untraced)
  return sorted[(sorted.length - 1) >> 1]!
}

/**
 * KVM's own code per round trip, in CPU time (not advanced while other tenants run; a difference
 * of two wall-clock minima on a shared machine is mostly noise): hypercall.asm through KVM, and the
 * same guest on the same VMCS — KVM's configuration, current on the vCPU thread's CPU — driven by
 * a bare loop (advance GUEST_RIP, VMRESUME) from inside an exit observer at the 100th VMCALL. The
 * difference is KVM's run loop, exit dispatch, kvm_emulate_hypercall, VCPU_INFO and the
 * preemption-timer VMWRITE; VMX and the guest core are the same on both sides. The median over ROUNDS runs of (through KVM - bare loop).
 */
const measureKvmOwnCode = async (): Promise<number> => {
  const once = (): Promise<{ readonly throughKvm: number; readonly bareVmx: number }> =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost()
          sim.trace.tracer.tracingOn = false
          // Enough iterations that hypercall.asm's loop outlives both timed parts.
          const created = Machine.create(sim.kvm, sim.host, { image: hypercallImage, memoryBytes: 2 << 20, registers: { rdi: BigInt(4 * ROUND_TRIPS) }, startPaused: true })
          if (!created.ok) throw new Error(created.error.message)
          const m = created.value
          let bareVmx = 0
          let vmcalls = 0
          const unsubscribe = sim.kvm.hooks.vmExit.subscribe({
            exit: (_vcpu, cpu, reason) => {
              if (reason !== ExitReason.VMCALL || ++vmcalls !== 100) return
              const lp = sim.kvm.lp(cpu)
              // Let the guest run: KVM rewrites the timer before its own entries.
              lp.vmwriteLo(F.VMX_PREEMPTION_TIMER_VALUE, 0xffffffff)
              const start = cpuMs()
              for (let i = 0; i < ROUND_TRIPS; i++) {
                lp.vmwriteLo(F.GUEST_RIP, lp.vmreadLo(F.GUEST_RIP) + lp.vmreadLo(F.VM_EXIT_INSTRUCTION_LEN))
                if (lp.vmresume(1000) !== VmxStatus.VmExit) throw new Error("exit.hypercall.kvm: VMRESUME did not exit")
                verify("exit.hypercall.kvm", "bare loop exit reason", ExitReason.VMCALL, lp.vmreadLo(F.VM_EXIT_REASON))
              }
              bareVmx = ((cpuMs() - start) * 1e6) / ROUND_TRIPS
            },
          })
          yield* m.start()
          yield* sim.host.scheduler.run()
          m.resume()
          yield* sim.host.scheduler.run({ until: () => bareVmx > 0 })
          unsubscribe()
          const vcpu = m.vcpus[0]!
          const before = vcpu.stats.get("hypercalls")
          const start = cpuMs()
          yield* sim.host.scheduler.run({ until: () => vcpu.stats.get("hypercalls") >= before + ROUND_TRIPS })
          const throughKvm = ((cpuMs() - start) * 1e6) / (vcpu.stats.get("hypercalls") - before)
          verify("exit.hypercall.kvm", "still running", "running", m.end.kind)
          m.finish({ kind: "halted" })
          yield* sim.host.scheduler.run()
          m.close()
          return { throughKvm, bareVmx }
        }),
      ),
    )
  await once()
  // Each run's two parts are timed within milliseconds of each other; the median of the per-run
  // differences is KVM's share (a difference of two separate minima can even come out negative
  // when load swings between the parts).
  const differences: Array<number> = []
  for (let i = 0; i < ROUNDS; i++) {
    const r = await once()
    differences.push(r.throughKvm - r.bareVmx)
  }
  differences.sort((a, b) => a - b)
  const middle = differences.length >> 1
  return differences.length % 2 === 1 ? differences[middle]! : (differences[middle - 1]! + differences[middle]!) / 2
}

let pair: Promise<Pair> | undefined
const roundTrips = (): Promise<Pair> => (pair ??= measurePair(wallMs))
// The traced/untraced ratio in CPU time: both sides are this process's work, and wall-clock pairs
// on a shared machine swung 1.15-1.50 between runs of the same code (other tenants' time landing
// in one side's runs); CPU time is not advanced while the process waits for a core.
let cpuPair: Promise<Pair> | undefined
const cpuRoundTrips = (): Promise<Pair> => (cpuPair ??= measurePair(cpuMs))

/**
 * A traced figure in CPU time against the untraced run of the same round, the round with the
 * median ratio (medianRound); the goal (ratio <= 1.3) is the issue's.
 */
const tracedBenchmark = (name: string, what: string, traced: (round: Round) => number): Benchmark => ({
  name,
  description: `${what}, ns of CPU time; calibration: the untraced round trip in CPU time of the same round, the round with the median ratio of ten (goal: ratio <= 1.3)`,
  run: async (): Promise<BenchResult> => {
    const round = medianRound((await cpuRoundTrips()).rounds, traced)
    const calibration: Figure = { name: "untraced round trip (CPU time), same round", unit: "ns", value: round.untraced }
    return result(name, "ns", traced(round), calibration)
  },
})

const benchmarks: ReadonlyArray<Benchmark> = [
  {
    name: "exit.hypercall",
    description: "VMCALL round trip through KVM (tracing off), ns; calibration: one loop.asm instruction on the interpreter (compiled blocks off) (goal: ratio <= 30)",
    run: async (): Promise<BenchResult> => {
      const measured = await roundTrips()
      return result("exit.hypercall", "ns", measured.untraced, instructionFigure(false, measured.interpreterNs))
    },
  },
  {
    name: "exit.hypercall.vs-blocks",
    description: "the exit.hypercall round trip against one loop.asm instruction with compiled blocks on (guest.loop's mode), for comparison",
    run: async (): Promise<BenchResult> => {
      const measured = await roundTrips()
      return result("exit.hypercall.vs-blocks", "ns", measured.untraced, instructionFigure(true, measured.blocksNs))
    },
  },
  {
    name: "exit.hypercall.userspace",
    description: "OUT to port 0xE9 round trip through KVM and the VMM in user space (hypercall.asm -DEXIT_OUT), ns; calibration: one loop.asm instruction on the interpreter",
    run: async (): Promise<BenchResult> => {
      const interpreter = loopInstructionWork(false)
      let interpreterRate = 0
      const once = async (): Promise<number> =>
        ((await timedRun(outImage, ROUND_TRIPS, "off", () => {}, wallMs, (m) => verify("exit.hypercall.userspace", "I/O exits counted", ROUND_TRIPS, m.vcpus[0]!.stats.get("io_exits")))) * 1e6) / ROUND_TRIPS
      await once()
      let best = Infinity
      for (let i = 0; i < ROUNDS; i++) {
        best = Math.min(best, await once())
        interpreterRate = Math.max(interpreterRate, bestRate(interpreter.work, interpreter.operations, 40, 1))
      }
      return result("exit.hypercall.userspace", "ns", best, instructionFigure(false, 1e9 / interpreterRate))
    },
  },
  {
    name: "exit.hypercall.kvm",
    description: "KVM's own code per exit.hypercall round trip: through KVM minus the same guest on the same VMCS driven by a bare VMRESUME loop (CPU time, median of per-run differences), ns; calibration: one loop.asm instruction on the interpreter",
    run: async (): Promise<BenchResult> => {
      const kvmShare = await measureKvmOwnCode()
      return result("exit.hypercall.kvm", "ns", kvmShare, interpreterInstruction())
    },
  },
  tracedBenchmark(
    "exit.hypercall.traced",
    "VMCALL round trip with tracing on as after boot (no event enabled): the VCPU_INFO trace_printk line recorded",
    (round) => round.traced,
  ),
  tracedBenchmark(
    "exit.hypercall.traced.kvm-events",
    "VMCALL round trip with kvm_entry/kvm_exit/kvm_hypercall enabled as well as the VCPU_INFO trace_printk (four records per round trip)",
    (round) => round.tracedEvents,
  ),
]
export default benchmarks
