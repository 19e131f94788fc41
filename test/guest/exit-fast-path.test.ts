// The round trip's guest-side fast paths must be invisible: VMCALL's exit filled in the hot
// loop leaves exactly the record, RIP and retired count the general exit path defines (stale
// fields of the previous exit cleared), and LazyFlags.materialize — what every VM exit's RFLAGS
// save runs — equals the flags its per-flag getters (the reference Jcc/SETcc use) compose, for
// every lazy operation, size and operand values.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { LazyFlags } from "../../src/guest/cpu/flags.ts"
import { NoIntercepts } from "../../src/guest/intercept.ts"
import { RunOutcome } from "../../src/guest/run.ts"
import { makeMachine } from "./support/machine.ts"

describe("VMCALL in the hot loop", () => {
  it("exits with a fresh record, RIP at the VMCALL and only the instructions before it retired", () => {
    const m = makeMachine(`start:\n  mov ecx, 7\n  mov eax, 11\n  mov ebx, ecx\nat:\n  vmcall\n  hlt\n`, new NoIntercepts())
    const x = m.cpu.exit
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
    expect(x.reason).toBe(ExitReason.VMCALL)
    expect(x.instructionLength).toBe(3)
    expect([x.qualificationLo, x.qualificationHi, x.instructionInformation, x.guestLinearLo, x.guestPhysicalLo]).toEqual([0, 0, 0, 0, 0])
    expect([x.interruptionInformation, x.idtVectoringInformation, x.mmioSize]).toEqual([0, 0, 0])
    expect(m.cpu.ripValue).toBe(m.sym("at"))
    expect(m.cpu.instructionsRetired - retired).toBe(3)
    expect(m.cpu.getReg(0)).toBe(11n)
    expect(m.cpu.getReg(3)).toBe(7n)
    // Re-entering at the VMCALL exits again (the instruction did not retire).
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.ripValue).toBe(m.sym("at"))
    expect(m.cpu.instructionsRetired - retired).toBe(3)
  })

  it("raises #UD outside VMX non-root operation, at the VMCALL", () => {
    const m = makeMachine(`start:\n  inc rax\nat:\n  vmcall\n  hlt\nisr_6:\n  mov rbx, [rsp]\n  hlt\n`)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(3)).toBe(m.sym("at"))
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
