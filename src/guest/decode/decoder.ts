// The x86-64 decoder (64-bit mode). `decodeInstruction` fills one reusable DecodedInstruction
// from a byte window: prefixes, REX, opcode maps (one-byte, 0F, 0F38, 0F3A; VEX/EVEX/XOP are
// recognised for their length and raise #UD), ModRM/SIB/RIP-relative, displacement and
// immediates. It never throws for any input: an unknown or invalid encoding gives
// `valid = false` (#UD) with the length the hardware would have consumed.
//
// Byte registers: numbers 0..15 are AL..R15B (SPL/BPL/SIL/DIL with REX); 16..19 are AH CH DH BH.

import { Op, OperandKind } from "./ops.ts"

export const MAX_INSTRUCTION_LENGTH = 15

/** No base or index register. */
export const NO_REG = -1
/** Base "register" meaning RIP-relative (displacement from the next instruction). */
export const RIP_BASE = 16

export class DecodedInstruction {
  /** Bytes consumed (1..15); for #UD the hardware's decode length as far as it is known. */
  length = 0
  /** false: the encoding raises #UD (`op` is Op.UD). */
  valid = false
  /** The window ended before the instruction did: the caller must supply more bytes (or raise #PF there). */
  truncated = false
  /** More than 15 bytes: #GP(0). */
  tooLong = false
  op = 0
  sub = 0
  mnemonic = ""
  /** Operand size in bytes (1, 2, 4, 8). */
  osz = 4
  /** Address size in bytes (4 or 8). */
  asz = 8
  /** Segment override that takes effect in 64-bit mode (FS or GS as a Seg number) or -1. */
  seg = -1
  /**
   * The last segment-override prefix as written (Seg number 0..5: ES CS SS DS FS GS) or -1,
   * including ES/CS/SS/DS, which 64-bit mode ignores: what a disassembler prints.
   */
  segPrefix = -1
  lock = false
  /** 0 none, 1 REP/REPE (F3), 2 REPNE (F2): the last of F2/F3 wins. */
  rep = 0
  opsizePrefix = false
  rex = 0
  /** ModRM fields; reg includes REX.R. */
  hasModrm = false
  modrm = 0
  reg = 0
  /** Register operand of ModRM (with REX.B; byte registers remapped) or -1 for a memory form. */
  rm = -1
  /** Memory form: base (NO_REG, 0..15, RIP_BASE), index (NO_REG, 0..15), scale 1/2/4/8, displacement halves. */
  hasMem = false
  base = NO_REG
  index = NO_REG
  scale = 1
  dispLo = 0
  dispHi = 0
  /** Immediate (sign-extended to 64 bits where the instruction sign-extends) and ENTER's second immediate. */
  immLo = 0
  immHi = 0
  imm2 = 0
  /** Opcode map (0 one-byte, 1 0F, 2 0F38, 3 0F3A, 4 VEX/EVEX/XOP) and final opcode byte. */
  map = 0
  opcode = 0
  /** Operands in Intel order, for printing. */
  operandCount = 0
  readonly operandKind = new Int32Array(4)
  readonly operandReg = new Int32Array(4)
  readonly operandSize = new Int32Array(4)

  reset(): void {
    this.length = 0
    this.valid = false
    this.truncated = false
    this.tooLong = false
    this.op = Op.UD
    this.sub = 0
    this.mnemonic = "(bad)"
    this.osz = 4
    this.asz = 8
    this.seg = -1
    this.segPrefix = -1
    this.lock = false
    this.rep = 0
    this.opsizePrefix = false
    this.rex = 0
    this.hasModrm = false
    this.modrm = 0
    this.reg = 0
    this.rm = -1
    this.hasMem = false
    this.base = NO_REG
    this.index = NO_REG
    this.scale = 1
    this.dispLo = 0
    this.dispHi = 0
    this.immLo = 0
    this.immHi = 0
    this.imm2 = 0
    this.map = 0
    this.opcode = 0
    this.operandCount = 0
  }

  /** The immediate as a bigint (sign-extended 64-bit value, as unsigned). */
  get immediate(): bigint {
    return (BigInt(this.immHi >>> 0) << 32n) | BigInt(this.immLo >>> 0)
  }
  /** The displacement as a signed bigint. */
  get displacement(): bigint {
    return BigInt.asIntN(64, (BigInt(this.dispHi >>> 0) << 32n) | BigInt(this.dispLo >>> 0))
  }
}

const ALU_NAMES = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]
const SHIFT_NAMES = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"]
const CC_NAMES = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]
export const JCC_MNEMONICS = CC_NAMES.map((c) => "j" + c)
const SETCC_MNEMONICS = CC_NAMES.map((c) => "set" + c)
const CMOVCC_MNEMONICS = CC_NAMES.map((c) => "cmov" + c)
const BT_NAMES = ["bt", "bts", "btr", "btc"]

// One-byte map: which opcodes have a ModRM byte (1) — used for length decoding of everything.
const ONE_BYTE_MODRM = new Uint8Array(256)
for (const op of [
  0x62, 0x63, 0x69, 0x6b, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3, 0xd8, 0xd9, 0xda, 0xdb, 0xdc,
  0xdd, 0xde, 0xdf, 0xf6, 0xf7, 0xfe, 0xff,
])
  ONE_BYTE_MODRM[op] = 1
for (let op = 0; op < 0x40; op++) if ((op & 7) < 4) ONE_BYTE_MODRM[op] = 1
for (let op = 0x80; op < 0x90; op++) ONE_BYTE_MODRM[op] = 1

// 0F map: opcodes WITHOUT ModRM.
const TWO_BYTE_NO_MODRM = new Uint8Array(256)
for (const op of [
  0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x77,
  0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa,
])
  TWO_BYTE_NO_MODRM[op] = 1
for (let op = 0x80; op < 0x90; op++) TWO_BYTE_NO_MODRM[op] = 1
for (let op = 0xc8; op < 0xd0; op++) TWO_BYTE_NO_MODRM[op] = 1
// 0F map: opcodes with an imm8.
const TWO_BYTE_IMM8 = new Uint8Array(256)
for (const op of [0x0f, 0x70, 0x71, 0x72, 0x73, 0xa4, 0xac, 0xba, 0xc2, 0xc4, 0xc5, 0xc6]) TWO_BYTE_IMM8[op] = 1

/**
 * Decodes the instruction at `bytes[start]`, with `available` bytes valid from there (the rest
 * of a 15-byte window may be beyond a page the caller could not read). Fills `d`.
 */
export const decodeInstruction = (bytes: Uint8Array, start: number, available: number, d: DecodedInstruction): void => {
  d.reset()
  const limit = available < MAX_INSTRUCTION_LENGTH ? available : MAX_INSTRUCTION_LENGTH
  let p = 0
  let rex = 0
  let lastPrefixRex = false
  let b = 0
  // Prefixes. A REX prefix counts only when it immediately precedes the opcode.
  for (;;) {
    if (p >= limit) return truncate(d, p, available)
    b = bytes[start + p]!
    if (b >= 0x40 && b <= 0x4f) {
      rex = b
      lastPrefixRex = true
      p++
      continue
    }
    let isPrefix = true
    switch (b) {
      case 0x66:
        d.opsizePrefix = true
        break
      case 0x67:
        d.asz = 4
        break
      case 0xf0:
        d.lock = true
        break
      case 0xf2:
        d.rep = 2
        break
      case 0xf3:
        d.rep = 1
        break
      case 0x26:
      case 0x2e:
      case 0x36:
      case 0x3e:
        // ES/CS/SS/DS overrides are ignored in 64-bit mode (but FS/GS set earlier stay).
        if (d.seg < 0) d.segPrefix = (b >> 3) & 3
        break
      case 0x64:
        d.seg = 4
        d.segPrefix = 4
        break
      case 0x65:
        d.seg = 5
        d.segPrefix = 5
        break
      default:
        isPrefix = false
    }
    if (!isPrefix) break
    lastPrefixRex = false
    rex = 0
    p++
  }
  if (!lastPrefixRex) rex = 0
  d.rex = rex
  const rexW = (rex & 8) !== 0
  d.osz = rexW ? 8 : d.opsizePrefix ? 2 : 4
  p++ // opcode byte b
  const ctx: Ctx = { bytes, start, limit, available, p }
  if (b === 0x0f) {
    if (ctx.p >= limit) return truncate(d, ctx.p, available)
    const b2 = bytes[start + ctx.p]!
    ctx.p++
    if (b2 === 0x38 || b2 === 0x3a) {
      if (ctx.p >= limit) return truncate(d, ctx.p, available)
      d.opcode = bytes[start + ctx.p]!
      ctx.p++
      d.map = b2 === 0x38 ? 2 : 3
      decodeThreeByte(ctx, d, b2 === 0x3a)
    } else {
      d.map = 1
      d.opcode = b2
      decodeTwoByte(ctx, d)
    }
  } else {
    d.map = 0
    d.opcode = b
    decodeOneByte(ctx, d)
  }
  if (d.truncated) return
  if (ctx.p > MAX_INSTRUCTION_LENGTH) {
    d.tooLong = true
    d.valid = false
    d.op = Op.UD
    d.length = MAX_INSTRUCTION_LENGTH
    return
  }
  d.length = ctx.p
  if (!d.valid) {
    d.op = Op.UD
    d.mnemonic = "(bad)"
    d.operandCount = 0
  }
}

interface Ctx {
  bytes: Uint8Array
  start: number
  limit: number
  available: number
  p: number
}

const truncate = (d: DecodedInstruction, p: number, available: number): void => {
  d.valid = false
  d.op = Op.UD
  if (available >= MAX_INSTRUCTION_LENGTH && p >= MAX_INSTRUCTION_LENGTH) {
    d.tooLong = true
    d.length = MAX_INSTRUCTION_LENGTH
  } else {
    d.truncated = true
    d.length = p + 1
  }
}

/** Reads the next byte; marks truncation (returns -1) if the window ends. */
const next = (c: Ctx, d: DecodedInstruction): number => {
  if (c.p >= c.limit) {
    if (!d.truncated) truncate(d, c.p, c.available)
    c.p++
    return -1
  }
  return c.bytes[c.start + c.p++]!
}

const readImm = (c: Ctx, d: DecodedInstruction, size: number): number => {
  let v = 0
  for (let k = 0; k < size; k++) {
    const x = next(c, d)
    if (x < 0) return 0
    v |= x << (8 * k)
  }
  if (size === 1) return (v << 24) >> 24
  if (size === 2) return (v << 16) >> 16
  return v | 0
}

/** Reads a sign-extended immediate of `size` (1, 2, 4) into immLo/immHi. */
const imm = (c: Ctx, d: DecodedInstruction, size: number): void => {
  const v = readImm(c, d, size)
  d.immLo = v
  d.immHi = v >> 31
}

/** Zero-extended immediate of `size` bytes. */
const immU = (c: Ctx, d: DecodedInstruction, size: number): void => {
  const v = readImm(c, d, size)
  d.immLo = size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v
  d.immHi = 0
}

const byteReg = (d: DecodedInstruction, r: number): number => (d.rex === 0 && r >= 4 && r < 8 ? r + 12 : r)

/** Parses ModRM (+SIB, displacement). Register operands are not byte-remapped here. */
const modrm = (c: Ctx, d: DecodedInstruction): void => {
  const m = next(c, d)
  if (m < 0) return
  d.hasModrm = true
  d.modrm = m
  const mod = m >> 6
  const rex = d.rex
  d.reg = ((m >> 3) & 7) | ((rex & 4) << 1)
  let rm = m & 7
  if (mod === 3) {
    d.rm = rm | ((rex & 1) << 3)
    return
  }
  d.hasMem = true
  d.rm = -1
  let dispSize = mod === 1 ? 1 : mod === 2 ? 4 : 0
  if (rm === 4) {
    const sib = next(c, d)
    if (sib < 0) return
    const idx = ((sib >> 3) & 7) | ((rex & 2) << 2)
    d.index = idx === 4 ? NO_REG : idx
    d.scale = 1 << (sib >> 6)
    const base = sib & 7
    if (base === 5 && mod === 0) {
      d.base = NO_REG
      dispSize = 4
    } else d.base = base | ((rex & 1) << 3)
  } else if (rm === 5 && mod === 0) {
    d.base = RIP_BASE
    dispSize = 4
  } else {
    rm |= (rex & 1) << 3
    d.base = rm
  }
  if (dispSize > 0) {
    const v = readImm(c, d, dispSize)
    d.dispLo = v
    d.dispHi = v >> 31
  }
}

const operand = (d: DecodedInstruction, kind: number, reg: number, size: number): void => {
  const i = d.operandCount
  if (i >= 4) return
  d.operandKind[i] = kind
  d.operandReg[i] = reg
  d.operandSize[i] = size
  d.operandCount = i + 1
}

/** The ModRM r/m operand at size `size` (memory or register). */
const rmOperand = (d: DecodedInstruction, size: number): void => {
  if (d.hasMem) operand(d, OperandKind.MEM, -1, size)
  else if (size === 1) {
    d.rm = byteReg(d, d.rm)
    operand(d, d.rm >= 16 ? OperandKind.GPR8_HIGH : OperandKind.GPR, d.rm, 1)
  } else operand(d, OperandKind.GPR, d.rm, size)
}
const regOperand = (d: DecodedInstruction, size: number): void => {
  if (size === 1) {
    d.reg = byteReg(d, d.reg)
    operand(d, d.reg >= 16 ? OperandKind.GPR8_HIGH : OperandKind.GPR, d.reg, 1)
  } else operand(d, OperandKind.GPR, d.reg, size)
}
const fixedReg = (d: DecodedInstruction, r: number, size: number): void => operand(d, OperandKind.GPR, r, size)
const immOperand = (d: DecodedInstruction, size: number): void => operand(d, OperandKind.IMM, -1, size)

const set = (d: DecodedInstruction, op: number, mnemonic: string, sub = 0): void => {
  d.op = op
  d.mnemonic = mnemonic
  d.sub = sub
  d.valid = true
}

/** Instructions that accept LOCK (with a memory destination). */
const lockOk = (d: DecodedInstruction): boolean => d.hasMem

const finishLock = (d: DecodedInstruction, lockable: boolean): void => {
  if (d.lock && !(lockable && lockOk(d))) d.valid = false
}

/** 64-bit default operand size (PUSH/POP/near branches): 66 selects 16, REX.W is redundant. */
const osz64 = (d: DecodedInstruction): number => (d.opsizePrefix && (d.rex & 8) === 0 ? 2 : 8)

const decodeOneByte = (c: Ctx, d: DecodedInstruction): void => {
  const b = d.opcode
  const osz = d.osz
  if (b < 0x40) {
    const low = b & 7
    const group = b >> 3
    if (low < 6) {
      const size = (low & 1) === 0 ? 1 : osz
      switch (low) {
        case 0:
        case 1:
          modrm(c, d)
          set(d, Op.ALU_RM_R, ALU_NAMES[group]!, group)
          d.osz = size
          rmOperand(d, size)
          regOperand(d, size)
          specialiseAluRR(d)
          finishLock(d, group !== 7)
          return
        case 2:
        case 3:
          modrm(c, d)
          set(d, Op.ALU_R_RM, ALU_NAMES[group]!, group)
          d.osz = size
          regOperand(d, size)
          rmOperand(d, size)
          finishLock(d, false)
          return
        default:
          imm(c, d, size === 8 ? 4 : size)
          set(d, Op.ALU_RM_I, ALU_NAMES[group]!, group)
          d.osz = size
          d.rm = 0
          fixedReg(d, 0, size)
          immOperand(d, size)
          finishLock(d, false)
          return
      }
    }
    return // 06 07 0E 16 17 1E 1F 27 2F 37 3F: invalid in 64-bit mode (prefix bytes never reach here)
  }
  if (b >= 0x50 && b <= 0x57) {
    set(d, Op.PUSH_R, "push")
    d.osz = osz64(d)
    d.reg = (b & 7) | ((d.rex & 1) << 3)
    fixedReg(d, d.reg, d.osz)
    return finishLock(d, false)
  }
  if (b >= 0x58 && b <= 0x5f) {
    set(d, Op.POP_R, "pop")
    d.osz = osz64(d)
    d.reg = (b & 7) | ((d.rex & 1) << 3)
    fixedReg(d, d.reg, d.osz)
    return finishLock(d, false)
  }
  if (b >= 0x70 && b <= 0x7f) {
    imm(c, d, 1)
    set(d, Op.JCC, JCC_MNEMONICS[b & 15]!, b & 15)
    d.osz = 8
    operand(d, OperandKind.REL, -1, 8)
    if ((b & 15) === 5) d.op = Op.JNZ
    else if ((b & 15) === 4) d.op = Op.JZ
    return finishLock(d, false)
  }
  if (b >= 0x91 && b <= 0x97) {
    set(d, Op.XCHG, "xchg")
    d.rm = (b & 7) | ((d.rex & 1) << 3)
    d.reg = 0
    fixedReg(d, d.rm, osz)
    fixedReg(d, 0, osz)
    return finishLock(d, false)
  }
  if (b >= 0xb0 && b <= 0xb7) {
    immU(c, d, 1)
    set(d, Op.MOV_R_I, "mov")
    d.osz = 1
    d.reg = byteReg(d, (b & 7) | ((d.rex & 1) << 3))
    operand(d, d.reg >= 16 ? OperandKind.GPR8_HIGH : OperandKind.GPR, d.reg, 1)
    immOperand(d, 1)
    return finishLock(d, false)
  }
  if (b >= 0xb8 && b <= 0xbf) {
    if (osz === 8) {
      const lo = readImm(c, d, 4)
      const hi = readImm(c, d, 4)
      d.immLo = lo
      d.immHi = hi
    } else immU(c, d, osz)
    set(d, Op.MOV_R_I, osz === 8 ? "movabs" : "mov")
    // 32- and 64-bit forms: immHi is 0 or the immediate's high half, so the move is two stores.
    if (osz >= 4) d.op = Op.MOV_RI
    d.reg = (b & 7) | ((d.rex & 1) << 3)
    fixedReg(d, d.reg, osz)
    immOperand(d, osz)
    return finishLock(d, false)
  }
  if (b >= 0xc8 && b <= 0xcf && b !== 0xc8 && b !== 0xc9 && b !== 0xcc && b !== 0xcd && b !== 0xcf) {
    // CA/CB far RET, CE INTO (invalid in 64-bit)
    if (b === 0xca) {
      immU(c, d, 2)
      return
    }
    return
  }
  switch (b) {
    case 0x63:
      modrm(c, d)
      set(d, Op.MOVSXD, "movsxd")
      regOperand(d, osz)
      rmOperand(d, 4)
      return finishLock(d, false)
    case 0x68:
      imm(c, d, d.opsizePrefix && (d.rex & 8) === 0 ? 2 : 4)
      set(d, Op.PUSH_I, "push")
      d.osz = osz64(d)
      immOperand(d, d.osz)
      return finishLock(d, false)
    case 0x6a:
      imm(c, d, 1)
      set(d, Op.PUSH_I, "push")
      d.osz = osz64(d)
      immOperand(d, d.osz)
      return finishLock(d, false)
    case 0x69:
    case 0x6b:
      modrm(c, d)
      imm(c, d, b === 0x6b ? 1 : osz === 8 ? 4 : osz)
      set(d, Op.IMUL3, "imul")
      regOperand(d, osz)
      rmOperand(d, osz)
      immOperand(d, osz)
      return finishLock(d, false)
    case 0x6c:
    case 0x6d:
      set(d, Op.INS, b === 0x6c ? "insb" : osz === 2 ? "insw" : "insd")
      d.osz = b === 0x6c ? 1 : osz === 8 ? 4 : osz
      return finishLock(d, false)
    case 0x6e:
    case 0x6f:
      set(d, Op.OUTS, b === 0x6e ? "outsb" : osz === 2 ? "outsw" : "outsd")
      d.osz = b === 0x6e ? 1 : osz === 8 ? 4 : osz
      return finishLock(d, false)
    case 0x80:
    case 0x81:
    case 0x83: {
      modrm(c, d)
      const size = b === 0x80 ? 1 : osz
      imm(c, d, b === 0x81 ? (size === 8 ? 4 : size) : 1)
      if (b === 0x80) d.immLo &= 0xff
      const group = (d.modrm >> 3) & 7
      set(d, Op.ALU_RM_I, ALU_NAMES[group]!, group)
      d.osz = size
      rmOperand(d, size)
      immOperand(d, size)
      if (!d.hasMem && size === 8 && group === 0) d.op = Op.ADD_RI64
      if (!d.hasMem && size === 8 && group === 7) d.op = Op.CMP_RI64
      return finishLock(d, group !== 7)
    }
    case 0x84:
    case 0x85: {
      modrm(c, d)
      const size = b === 0x84 ? 1 : osz
      set(d, Op.TEST_RM_R, "test")
      d.osz = size
      rmOperand(d, size)
      regOperand(d, size)
      return finishLock(d, false)
    }
    case 0x86:
    case 0x87: {
      modrm(c, d)
      const size = b === 0x86 ? 1 : osz
      set(d, Op.XCHG, "xchg")
      d.osz = size
      rmOperand(d, size)
      regOperand(d, size)
      return finishLock(d, true)
    }
    case 0x88:
    case 0x89: {
      modrm(c, d)
      const size = b === 0x88 ? 1 : osz
      set(d, Op.MOV_RM_R, "mov")
      d.osz = size
      rmOperand(d, size)
      regOperand(d, size)
      if (size === 8 && !d.hasMem) d.op = Op.MOV_RR64
      else if (size === 4 && !d.hasMem) d.op = Op.MOV_RR32
      return finishLock(d, false)
    }
    case 0x8a:
    case 0x8b: {
      modrm(c, d)
      const size = b === 0x8a ? 1 : osz
      set(d, Op.MOV_R_RM, "mov")
      d.osz = size
      regOperand(d, size)
      rmOperand(d, size)
      if ((size === 8 || size === 4) && !d.hasMem) {
        // mov r, r/m as a register move: swap roles so MOV_RR64/MOV_RR32 copy rm <- reg.
        const t = d.reg
        d.reg = d.rm
        d.rm = t
        d.op = size === 8 ? Op.MOV_RR64 : Op.MOV_RR32
      }
      return finishLock(d, false)
    }
    case 0x8c:
      modrm(c, d)
      set(d, Op.MOV_FROM_SREG, "mov")
      d.reg &= 7
      if (d.reg > 5) d.valid = false
      if (d.hasMem) d.osz = 2
      rmOperand(d, d.hasMem ? 2 : osz)
      operand(d, OperandKind.SEG, d.reg, 2)
      return finishLock(d, false)
    case 0x8d:
      modrm(c, d)
      set(d, Op.LEA, "lea")
      regOperand(d, osz)
      rmOperand(d, 0)
      if (!d.hasMem) d.valid = false
      return finishLock(d, false)
    case 0x8e:
      modrm(c, d)
      set(d, Op.MOV_TO_SREG, "mov")
      d.reg &= 7
      if (d.reg > 5 || d.reg === 1) d.valid = false
      operand(d, OperandKind.SEG, d.reg, 2)
      rmOperand(d, d.hasMem ? 2 : osz === 8 ? 8 : 4)
      d.osz = 2
      return finishLock(d, false)
    case 0x8f:
      modrm(c, d)
      set(d, Op.POP_RM, "pop")
      d.osz = osz64(d)
      rmOperand(d, d.osz)
      if (((d.modrm >> 3) & 7) !== 0) d.valid = false
      return finishLock(d, false)
    case 0x90:
      if ((d.rex & 1) !== 0) {
        set(d, Op.XCHG, "xchg")
        d.rm = 8
        d.reg = 0
        fixedReg(d, 8, osz)
        fixedReg(d, 0, osz)
      } else if (d.rep === 1) set(d, Op.PAUSE, "pause")
      else set(d, Op.NOP, "nop")
      return finishLock(d, false)
    case 0x98:
      set(d, Op.CONVERT_A, osz === 2 ? "cbw" : osz === 4 ? "cwde" : "cdqe")
      return finishLock(d, false)
    case 0x99:
      set(d, Op.CONVERT_D, osz === 2 ? "cwd" : osz === 4 ? "cdq" : "cqo")
      return finishLock(d, false)
    case 0x9b: // FWAIT: no x87 here
      return
    case 0x9c:
      set(d, Op.PUSHF, d.osz === 2 && (d.rex & 8) === 0 ? "pushfw" : "pushfq")
      d.osz = osz64(d)
      return finishLock(d, false)
    case 0x9d:
      set(d, Op.POPF, d.osz === 2 && (d.rex & 8) === 0 ? "popfw" : "popfq")
      d.osz = osz64(d)
      return finishLock(d, false)
    case 0x9e:
      set(d, Op.SAHF, "sahf")
      return finishLock(d, false)
    case 0x9f:
      set(d, Op.LAHF, "lahf")
      return finishLock(d, false)
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3: {
      const size = (b & 1) === 0 ? 1 : osz
      const lo = readImm(c, d, 4)
      const hi = d.asz === 8 ? readImm(c, d, 4) : 0
      d.dispLo = lo
      d.dispHi = hi
      d.hasMem = true
      d.base = NO_REG
      d.index = NO_REG
      set(d, b < 0xa2 ? Op.MOV_MOFFS_LOAD : Op.MOV_MOFFS_STORE, "mov")
      d.osz = size
      if (b < 0xa2) {
        fixedReg(d, 0, size)
        operand(d, OperandKind.MEM, -1, size)
      } else {
        operand(d, OperandKind.MEM, -1, size)
        fixedReg(d, 0, size)
      }
      return finishLock(d, false)
    }
    case 0xa4:
    case 0xa5:
      return string(d, b, Op.MOVS, "movs")
    case 0xa6:
    case 0xa7:
      return string(d, b, Op.CMPS, "cmps")
    case 0xa8:
    case 0xa9: {
      const size = b === 0xa8 ? 1 : osz
      imm(c, d, size === 8 ? 4 : size)
      set(d, Op.TEST_RM_I, "test")
      d.osz = size
      d.rm = 0
      fixedReg(d, 0, size)
      immOperand(d, size)
      return finishLock(d, false)
    }
    case 0xaa:
    case 0xab:
      return string(d, b, Op.STOS, "stos")
    case 0xac:
    case 0xad:
      return string(d, b, Op.LODS, "lods")
    case 0xae:
    case 0xaf:
      return string(d, b, Op.SCAS, "scas")
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      modrm(c, d)
      const size = (b & 1) === 0 ? 1 : osz
      // sub: operation in bits 2:0, count kind in bits 4:3 (0 imm8, 1 one, 2 CL)
      let countKind = 0
      if (b <= 0xc1) immU(c, d, 1)
      else if (b <= 0xd1) countKind = 1
      else countKind = 2
      const opn = (d.modrm >> 3) & 7
      set(d, Op.SHIFT, SHIFT_NAMES[opn]!, opn | (countKind << 3))
      d.osz = size
      rmOperand(d, size)
      if (countKind === 0) immOperand(d, 1)
      else if (countKind === 1) operand(d, OperandKind.IMM, -2, 1)
      else fixedReg(d, 1, 1)
      return finishLock(d, false)
    }
    case 0xc2:
      immU(c, d, 2)
      set(d, Op.RET, "ret", 1)
      d.osz = 8
      immOperand(d, 2)
      return finishLock(d, false)
    case 0xc3:
      set(d, Op.RET, "ret", 0)
      d.osz = 8
      return finishLock(d, false)
    case 0xc6:
    case 0xc7: {
      modrm(c, d)
      const size = b === 0xc6 ? 1 : osz
      imm(c, d, size === 8 ? 4 : size)
      if (size === 1) d.immLo &= 0xff
      set(d, Op.MOV_RM_I, "mov")
      d.osz = size
      rmOperand(d, size)
      immOperand(d, size)
      if (((d.modrm >> 3) & 7) !== 0) d.valid = false // XABORT/XBEGIN (C6 F8 / C7 F8) are TSX: not here
      return finishLock(d, false)
    }
    case 0xc8: {
      immU(c, d, 2)
      const level = readImm(c, d, 1) & 0xff
      d.imm2 = level
      set(d, Op.ENTER, "enter")
      d.osz = osz64(d)
      immOperand(d, 2)
      operand(d, OperandKind.IMM, -3, 1)
      return finishLock(d, false)
    }
    case 0xc9:
      set(d, Op.LEAVE, "leave")
      d.osz = osz64(d)
      return finishLock(d, false)
    case 0xcc:
      set(d, Op.INT3, "int3")
      return finishLock(d, false)
    case 0xcd:
      immU(c, d, 1)
      set(d, Op.INT, "int")
      immOperand(d, 1)
      return finishLock(d, false)
    case 0xcf:
      set(d, Op.IRET, osz === 8 ? "iretq" : osz === 2 ? "iretw" : "iretd")
      return finishLock(d, false)
    case 0xd7:
      set(d, Op.XLAT, "xlatb")
      return finishLock(d, false)
    case 0xd8:
    case 0xd9:
    case 0xda:
    case 0xdb:
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
      modrm(c, d) // x87: not simulated (#UD... real CPUs with CR0.EM=1 raise #NM; length is right)
      return
    case 0xe0:
    case 0xe1:
    case 0xe2:
      imm(c, d, 1)
      set(d, Op.LOOP, b === 0xe0 ? "loopne" : b === 0xe1 ? "loope" : "loop", b - 0xe0)
      operand(d, OperandKind.REL, -1, 8)
      return finishLock(d, false)
    case 0xe3:
      imm(c, d, 1)
      set(d, Op.JRCXZ, d.asz === 8 ? "jrcxz" : "jecxz")
      operand(d, OperandKind.REL, -1, 8)
      return finishLock(d, false)
    case 0xe4:
    case 0xe5:
    case 0xe6:
    case 0xe7: {
      immU(c, d, 1)
      const size = (b & 1) === 0 ? 1 : osz === 2 ? 2 : 4
      set(d, b < 0xe6 ? Op.IN : Op.OUT, b < 0xe6 ? "in" : "out", 0)
      d.osz = size
      if (b < 0xe6) {
        fixedReg(d, 0, size)
        immOperand(d, 1)
      } else {
        immOperand(d, 1)
        fixedReg(d, 0, size)
      }
      return finishLock(d, false)
    }
    case 0xe8:
      imm(c, d, 4)
      set(d, Op.CALL_REL, "call")
      d.osz = 8
      operand(d, OperandKind.REL, -1, 8)
      return finishLock(d, false)
    case 0xe9:
      imm(c, d, 4)
      set(d, Op.JMP_REL, "jmp")
      d.osz = 8
      operand(d, OperandKind.REL, -1, 8)
      return finishLock(d, false)
    case 0xeb:
      imm(c, d, 1)
      set(d, Op.JMP_REL, "jmp")
      d.osz = 8
      operand(d, OperandKind.REL, -1, 8)
      return finishLock(d, false)
    case 0xec:
    case 0xed:
    case 0xee:
    case 0xef: {
      const size = (b & 1) === 0 ? 1 : osz === 2 ? 2 : 4
      set(d, b < 0xee ? Op.IN : Op.OUT, b < 0xee ? "in" : "out", 1)
      d.osz = size
      if (b < 0xee) {
        fixedReg(d, 0, size)
        fixedReg(d, 2, 2)
      } else {
        fixedReg(d, 2, 2)
        fixedReg(d, 0, size)
      }
      return finishLock(d, false)
    }
    case 0xf1:
      set(d, Op.INT1, "int1")
      return finishLock(d, false)
    case 0xf4:
      set(d, Op.HLT, "hlt")
      return finishLock(d, false)
    case 0xf5:
      set(d, Op.FLAGOP, "cmc", 2)
      return finishLock(d, false)
    case 0xf6:
    case 0xf7: {
      modrm(c, d)
      const size = b === 0xf6 ? 1 : osz
      const opn = (d.modrm >> 3) & 7
      d.osz = size
      switch (opn) {
        case 0:
        case 1:
          imm(c, d, size === 8 ? 4 : size)
          set(d, Op.TEST_RM_I, "test")
          rmOperand(d, size)
          immOperand(d, size)
          return finishLock(d, false)
        case 2:
          set(d, Op.NOT, "not")
          rmOperand(d, size)
          return finishLock(d, true)
        case 3:
          set(d, Op.NEG, "neg")
          rmOperand(d, size)
          return finishLock(d, true)
        case 4:
          set(d, Op.MUL, "mul")
          break
        case 5:
          set(d, Op.IMUL1, "imul")
          break
        case 6:
          set(d, Op.DIV, "div")
          break
        default:
          set(d, Op.IDIV, "idiv")
          break
      }
      rmOperand(d, size)
      return finishLock(d, false)
    }
    case 0xf8:
      set(d, Op.FLAGOP, "clc", 0)
      return finishLock(d, false)
    case 0xf9:
      set(d, Op.FLAGOP, "stc", 1)
      return finishLock(d, false)
    case 0xfa:
      set(d, Op.CLI, "cli")
      return finishLock(d, false)
    case 0xfb:
      set(d, Op.STI, "sti")
      return finishLock(d, false)
    case 0xfc:
      set(d, Op.FLAGOP, "cld", 3)
      return finishLock(d, false)
    case 0xfd:
      set(d, Op.FLAGOP, "std", 4)
      return finishLock(d, false)
    case 0xfe:
    case 0xff: {
      modrm(c, d)
      const opn = (d.modrm >> 3) & 7
      if (b === 0xfe && opn > 1) return
      const size = b === 0xfe ? 1 : osz
      d.osz = size
      switch (opn) {
        case 0:
          set(d, Op.INC, "inc")
          rmOperand(d, size)
          if (size === 8 && !d.hasMem) d.op = Op.INC_R64
          return finishLock(d, true)
        case 1:
          set(d, Op.DEC, "dec")
          rmOperand(d, size)
          if (size === 8 && !d.hasMem) d.op = Op.DEC_R64
          return finishLock(d, true)
        case 2:
          set(d, Op.CALL_RM, "call")
          d.osz = 8
          rmOperand(d, 8)
          return finishLock(d, false)
        case 3: // far call: not in this simulator
          if (!d.hasMem) return
          return
        case 4:
          set(d, Op.JMP_RM, "jmp")
          d.osz = 8
          rmOperand(d, 8)
          return finishLock(d, false)
        case 5:
          return // far jmp
        case 6:
          set(d, Op.PUSH_RM, "push")
          d.osz = osz64(d)
          rmOperand(d, d.osz)
          return finishLock(d, false)
        default:
          return
      }
    }
    default:
      // Remaining one-byte opcodes: length only (#UD). 62 (EVEX) and C4/C5 (VEX) need their own length rules.
      if (b === 0x62 || b === 0xc4 || b === 0xc5) return vexLength(c, d, b)
      if (ONE_BYTE_MODRM[b] === 1) modrm(c, d)
      return
  }
}

const string = (d: DecodedInstruction, b: number, op: number, base: string): void => {
  const size = (b & 1) === 0 ? 1 : d.osz
  set(d, op, base + (size === 1 ? "b" : size === 2 ? "w" : size === 4 ? "d" : "q"))
  d.osz = size
  finishLock(d, false)
}

/** Register-register 64-bit ALU forms get their own handlers (the hot loop's staples). */
const specialiseAluRR = (d: DecodedInstruction): void => {
  if (d.hasMem) return
  if (d.osz === 8) {
    if (d.sub === 0) d.op = Op.ADD_RR64
    else if (d.sub === 5) d.op = Op.SUB_RR64
    else if (d.sub === 6) d.op = Op.XOR_RR64
    else if (d.sub === 7) d.op = Op.CMP_RR64
  } else if (d.osz === 4 && d.sub === 6) d.op = Op.XOR_RR32
}

/** VEX (C4/C5), EVEX (62) and XOP: length only; this core implements none of them (#UD). */
const vexLength = (c: Ctx, d: DecodedInstruction, b: number): void => {
  d.map = 4
  let mapSelect = 1
  if (b === 0xc5) {
    if (next(c, d) < 0) return
  } else if (b === 0xc4) {
    const p1 = next(c, d)
    if (p1 < 0) return
    mapSelect = p1 & 0x1f
    if (next(c, d) < 0) return
  } else {
    const p1 = next(c, d)
    if (p1 < 0) return
    mapSelect = p1 & 7
    if (next(c, d) < 0 || next(c, d) < 0) return
  }
  const opc = next(c, d)
  if (opc < 0) return
  d.opcode = opc
  if (!(mapSelect === 1 && opc === 0x77)) modrm(c, d)
  if (mapSelect === 3 || (mapSelect === 1 && TWO_BYTE_IMM8[opc] === 1)) readImm(c, d, 1)
}

const decodeTwoByte = (c: Ctx, d: DecodedInstruction): void => {
  const b = d.opcode
  const osz = d.osz
  if (b >= 0x80 && b <= 0x8f) {
    imm(c, d, 4)
    set(d, Op.JCC, JCC_MNEMONICS[b & 15]!, b & 15)
    d.osz = 8
    operand(d, OperandKind.REL, -1, 8)
    if ((b & 15) === 5) d.op = Op.JNZ
    else if ((b & 15) === 4) d.op = Op.JZ
    return finishLock(d, false)
  }
  if (b >= 0x90 && b <= 0x9f) {
    modrm(c, d)
    set(d, Op.SETCC, SETCC_MNEMONICS[b & 15]!, b & 15)
    d.osz = 1
    rmOperand(d, 1)
    return finishLock(d, false)
  }
  if (b >= 0x40 && b <= 0x4f) {
    modrm(c, d)
    set(d, Op.CMOVCC, CMOVCC_MNEMONICS[b & 15]!, b & 15)
    regOperand(d, osz)
    rmOperand(d, osz)
    return finishLock(d, false)
  }
  if (b >= 0xc8 && b <= 0xcf) {
    set(d, Op.BSWAP, "bswap")
    d.reg = (b & 7) | ((d.rex & 1) << 3)
    fixedReg(d, d.reg, osz)
    return finishLock(d, false)
  }
  switch (b) {
    case 0x00: {
      modrm(c, d)
      const opn = (d.modrm >> 3) & 7
      d.osz = 2
      switch (opn) {
        case 0:
          set(d, Op.SLDT, "sldt")
          break
        case 1:
          set(d, Op.STR, "str")
          break
        case 2:
          set(d, Op.LLDT, "lldt")
          break
        case 3:
          set(d, Op.LTR, "ltr")
          break
        default:
          return // VERR/VERW not simulated
      }
      rmOperand(d, d.hasMem ? 2 : osz === 8 ? 8 : osz)
      return finishLock(d, false)
    }
    case 0x01:
      return decodeGroup7(c, d)
    case 0x05:
      set(d, Op.SYSCALL, "syscall")
      return finishLock(d, false)
    case 0x06:
      set(d, Op.CLTS, "clts")
      return finishLock(d, false)
    case 0x07:
      set(d, Op.SYSRET, (d.rex & 8) !== 0 ? "sysretq" : "sysretd")
      return finishLock(d, false)
    case 0x08:
      set(d, Op.INVD, "invd")
      return finishLock(d, false)
    case 0x09:
      set(d, Op.WBINVD, d.rep === 1 ? "wbnoinvd" : "wbinvd")
      return finishLock(d, false)
    case 0x0b:
      set(d, Op.UD2, "ud2")
      return finishLock(d, false)
    case 0x0d:
    case 0x18:
    case 0x19:
    case 0x1a:
    case 0x1b:
    case 0x1c:
    case 0x1d:
    case 0x1f:
      modrm(c, d)
      set(d, Op.NOP, "nop")
      rmOperand(d, osz)
      return finishLock(d, false)
    case 0x1e:
      modrm(c, d)
      if (d.rep === 1 && d.modrm === 0xfa) {
        set(d, Op.ENDBR, "endbr64")
        d.operandCount = 0
        return finishLock(d, false)
      }
      set(d, Op.NOP, "nop")
      rmOperand(d, osz)
      return finishLock(d, false)
    case 0x20:
    case 0x21:
    case 0x22:
    case 0x23: {
      // MOV to/from CR/DR ignores ModRM.mod: always register operands, never SIB/displacement.
      const m = next(c, d)
      if (m < 0) return
      d.hasModrm = true
      d.modrm = m
      d.reg = ((m >> 3) & 7) | ((d.rex & 4) << 1)
      d.hasMem = false
      d.base = NO_REG
      d.index = NO_REG
      d.rm = (d.modrm & 7) | ((d.rex & 1) << 3)
      d.osz = 8
      const isCr = b === 0x20 || b === 0x22
      const toReg = b === 0x20 || b === 0x21
      set(d, isCr ? (toReg ? Op.MOV_FROM_CR : Op.MOV_TO_CR) : toReg ? Op.MOV_FROM_DR : Op.MOV_TO_DR, "mov")
      if (isCr) {
        if (!(d.reg === 0 || d.reg === 2 || d.reg === 3 || d.reg === 4 || d.reg === 8)) d.valid = false
      } else if (d.reg > 7) d.valid = false
      if (toReg) {
        fixedReg(d, d.rm, 8)
        operand(d, isCr ? OperandKind.CR : OperandKind.DR, d.reg, 8)
      } else {
        operand(d, isCr ? OperandKind.CR : OperandKind.DR, d.reg, 8)
        fixedReg(d, d.rm, 8)
      }
      return finishLock(d, false)
    }
    case 0x30:
      set(d, Op.WRMSR, "wrmsr")
      return finishLock(d, false)
    case 0x31:
      set(d, Op.RDTSC, "rdtsc")
      return finishLock(d, false)
    case 0x32:
      set(d, Op.RDMSR, "rdmsr")
      return finishLock(d, false)
    case 0x33:
      set(d, Op.RDPMC, "rdpmc")
      return finishLock(d, false)
    case 0x78:
    case 0x79:
      modrm(c, d)
      if (d.opsizePrefix || d.rep !== 0) return
      set(d, Op.VMX, b === 0x78 ? "vmread" : "vmwrite", b === 0x78 ? 23 : 25)
      d.osz = 8
      if (b === 0x78) {
        rmOperand(d, 8)
        regOperand(d, 8)
      } else {
        regOperand(d, 8)
        rmOperand(d, 8)
      }
      return finishLock(d, false)
    case 0xa0:
    case 0xa8:
      set(d, Op.PUSH_SEG, "push", b === 0xa0 ? 4 : 5)
      d.osz = osz64(d)
      operand(d, OperandKind.SEG, b === 0xa0 ? 4 : 5, 2)
      return finishLock(d, false)
    case 0xa1:
    case 0xa9:
      set(d, Op.POP_SEG, "pop", b === 0xa1 ? 4 : 5)
      d.osz = osz64(d)
      operand(d, OperandKind.SEG, b === 0xa1 ? 4 : 5, 2)
      return finishLock(d, false)
    case 0xa2:
      set(d, Op.CPUID, "cpuid")
      return finishLock(d, false)
    case 0xa3:
    case 0xab:
    case 0xb3:
    case 0xbb: {
      modrm(c, d)
      const opn = (b >> 3) & 3
      set(d, Op.BT, BT_NAMES[opn]!, opn)
      rmOperand(d, osz)
      regOperand(d, osz)
      return finishLock(d, opn !== 0)
    }
    case 0xba: {
      modrm(c, d)
      immU(c, d, 1)
      const opn = (d.modrm >> 3) & 7
      if (opn < 4) return
      set(d, Op.BT, BT_NAMES[opn - 4]!, (opn - 4) | 4)
      rmOperand(d, osz)
      immOperand(d, 1)
      return finishLock(d, opn !== 4)
    }
    case 0xa4:
    case 0xa5:
    case 0xac:
    case 0xad: {
      modrm(c, d)
      const byImm = (b & 1) === 0
      if (byImm) immU(c, d, 1)
      set(d, b < 0xa8 ? Op.SHLD : Op.SHRD, b < 0xa8 ? "shld" : "shrd", byImm ? 0 : 1)
      rmOperand(d, osz)
      regOperand(d, osz)
      if (byImm) immOperand(d, 1)
      else fixedReg(d, 1, 1)
      return finishLock(d, false)
    }
    case 0xae: {
      // Group 15: only the fences are simulated (register forms of /5 /6 /7 without 66/F2/F3);
      // they serialize memory ordering, which a one-core in-order interpreter already has: NOP.
      modrm(c, d)
      const opn = (d.modrm >> 3) & 7
      if ((d.modrm & 0xc0) !== 0xc0 || opn < 5 || d.opsizePrefix || d.rep !== 0) return
      set(d, Op.NOP, opn === 5 ? "lfence" : opn === 6 ? "mfence" : "sfence")
      return finishLock(d, false)
    }
    case 0xaf:
      modrm(c, d)
      set(d, Op.IMUL2, "imul")
      regOperand(d, osz)
      rmOperand(d, osz)
      return finishLock(d, false)
    case 0xb0:
    case 0xb1: {
      modrm(c, d)
      const size = b === 0xb0 ? 1 : osz
      set(d, Op.CMPXCHG, "cmpxchg")
      d.osz = size
      rmOperand(d, size)
      regOperand(d, size)
      return finishLock(d, true)
    }
    case 0xb6:
    case 0xb7:
    case 0xbe:
    case 0xbf: {
      modrm(c, d)
      const srcSize = (b & 1) === 0 ? 1 : 2
      set(d, b < 0xb8 ? Op.MOVZX : Op.MOVSX, b < 0xb8 ? "movzx" : "movsx", srcSize)
      regOperand(d, osz)
      rmOperand(d, srcSize)
      return finishLock(d, false)
    }
    case 0xb8:
      modrm(c, d)
      if (d.rep !== 1) return // JMPE is IA-64 only
      set(d, Op.POPCNT, "popcnt")
      regOperand(d, osz)
      rmOperand(d, osz)
      return finishLock(d, false)
    case 0xbc:
    case 0xbd: {
      modrm(c, d)
      if (d.rep === 1) set(d, b === 0xbc ? Op.TZCNT : Op.LZCNT, b === 0xbc ? "tzcnt" : "lzcnt")
      else set(d, b === 0xbc ? Op.BSF : Op.BSR, b === 0xbc ? "bsf" : "bsr")
      regOperand(d, osz)
      rmOperand(d, osz)
      return finishLock(d, false)
    }
    case 0xc0:
    case 0xc1: {
      modrm(c, d)
      const size = b === 0xc0 ? 1 : osz
      set(d, Op.XADD, "xadd")
      d.osz = size
      rmOperand(d, size)
      regOperand(d, size)
      return finishLock(d, true)
    }
    case 0xc7: {
      modrm(c, d)
      const opn = (d.modrm >> 3) & 7
      if (opn === 1 && d.hasMem) {
        set(d, Op.CMPXCHG8B, (d.rex & 8) !== 0 ? "cmpxchg16b" : "cmpxchg8b")
        d.osz = (d.rex & 8) !== 0 ? 16 : 8
        rmOperand(d, d.osz)
        return finishLock(d, true)
      }
      if (d.hasMem && !d.opsizePrefix && d.rep === 0 && (opn === 6 || opn === 7)) {
        set(d, Op.VMX, opn === 6 ? "vmptrld" : "vmptrst", opn === 6 ? 21 : 22)
        rmOperand(d, 8)
        return finishLock(d, false)
      }
      if (d.hasMem && opn === 6 && d.opsizePrefix && d.rep === 0) {
        set(d, Op.VMX, "vmclear", 19)
        rmOperand(d, 8)
        return finishLock(d, false)
      }
      if (d.hasMem && opn === 6 && d.rep === 1 && !d.opsizePrefix) {
        set(d, Op.VMX, "vmxon", 27)
        rmOperand(d, 8)
        return finishLock(d, false)
      }
      return
    }
    default:
      if (TWO_BYTE_NO_MODRM[b] !== 1) modrm(c, d)
      if (TWO_BYTE_IMM8[b] === 1) readImm(c, d, 1)
      return
  }
}

const decodeGroup7 = (c: Ctx, d: DecodedInstruction): void => {
  modrm(c, d)
  if (d.truncated) return
  const opn = (d.modrm >> 3) & 7
  if (d.hasMem) {
    switch (opn) {
      case 0:
        set(d, Op.SGDT, "sgdt")
        break
      case 1:
        set(d, Op.SIDT, "sidt")
        break
      case 2:
        set(d, Op.LGDT, "lgdt")
        break
      case 3:
        set(d, Op.LIDT, "lidt")
        break
      case 4:
        set(d, Op.SMSW, "smsw")
        d.osz = 2
        break
      case 6:
        set(d, Op.LMSW, "lmsw")
        d.osz = 2
        break
      case 7:
        set(d, Op.INVLPG, "invlpg")
        break
      default:
        return
    }
    rmOperand(d, opn >= 4 ? (opn === 7 ? 1 : 2) : 10)
    return finishLock(d, false)
  }
  const m = d.modrm
  if (d.rep !== 0 && opn === 5) return // F3/F2 0F 01 E8-EF: CET/SERIALIZE/... forms, not simulated
  if ((d.rep !== 0 || d.opsizePrefix) && opn <= 1) return // 66/F2/F3 0F 01 C0-CF: other instructions or #UD
  switch (m) {
    case 0xc1:
      set(d, Op.VMCALL, "vmcall")
      return finishLock(d, false)
    case 0xc2:
      set(d, Op.VMX, "vmlaunch", 20)
      return finishLock(d, false)
    case 0xc3:
      set(d, Op.VMX, "vmresume", 24)
      return finishLock(d, false)
    case 0xc4:
      set(d, Op.VMX, "vmxoff", 26)
      return finishLock(d, false)
    case 0xc8:
      set(d, Op.MONITOR, "monitor")
      return finishLock(d, false)
    case 0xc9:
      set(d, Op.MWAIT, "mwait")
      return finishLock(d, false)
    case 0xca:
      set(d, Op.CLAC_STAC, "clac", 0)
      return finishLock(d, false)
    case 0xcb:
      set(d, Op.CLAC_STAC, "stac", 1)
      return finishLock(d, false)
    case 0xf8:
      set(d, Op.SWAPGS, "swapgs")
      return finishLock(d, false)
    case 0xf9:
      set(d, Op.RDTSCP, "rdtscp")
      return finishLock(d, false)
    default:
      break
  }
  if (opn === 4) {
    set(d, Op.SMSW, "smsw")
    rmOperand(d, osz2(d))
    return finishLock(d, false)
  }
  if (opn === 6) {
    set(d, Op.LMSW, "lmsw")
    d.osz = 2
    rmOperand(d, 2)
    return finishLock(d, false)
  }
}

const osz2 = (d: DecodedInstruction): number => {
  d.osz = (d.rex & 8) !== 0 ? 8 : d.opsizePrefix ? 2 : 4
  return d.osz
}

const decodeThreeByte = (c: Ctx, d: DecodedInstruction, hasImm: boolean): void => {
  // 0F38 / 0F3A: SSE4/AES/SHA/MOVBE/CRC32/... are not simulated: length only (#UD).
  modrm(c, d)
  if (hasImm) readImm(c, d, 1)
}
