// The round trip's guest-side fast paths must be invisible: VMCALL, CPUID and HLT (under HLT
// exiting) exits filled in the hot loop — cold and right after a compiled block — leave exactly
// the record, RIP and retired count the general exit path defines (stale fields of the previous
// exit cleared), and LazyFlags.materialize — what every VM exit's RFLAGS save runs — equals the
// flags its per-flag getters (the reference Jcc/SETcc use) compose, for every lazy operation,
// size and operand values.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { LazyFlags } from "../../src/guest/cpu/flags.ts"
import { NoIntercepts } from "../../src/guest/intercept.ts"
import { RunOutcome, engineOf } from "../../src/guest/run.ts"
import { makeMachine } from "./support/machine.ts"

class HltExiting extends NoIntercepts {
  override exitsOnHlt(): boolean {
    return true
  }
}

describe("instruction exits in the hot loop", () => {
  const cases = [
    { name: "VMCALL", insn: "vmcall", reason: ExitReason.VMCALL, length: 3 },
    { name: "CPUID", insn: "cpuid", reason: ExitReason.CPUID, length: 2 },
    { name: "HLT under HLT exiting", insn: "hlt", reason: ExitReason.HLT, length: 1 },
  ]
  for (const c of cases) {
    it(`${c.name} exits with a fresh record, RIP at the instruction and only the instructions before it retired, cold and from a hot block`, () => {
      // The loop body runs as a compiled block once hot; every pass ends at the exiting instruction.
      const m = makeMachine(`start:
  mov r12, 200
top:
  mov ecx, r12d
  mov eax, 11
  mov ebx, ecx
at:
  ${c.insn}
  dec r12
  jnz top
  hlt
`, new HltExiting())
      const x = m.cpu.exit
      for (let pass = 0; pass < 200; pass++) {
        // Leftovers of an earlier exit must not survive into this one.
        x.qualificationLo = 5
        x.qualificationHi = 6
        x.instructionInformation = 7
        x.guestLinearLo = 8
        x.guestPhysicalLo = 9
        x.interruptionInformation = 10
        x.idtVectoringInformation = 11
        x.mmioSize = 4
        const retired = m.cpu.instructionsRetired
        expect(m.run()).toBe(RunOutcome.VM_EXIT)
        expect(x.reason).toBe(c.reason)
        expect(x.instructionLength).toBe(c.length)
        expect([x.qualificationLo, x.qualificationHi, x.instructionInformation, x.guestLinearLo, x.guestPhysicalLo]).toEqual([0, 0, 0, 0, 0])
        expect([x.interruptionInformation, x.idtVectoringInformation, x.mmioSize]).toEqual([0, 0, 0])
        expect(m.cpu.ripValue).toBe(m.sym("at"))
        expect(m.cpu.instructionsRetired - retired).toBe(pass === 0 ? 4 : 5)
        expect(m.cpu.getReg(0)).toBe(11n)
        expect(m.cpu.getReg(3)).toBe(BigInt(200 - pass))
        // What the hypervisor does: skip the instruction and resume.
        m.cpu.rip += c.length
      }
      // The resumed batches started at `dec r12` often enough to run it as a compiled block.
      expect(engineOf(m.cpu).blocks.functions.length).toBeGreaterThan(1)
      expect(m.run()).toBe(RunOutcome.VM_EXIT)
      expect(x.reason).toBe(ExitReason.HLT)
      expect(m.cpu.getReg(12)).toBe(0n)
    })
  }

  it("re-entering at an exiting instruction exits again without retiring it", () => {
    const m = makeMachine(`start:
  inc rax
at:
  vmcall
  hlt
`, new NoIntercepts())
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    const retired = m.cpu.instructionsRetired
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.ripValue).toBe(m.sym("at"))
    expect(m.cpu.instructionsRetired).toBe(retired)
  })

  it("VMCALL raises #UD and CPUID runs outside VMX non-root operation; HLT without HLT exiting halts", () => {
    const a = makeMachine(`start:
  inc rax
at:
  vmcall
  hlt
isr_6:
  mov rbx, [rsp]
  hlt
`)
    expect(a.run()).toBe(RunOutcome.HALTED)
    expect(a.cpu.getReg(3)).toBe(a.sym("at"))
    const b = makeMachine(`start:
  xor eax, eax
  cpuid
  hlt
`)
    expect(b.run()).toBe(RunOutcome.HALTED)
    expect(b.cpu.getReg(3)).not.toBe(0n) // the vendor string's first word
    const c = makeMachine(`start:
  hlt
`, new NoIntercepts())
    expect(c.run()).toBe(RunOutcome.HALTED)
  })
})

const sizes = [1, 2, 4, 8] as const
const int32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff })

describe("LazyFlags.materialize", () => {
  it("equals the six per-flag getters for every operation, size and operand values", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.constantFrom(...sizes),
        fc.array(int32, { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 0, max: 1 }),
        fc.integer({ min: 0, max: 0xfff }),
        (op, size, [aLo, aHi, bLo, bHi, resLo, resHi], cin, stored) => {
          const f = new LazyFlags()
          f.set(stored)
          f.op = op
          f.size = size
          f.aLo = aLo!
          f.aHi = aHi!
          f.bLo = bLo!
          f.bHi = bHi!
          f.resLo = resLo!
          f.resHi = resHi!
          f.cin = cin
          const expected =
            (f.cf() ? 0x1 : 0) | (f.pf() ? 0x4 : 0) | (f.af() ? 0x10 : 0) | (f.zf() ? 0x40 : 0) | (f.sf() ? 0x80 : 0) | (f.of() ? 0x800 : 0)
          expect(f.materialize()).toBe(expected)
        },
      ),
      { numRuns: 5000 },
    )
  })

  it("equals the getters after real operations whose results are zero, negative or overflow", () => {
    // Operands at the edges (0, 1, -1, the sign boundaries) make ZF/SF/OF/CF/AF actually flip.
    const edge = fc.constantFrom(0, 1, -1, 0x7fff_ffff, -0x8000_0000, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x0f, 0x10)
    fc.assert(
      fc.property(fc.constantFrom(1, 3, 6, 7), fc.constantFrom(...sizes), edge, edge, edge, (op, size, aLo, aHi, bLo) => {
        const f = new LazyFlags()
        const bits = size * 8
        const mask = (v: bigint): bigint => BigInt.asUintN(bits, v)
        const a = mask((BigInt(aHi) << 32n) | BigInt(aLo >>> 0))
        const b = op === 6 || op === 7 ? 1n : mask(BigInt(bLo))
        const r = mask(op === 1 || op === 6 ? a + b : a - b)
        f.op = op
        f.size = size
        f.aLo = Number(BigInt.asIntN(32, a))
        f.aHi = Number(BigInt.asIntN(32, a >> 32n))
        f.bLo = Number(BigInt.asIntN(32, b))
        f.bHi = Number(BigInt.asIntN(32, b >> 32n))
        f.resLo = Number(BigInt.asIntN(32, r))
        f.resHi = Number(BigInt.asIntN(32, r >> 32n))
        f.cin = aLo & 1
        const expected =
          (f.cf() ? 0x1 : 0) | (f.pf() ? 0x4 : 0) | (f.af() ? 0x10 : 0) | (f.zf() ? 0x40 : 0) | (f.sf() ? 0x80 : 0) | (f.of() ? 0x800 : 0)
        expect(f.materialize()).toBe(expected)
      }),
      { numRuns: 3000 },
    )
  })
})
