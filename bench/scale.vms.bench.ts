// scale.vms: 64 VMs x 4 vCPUs, every vCPU running ../shared/bench/loop.asm, all at once on the
// simulated host's scheduler (4 host CPUs). Figure: aggregate guest MIPS over the run (setup
// excluded); calibration: the MIPS of one vCPU alone in one VM doing the same work as each of the
// 256 (goal: ratio >= 0.8, i.e. running 256 vCPU threads costs at most 20% in scheduling,
// migration and VMCS switching). Both figures are the best of several runs, the single-vCPU and
// the aggregate runs alternating so that both see the same machine load.
// Time is the process's CPU time (user + system, every thread: GC and JIT threads count), not
// wall-clock time: the simulator is one busy thread that never waits, so on an idle machine the
// two agree, while on a shared machine wall-clock time mostly measures the other tenants — and
// unevenly, since a 7 ms run finds a quiet moment far more often than a 2 s one. The wall-clock
// figures are printed to stderr too, with the memory one idle vCPU costs (heap + array buffers,
// guest RAM excluded) and the CPU time of starting one vCPU.
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import type { Benchmark, Figure } from "./harness.ts"
import { result, verify } from "./harness.ts"
import { assemble } from "../src/guest/asm/index.ts"
import { Reg } from "../src/guest/cpu/state.ts"
import { Machine } from "../src/hypervisor/vmm/machine.ts"
import { bootHost } from "../src/hypervisor/vmm/system.ts"
import type { SimulatedHost } from "../src/hypervisor/vmm/system.ts"

const loopImage = assemble(readFileSync(new URL("../../shared/bench/loop.asm", import.meta.url), "utf8")).bytes
const VMS = 64
const VCPUS = 4
const RAM = 2 << 20
// Work per vCPU, the same for the single vCPU and for each of the 256: 6M guest instructions,
// 6 ms of virtual CPU time. With 64 threads per host CPU the CFS slice is the minimum granularity
// (0.75 ms), so every vCPU is preempted by the VMX-preemption timer and requeued about eight
// times, each switch a VMPTRLD of another VMCS: the run measures running concurrently, not 256
// short jobs in a row (at 100k iterations each vCPU finished inside its first slice, and the
// figure was mostly the one-time start of 256 vCPUs). The single vCPU's run (~7 ms) is repeated more often than the
// aggregate one (~2 s): best of ROUNDS x SINGLES_PER_ROUND against best of ROUNDS.
const ITERATIONS = 1_000_000
const ROUNDS = 3
const SINGLES_PER_ROUND = 3
/** Few iterations: the run is almost only starting the vCPUs (what start-up costs per vCPU). */
const STARTUP_ITERATIONS = 10

const expectedChecksum = (n: number): bigint => {
  let a = 0n, b = 0x12345n, d = 0x5a5an, s = 0n
  for (let c = BigInt(n); c > 0n; c--) {
    a = BigInt.asUintN(64, a + c)
    d ^= a
    b = BigInt.asUintN(64, b - d)
    s++
  }
  return BigInt.asUintN(64, (a ^ b ^ d) + s)
}

interface RunFigures {
  /** Guest instructions retired per CPU-second of the run phase, in millions. */
  readonly mips: number
  /** The same per wall-clock second. */
  readonly wallMips: number
  /** CPU seconds of the run phase. */
  readonly cpuSeconds: number
}

/** CPU seconds (user + system, all of the process's threads) since `since`. */
const cpuSecondsSince = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1e6
}

const checksums = new Map<number, bigint>()
const checksumFor = (iterations: number): bigint => {
  let c = checksums.get(iterations)
  if (c === undefined) checksums.set(iterations, (c = expectedChecksum(iterations)))
  return c
}

interface Totals {
  instructions: number
  cpuSeconds: number
  seconds: number
}

/**
 * Creates `vms` x `vcpus` loop.asm guests with `iterations` each on `sim`, lets their vCPU threads
 * set up (QEMU -S), then times the run phase to the last HLT, adding to `totals`; verifies every
 * result and closes the VMs.
 */
const timedRun = (sim: SimulatedHost, vms: number, vcpus: number, iterations: number, totals: Totals): Effect.Effect<void> =>
  Effect.gen(function* () {
    const machines: Array<Machine> = []
    for (let i = 0; i < vms; i++) {
      const created = Machine.create(sim.kvm, sim.host, { image: loopImage, memoryBytes: RAM, vcpus, registers: { rdi: BigInt(iterations) }, startPaused: true })
      if (!created.ok) throw new Error(created.error.message)
      machines.push(created.value)
    }
    // QEMU -S: every vCPU thread creates and sets up its vCPU, then waits for "cont".
    for (const m of machines) yield* m.start()
    yield* sim.host.scheduler.run()
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    for (const m of machines) m.resume()
    // Runs until no thread is runnable: every vCPU thread has exited after its HLT (checked
    // below; a checksum or end state that is wrong fails the benchmark).
    yield* sim.host.scheduler.run()
    totals.seconds += (performance.now() - start) / 1000
    totals.cpuSeconds += cpuSecondsSince(cpuStart)
    let instructions = 0
    const expected = checksumFor(iterations)
    verify("scale.vms", "vCPU threads left", 0, sim.host.scheduler.threadCount)
    for (const m of machines) {
      verify("scale.vms", "machine end", "halted", m.end.kind)
      for (const v of m.vcpus) {
        verify("scale.vms", "loop.asm checksum", expected, v.regs.getReg(Reg.RAX))
        instructions += v.regs.instructionsRetired
      }
      m.close()
    }
    // 7 before the loop, 6 per iteration, 3 after it; the HLT exits (HLT exiting) and does not retire.
    verify("scale.vms", "instructions retired", vms * vcpus * (6 * iterations + 10), instructions)
    totals.instructions += instructions
  })

const bootBenchHost = bootHost({ tuning: { latencyNs: 6_000_000, minGranularityNs: 750_000 } })

const figures = (t: Totals): RunFigures => ({ mips: t.instructions / t.cpuSeconds / 1e6, wallMips: t.instructions / t.seconds / 1e6, cpuSeconds: t.cpuSeconds })

/** `vms` x `vcpus` guests at once, `iterations` each, on a fresh host. */
const runVms = (vms: number, vcpus: number, iterations: number): Promise<RunFigures> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootBenchHost
        const totals: Totals = { instructions: 0, cpuSeconds: 0, seconds: 0 }
        yield* timedRun(sim, vms, vcpus, iterations, totals)
        return figures(totals)
      }),
    ),
  )

/** Heap + array-buffer bytes with `vms` machines of idle vCPUs alive (after a full GC). */
const idleUsage = (vms: number): Promise<number> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        setFlagsFromString("--expose-gc")
        const gc = runInNewContext("gc") as () => void
        const sim = yield* bootHost()
        const machines: Array<Machine> = []
        // vCPUs that halt at once with interrupts on: created, then blocked in the kernel (idle).
        const idle = assemble("BITS 64\nsti\nhlt").bytes
        for (let i = 0; i < vms; i++) {
          const created = Machine.create(sim.kvm, sim.host, { image: idle, memoryBytes: RAM, vcpus: VCPUS })
          if (!created.ok) throw new Error(created.error.message)
          machines.push(created.value)
          yield* created.value.start()
        }
        yield* sim.host.scheduler.run()
        verify("scale.vms", "idle vCPUs created", vms * VCPUS, machines.reduce((n, m) => n + m.vcpus.length, 0))
        gc()
        gc()
        const u = process.memoryUsage()
        const bytes = u.heapUsed + u.arrayBuffers
        for (const m of machines) m.finish({ kind: "halted" })
        yield* sim.host.scheduler.run()
        for (const m of machines) m.close()
        return bytes
      }),
    ),
  )

/** Bytes one created-but-idle vCPU costs, guest RAM excluded: the slope between 16 and 48 VMs. */
const idleVcpuBytes = async (): Promise<number> => {
  await idleUsage(4)
  const small = await idleUsage(16)
  const big = await idleUsage(48)
  return (big - small - 32 * RAM) / (32 * VCPUS)
}

const benchmark: Benchmark = {
  name: "scale.vms",
  description: "64 VMs x 4 vCPUs running loop.asm at once: aggregate guest MIPS (per CPU-second); calibration: one vCPU alone (goal: ratio >= 0.8)",
  run: async () => {
    // Warm-up: the JIT sees one vCPU and many VMs before anything is timed.
    await runVms(1, 1, ITERATIONS)
    await runVms(VMS, VCPUS, STARTUP_ITERATIONS)
    let single = 0
    let singleWall = 0
    let aggregate = 0
    let aggregateWall = 0
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < SINGLES_PER_ROUND; i++) {
        const one = await runVms(1, 1, ITERATIONS)
        single = Math.max(single, one.mips)
        singleWall = Math.max(singleWall, one.wallMips)
      }
      const all = await runVms(VMS, VCPUS, ITERATIONS)
      aggregate = Math.max(aggregate, all.mips)
      aggregateWall = Math.max(aggregateWall, all.wallMips)
    }
    let startup = Infinity
    for (let i = 0; i < 3; i++) startup = Math.min(startup, (await runVms(VMS, VCPUS, STARTUP_ITERATIONS)).cpuSeconds)
    const calibration: Figure = { name: "one vCPU alone", unit: "MIPS", value: single }
    const perVcpu = await idleVcpuBytes()
    process.stderr.write(
      `scale.vms: per wall-clock second ${aggregateWall.toFixed(0)} vs one vCPU ${singleWall.toFixed(0)} MIPS (ratio ${(aggregateWall / singleWall).toFixed(3)}); ` +
        `starting a paused vCPU (first KVM_RUN to HLT) ${((startup * 1e6) / (VMS * VCPUS)).toFixed(0)} us CPU each; ` +
        `memory per idle vCPU ${(perVcpu / 1024).toFixed(1)} KiB (heap + array buffers, guest RAM excluded)\n`,
    )
    return result("scale.vms", "MIPS", aggregate, calibration)
  },
}
export default benchmark
