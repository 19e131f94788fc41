// scale.vms: 64 VMs x 4 vCPUs, every vCPU running ../shared/bench/loop.asm, all at once on the
// simulated host's scheduler (4 host CPUs). Figure: aggregate guest MIPS over the run (setup
// excluded); calibration: the MIPS of one vCPU alone in one VM (goal: ratio >= 0.8, i.e. running
// 256 vCPU threads costs at most 20% in scheduling, migration and VMCS switching). The memory one
// idle vCPU costs (heap + array buffers, guest RAM excluded) is printed to stderr.
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

const loopImage = assemble(readFileSync(new URL("../../shared/bench/loop.asm", import.meta.url), "utf8")).bytes
const VMS = 64
const VCPUS = 4
const RAM = 2 << 20
// Long enough that compiled blocks (~1 ns/instruction) leave a measurable run: the single vCPU
// retires 12M instructions (at 200k iterations it was ~3 ms, below timer noise), each of the 256
// vCPUs 600k, so the per-VM cost of compiling its own blocks is amortized as a real guest would.
const SINGLE_ITERATIONS = 2_000_000
const AGGREGATE_ITERATIONS = 100_000

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

/** Runs `vms` x `vcpus` loop.asm guests with `iterations` each; returns guest MIPS of the run phase. */
const runMips = (vms: number, vcpus: number, iterations: number): Promise<number> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootHost({ tuning: { latencyNs: 6_000_000, minGranularityNs: 750_000 } })
        const machines: Array<Machine> = []
        for (let i = 0; i < vms; i++) {
          const created = Machine.create(sim.kvm, sim.host, { image: loopImage, memoryBytes: RAM, vcpus, registers: { rdi: BigInt(iterations) }, startPaused: true })
          if (!created.ok) throw new Error(created.error.message)
          machines.push(created.value)
        }
        // QEMU -S: every vCPU thread creates and sets up its vCPU, then waits for "cont".
        for (const m of machines) yield* m.start()
        yield* sim.host.scheduler.run()
        const start = performance.now()
        for (const m of machines) m.resume()
        yield* sim.host.scheduler.run({ until: () => machines.every((m) => m.finished) && machines.every((m) => m.threads.every((t) => t.task.state === "exited")) })
        const seconds = (performance.now() - start) / 1000
        let instructions = 0
        const expected = expectedChecksum(iterations)
        for (const m of machines) {
          verify("scale.vms", "machine end", "halted", m.end.kind)
          for (const v of m.vcpus) {
            verify("scale.vms", "loop.asm checksum", expected, v.regs.getReg(Reg.RAX))
            instructions += v.regs.instructionsRetired
          }
          m.close()
        }
        return instructions / seconds / 1e6
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
  description: "64 VMs x 4 vCPUs running loop.asm at once: aggregate guest MIPS; calibration: one vCPU alone (goal: ratio >= 0.8)",
  run: async () => {
    await runMips(1, 1, 20_000) // warm-up
    let single = 0
    for (let i = 0; i < 3; i++) single = Math.max(single, await runMips(1, 1, SINGLE_ITERATIONS))
    const calibration: Figure = { name: "one vCPU alone", unit: "MIPS", value: single }
    const aggregate = await runMips(VMS, VCPUS, AGGREGATE_ITERATIONS)
    const perVcpu = await idleVcpuBytes()
    process.stderr.write(`scale.vms: memory per idle vCPU ${(perVcpu / 1024).toFixed(1)} KiB (heap + array buffers, guest RAM excluded)\n`)
    return result("scale.vms", "MIPS", aggregate, calibration)
  },
}
export default benchmark
