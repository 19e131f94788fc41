// Instruction semantics against the host CPU. A small C harness (guest-native-harness.c, built
// here with the machine's gcc) executes single instructions natively; the same instructions
// run in kvmsim's interpreter from the same registers, flags and memory. Results, memory and
// the six arithmetic flags plus DF must be identical, except the flags the SDM calls
// undefined for that instruction and operand values.

import { execFileSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { CpuState } from "../../src/guest/cpu/state.ts"
import { NoIntercepts } from "../../src/guest/intercept.ts"
import { setupLongMode } from "../../src/guest/longmode.ts"
import { GuestMemory } from "../../src/guest/mmu/memory.ts"
import { RunOutcome, runBatch } from "../../src/guest/run.ts"

const CF = 0x1
const PF = 0x4
const AF = 0x10
const ZF = 0x40
const SF = 0x80
const OF = 0x800
const DF = 0x400
const COMPARED = CF | PF | AF | ZF | SF | OF | DF

interface Vector {
  code: Array<number>
  regs: Array<bigint>
  rflags: number
  reloc: number
  mem: Uint8Array
  /** Flags the SDM leaves undefined for this instance. */
  undefinedFlags: number
  /** Registers whose result is undefined (e.g. BSF's destination for a zero source). */
  undefinedRegs: number
  what: string
}

// ---------------------------------------------------------------- random source (xorshift, seeded)

let seed = 0x2545f491
const rnd = (): number => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return (seed >>> 0) / 4294967296
}
const pick = <T>(xs: ReadonlyArray<T>): T => xs[Math.floor(rnd() * xs.length)]!
const r32 = (): bigint => BigInt((rnd() * 4294967296) >>> 0)
const interesting = [0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn,
  0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0x100000000n]
const value = (): bigint => {
  const x = rnd()
  if (x < 0.25) return pick(interesting)
  if (x < 0.4) return BigInt(Math.floor(rnd() * 64))
  return (r32() << 32n) | r32()
}

/** Registers the instruction may use: not RSP (4) and not R15 (the harness's state pointer). */
const usable = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]

// ---------------------------------------------------------------- encoding helpers

/** Prefixes + REX for operand size `size` and register extension bits. */
const prefix = (size: number, reg: number, rm: number, forceRex = false): Array<number> => {
  const out: Array<number> = []
  if (size === 2) out.push(0x66)
  const rex = 0x40 | (size === 8 ? 8 : 0) | (reg >= 8 ? 4 : 0) | (rm >= 8 ? 1 : 0)
  if (rex !== 0x40 || forceRex) out.push(rex)
  return out
}
const modrmReg = (reg: number, rm: number): number => 0xc0 | ((reg & 7) << 3) | (rm & 7)

/** A byte register choice: 0..15 with REX, or AH..BH (4..7 without REX). Returns [encoding reg, needsRex, noRex]. */
const byteRegs = (): { a: number; b: number; rex: boolean } => {
  const highForm = rnd() < 0.3
  if (highForm) {
    // Legacy set: AL CL DL BL AH CH DH BH (no REX allowed).
    return { a: Math.floor(rnd() * 8), b: Math.floor(rnd() * 8), rex: false }
  }
  return { a: pick(usable), b: pick(usable), rex: true }
}

const sizes = [1, 2, 4, 8]

const baseVector = (what: string, code: Array<number>): Vector => {
  const regs: Array<bigint> = []
  for (let r = 0; r < 16; r++) regs.push(value())
  regs[4] = 0n
  regs[15] = 0n
  const mem = new Uint8Array(256)
  for (let j = 0; j < 256; j++) mem[j] = Math.floor(rnd() * 256)
  const arith = Math.floor(rnd() * 0x1000) & (CF | PF | AF | ZF | SF | OF)
  return { code, regs, rflags: 0x2 | arith, reloc: 0, mem, undefinedFlags: 0, undefinedRegs: 0, what }
}

// ---------------------------------------------------------------- instruction generators

const aluNames = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]

const genAlu = (): Vector => {
  const op = Math.floor(rnd() * 8)
  const size = pick(sizes)
  const form = Math.floor(rnd() * 4)
  let code: Array<number>
  if (size === 1) {
    const { a, b, rex } = byteRegs()
    const pre = rex ? prefix(1, a, b, true) : []
    if (form === 0) code = [...pre, op * 8 + 0, modrmReg(a, b)]
    else if (form === 1) code = [...pre, op * 8 + 2, modrmReg(a, b)]
    else code = [...pre, 0x80, modrmReg(op, b), Math.floor(rnd() * 256)]
  } else {
    const a = pick(usable)
    const b = pick(usable)
    if (form === 0) code = [...prefix(size, a, b), op * 8 + 1, modrmReg(a, b)]
    else if (form === 1) code = [...prefix(size, a, b), op * 8 + 3, modrmReg(a, b)]
    else if (form === 2) code = [...prefix(size, 0, b), 0x83, modrmReg(op, b), Math.floor(rnd() * 256)]
    else {
      const imm = size === 2 ? 2 : 4
      code = [...prefix(size, 0, b), 0x81, modrmReg(op, b)]
      for (let k = 0; k < imm; k++) code.push(Math.floor(rnd() * 256))
    }
  }
  const v = baseVector(`${aluNames[op]} size ${size}`, code)
  if (op === 1 || op === 4 || op === 6) v.undefinedFlags = AF
  return v
}

/** ALU with a memory operand [rbx+disp8] (both directions), RBX relocated into the data area. */
const genAluMem = (): Vector => {
  const op = Math.floor(rnd() * 8)
  const size = pick([2, 4, 8])
  const a = pick(usable.filter((r) => r !== 3))
  const disp = Math.floor(rnd() * 64)
  const dir = Math.floor(rnd() * 2)
  const code = [...prefix(size, a, 3), op * 8 + 1 + dir * 2, 0x40 | ((a & 7) << 3) | 3, disp]
  const v = baseVector(`${aluNames[op]} mem size ${size}`, code)
  v.regs[3] = 64n
  v.reloc = 1 << 3
  if (op === 1 || op === 4 || op === 6) v.undefinedFlags = AF
  return v
}

const shiftNames = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"]

const genShift = (): Vector => {
  const opn = pick([0, 1, 2, 3, 4, 5, 7])
  const size = pick(sizes)
  const b = pick(usable.filter((r) => r !== 1))
  const form = Math.floor(rnd() * 3)
  const pre = size === 1 ? prefix(1, 0, b, b >= 4) : prefix(size, 0, b)
  let code: Array<number>
  let count: number
  const v0 = baseVector("", [])
  if (form === 0) {
    code = [...pre, size === 1 ? 0xd0 : 0xd1, modrmReg(opn, b)]
    count = 1
  } else if (form === 1) {
    count = pick([0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, Math.floor(rnd() * 256)])
    code = [...pre, size === 1 ? 0xc0 : 0xc1, modrmReg(opn, b), count]
  } else {
    count = pick([0, 1, 2, 5, 8, 16, 31, 32, 63, Math.floor(rnd() * 256)])
    v0.regs[1] = BigInt(count)
    code = [...pre, size === 1 ? 0xd2 : 0xd3, modrmReg(opn, b)]
  }
  const v = { ...v0, code, what: `${shiftNames[opn]} size ${size} count ${count}` }
  const masked = count & (size === 8 ? 63 : 31)
  if (masked !== 0) {
    if (opn >= 4) v.undefinedFlags |= AF
    if (masked > 1) v.undefinedFlags |= OF
  }
  return v
}

const genMulDiv = (): Vector => {
  const opn = 4 + Math.floor(rnd() * 4) // mul imul div idiv
  const size = pick(sizes)
  const b = pick(usable.filter((r) => r !== 0 && r !== 2))
  const pre = size === 1 ? prefix(1, 0, b, b >= 4) : prefix(size, 0, b)
  const code = [...pre, size === 1 ? 0xf6 : 0xf7, modrmReg(opn, b)]
  const v = baseVector(`${["mul", "imul", "div", "idiv"][opn - 4]} size ${size}`, code)
  if (opn >= 6 && rnd() < 0.7) {
    // Mostly non-overflowing divisions: a small high half.
    v.regs[2] = rnd() < 0.5 ? 0n : BigInt(Math.floor(rnd() * 4))
    if (opn === 7 && rnd() < 0.5) v.regs[2] = 0xffffffffffffffffn
    if (size === 1) v.regs[0] = v.regs[0]! & 0xffn
  }
  v.undefinedFlags = opn >= 6 ? CF | PF | AF | ZF | SF | OF : PF | AF | ZF | SF
  return v
}

const genImul = (): Vector => {
  const size = pick([2, 4, 8])
  const a = pick(usable)
  const b = pick(usable)
  const form = Math.floor(rnd() * 3)
  let code: Array<number>
  if (form === 0) code = [...prefix(size, a, b), 0x0f, 0xaf, modrmReg(a, b)]
  else if (form === 1) code = [...prefix(size, a, b), 0x6b, modrmReg(a, b), Math.floor(rnd() * 256)]
  else {
    code = [...prefix(size, a, b), 0x69, modrmReg(a, b)]
    for (let k = 0; k < (size === 2 ? 2 : 4); k++) code.push(Math.floor(rnd() * 256))
  }
  const v = baseVector(`imul form ${form} size ${size}`, code)
  v.undefinedFlags = PF | AF | ZF | SF
  return v
}

const genUnary = (): Vector => {
  const kind = Math.floor(rnd() * 4) // inc dec neg not
  const size = pick(sizes)
  const b = pick(usable)
  const pre = size === 1 ? prefix(1, 0, b, b >= 4) : prefix(size, 0, b)
  const code =
    kind < 2 ? [...pre, size === 1 ? 0xfe : 0xff, modrmReg(kind, b)] : [...pre, size === 1 ? 0xf6 : 0xf7, modrmReg(kind === 2 ? 3 : 2, b)]
  return baseVector(`${["inc", "dec", "neg", "not"][kind]} size ${size}`, code)
}

const genBits = (): Vector => {
  const kind = Math.floor(rnd() * 9)
  const size = pick([2, 4, 8])
  const a = pick(usable)
  const b = pick(usable)
  let code: Array<number>
  const v0 = baseVector("", [])
  let what: string
  let undef = 0
  if (kind < 4) {
    // BT BTS BTR BTC reg,reg
    code = [...prefix(size, a, b), 0x0f, [0xa3, 0xab, 0xb3, 0xbb][kind]!, modrmReg(a, b)]
    what = ["bt", "bts", "btr", "btc"][kind]!
    undef = OF | SF | AF | PF
  } else if (kind === 4) {
    const opn = 4 + Math.floor(rnd() * 4)
    code = [...prefix(size, 0, b), 0x0f, 0xba, modrmReg(opn, b), Math.floor(rnd() * 256)]
    what = "bt imm"
    undef = OF | SF | AF | PF
  } else if (kind === 5 || kind === 6) {
    if (rnd() < 0.2) v0.regs[b] = 0n
    code = [...prefix(size, a, b), 0x0f, kind === 5 ? 0xbc : 0xbd, modrmReg(a, b)]
    what = kind === 5 ? "bsf" : "bsr"
    undef = CF | OF | SF | AF | PF
  } else if (kind === 7) {
    if (rnd() < 0.2) v0.regs[b] = 0n
    code = [0xf3, ...prefix(size, a, b), 0x0f, rnd() < 0.5 ? 0xbc : 0xbd, modrmReg(a, b)]
    what = code.includes(0xbc) ? "tzcnt" : "lzcnt"
    undef = OF | SF | AF | PF
  } else {
    code = [0xf3, ...prefix(size, a, b), 0x0f, 0xb8, modrmReg(a, b)]
    what = "popcnt"
  }
  // size 2 prefix must precede F3? Legacy prefixes may appear in any order; REX must be last.
  if (code[0] === 0xf3 && code[1] === 0x66) {
    code[0] = 0x66
    code[1] = 0xf3
  }
  return { ...v0, code, what: `${what} size ${size}`, undefinedFlags: undef }
}

const genMisc = (): Vector => {
  const kind = Math.floor(rnd() * 12)
  const size = pick([2, 4, 8])
  const a = pick(usable)
  const b = pick(usable)
  switch (kind) {
    case 0: {
      const c = Math.floor(rnd() * 6)
      const code = [[0x66, 0x98], [0x98], [0x48, 0x98], [0x66, 0x99], [0x99], [0x48, 0x99]][c]!
      return baseVector(["cbw", "cwde", "cdqe", "cwd", "cdq", "cqo"][c]!, code)
    }
    case 1: {
      const byImm = rnd() < 0.5
      const left = rnd() < 0.5
      const count = byImm ? Math.floor(rnd() * 64) : 0
      const code = [...prefix(size, a, b), 0x0f, (left ? 0xa4 : 0xac) + (byImm ? 0 : 1), modrmReg(a, b)]
      if (byImm) code.push(count)
      const v = baseVector(`${left ? "shld" : "shrd"} size ${size}`, code)
      const c = byImm ? count : Number(v.regs[1]! & 0xffn)
      const masked = c & (size === 8 ? 63 : 31)
      if (masked !== 0) v.undefinedFlags = AF | (masked > 1 ? OF : 0)
      if (size === 2 && masked > 16) {
        v.undefinedFlags = CF | PF | AF | ZF | SF | OF
        v.undefinedRegs = 1 << b
      }
      return v
    }
    case 2: {
      const sz = pick(sizes)
      const code = sz === 1 ? [...prefix(1, a, b, true), 0x0f, 0xc0, modrmReg(a, b)] : [...prefix(sz, a, b), 0x0f, 0xc1, modrmReg(a, b)]
      return baseVector(`xadd size ${sz}`, code)
    }
    case 3: {
      const sz = pick(sizes)
      const code = sz === 1 ? [...prefix(1, a, b, true), 0x0f, 0xb0, modrmReg(a, b)] : [...prefix(sz, a, b), 0x0f, 0xb1, modrmReg(a, b)]
      const v = baseVector(`cmpxchg size ${sz}`, code)
      if (rnd() < 0.5) v.regs[0] = v.regs[b]!
      return v
    }
    case 4: {
      const sz = pick([4, 8])
      return baseVector(`bswap size ${sz}`, [...prefix(sz, 0, b), 0x0f, 0xc8 + (b & 7)])
    }
    case 5: {
      const op = pick([0xb6, 0xb7, 0xbe, 0xbf])
      return baseVector(`movzx/movsx ${op.toString(16)} size ${size}`, [...prefix(size, a, b, true), 0x0f, op, modrmReg(a, b)])
    }
    case 6:
      return baseVector("movsxd", [...prefix(8, a, b), 0x63, modrmReg(a, b)])
    case 7: {
      const cc = Math.floor(rnd() * 16)
      return baseVector(`setcc ${cc}`, [...prefix(1, 0, b, true), 0x0f, 0x90 + cc, modrmReg(0, b)])
    }
    case 8: {
      const cc = Math.floor(rnd() * 16)
      return baseVector(`cmovcc ${cc} size ${size}`, [...prefix(size, a, b), 0x0f, 0x40 + cc, modrmReg(a, b)])
    }
    case 9: {
      const sz = pick(sizes)
      const code = sz === 1 ? [...prefix(1, a, b, true), 0x86, modrmReg(a, b)] : [...prefix(sz, a, b), 0x87, modrmReg(a, b)]
      return baseVector(`xchg size ${sz}`, code)
    }
    case 10: {
      const c = Math.floor(rnd() * 3)
      return baseVector(["clc", "stc", "cmc"][c]!, [[0xf8], [0xf9], [0xf5]][c]!)
    }
    default: {
      const c = rnd() < 0.5
      const v = baseVector(c ? "lahf" : "sahf", [c ? 0x9f : 0x9e])
      return v
    }
  }
}

const genString = (): Vector => {
  const kind = Math.floor(rnd() * 5) // movs stos lods scas cmps
  const size = pick(sizes)
  const base = [0xa4, 0xaa, 0xac, 0xae, 0xa6][kind]! + (size === 1 ? 0 : 1)
  const rep = rnd() < 0.7 ? (kind >= 3 ? pick([0xf3, 0xf2]) : 0xf3) : 0
  const code: Array<number> = []
  if (size === 2) code.push(0x66)
  if (rep !== 0) code.push(rep)
  if (size === 8) code.push(0x48)
  code.push(base)
  const v = baseVector(`${["movs", "stos", "lods", "scas", "cmps"][kind]} size ${size} rep ${rep.toString(16)}`, code)
  const down = rnd() < 0.3
  if (down) v.rflags |= DF
  v.regs[6] = BigInt(down ? 120 : 64)
  v.regs[7] = BigInt(down ? 248 - size : 128)
  v.regs[1] = BigInt(Math.floor(rnd() * 9))
  v.reloc = (1 << 6) | (1 << 7)
  if (kind >= 3 && rnd() < 0.5) {
    // Make some compares match so REPE/REPNE termination is exercised.
    for (let j = 0; j < 256; j++) v.mem[j] = j % 3 === 0 ? 0 : v.mem[j]!
    v.regs[0] = 0n
  }
  return v
}

const generators: Array<[() => Vector, number]> = [
  [genAlu, 30],
  [genAluMem, 8],
  [genShift, 20],
  [genMulDiv, 12],
  [genImul, 5],
  [genUnary, 6],
  [genBits, 10],
  [genMisc, 10],
  [genString, 10],
]
const totalWeight = generators.reduce((s, [, w]) => s + w, 0)
const generate = (): Vector => {
  let x = rnd() * totalWeight
  for (const [g, w] of generators) {
    if (x < w) return g()
    x -= w
  }
  return genAlu()
}

// ---------------------------------------------------------------- native side

const IN_SIZE = 16 + 16 * 8 + 8 + 8 + 256
const OUT_SIZE = 16 * 8 + 8 + 8 + 256

const buildHarness = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "kvmsim-native-"))
  const exe = join(dir, "harness")
  const src = fileURLToPath(new URL("./guest-native-harness.c", import.meta.url))
  execFileSync("gcc", ["-O1", "-o", exe, src])
  return exe
}

const runNative = (exe: string, vectors: Array<Vector>): Buffer => {
  const input = Buffer.alloc(IN_SIZE * vectors.length)
  vectors.forEach((v, n) => {
    const at = n * IN_SIZE
    const code = [...v.code]
    while (code.length < 16) code.push(0x90)
    Buffer.from(code).copy(input, at)
    v.regs.forEach((r, k) => input.writeBigUInt64LE(BigInt.asUintN(64, r), at + 16 + k * 8))
    input.writeBigUInt64LE(BigInt(v.rflags), at + 16 + 128)
    input.writeBigUInt64LE(BigInt(v.reloc), at + 16 + 136)
    Buffer.from(v.mem).copy(input, at + 16 + 144)
  })
  return execFileSync(exe, [], { input, maxBuffer: OUT_SIZE * vectors.length + 1024 })
}

// ---------------------------------------------------------------- simulated side

const CODE_AT = 0x100000n
const DATA_AT = 0x200000n

class ExceptionExits extends NoIntercepts {
  override exitsOnException(): boolean {
    return true
  }
}

interface SimResult {
  regs: Array<bigint>
  rflags: number
  fault: number
  mem: Uint8Array
}

const makeSimulator = () => {
  const memory = new GuestMemory()
  memory.setRegion(0, 0n, new Uint8Array(4 << 20))
  const cpu = new CpuState(memory)
  setupLongMode(cpu, { tablesAt: 0x10000n })
  cpu.intercepts = new ExceptionExits()
  return (v: Vector): SimResult => {
    memory.write(CODE_AT, Uint8Array.from([...v.code, 0xf4]))
    memory.write(DATA_AT, v.mem)
    for (let r = 0; r < 16; r++) cpu.setReg(r, (v.reloc & (1 << r)) !== 0 ? v.regs[r]! + DATA_AT : v.regs[r]!)
    cpu.setReg(4, 0x300000n)
    cpu.setRflags(BigInt(v.rflags))
    cpu.setRip(CODE_AT)
    cpu.activityState = 0
    let outcome: number = RunOutcome.BUDGET
    for (let guard = 0; guard < 1000 && outcome === RunOutcome.BUDGET; guard++) outcome = runBatch(cpu, 100)
    let fault = 0
    if (outcome === RunOutcome.VM_EXIT) {
      const vector = cpu.exit.interruptionInformation & 0xff
      fault = vector === 0 ? 1 : vector === 6 ? 3 : 2
    } else if (outcome !== RunOutcome.HALTED) fault = 99
    const regs: Array<bigint> = []
    for (let r = 0; r < 16; r++) regs.push((v.reloc & (1 << r)) !== 0 ? BigInt.asUintN(64, cpu.getReg(r) - DATA_AT) : cpu.getReg(r))
    return { regs, rflags: Number(cpu.rflags), fault, mem: memory.read(DATA_AT, 256) }
  }
}

const hex = (x: bigint): string => "0x" + BigInt.asUintN(64, x).toString(16)

describe("guest semantics agree with the host CPU", () => {
  it("on 120,000 random single-instruction vectors (ALU, shifts, multiply/divide, bit and string ops)", () => {
    const exe = buildHarness()
    const simulate = makeSimulator()
    const failures: Array<string> = []
    const perClass = new Map<string, number>()
    const TOTAL = 120_000
    const BATCH = 20_000
    for (let done = 0; done < TOTAL; done += BATCH) {
      const vectors: Array<Vector> = []
      for (let n = 0; n < BATCH; n++) vectors.push(generate())
      const out = runNative(exe, vectors)
      vectors.forEach((v, n) => {
        const at = n * OUT_SIZE
        const nativeFault = Number(out.readBigUInt64LE(at + 136))
        const sim = simulate(v)
        const cls = v.what.split(" ")[0]!
        perClass.set(cls, (perClass.get(cls) ?? 0) + 1)
        const problems: Array<string> = []
        if (nativeFault !== sim.fault) problems.push(`fault native ${nativeFault} sim ${sim.fault}`)
        if (nativeFault === 0 && sim.fault === 0) {
          for (let r = 0; r < 16; r++) {
            if (r === 4 || r === 15 || (v.undefinedRegs & (1 << r)) !== 0) continue
            const nv = out.readBigUInt64LE(at + r * 8)
            if (nv !== sim.regs[r]) problems.push(`r${r} native ${hex(nv)} sim ${hex(sim.regs[r]!)}`)
          }
          const nf = Number(out.readBigUInt64LE(at + 128)) & COMPARED & ~v.undefinedFlags
          const sf = sim.rflags & COMPARED & ~v.undefinedFlags
          if (nf !== sf) problems.push(`flags native ${nf.toString(16)} sim ${sf.toString(16)}`)
          const nm = out.subarray(at + 144, at + 144 + 256)
          for (let j = 0; j < 256; j++) {
            if (nm[j] !== sim.mem[j]) {
              problems.push(`mem[${j}] native ${nm[j]} sim ${sim.mem[j]}`)
              break
            }
          }
        }
        if (problems.length > 0 && failures.length < 30) {
          failures.push(
            `${v.what} [${v.code.map((b) => b.toString(16).padStart(2, "0")).join(" ")}] in ${v.regs.map(hex).join(",")} fl ${v.rflags.toString(16)}: ${problems.join("; ")}`,
          )
        }
      })
    }
    expect(failures).toEqual([])
    for (const cls of ["add", "shl", "mul", "div", "bt", "bsf", "movs", "stos", "scas", "cmps", "lods"]) {
      expect(perClass.get(cls) ?? 0).toBeGreaterThan(100)
    }
  })
})
