import { fail } from "./errors.ts"
import type { EvalContext, Expr, Value } from "./expression.ts"
import { evaluate } from "./expression.ts"
import type { MemOperand, Operand } from "./operands.ts"
import { segmentPrefix, type Register } from "./registers.ts"

/**
 * One machine instruction described field by field (SDM vol. 2 ch. 2): prefixes, REX,
 * opcode, ModRM/SIB/displacement, immediates, relative target. `emit` lays it out.
 */
export interface Encoding {
  /** Group-1 prefixes from the source (lock, rep) and mandatory ones (pause's F3), in order. */
  readonly group1: Array<number>
  operandSize16: boolean
  /** A mandatory prefix that follows 66 (F3 of tzcnt/lzcnt/popcnt), as NASM orders them. */
  mandatory: number | undefined
  rexW: boolean
  readonly opcode: Array<number>
  /** ModRM.reg (0..15, REX.R above 7) when the instruction has a ModRM byte. */
  reg: number | undefined
  /** ModRM.rm operand: a register or memory. */
  rm: Operand | undefined
  /** Register number added to the last opcode byte (push r64, mov r, imm, bswap). */
  plusReg: number | undefined
  readonly immediates: Array<{ readonly value: Value; readonly bytes: 1 | 2 | 4 | 8; readonly column: number; readonly signed: "signed" | "unsigned" | "either" | "sign-extended" }>
  /** A relative branch target and its width. */
  relative: { readonly target: Value; readonly bytes: 1 | 4; readonly column: number } | undefined
  /** Registers that force a REX prefix (spl, bpl, sil, dil) or forbid one (ah, bh, ch, dh). */
  readonly byteRegisters: Array<Register>
}

export const newEncoding = (opcode: Array<number>): Encoding => ({
  group1: [],
  operandSize16: false,
  mandatory: undefined,
  rexW: false,
  opcode,
  reg: undefined,
  rm: undefined,
  plusReg: undefined,
  immediates: [],
  relative: undefined,
  byteRegisters: [],
})

/** The pass-dependent context one instruction is encoded in. */
export interface EncodeContext {
  /** Address of the instruction's first byte. */
  readonly address: bigint
  readonly evalContext: EvalContext
  readonly final: boolean
  /**
   * Records the size chosen in a slot this pass and returns the one to use: `desired`, or in
   * late passes max(previous, desired) so that the layout converges.
   */
  choose(slot: number, desired: number): number
}

export const evalIn = (e: Expr, ctx: EncodeContext): Value => evaluate(e, ctx.evalContext)

/** A value NASM can size from: known in this pass and not section-relative. */
export const isPlainConstant = (v: Value): boolean => v.known && v.reloc === 0

const fitsSigned = (v: bigint, bits: number): boolean => v >= -(1n << BigInt(bits - 1)) && v < 1n << BigInt(bits - 1)
const fitsEither = (v: bigint, bits: number): boolean => v >= -(1n << BigInt(bits - 1)) && v < 1n << BigInt(bits)
export const fitsInt8 = (v: bigint): boolean => fitsSigned(v, 8)

const DISP_SLOT = 1

interface AddressBytes {
  readonly modrm: number
  readonly sib: number | undefined
  readonly disp: { readonly value: bigint; readonly bytes: 0 | 1 | 4; readonly ripRelative: boolean; readonly column: number; readonly known: boolean }
  readonly rexX: number
  readonly rexB: number
  readonly prefix67: boolean
  readonly segment: number | undefined
}

const addressBytes = (m: MemOperand, reg: number, ctx: EncodeContext): AddressBytes => {
  const dispValue: Value = m.disp === undefined ? { value: 0n, known: true, reloc: 0 } : evalIn(m.disp, ctx)
  const segment = m.seg === undefined ? undefined : segmentPrefix[m.seg.num]
  const regBits = (reg & 7) << 3
  const common = { rexX: 0, rexB: 0, prefix67: m.addr32, segment }
  // NASM makes only section-relative (label) displacements RIP-relative: `[rel 0x10]` stays absolute.
  if (m.ripRelative && (!dispValue.known || dispValue.reloc !== 0)) {
    return { ...common, modrm: regBits | 5, sib: undefined, disp: { value: dispValue.value, bytes: 4, ripRelative: m.disp !== undefined, column: m.column, known: dispValue.known } }
  }
  if (m.base === undefined && m.index === undefined) {
    // Absolute [disp32]: in 64-bit mode this needs a SIB with no base and no index.
    return { ...common, modrm: regBits | 4, sib: 0x25, disp: { value: dispValue.value, bytes: 4, ripRelative: false, column: m.column, known: dispValue.known } }
  }
  // Displacement width: none when zero (except rbp/r13 bases), 8 bits when it fits, else 32.
  const baseLow = m.base === undefined ? -1 : m.base.num & 7
  let desired: number
  if (m.disp === undefined || (isPlainConstant(dispValue) && dispValue.value === 0n)) desired = baseLow === 5 ? 1 : 0
  else if (!dispValue.known || (dispValue.reloc === 0 && fitsInt8(dispValue.value))) desired = 1
  else desired = 2
  if (m.base === undefined) desired = 2
  const level = ctx.choose(DISP_SLOT, desired)
  const dispBytes: 0 | 1 | 4 = level === 0 ? 0 : level === 1 ? 1 : 4
  const mod = m.base === undefined ? 0 : level === 0 ? 0 : level === 1 ? 1 : 2
  const disp = { value: dispValue.value, bytes: dispBytes, ripRelative: false, column: m.column, known: dispValue.known }
  const rexB = m.base !== undefined && m.base.num > 7 ? 1 : 0
  if (m.index === undefined && baseLow !== 4) {
    return { ...common, rexB, modrm: (mod << 6) | regBits | baseLow, sib: undefined, disp }
  }
  const scaleBits = m.scale === 1 ? 0 : m.scale === 2 ? 1 : m.scale === 4 ? 2 : 3
  const indexBits = m.index === undefined ? 4 : m.index.num & 7
  const baseBits = m.base === undefined ? 5 : baseLow
  const rexX = m.index !== undefined && m.index.num > 7 ? 1 : 0
  return { ...common, rexX, rexB, modrm: (mod << 6) | regBits | 4, sib: (scaleBits << 6) | (indexBits << 3) | baseBits, disp }
}

const pushLittleEndian = (out: Array<number>, value: bigint, bytes: number): void => {
  let v = BigInt.asUintN(bytes * 8, value)
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn))
    v >>= 8n
  }
}

/** Lays the instruction out as bytes; range errors are reported only in the final pass. */
export const emit = (enc: Encoding, ctx: EncodeContext): Array<number> => {
  const out: Array<number> = [...enc.group1]
  let rexR = 0
  let rexX = 0
  let rexB = 0
  let modrm: number | undefined
  let sib: number | undefined
  let disp: AddressBytes["disp"] | undefined
  const regNum = enc.reg ?? 0
  if (enc.reg !== undefined && enc.reg > 7) rexR = 1
  if (enc.rm !== undefined) {
    if (enc.rm.kind === "reg") {
      modrm = 0xc0 | ((regNum & 7) << 3) | (enc.rm.reg.num & 7)
      if (enc.rm.reg.num > 7) rexB = 1
    } else if (enc.rm.kind === "mem") {
      const a = addressBytes(enc.rm, regNum, ctx)
      if (a.segment !== undefined) out.push(a.segment)
      modrm = a.modrm
      sib = a.sib
      disp = a.disp
      rexX = a.rexX
      rexB = a.rexB
      if (enc.operandSize16) out.push(0x66)
      if (a.prefix67) out.push(0x67)
    }
  }
  if (enc.operandSize16 && !(enc.rm !== undefined && enc.rm.kind === "mem")) out.push(0x66)
  if (enc.mandatory !== undefined) out.push(enc.mandatory)
  if (enc.plusReg !== undefined && enc.plusReg > 7) rexB = 1
  const forceRex = enc.byteRegisters.some((r) => r.needsRex)
  const rex = (enc.rexW ? 8 : 0) | (rexR << 2) | (rexX << 1) | rexB
  if (rex !== 0 || forceRex) {
    const high = enc.byteRegisters.find((r) => r.cls === "r8h")
    if (high !== undefined) fail(`\`${high.name}\` cannot be used in an instruction that needs a REX prefix`, "al/bl/cl/dl instead of ah/bh/ch/dh, or no r8-r15/spl/bpl/sil/dil/64-bit operand", 0, high.name)
    out.push(0x40 | rex)
  }
  const opcode = [...enc.opcode]
  if (enc.plusReg !== undefined) opcode[opcode.length - 1] = opcode[opcode.length - 1]! + (enc.plusReg & 7)
  out.push(...opcode)
  if (modrm !== undefined) out.push(modrm)
  if (sib !== undefined) out.push(sib)
  const dispAt = out.length
  if (disp !== undefined) pushLittleEndian(out, 0n, disp.bytes)
  for (const imm of enc.immediates) {
    if (ctx.final && imm.value.known) checkImmediate(imm.value.value, imm.bytes, imm.signed, imm.column)
    pushLittleEndian(out, imm.value.value, imm.bytes)
  }
  const relAt = out.length
  if (enc.relative !== undefined) pushLittleEndian(out, 0n, enc.relative.bytes)
  const end = ctx.address + BigInt(out.length)
  if (disp !== undefined && disp.bytes > 0) {
    let value = disp.value
    if (disp.ripRelative) value = disp.value - end
    if (ctx.final && disp.known) {
      const ok = disp.bytes === 1 ? fitsSigned(value, 8) : enc.rm?.kind === "mem" && enc.rm.addr32 ? fitsEither(value, 32) : fitsSigned(value, 32)
      if (!ok) fail(`displacement ${hex(value)} does not fit in ${disp.bytes * 8} bits`, disp.ripRelative ? "a RIP-relative target within ±2 GiB" : "a displacement that fits in a signed 32-bit value", disp.column)
    }
    const bytes: Array<number> = []
    pushLittleEndian(bytes, value, disp.bytes)
    out.splice(dispAt, disp.bytes, ...bytes)
  }
  if (enc.relative !== undefined) {
    const delta = enc.relative.target.value - end
    if (ctx.final && !fitsSigned(delta, enc.relative.bytes * 8)) {
      fail(`jump target is ${delta} bytes away, out of range for a ${enc.relative.bytes === 1 ? "short (8-bit)" : "32-bit"} displacement`, enc.relative.bytes === 1 ? "a target within -128..127 bytes, or drop `short`" : "a target within ±2 GiB", enc.relative.column)
    }
    const bytes: Array<number> = []
    pushLittleEndian(bytes, delta, enc.relative.bytes)
    out.splice(relAt, enc.relative.bytes, ...bytes)
  }
  return out
}

const hex = (v: bigint): string => (v < 0n ? "-0x" + (-v).toString(16) : "0x" + v.toString(16))

const checkImmediate = (v: bigint, bytes: number, signed: "signed" | "unsigned" | "either" | "sign-extended", column: number): void => {
  const bits = bytes * 8
  if (bits === 64) return
  const ok = signed === "signed" || signed === "sign-extended" ? fitsSigned(v, bits) : signed === "unsigned" ? v >= 0n && v < 1n << BigInt(bits) : fitsEither(v, bits)
  if (!ok) {
    const what = signed === "sign-extended" ? `a signed ${bits}-bit value (it is sign-extended to 64 bits)` : `a${bits === 8 ? "n" : ""} ${bits}-bit value`
    fail(`immediate ${hex(v)} does not fit in ${bits} bits`, what, column)
  }
}
