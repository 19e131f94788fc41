// KVM's VM-exit hook (kvm.hooks.vmExit): what an observer sees, what its verdicts do, and that a
// throwing observer kills only the VM whose exit it was looking at.
import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { Reg } from "../../../src/guest/cpu/state.ts"
import { Errno } from "../../../src/host/errno.ts"
import { ExitVerdict } from "../../../src/hypervisor/kvm/exit-hook.ts"
import type { ExitObserver } from "../../../src/hypervisor/kvm/exit-hook.ts"
import { KvmExit } from "../../../src/hypervisor/kvm/uapi.ts"
import { Machine, runMachine } from "../../../src/hypervisor/vmm/machine.ts"
import { bootHost, catTrace } from "../../../src/hypervisor/vmm/system.ts"
import type { SimulatedHost } from "../../../src/hypervisor/vmm/system.ts"
import { asm, exitsByReason } from "./harness.ts"

interface Seen {
  readonly vcpu: number
  readonly reason: number
  readonly qualification: bigint
}

const recorder = (seen: Array<Seen>, entries: { n: number }): ExitObserver => ({
  exit: (vcpu, _cpu, reason, lo, hi) => {
    seen.push({ vcpu: vcpu.id, reason, qualification: (BigInt(hi) << 32n) | BigInt(lo) })
  },
  entry: () => {
    entries.n++
  },
})

const withHost = <A>(body: (sim: SimulatedHost) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const sim = yield* bootHost()
    return yield* body(sim)
  })) as Effect.Effect<A, never>)

describe("the VM-exit hook", () => {
  it("sees every exit with its reason and qualification, k CPUIDs as k CPUID exits, and an entry before each (fast-check)", async () => {
    const piece = fc.constantFrom("cpuid", "out dx", "out imm", "nop")
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { maxLength: 12 }), async (program) => {
        const body = program.map((p) => (p === "cpuid" ? "xor eax, eax\ncpuid" : p === "out dx" ? "mov dx, 0xe9\nout dx, al" : p === "out imm" ? "out 0xe9, al" : "nop")).join("\n")
        const seen: Array<Seen> = []
        const entries = { n: 0 }
        const machine = await withHost((sim) =>
          Effect.gen(function* () {
            const unsubscribe = sim.kvm.hooks.vmExit.subscribe(recorder(seen, entries))
            const m = yield* runMachine(sim.kvm, sim.host, { image: asm(`${body}\nhlt`) })
            unsubscribe()
            return m
          }),
        )
        // SDM Table 27-5: port in bits 31:16, immediate operand bit 6, OUT (bit 3 clear), one byte.
        const expected = program
          .filter((p) => p !== "nop")
          .map((p): Seen => (p === "cpuid" ? { vcpu: 0, reason: ExitReason.CPUID, qualification: 0n } : { vcpu: 0, reason: ExitReason.IO_INSTRUCTION, qualification: p === "out dx" ? 0xe90000n : 0xe90040n }))
        expected.push({ vcpu: 0, reason: ExitReason.HLT, qualification: 0n })
        expect(seen).toEqual(expected)
        expect(entries.n).toBe(seen.length)
        expect(exitsByReason(machine)[ExitReason.CPUID] ?? 0).toBe(program.filter((p) => p === "cpuid").length)
      }),
      { numRuns: 25 },
    )
  })

  it("is not called after unsubscribe, even when an observer unsubscribes itself in the middle of a run", async () => {
    const out = await withHost((sim) =>
      Effect.gen(function* () {
        const program = asm("cpuid\ncpuid\ncpuid\ncpuid\ncpuid\nhlt")
        let firstThree = 0
        let whole = 0
        const unsubscribeWhole = sim.kvm.hooks.vmExit.subscribe({ exit: () => void whole++ })
        const unsubscribeFirst: () => void = sim.kvm.hooks.vmExit.subscribe({
          exit: () => {
            if (++firstThree === 3) unsubscribeFirst()
          },
        })
        yield* runMachine(sim.kvm, sim.host, { image: program })
        const afterFirstRun = { firstThree, whole, observers: sim.kvm.hooks.vmExit.observerCount }
        unsubscribeWhole()
        unsubscribeWhole()
        yield* runMachine(sim.kvm, sim.host, { image: program })
        yield* Effect.scoped(sim.kvm.hooks.vmExit.subscribeScoped({ exit: () => void whole++ }))
        yield* runMachine(sim.kvm, sim.host, { image: program })
        return { afterFirstRun, firstThree, whole, observers: sim.kvm.hooks.vmExit.observerCount }
      }),
    )
    expect(out.afterFirstRun).toEqual({ firstThree: 3, whole: 6, observers: 1 })
    expect(out).toMatchObject({ firstThree: 3, whole: 6, observers: 0 })
  })

  it("Yield stops the world right after the exit; the run goes on where it stopped", async () => {
    const out = await withHost((sim) =>
      Effect.gen(function* () {
        const created = Machine.create(sim.kvm, sim.host, { image: asm("cpuid\ncpuid\ncpuid\ncpuid\ncpuid\nhlt") })
        if (!created.ok) throw new Error(created.error.message)
        const m = created.value
        let cpuids = 0
        let yielded = false
        sim.kvm.hooks.vmExit.subscribe({
          exit: (_vcpu, _cpu, reason) => {
            if (reason !== ExitReason.CPUID || ++cpuids !== 3) return ExitVerdict.Continue
            yielded = true
            return ExitVerdict.Yield
          },
        })
        yield* m.start()
        yield* sim.host.scheduler.run({ until: () => yielded })
        const stopped = { cpuids: m.vcpus[0]!.stats.exitsByReason[ExitReason.CPUID], rip: m.vcpus[0]!.regs.rip, end: m.end.kind }
        yield* sim.host.scheduler.run({ until: () => m.finished })
        m.close()
        return { stopped, cpuids: m.vcpus[0]!.stats.exitsByReason[ExitReason.CPUID], end: m.end.kind }
      }),
    )
    // CPUID is two bytes: after the third one RIP is 0x100006 and the handler has run.
    expect(out.stopped).toEqual({ cpuids: 3, rip: 0x100006, end: "running" })
    expect(out).toMatchObject({ cpuids: 5, end: "halted" })
  })

  it("Userspace makes KVM_RUN return EINTR (KVM_EXIT_INTR) after the exit is handled; an observer can queue a fault", async () => {
    const out = await withHost((sim) =>
      Effect.gen(function* () {
        sim.trace.tracer.setEventEnabled(sim.trace.tracer.eventIndex("kvm_userspace_exit"), true)
        let cpuids = 0
        const unsubscribe = sim.kvm.hooks.vmExit.subscribe({
          exit: (vcpu, _cpu, reason) => {
            if (reason !== ExitReason.CPUID) return ExitVerdict.Continue
            cpuids++
            if (cpuids === 1) return ExitVerdict.Userspace
            // The second CPUID: #UD after it, which with no IDT ends in a triple fault.
            vcpu.queueException(6, -1)
            return ExitVerdict.Continue
          },
        })
        const m = yield* runMachine(sim.kvm, sim.host, { image: asm("mov ebx, 7\ncpuid\nmov ebx, 8\ncpuid\nhlt") })
        unsubscribe()
        return { m, trace: catTrace(sim.trace) }
      }),
    )
    // The VMM's loop sees EINTR and calls KVM_RUN again, as QEMU does after a signal.
    expect(out.trace).toContain("kvm_userspace_exit: reason restart (4)")
    expect(out.m.vcpus[0]!.run.exitReason).toBe(KvmExit.SHUTDOWN)
    expect(out.m.end).toEqual({ kind: "shutdown" })
    expect(out.m.vcpus[0]!.stats.get("signal_exits")).toBe(0)
  })

  it("a throwing observer kills only the VM whose exit it saw: that VM answers EIO, the other runs to its end unchanged", async () => {
    const program = asm("mov r12, 200\nagain: xor eax, eax\ncpuid\nmov eax, 11\nxor ebx, ebx\nvmcall\ndec r12\njnz again\nhlt")
    const run = (throwing: boolean) =>
      withHost((sim) =>
        Effect.gen(function* () {
          let victim: number | undefined
          let calls = 0
          sim.kvm.hooks.vmExit.subscribe({
            exit: (vcpu) => {
              calls++
              victim ??= vcpu.vm.creatorPid
              if (throwing && vcpu.vm.creatorPid === victim && vcpu.stats.get("exits") === 50) throw new Error("observer bug")
            },
          })
          const machines = [Machine.create(sim.kvm, sim.host, { image: program }), Machine.create(sim.kvm, sim.host, { image: program })].map((c) => {
            if (!c.ok) throw new Error(c.error.message)
            return c.value
          })
          for (const m of machines) yield* m.start()
          yield* sim.host.scheduler.run({ until: () => machines.every((m) => m.finished && m.threads.every((t) => t.task.state === "exited")) })
          const [a, b] = machines
          const byVictim = a!.vm.creatorPid === victim ? { dead: a!, alive: b! } : { dead: b!, alive: a! }
          // Every later call on the dead VM, its vCPUs included, answers EIO.
          const regs = byVictim.dead.vcpus[0]!.getRegs()
          for (const m of machines) m.close()
          return { ...byVictim, calls, regs }
        }),
      )
    const clean = await run(false)
    const broken = await run(true)
    expect(broken.dead.vm.dead).toBe(true)
    expect(broken.dead.end.kind).toBe("error")
    expect(broken.dead.vm.deadReason).toContain("observer bug")
    expect(broken.regs.ok ? 0 : broken.regs.error.errno).toBe(Errno.EIO)
    expect(broken.alive.end).toEqual({ kind: "halted" })
    expect(exitsByReason(broken.alive)).toEqual(exitsByReason(clean.alive))
    expect(broken.alive.vcpus[0]!.regs.getReg(Reg.R12)).toBe(0n)
    expect(clean.dead.end).toEqual({ kind: "halted" })
  })

  it("an entry callback that throws kills its VM before the entry", async () => {
    const out = await withHost((sim) =>
      Effect.gen(function* () {
        let entries = 0
        const unsubscribe = sim.kvm.hooks.vmExit.subscribe({
          exit: () => ExitVerdict.Continue,
          entry: () => {
            if (++entries === 3) throw new Error("entry bug")
          },
        })
        const m = yield* runMachine(sim.kvm, sim.host, { image: asm("cpuid\ncpuid\ncpuid\ncpuid\nhlt") })
        unsubscribe()
        return { m, entries }
      }),
    )
    expect(out.entries).toBe(3)
    expect(out.m.vm.dead).toBe(true)
    expect(out.m.vm.deadReason).toContain("entry bug")
    expect(out.m.vcpus[0]!.stats.get("exits")).toBe(2)
    expect(out.m.end.kind).toBe("error")
  })
})
