// MOV between registers and MOV register, immediate run on the interpreter's inline fast path
// (the hypercall setup `mov eax, nr; mov ebx, ecx`). Oracle: the SDM's rule — a 32-bit
// destination is zero-extended into bits 63:32, a 64-bit one is copied whole, 16/8-bit ones
// merge — computed with bigints, for random register values and all three encodings
// (89 /r, 8B /r, B8+r with and without REX.W), RFLAGS untouched.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { CpuState } from "../../src/guest/cpu/state.ts"
import { setupLongMode } from "../../src/guest/longmode.ts"
import { GuestMemory } from "../../src/guest/mmu/memory.ts"
import { RunOutcome, runBatch } from "../../src/guest/run.ts"

const MASK64 = (1n << 64n) - 1n
const regs = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]

type Move = { bytes: Array<number>; apply: (r: Array<bigint>) => void }

const rex = (w: boolean, reg: number, rm: number): number => 0x40 | (w ? 8 : 0) | (reg >= 8 ? 4 : 0) | (rm >= 8 ? 1 : 0)
const modrm = (reg: number, rm: number): number => 0xc0 | ((reg & 7) << 3) | (rm & 7)
const sized = (v: bigint, old: bigint, size: number): bigint =>
  size === 8 ? v & MASK64 : size === 4 ? v & 0xffff_ffffn : (old & ~0xffffn & MASK64) | (v & 0xffffn)

const move: fc.Arbitrary<Move> = fc.oneof(
  // 89 /r: rm <- reg; 8B /r: reg <- rm; sizes 8 (REX.W), 4, 2 (66 prefix)
  fc.tuple(fc.constantFrom(0x89, 0x8b), fc.constantFrom(8, 4, 2), fc.constantFrom(...regs), fc.constantFrom(...regs)).map(([op, size, a, b]) => ({
    bytes: [...(size === 2 ? [0x66] : []), rex(size === 8, a, b), op, modrm(a, b)],
    apply: (r: Array<bigint>) => {
      const [dst, src] = op === 0x89 ? [b, a] : [a, b]
      r[dst] = sized(r[src]!, r[dst]!, size)
    },
  })),
  // B8+r imm32 (32-bit, zero-extends) and REX.W B8+r imm64
  fc.tuple(fc.boolean(), fc.constantFrom(...regs), fc.bigInt({ min: 0n, max: MASK64 })).map(([wide, d, imm]) => {
    const width = wide ? 8 : 4
    const value = wide ? imm : imm & 0xffff_ffffn
    const bytes = [rex(wide, 0, d), 0xb8 + (d & 7)]
    for (let i = 0; i < width; i++) bytes.push(Number((value >> BigInt(8 * i)) & 0xffn))
    return { bytes, apply: (r: Array<bigint>) => void (r[d] = value) }
  }),
)

describe("register moves on the interpreter's fast path", () => {
  it("zero-extend 32-bit destinations, copy 64-bit ones, merge 16-bit ones, and leave RFLAGS alone", () => {
    fc.assert(
      fc.property(fc.array(move, { minLength: 1, maxLength: 12 }), fc.array(fc.bigInt({ min: 0n, max: MASK64 }), { minLength: 16, maxLength: 16 }), (moves, values) => {
        const memory = new GuestMemory()
        memory.setRegion(0, 0n, new Uint8Array(4 << 20))
        const code = Uint8Array.from([...moves.flatMap((m) => m.bytes), 0xf4])
        memory.write(0x100000n, code)
        const cpu = new CpuState(memory)
        setupLongMode(cpu, { tablesAt: 0x10000n })
        const expected = values.slice()
        expected[4] = 0x200000n
        expected.forEach((v, r) => cpu.setReg(r, v))
        cpu.setRflags(0x8d7n)
        cpu.setRip(0x100000n)
        for (const m of moves) m.apply(expected)
        expect(runBatch(cpu, 1000)).toBe(RunOutcome.HALTED)
        for (let r = 0; r < 16; r++) expect(cpu.getReg(r), `register ${r}`).toBe(expected[r])
        expect(cpu.rflags).toBe(0x8d7n)
        expect(cpu.instructionsRetired).toBe(moves.length + 1)
      }),
      { numRuns: 300, seed: 0x40f },
    )
  })
})
