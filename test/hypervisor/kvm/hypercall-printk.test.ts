// trace_printk from hypercall handlers: the staged, allocation-free form prints exactly what
// printf prints; with tracing off nothing is recorded yet the call costs the same virtual time and
// still registers its call site (which expands the ring buffers, as loading trace_printk code does).
import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Reg } from "../../../src/guest/cpu/state.ts"
import type { HypercallCall } from "../../../src/hypervisor/kvm/hypercalls.ts"
import { runMachine } from "../../../src/hypervisor/vmm/machine.ts"
import { bootHost, catTrace } from "../../../src/hypervisor/vmm/system.ts"
import { asm } from "./harness.ts"

const u64 = (v: bigint): bigint => BigInt.asUintN(64, v)
const lo = (v: bigint): number => Number(u64(v) & 0xffffffffn)
const hi = (v: bigint): number => Number(u64(v) >> 32n)

/** The guest: one VMCALL 0x100 per (a0, a1) pair, then HLT. */
const pairsProgram = (pairs: ReadonlyArray<readonly [bigint, bigint]>): Uint8Array =>
  asm(pairs.map(([a, b]) => `mov eax, 0x100\nmov rbx, ${u64(a)}\nmov rcx, ${u64(b)}\nvmcall`).join("\n") + "\nhlt")

const FORMAT = "a0 %lu %lx %llx %d %u %x / a1 %llu %ld %s\n"
const NUMBERS_FORMAT = "n %llx %lu %d\n"
/** Eight integers, like VCPU_INFO's register lines: the sink's array-free printfWords path. */
const WIDE_FORMAT = "w %lu %llx %d %u %x %ld %lx %llu\n"

/** Runs the pairs through a hypercall that prints them with printf, then with the staged form. */
const printBothWays = (pairs: ReadonlyArray<readonly [bigint, bigint]>): Promise<ReadonlyArray<string>> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootHost()
        const handle = (call: HypercallCall): number => {
          const [a, b] = call.args
          const text = `t${b & 0xffn}`
          call.printf(FORMAT, a, a, a, a, a, a, b, b, text)
          for (let i = 0; i < 6; i++) call.stageArg(i, lo(a), hi(a))
          call.stageArg(6, lo(b), hi(b))
          call.stageArg(7, lo(b), hi(b))
          call.stageString(8, text)
          call.printfStaged(FORMAT, 9)
          // Up to four numbers take the sink's array-free path.
          call.printf(NUMBERS_FORMAT, a, b, a)
          call.stageArg(0, lo(a), hi(a))
          call.stageArg(1, lo(b), hi(b))
          call.stageArg(2, lo(a), hi(a))
          call.printfStaged(NUMBERS_FORMAT, 3)
          call.printf(WIDE_FORMAT, a, b, a, b, a, b, a, b)
          for (let i = 0; i < 8; i++) call.stageArg(i, i % 2 === 0 ? lo(a) : lo(b), i % 2 === 0 ? hi(a) : hi(b))
          call.printfStaged(WIDE_FORMAT, 8)
          return 0
        }
        const r = sim.kvm.registerHypercall({ nr: 0x100, name: "PRINT_BOTH", handle })
        if (!r.ok) throw new Error(r.reason)
        yield* runMachine(sim.kvm, sim.host, { image: pairsProgram(pairs), memoryBytes: 4 << 20 })
        return catTrace(sim.trace)
          .split("\n")
          .filter((l) => l.includes("kvm_emulate_hypercall: "))
          .map((l) => l.slice(l.indexOf("kvm_emulate_hypercall: ")))
      }),
    ),
  )

describe("trace_printk from a hypercall handler", () => {
  it("printfStaged prints what printf prints, for random 64-bit values and strings (fast-check)", async () => {
    const value = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: -(1n << 40n), max: 1n << 40n }), fc.constantFrom(0n, 1n << 53n, (1n << 53n) - 1n, (1n << 63n) - 1n, -1n))
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(value, value), { minLength: 1, maxLength: 20 }), async (pairs) => {
        const lines = await printBothWays(pairs)
        expect(lines).toHaveLength(pairs.length * 6)
        for (let i = 0; i < pairs.length * 3; i++) expect(lines[2 * i + 1]).toBe(lines[2 * i])
        // The values themselves, as C's printf shows them.
        const [a] = pairs[0]!
        expect(lines[0]!.startsWith(`kvm_emulate_hypercall: a0 ${u64(a)} ${u64(a).toString(16)} `)).toBe(true)
      }),
      { numRuns: 15 },
    )
  })

  const vcpuInfoRun = (tracingOn: boolean) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost({ seed: 5 })
          sim.trace.tracer.tracingOn = tracingOn
          const program = asm("mov eax, 11\nxor ebx, ebx\nvmcall\nmov r8, rax\nmov eax, 11\nmov ebx, 9\nvmcall\nmov r9, rax\nhlt")
          const m = yield* runMachine(sim.kvm, sim.host, { image: program, memoryBytes: 4 << 20 })
          return {
            trace: catTrace(sim.trace),
            expanded: sim.trace.tracer.expanded,
            clock: sim.host.clock.nowNs(),
            r8: m.vcpus[0]!.regs.getReg(Reg.R8),
            r9: m.vcpus[0]!.regs.getReg(Reg.R9),
            exits: [...m.vcpus[0]!.stats.exitsByReason],
          }
        }),
      ),
    )

  it("KVM_HC_VCPU_INFO with tracing off records nothing, costs the same virtual time, and still registers its trace_printk sites", async () => {
    const on = await vcpuInfoRun(true)
    const off = await vcpuInfoRun(false)
    expect(on.trace).toContain("kvm_emulate_hypercall: exits by reason: VMCALL=1\n")
    expect(on.trace).toContain("kvm_emulate_hypercall: unknown cpu id: 9\n")
    expect(off.trace).not.toContain("kvm_emulate_hypercall")
    expect(off.expanded).toBe(true)
    expect(off.clock).toBe(on.clock)
    expect(off.exits).toEqual(on.exits)
    expect([off.r8, off.r9]).toEqual([0n, u64(-22n)])
    expect([on.r8, on.r9]).toEqual([0n, u64(-22n)])
  })
})
