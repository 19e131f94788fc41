// Compiled blocks must be invisible: random register programs with hot loops run once with
// blocks and once on the plain interpreter (the reference), with random batch budgets on the
// block side; every register, RFLAGS, RIP and the retired-instruction count must agree.

import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { CpuState } from "../../src/guest/cpu/state.ts"
import { setupLongMode } from "../../src/guest/longmode.ts"
import { GuestMemory } from "../../src/guest/mmu/memory.ts"
import { RunOutcome, engineOf, runBatch } from "../../src/guest/run.ts"

/** Registers the random body may use (RCX is the loop counter, RSP stays out). */
const bodyRegs = [0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]

const rexFor = (w: boolean, reg: number, rm: number): number => 0x40 | (w ? 8 : 0) | (reg >= 8 ? 4 : 0) | (rm >= 8 ? 1 : 0)
const modrm = (reg: number, rm: number): number => 0xc0 | ((reg & 7) << 3) | (rm & 7)

const instruction = fc.oneof(
  // 64-bit ADD/SUB/XOR/CMP/ADC/SBB/AND/OR reg, reg (the last four end a block)
  fc.tuple(fc.constantFrom(0x01, 0x29, 0x31, 0x39, 0x11, 0x19, 0x21, 0x09, 0x03, 0x2b), fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(
    ([op, a, b]) => [rexFor(true, a, b), op, modrm(a, b)],
  ),
  fc.tuple(fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(([a, b]) => [rexFor(false, a, b), 0x31, modrm(a, b)]),
  fc.tuple(fc.constantFrom(0, 1), fc.constantFrom(...bodyRegs)).map(([opn, r]) => [rexFor(true, 0, r), 0xff, modrm(opn, r)]),
  fc.tuple(fc.constantFrom(0x89, 0x8b), fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(([op, a, b]) => [rexFor(true, a, b), op, modrm(a, b)]),
  // 32-bit MOV r, r (zero-extends) and MOV r32, imm32 / MOV r64, imm64 (B8+r)
  fc.tuple(fc.constantFrom(0x89, 0x8b), fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(([op, a, b]) => [rexFor(false, a, b), op, modrm(a, b)]),
  fc.tuple(fc.boolean(), fc.constantFrom(...bodyRegs), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 })).map(([wide, r, imm]) => [
    rexFor(wide, 0, r),
    0xb8 + (r & 7),
    ...imm.slice(0, wide ? 8 : 4),
  ]),
  fc.tuple(fc.constantFrom(0, 7, 5), fc.constantFrom(...bodyRegs), fc.integer({ min: 0, max: 255 })).map(([opn, r, imm]) => [rexFor(true, 0, r), 0x83, modrm(opn, r), imm]),
  fc.tuple(fc.constantFrom(0, 7), fc.constantFrom(...bodyRegs), fc.integer()).map(([opn, r, imm]) => [
    rexFor(true, 0, r),
    0x81,
    modrm(opn, r),
    imm & 0xff,
    (imm >>> 8) & 0xff,
    (imm >>> 16) & 0xff,
    (imm >>> 24) & 0xff,
  ]),
  fc.constant([0x90]),
  fc.constant([0x0f, 0x1f, 0x00]),
  fc.constant([0xf8]), // CLC: ends a block, changes CF
  fc.constant([0xf9]), // STC
  fc.tuple(fc.constantFrom(...bodyRegs)).map(([r]) => [rexFor(true, 0, r), 0xd1, modrm(4, r)]), // SHL r, 1
)

const program = fc.record({
  head: fc.array(instruction, { maxLength: 6 }),
  body: fc.array(instruction, { minLength: 1, maxLength: 12 }),
  tail: fc.array(instruction, { maxLength: 6 }),
  count: fc.integer({ min: 1, max: 400 }),
  regs: fc.array(fc.bigUint64Array({ minLength: 1, maxLength: 1 }).map((a) => a[0]!), { minLength: 16, maxLength: 16 }),
  flags: fc.integer({ min: 0, max: 0xfff }),
  budgets: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }),
  innerJz: fc.boolean(),
  // A forward JNZ/JZ over a few instructions inside the body: a block follows the taken path
  // and leaves through a side exit when it is not taken.
  skip: fc.record({ at: fc.nat(), jz: fc.boolean(), over: fc.array(instruction, { minLength: 1, maxLength: 3 }) }, { requiredKeys: [] }),
})

const assembleProgram = (p: {
  head: ReadonlyArray<ReadonlyArray<number>>
  body: ReadonlyArray<ReadonlyArray<number>>
  tail: ReadonlyArray<ReadonlyArray<number>>
  innerJz: boolean
  skip?: { at?: number; jz?: boolean; over?: ReadonlyArray<ReadonlyArray<number>> }
}): Uint8Array => {
  const bytes: Array<number> = []
  for (const i of p.head) bytes.push(...i)
  const top = bytes.length
  const skipAt = p.skip?.over !== undefined ? (p.skip.at ?? 0) % (p.body.length + 1) : -1
  p.body.forEach((i, n) => {
    if (n === skipAt) pushSkip(bytes, p.skip!.jz ?? false, p.skip!.over!)
    bytes.push(...i)
  })
  if (skipAt === p.body.length) pushSkip(bytes, p.skip!.jz ?? false, p.skip!.over!)
  if (p.innerJz) bytes.push(0x74, 0x00) // JZ to the next instruction: taken or not, same place
  bytes.push(0x48, 0xff, 0xc9) // dec rcx
  const afterJnz = bytes.length + 2
  bytes.push(0x75, (top - afterJnz) & 0xff) // jnz top (the body is short enough for rel8)
  for (const i of p.tail) bytes.push(...i)
  bytes.push(0xf4)
  return Uint8Array.from(bytes)
}

const pushSkip = (bytes: Array<number>, jz: boolean, over: ReadonlyArray<ReadonlyArray<number>>): void => {
  const skipped = over.flat()
  bytes.push(jz ? 0x74 : 0x75, skipped.length, ...skipped)
}

const machine = (code: Uint8Array, regs: ReadonlyArray<bigint>, rcx: number, flags: number, blocks: boolean): CpuState => {
  const memory = new GuestMemory()
  memory.setRegion(0, 0n, new Uint8Array(4 << 20))
  memory.write(0x100000n, code)
  const cpu = new CpuState(memory)
  setupLongMode(cpu, { tablesAt: 0x10000n })
  engineOf(cpu).blocksEnabled = blocks
  regs.forEach((v, r) => cpu.setReg(r, v))
  cpu.setReg(1, BigInt(rcx))
  cpu.setReg(4, 0x200000n)
  cpu.setRflags(BigInt(0x2 | (flags & 0x8d5)))
  cpu.setRip(0x100000n)
  return cpu
}

describe("compiled blocks", () => {
  it("agree with the interpreter on random register programs with hot loops and split budgets", () => {
    fc.assert(
      fc.property(program, (p) => {
        const code = assembleProgram(p)
        const ref = machine(code, p.regs, p.count, p.flags, false)
        const fast = machine(code, p.regs, p.count, p.flags, true)
        let outcome: number = RunOutcome.BUDGET
        for (let guard = 0; outcome === RunOutcome.BUDGET && guard < 100_000; guard++) outcome = runBatch(ref, 1 << 20)
        expect(outcome).toBe(RunOutcome.HALTED)
        outcome = RunOutcome.BUDGET
        for (let k = 0; outcome === RunOutcome.BUDGET && k < 1_000_000; k++) outcome = runBatch(fast, p.budgets[k % p.budgets.length]!)
        expect(outcome).toBe(RunOutcome.HALTED)
        for (let r = 0; r < 16; r++) expect(fast.getReg(r)).toBe(ref.getReg(r))
        expect(fast.rflags).toBe(ref.rflags)
        expect(fast.ripValue).toBe(ref.ripValue)
        expect(fast.instructionsRetired).toBe(ref.instructionsRetired)
      }),
      { numRuns: 300, seed: 0xb10c },
    )
  })

  it("keep CF through INC/DEC after each flag-setting operation, high halves equal or not (the carry is resolved when the block is compiled)", () => {
    // Registers whose high halves are often equal, so CF comes from the low halves as often as
    // from the high ones (fully random 64-bit values almost never tie).
    const half = fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff)
    const value = fc.tuple(half, fc.oneof(half, fc.integer({ min: 0, max: 0xffffffff }))).map(([hi, lo]) => (BigInt(hi) << 32n) | BigInt(lo))
    const setter = fc.oneof(
      fc.tuple(fc.constantFrom(0x01, 0x29, 0x39, 0x31), fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(([op, a, b]) => [rexFor(true, a, b), op, modrm(a, b)]),
      fc.tuple(fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(([a, b]) => [rexFor(false, a, b), 0x31, modrm(a, b)]),
      fc.tuple(fc.constantFrom(0, 7), fc.constantFrom(...bodyRegs), fc.integer()).map(([opn, r, imm]) => [rexFor(true, 0, r), 0x81, modrm(opn, r), imm & 0xff, (imm >>> 8) & 0xff, (imm >>> 16) & 0xff, (imm >>> 24) & 0xff]),
      fc.tuple(fc.constantFrom(0, 1), fc.constantFrom(...bodyRegs)).map(([opn, r]) => [rexFor(true, 0, r), 0xff, modrm(opn, r)]),
    )
    const incDec = fc.tuple(fc.constantFrom(0, 1), fc.constantFrom(...bodyRegs)).map(([opn, r]) => [rexFor(true, 0, r), 0xff, modrm(opn, r)])
    const mov = fc.tuple(fc.constantFrom(...bodyRegs), fc.constantFrom(...bodyRegs)).map(([a, b]) => [rexFor(true, a, b), 0x89, modrm(a, b)])
    fc.assert(
      fc.property(
        setter,
        fc.array(fc.oneof(incDec, mov), { minLength: 1, maxLength: 3 }),
        fc.array(value, { minLength: 16, maxLength: 16 }),
        fc.integer({ min: 70, max: 200 }),
        fc.integer({ min: 0, max: 0xfff }),
        (first, rest, regs, count, flags) => {
          const code = assembleProgram({ head: [], body: [first, ...rest], tail: [], innerJz: false })
          const ref = machine(code, regs, count, flags, false)
          const fast = machine(code, regs, count, flags, true)
          expect(runBatch(ref, 1 << 20)).toBe(RunOutcome.HALTED)
          expect(runBatch(fast, 1 << 20)).toBe(RunOutcome.HALTED)
          expect(engineOf(fast).blocks.functions.length).toBeGreaterThan(1)
          for (let r = 0; r < 16; r++) expect(fast.getReg(r)).toBe(ref.getReg(r))
          expect(fast.rflags).toBe(ref.rflags)
        },
      ),
      { numRuns: 300, seed: 0xcf },
    )
  })

  it("are used: a hot loop runs through a compiled block", () => {
    const code = Uint8Array.from([0x48, 0x01, 0xc8, 0x48, 0xff, 0xc9, 0x75, 0xf8, 0xf4]) // top: add rax,rcx; dec rcx; jnz top; hlt
    const cpu = machine(code, new Array(16).fill(0n), 1000, 0, true)
    expect(runBatch(cpu, 10_000)).toBe(RunOutcome.HALTED)
    expect(cpu.getReg(0)).toBe(500500n)
    expect(engineOf(cpu).blocks.functions.length).toBeGreaterThan(1)
  })

  it("survive the decode cache growing while a batch runs (thousands of distinct instructions after a hot loop)", () => {
    // start: mov rcx,100; loop: add rax,rcx; dec rcx; jnz loop; 2000 x add rbx,1; dec rdx; jnz start; hlt
    const bytes = [0x48, 0xc7, 0xc1, 0x64, 0x00, 0x00, 0x00, 0x48, 0x01, 0xc8, 0x48, 0xff, 0xc9, 0x75, 0xf8]
    for (let n = 0; n < 2000; n++) bytes.push(0x48, 0x83, 0xc3, 0x01)
    bytes.push(0x48, 0xff, 0xca)
    const rel = -(bytes.length + 6)
    bytes.push(0x0f, 0x85, rel & 0xff, (rel >> 8) & 0xff, (rel >> 16) & 0xff, (rel >> 24) & 0xff, 0xf4)
    const code = Uint8Array.from(bytes)
    const regs = new Array<bigint>(16).fill(0n)
    regs[2] = 3n
    const ref = machine(code, regs, 0, 0, false)
    const fast = machine(code, regs, 0, 0, true)
    const recordsBefore = engineOf(fast).cache.records.length
    expect(runBatch(ref, 1_000_000)).toBe(RunOutcome.HALTED)
    expect(runBatch(fast, 1_000_000)).toBe(RunOutcome.HALTED)
    expect(ref.getReg(0)).toBe(3n * 5050n)
    expect(ref.getReg(3)).toBe(6000n)
    for (let r = 0; r < 16; r++) expect(fast.getReg(r)).toBe(ref.getReg(r))
    expect(fast.rflags).toBe(ref.rflags)
    expect(fast.instructionsRetired).toBe(ref.instructionsRetired)
    expect(engineOf(fast).cache.records.length).toBeGreaterThan(recordsBefore)
    expect(engineOf(fast).blocks.functions.length).toBeGreaterThan(1)
  })

  it("are shared by address spaces holding identical code, and a code write in one of them gets its own", () => {
    // top: add rax,rcx; inc rsi; dec rcx; jnz top; hlt — RAX = n(n+1)/2, RSI = n
    const code = Uint8Array.from([0x48, 0x01, 0xc8, 0x48, 0xff, 0xc6, 0x48, 0xff, 0xc9, 0x75, 0xf5, 0xf4])
    const zero = new Array<bigint>(16).fill(0n)
    const first = machine(code, zero, 1000, 0, true)
    const second = machine(code, zero, 1000, 0, true)
    expect(first.memory === second.memory).toBe(false)
    for (const cpu of [first, second]) {
      expect(runBatch(cpu, 100_000)).toBe(RunOutcome.HALTED)
      expect(cpu.getReg(0)).toBe(500500n)
      expect(cpu.getReg(6)).toBe(1000n)
    }
    const blocksOf = (cpu: CpuState) => engineOf(cpu).blocks.functions.slice(1)
    expect(blocksOf(first).length).toBeGreaterThan(0)
    expect(blocksOf(second).length).toBe(blocksOf(first).length)
    expect(blocksOf(second).every((f, n) => f === blocksOf(first)[n])).toBe(true)

    // The second guest rewrites `inc rsi` into `dec rsi` (48 FF CE): it must run the new code,
    // through a block of its own, while the first keeps the original.
    expect(second.memory.write(0x100003n, Uint8Array.from([0x48, 0xff, 0xce]))).toBe(true)
    for (const cpu of [first, second]) {
      for (let r = 0; r < 16; r++) cpu.setReg(r, 0n)
      cpu.setReg(1, 1000n)
      cpu.setReg(4, 0x200000n)
      cpu.setRip(0x100000n)
      cpu.activityState = 0
      expect(runBatch(cpu, 100_000)).toBe(RunOutcome.HALTED)
      expect(cpu.getReg(0)).toBe(500500n)
    }
    expect(first.getReg(6)).toBe(1000n)
    expect(second.getReg(6)).toBe(BigInt.asUintN(64, -1000n))
    const rewritten = blocksOf(second).filter((f) => !blocksOf(first).includes(f))
    expect(rewritten.length).toBeGreaterThan(0)
  })
})
