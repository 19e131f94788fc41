import { fail } from "./errors.ts"
import { emit, evalIn, fitsInt8, isPlainConstant, newEncoding, type EncodeContext, type Encoding } from "./encoding.ts"
import type { ImmOperand, MemOperand, Operand, RegOperand } from "./operands.ts"
import { sizeName } from "./operands.ts"
import { gprWidth, type Register } from "./registers.ts"

/** Prefix words written before a mnemonic. */
export interface Prefixes {
  readonly lock: boolean
  readonly rep: 0xf3 | 0xf2 | undefined
  readonly o16: boolean
  readonly o64: boolean
  readonly segment: Register | undefined
}

export interface Instruction {
  readonly mnemonic: string
  readonly mnemonicColumn: number
  readonly operands: ReadonlyArray<Operand>
  readonly prefixes: Prefixes
}

type Handler = (ins: Instruction, ctx: EncodeContext) => Encoding

const IMM_SLOT = 0
const MOV_SLOT = 2

// ---------------------------------------------------------------------------------------------
// Operand helpers

const isReg = (o: Operand | undefined): o is RegOperand => o?.kind === "reg"
const isGpr = (o: Operand | undefined): o is RegOperand => o?.kind === "reg" && gprWidth(o.reg.cls) !== undefined
const isMem = (o: Operand | undefined): o is MemOperand => o?.kind === "mem"
const isImm = (o: Operand | undefined): o is ImmOperand => o?.kind === "imm"
const isRm = (o: Operand | undefined): o is RegOperand | MemOperand => isGpr(o) || isMem(o)
const regWidth = (o: RegOperand): number => gprWidth(o.reg.cls) ?? 0
const widthOf = (o: Operand): number => (o.kind === "reg" ? regWidth(o) : o.size)

const badOperands = (ins: Instruction, forms: string): never => {
  const got = ins.operands.map((o) => (o.kind === "reg" ? o.reg.cls.replace("r8h", "r8") : o.kind === "mem" ? (o.size ? `m${o.size}` : "mem") : "imm")).join(", ")
  return fail(`invalid operands for \`${ins.mnemonic}\`${got ? ` (${got})` : " (none)"}`, forms, ins.operands[0]?.column ?? ins.mnemonicColumn, ins.mnemonic)
}

const arity = (ins: Instruction, n: number, forms: string): void => {
  if (ins.operands.length !== n) badOperands(ins, forms)
}

/** The operation size of r/m + other operand pairs; errors name the mismatch. */
const operationSize = (ins: Instruction, ...ops: Array<Operand>): number => {
  let size = 0
  for (const o of ops) {
    const w = o.kind === "imm" ? 0 : widthOf(o)
    if (w === 0) continue
    if (size !== 0 && w !== size) fail(`operand sizes do not match (${sizeName(size)} and ${sizeName(w)})`, "operands of the same size", o.column)
    size = w
  }
  if (size === 0) {
    const sized = ops.find((o) => o.kind === "imm" && o.size !== 0)
    if (sized !== undefined) size = sized.kind === "imm" ? sized.size : 0
  }
  if (size === 0) fail(`operation size not specified for \`${ins.mnemonic}\``, "a size keyword on the memory operand, e.g. `dword [rax]`", ops[0]?.column ?? ins.mnemonicColumn, ins.mnemonic)
  if (size !== 8 && size !== 16 && size !== 32 && size !== 64) fail(`${sizeName(size)} operands are not supported by \`${ins.mnemonic}\``, "byte, word, dword or qword operands", ops[0]?.column ?? ins.mnemonicColumn)
  return size
}

/** Starts an encoding: applies prefixes and the operand size (66 / REX.W). */
const start = (ins: Instruction, opcode: Array<number>, size: number): Encoding => {
  const e = newEncoding(opcode)
  if (ins.prefixes.lock) e.group1.push(0xf0)
  if (ins.prefixes.rep !== undefined) e.group1.push(ins.prefixes.rep)
  if (size === 16 || ins.prefixes.o16) e.operandSize16 = true
  if (size === 64 || ins.prefixes.o64) e.rexW = true
  return e
}

const withRm = (e: Encoding, ins: Instruction, rm: Operand, reg: number): Encoding => {
  e.rm = rm.kind === "mem" && ins.prefixes.segment !== undefined && rm.seg === undefined ? { ...rm, seg: ins.prefixes.segment } : rm
  e.reg = reg
  noteByteRegs(e, rm)
  return e
}

const noteByteRegs = (e: Encoding, ...ops: Array<Operand | Register>): void => {
  for (const o of ops) {
    const r = "kind" in o ? (o.kind === "reg" ? o.reg : undefined) : o
    if (r !== undefined && (r.cls === "r8h" || r.needsRex)) e.byteRegisters.push(r)
  }
}

const imm = (e: Encoding, ctx: EncodeContext, o: ImmOperand, bytes: 1 | 2 | 4 | 8, signed: "signed" | "unsigned" | "either" | "sign-extended"): Encoding => {
  e.immediates.push({ value: evalIn(o.expr, ctx), bytes, column: o.column, signed })
  return e
}

const immBytes = (size: number): 1 | 2 | 4 => (size === 8 ? 1 : size === 16 ? 2 : 4)
const immSign = (size: number): "either" | "sign-extended" => (size === 64 ? "sign-extended" : "either")

/** Whether an immediate may use the sign-extended 8-bit form (monotonic across passes). */
const shortImmediate = (ctx: EncodeContext, o: ImmOperand): boolean => {
  const v = evalIn(o.expr, ctx)
  if (o.size === 8) return true
  const small = !v.known || (isPlainConstant(v) && fitsInt8(v.value))
  const forcedWide = o.strict && o.size > 8
  return ctx.choose(IMM_SLOT, small && !forcedWide ? 0 : 1) === 0
}

const isAccumulator = (o: Operand): boolean => o.kind === "reg" && gprWidth(o.reg.cls) !== undefined && o.reg.num === 0 && o.reg.cls !== "r8h"

// ---------------------------------------------------------------------------------------------
// Instruction groups

const aluNumbers: Readonly<Record<string, number>> = { add: 0, or: 1, adc: 2, sbb: 3, and: 4, sub: 5, xor: 6, cmp: 7 }

const alu: Handler = (ins, ctx) => {
  const n = aluNumbers[ins.mnemonic]!
  const forms = "r/m, reg | reg, r/m | r/m, imm"
  arity(ins, 2, forms)
  const [dst, src] = ins.operands as [Operand, Operand]
  if (isRm(dst) && isGpr(src)) {
    const size = operationSize(ins, dst, src)
    return noteRegs(withRm(start(ins, [n * 8 + (size === 8 ? 0 : 1)], size), ins, dst, src.reg.num), src)
  }
  if (isGpr(dst) && isMem(src)) {
    const size = operationSize(ins, dst, src)
    return noteRegs(withRm(start(ins, [n * 8 + (size === 8 ? 2 : 3)], size), ins, src, dst.reg.num), dst)
  }
  if (isRm(dst) && isImm(src)) {
    const size = operationSize(ins, dst, src)
    if (size === 8) {
      if (isAccumulator(dst)) return imm(start(ins, [n * 8 + 4], 8), ctx, src, 1, "either")
      return imm(withRm(start(ins, [0x80], 8), ins, dst, n), ctx, src, 1, "either")
    }
    if (shortImmediate(ctx, src)) return imm(withRm(start(ins, [0x83], size), ins, dst, n), ctx, src, 1, "signed")
    if (isAccumulator(dst)) return imm(start(ins, [n * 8 + 5], size), ctx, src, immBytes(size), immSign(size))
    return imm(withRm(start(ins, [0x81], size), ins, dst, n), ctx, src, immBytes(size), immSign(size))
  }
  return badOperands(ins, forms)
}

const noteRegs = (e: Encoding, ...regs: Array<RegOperand>): Encoding => {
  noteByteRegs(e, ...regs)
  return e
}

const test: Handler = (ins, ctx) => {
  const forms = "r/m, reg | r/m, imm"
  arity(ins, 2, forms)
  let [a, b] = ins.operands as [Operand, Operand]
  if (isGpr(a) && isMem(b)) [a, b] = [b, a]
  if (isRm(a) && isGpr(b)) {
    const size = operationSize(ins, a, b)
    return noteRegs(withRm(start(ins, [size === 8 ? 0x84 : 0x85], size), ins, a, b.reg.num), b)
  }
  if (isRm(a) && isImm(b)) {
    const size = operationSize(ins, a, b)
    if (isAccumulator(a)) return imm(start(ins, [size === 8 ? 0xa8 : 0xa9], size), ctx, b, immBytes(size), immSign(size))
    return imm(withRm(start(ins, [size === 8 ? 0xf6 : 0xf7], size), ins, a, 0), ctx, b, immBytes(size), immSign(size))
  }
  return badOperands(ins, forms)
}

const mov: Handler = (ins, ctx) => {
  const forms = "r/m, reg | reg, r/m | reg, imm | r/m, imm | sreg/creg/dreg forms"
  arity(ins, 2, forms)
  const [dst, src] = ins.operands as [Operand, Operand]
  if (isRm(dst) && isGpr(src)) {
    const size = operationSize(ins, dst, src)
    return noteRegs(withRm(start(ins, [size === 8 ? 0x88 : 0x89], size), ins, dst, src.reg.num), src)
  }
  if (isGpr(dst) && isMem(src)) {
    const size = operationSize(ins, dst, src)
    return noteRegs(withRm(start(ins, [size === 8 ? 0x8a : 0x8b], size), ins, src, dst.reg.num), dst)
  }
  if (isGpr(dst) && isImm(src)) {
    const size = operationSize(ins, dst, src)
    if (size !== 64) {
      const e = noteRegs(start(ins, [size === 8 ? 0xb0 : 0xb8], size), dst)
      e.plusReg = dst.reg.num
      return imm(e, ctx, src, immBytes(size), "either")
    }
    // NASM shortens mov r64, imm: a 32-bit zero-extending mov when the constant fits in
    // 32 unsigned bits, the sign-extended C7 form when it fits in 32 signed bits, else imm64.
    // A label (relocatable) value always gets the full 64-bit immediate.
    const v = evalIn(src.expr, ctx)
    let desired = 2
    if (!(src.strict && src.size === 64)) {
      if (!v.known) desired = 0
      else if (v.reloc === 0 && v.value >= 0n && v.value <= 0xffffffffn) desired = 0
      else if (v.reloc === 0 && v.value >= -0x80000000n && v.value < 0n) desired = 1
    }
    const level = ctx.choose(MOV_SLOT, desired)
    if (level === 0) {
      const e = start({ ...ins, prefixes: { ...ins.prefixes, o64: false } }, [0xb8], 32)
      e.plusReg = dst.reg.num
      return imm(e, ctx, src, 4, "unsigned")
    }
    if (level === 1) return imm(withRm(start(ins, [0xc7], 64), ins, dst, 0), ctx, src, 4, "sign-extended")
    const e = start(ins, [0xb8], 64)
    e.plusReg = dst.reg.num
    return imm(e, ctx, src, 8, "either")
  }
  if (isMem(dst) && isImm(src)) {
    const size = operationSize(ins, dst, src)
    return imm(withRm(start(ins, [size === 8 ? 0xc6 : 0xc7], size), ins, dst, 0), ctx, src, immBytes(size), immSign(size))
  }
  // Segment registers: mov sreg, r/m16 and mov r/m, sreg.
  if (isReg(dst) && dst.reg.cls === "sreg" && isRm(src)) {
    if (isGpr(src) && regWidth(src) === 8) badOperands(ins, "mov sreg, r/m16|r32|r64")
    // NASM encodes mov sreg, r16/r32/r64 without 66 or REX.W (only the low 16 bits are used).
    const size = 0
    if (dst.reg.name === "cs") fail("`cs` cannot be loaded with mov", "a far jump or return to change cs", dst.column, "cs")
    return withRm(start(ins, [0x8e], size), ins, src, dst.reg.num)
  }
  if (isRm(dst) && isReg(src) && src.reg.cls === "sreg") {
    if (isGpr(dst) && regWidth(dst) === 8) badOperands(ins, "mov r/m16|r32|r64, sreg")
    // mov r16, sreg takes 66; r32/r64 destinations are encoded alike (NASM emits no REX.W).
    const size = isGpr(dst) && regWidth(dst) === 16 ? 16 : 0
    return withRm(start(ins, [0x8c], size), ins, dst, src.reg.num)
  }
  // Control and debug registers move to and from 64-bit general registers only.
  if (isReg(dst) && (dst.reg.cls === "cr" || dst.reg.cls === "dr") && isGpr(src)) {
    if (regWidth(src) !== 64) badOperands(ins, `mov ${dst.reg.cls}N, r64`)
    return withRm(start(ins, [0x0f, dst.reg.cls === "cr" ? 0x22 : 0x23], 0), ins, src, dst.reg.num)
  }
  if (isGpr(dst) && isReg(src) && (src.reg.cls === "cr" || src.reg.cls === "dr")) {
    if (regWidth(dst) !== 64) badOperands(ins, `mov r64, ${src.reg.cls}N`)
    return withRm(start(ins, [0x0f, src.reg.cls === "cr" ? 0x20 : 0x21], 0), ins, dst, src.reg.num)
  }
  return badOperands(ins, forms)
}

const movExtend =
  (byteOp: number, wordOp: number): Handler =>
  (ins) => {
    const forms = `reg, r/m8 | reg, r/m16${byteOp === 0xbe ? " | r64, r/m32" : ""}`
    arity(ins, 2, forms)
    const [dst, src] = ins.operands as [Operand, Operand]
    if (!isGpr(dst) || !isRm(src)) return badOperands(ins, forms)
    const d = regWidth(dst)
    const s = widthOf(src)
    if (s === 0) fail(`source size not specified for \`${ins.mnemonic}\``, "`byte [..]` or `word [..]`", src.column)
    if (byteOp === 0xbe && s === 32 && d === 64) return noteRegs(withRm(start(ins, [0x63], 64), ins, src, dst.reg.num), dst)
    if (s >= d || s > 16 || d === 8) return badOperands(ins, forms)
    return noteRegs(withRm(start(ins, [0x0f, s === 8 ? byteOp : wordOp], d), ins, src, dst.reg.num), dst)
  }

const movsxd: Handler = (ins) => {
  arity(ins, 2, "r64, r/m32")
  const [dst, src] = ins.operands as [Operand, Operand]
  if (!isGpr(dst) || regWidth(dst) !== 64 || !isRm(src) || (widthOf(src) !== 32 && widthOf(src) !== 0)) return badOperands(ins, "r64, r/m32")
  return withRm(start(ins, [0x63], 64), ins, src, dst.reg.num)
}

const lea: Handler = (ins) => {
  arity(ins, 2, "reg, mem")
  const [dst, src] = ins.operands as [Operand, Operand]
  if (!isGpr(dst) || regWidth(dst) === 8 || !isMem(src)) return badOperands(ins, "r16/r32/r64, mem")
  return withRm(start(ins, [0x8d], regWidth(dst)), ins, { ...src, size: 0 }, dst.reg.num)
}

const xchg: Handler = (ins) => {
  const forms = "reg, r/m | r/m, reg"
  arity(ins, 2, forms)
  let [a, b] = ins.operands as [Operand, Operand]
  if (isMem(a) && isGpr(b)) [a, b] = [b, a]
  if (!isGpr(a) || !isRm(b)) return badOperands(ins, forms)
  const size = operationSize(ins, a, b)
  if (size !== 8 && isGpr(b)) {
    // 90+r when one side is the accumulator; xchg eax, eax must not become nop (it zero-extends).
    const acc = isAccumulator(a) ? b : isAccumulator(b) ? a : undefined
    if (acc !== undefined && !(size === 32 && isAccumulator(a) && isAccumulator(b))) {
      const e = start(ins, [0x90], size)
      e.plusReg = acc.reg.num
      return e
    }
  }
  return noteRegs(withRm(start(ins, [size === 8 ? 0x86 : 0x87], size), ins, b, a.reg.num), a)
}

const unaryNumbers: Readonly<Record<string, [number, number]>> = {
  inc: [0xfe, 0],
  dec: [0xfe, 1],
  not: [0xf6, 2],
  neg: [0xf6, 3],
  mul: [0xf6, 4],
  div: [0xf6, 6],
  idiv: [0xf6, 7],
}

const unary: Handler = (ins) => {
  arity(ins, 1, "r/m")
  const [o] = ins.operands as [Operand]
  if (!isRm(o)) return badOperands(ins, "r/m")
  const size = operationSize(ins, o)
  const [op, digit] = unaryNumbers[ins.mnemonic]!
  return withRm(start(ins, [size === 8 ? op : op + 1], size), ins, o, digit)
}

const imul: Handler = (ins, ctx) => {
  const forms = "r/m | reg, r/m | reg, imm | reg, r/m, imm"
  const ops = ins.operands
  if (ops.length === 1 && isRm(ops[0])) {
    const size = operationSize(ins, ops[0])
    return withRm(start(ins, [size === 8 ? 0xf6 : 0xf7], size), ins, ops[0], 5)
  }
  if (ops.length === 2 && isGpr(ops[0]) && isRm(ops[1])) {
    const size = operationSize(ins, ops[0], ops[1])
    if (size === 8) return badOperands(ins, forms)
    return withRm(start(ins, [0x0f, 0xaf], size), ins, ops[1], ops[0].reg.num)
  }
  const three = ops.length === 2 && isGpr(ops[0]) && isImm(ops[1]) ? [ops[0], ops[0], ops[1]] : ops.length === 3 ? ops : undefined
  if (three !== undefined && isGpr(three[0]) && isRm(three[1]) && isImm(three[2])) {
    const [dst, src, value] = three as [RegOperand, RegOperand | MemOperand, ImmOperand]
    const size = operationSize(ins, dst, src)
    if (size === 8) return badOperands(ins, forms)
    if (shortImmediate(ctx, value)) return imm(withRm(start(ins, [0x6b], size), ins, src, dst.reg.num), ctx, value, 1, "signed")
    return imm(withRm(start(ins, [0x69], size), ins, src, dst.reg.num), ctx, value, immBytes(size), immSign(size))
  }
  return badOperands(ins, forms)
}

const shiftNumbers: Readonly<Record<string, number>> = { rol: 0, ror: 1, rcl: 2, rcr: 3, shl: 4, sal: 4, shr: 5, sar: 7 }

const shift: Handler = (ins, ctx) => {
  const forms = "r/m, 1 | r/m, cl | r/m, imm8"
  arity(ins, 2, forms)
  const [dst, count] = ins.operands as [Operand, Operand]
  if (!isRm(dst)) return badOperands(ins, forms)
  const size = operationSize(ins, dst)
  const n = shiftNumbers[ins.mnemonic]!
  if (isReg(count) && count.reg.name === "cl") return withRm(start(ins, [size === 8 ? 0xd2 : 0xd3], size), ins, dst, n)
  if (!isImm(count)) return badOperands(ins, forms)
  const v = evalIn(count.expr, ctx)
  const one = ctx.choose(IMM_SLOT, v.known && v.reloc === 0 && v.value === 1n ? 0 : 1) === 0
  if (one) return withRm(start(ins, [size === 8 ? 0xd0 : 0xd1], size), ins, dst, n)
  return imm(withRm(start(ins, [size === 8 ? 0xc0 : 0xc1], size), ins, dst, n), ctx, count, 1, "unsigned")
}

const push: Handler = (ins, ctx) => {
  arity(ins, 1, "r64 | r16 | imm | r/m64 | fs | gs")
  const [o] = ins.operands as [Operand]
  if (isReg(o) && o.reg.cls === "sreg") {
    if (o.reg.name !== "fs" && o.reg.name !== "gs") fail(`\`push ${o.reg.name}\` is invalid in 64-bit mode`, "push fs or push gs", o.column)
    return start(ins, [0x0f, o.reg.name === "fs" ? 0xa0 : 0xa8], 0)
  }
  if (isGpr(o)) {
    const w = regWidth(o)
    if (w !== 64 && w !== 16) badOperands(ins, "push r64 | r16 (32-bit pushes do not exist in 64-bit mode)")
    const e = start(ins, [0x50], w === 16 ? 16 : 0)
    e.plusReg = o.reg.num
    return e
  }
  if (isImm(o)) {
    if (o.size === 16) return imm(start(ins, [0x68], 16), ctx, o, 2, "either")
    if (shortImmediate(ctx, o)) return imm(start(ins, [0x6a], 0), ctx, o, 1, "signed")
    return imm(start(ins, [0x68], 0), ctx, o, 4, "sign-extended")
  }
  if (isMem(o)) {
    if (o.size !== 0 && o.size !== 64 && o.size !== 16) badOperands(ins, "push qword [mem] | word [mem]")
    return withRm(start(ins, [0xff], o.size === 16 ? 16 : 0), ins, o, 6)
  }
  return badOperands(ins, "r64 | imm | r/m64")
}

const pop: Handler = (ins) => {
  arity(ins, 1, "r64 | r16 | r/m64 | fs | gs")
  const [o] = ins.operands as [Operand]
  if (isReg(o) && o.reg.cls === "sreg") {
    if (o.reg.name !== "fs" && o.reg.name !== "gs") fail(`\`pop ${o.reg.name}\` is invalid in 64-bit mode`, "pop fs or pop gs", o.column)
    return start(ins, [0x0f, o.reg.name === "fs" ? 0xa1 : 0xa9], 0)
  }
  if (isGpr(o)) {
    const w = regWidth(o)
    if (w !== 64 && w !== 16) badOperands(ins, "pop r64 | r16 (32-bit pops do not exist in 64-bit mode)")
    const e = start(ins, [0x58], w === 16 ? 16 : 0)
    e.plusReg = o.reg.num
    return e
  }
  if (isMem(o)) {
    if (o.size !== 0 && o.size !== 64 && o.size !== 16) badOperands(ins, "pop qword [mem] | word [mem]")
    return withRm(start(ins, [0x8f], o.size === 16 ? 16 : 0), ins, o, 0)
  }
  return badOperands(ins, "r64 | r/m64")
}

export const conditionCodes: Readonly<Record<string, number>> = {
  o: 0, no: 1, b: 2, c: 2, nae: 2, ae: 3, nb: 3, nc: 3, e: 4, z: 4, ne: 5, nz: 5, be: 6, na: 6, a: 7, nbe: 7,
  s: 8, ns: 9, p: 10, pe: 10, np: 11, po: 11, l: 12, nge: 12, ge: 13, nl: 13, le: 14, ng: 14, g: 15, nle: 15,
}

/** jmp/jcc/call to a label: short when it fits (NASM's default optimisation), else 32-bit. */
const branch = (kind: "jmp" | "jcc" | "call", cc: number): Handler => (ins, ctx) => {
  arity(ins, 1, kind === "jcc" ? "a label" : "a label | r/m64")
  const [o] = ins.operands as [Operand]
  if (kind !== "jcc" && isRm(o)) {
    if (isGpr(o) && regWidth(o) !== 64) badOperands(ins, `${ins.mnemonic} r64 | qword [mem]`)
    if (isMem(o) && o.size !== 0 && o.size !== 64) badOperands(ins, `${ins.mnemonic} r64 | qword [mem]`)
    return withRm(start(ins, [0xff], 0), ins, o, kind === "call" ? 2 : 4)
  }
  if (!isImm(o)) return badOperands(ins, "a label")
  const target = evalIn(o.expr, ctx)
  let short: boolean
  if (kind === "call" || o.jump === "near") short = false
  else if (o.jump === "short") short = true
  else {
    const shortLength = BigInt(2 + (ins.prefixes.rep !== undefined ? 1 : 0))
    const delta = target.value - (ctx.address + shortLength)
    // Only a target in the same section (a label) can be reached with a short jump; NASM
    // sizes a jump to a plain number as near.
    const fits = !target.known || (target.reloc === 1 && delta >= -128n && delta <= 127n)
    short = ctx.choose(IMM_SLOT, fits ? 0 : 1) === 0
  }
  const opcode = short ? (kind === "jmp" ? [0xeb] : [0x70 + cc]) : kind === "jmp" ? [0xe9] : kind === "call" ? [0xe8] : [0x0f, 0x80 + cc]
  const e = start(ins, opcode, 0)
  e.relative = { target, bytes: short ? 1 : 4, column: o.column }
  return e
}

const shortOnly = (opcode: number): Handler => (ins, ctx) => {
  arity(ins, 1, "a label within 127 bytes")
  const [o] = ins.operands as [Operand]
  if (!isImm(o)) return badOperands(ins, "a label within 127 bytes")
  const e = start(ins, [opcode], 0)
  e.relative = { target: evalIn(o.expr, ctx), bytes: 1, column: o.column }
  return e
}

const setcc = (cc: number): Handler => (ins) => {
  arity(ins, 1, "r/m8")
  const [o] = ins.operands as [Operand]
  if (!isRm(o) || (widthOf(o) !== 8 && widthOf(o) !== 0)) return badOperands(ins, "r/m8")
  return withRm(start(ins, [0x0f, 0x90 + cc], 0), ins, o, 0)
}

const cmovcc = (cc: number): Handler => (ins) => {
  arity(ins, 2, "reg, r/m")
  const [dst, src] = ins.operands as [Operand, Operand]
  if (!isGpr(dst) || !isRm(src)) return badOperands(ins, "r16/r32/r64, r/m")
  const size = operationSize(ins, dst, src)
  if (size === 8) return badOperands(ins, "r16/r32/r64, r/m")
  return withRm(start(ins, [0x0f, 0x40 + cc], size), ins, src, dst.reg.num)
}

const bitTest = (regOp: number, digit: number): Handler => (ins, ctx) => {
  arity(ins, 2, "r/m, reg | r/m, imm8")
  const [dst, src] = ins.operands as [Operand, Operand]
  if (!isRm(dst)) return badOperands(ins, "r/m, reg | r/m, imm8")
  if (isGpr(src)) {
    const size = operationSize(ins, dst, src)
    if (size === 8) return badOperands(ins, "r/m16/32/64, reg")
    return withRm(start(ins, [0x0f, regOp], size), ins, dst, src.reg.num)
  }
  if (isImm(src)) {
    const size = operationSize(ins, dst)
    if (size === 8) return badOperands(ins, "r/m16/32/64, imm8")
    return imm(withRm(start(ins, [0x0f, 0xba], size), ins, dst, digit), ctx, src, 1, "unsigned")
  }
  return badOperands(ins, "r/m, reg | r/m, imm8")
}

const regRm = (opcode: Array<number>, allowByte: boolean): Handler => (ins) => {
  arity(ins, 2, "reg, r/m")
  const [dst, src] = ins.operands as [Operand, Operand]
  if (!isGpr(dst) || !isRm(src)) return badOperands(ins, "reg, r/m")
  const size = operationSize(ins, dst, src)
  if (size === 8 && !allowByte) return badOperands(ins, "r16/r32/r64, r/m")
  return withRm(start(ins, opcode, size), ins, src, dst.reg.num)
}

/** xadd / cmpxchg: r/m, reg with byte and full-size opcodes. */
const rmReg = (byteOp: Array<number>): Handler => (ins) => {
  arity(ins, 2, "r/m, reg")
  const [dst, src] = ins.operands as [Operand, Operand]
  if (!isRm(dst) || !isGpr(src)) return badOperands(ins, "r/m, reg")
  const size = operationSize(ins, dst, src)
  const op = [...byteOp]
  if (size !== 8) op[op.length - 1]! += 1
  return noteRegs(withRm(start(ins, op, size), ins, dst, src.reg.num), src)
}

const bswap: Handler = (ins) => {
  arity(ins, 1, "r32 | r64")
  const [o] = ins.operands as [Operand]
  if (!isGpr(o) || regWidth(o) < 32) return badOperands(ins, "r32 | r64")
  const e = start(ins, [0x0f, 0xc8], regWidth(o))
  e.plusReg = o.reg.num
  return e
}

const inOut = (isIn: boolean): Handler => (ins, ctx) => {
  const forms = isIn ? "al/ax/eax, imm8 | al/ax/eax, dx" : "imm8, al/ax/eax | dx, al/ax/eax"
  arity(ins, 2, forms)
  const [port, data] = (isIn ? [ins.operands[1], ins.operands[0]] : [ins.operands[0], ins.operands[1]]) as [Operand, Operand]
  if (!isGpr(data) || data.reg.num !== 0 || data.reg.cls === "r8h" || regWidth(data) === 64) return badOperands(ins, forms)
  const size = regWidth(data)
  const full = size === 8 ? 0 : 1
  if (isReg(port) && port.reg.name === "dx") return start(ins, [(isIn ? 0xec : 0xee) + full], size === 16 ? 16 : 0)
  if (isImm(port)) return imm(start(ins, [(isIn ? 0xe4 : 0xe6) + full], size === 16 ? 16 : 0), ctx, port, 1, "unsigned")
  return badOperands(ins, forms)
}

const intN: Handler = (ins, ctx) => {
  arity(ins, 1, "imm8")
  const [o] = ins.operands as [Operand]
  if (!isImm(o)) return badOperands(ins, "imm8")
  return imm(start(ins, [0xcd], 0), ctx, o, 1, "unsigned")
}

const ret: Handler = (ins, ctx) => {
  if (ins.operands.length === 0) return start(ins, [0xc3], 0)
  arity(ins, 1, "nothing | imm16")
  const [o] = ins.operands as [Operand]
  if (!isImm(o)) return badOperands(ins, "nothing | imm16")
  return imm(start(ins, [0xc2], 0), ctx, o, 2, "unsigned")
}

/** Instructions with one memory operand and a ModRM digit (lgdt, invlpg, vmptrld …). */
const memOnly = (opcode: Array<number>, digit: number, mandatory?: number): Handler => (ins) => {
  arity(ins, 1, "mem")
  const [o] = ins.operands as [Operand]
  if (!isMem(o)) return badOperands(ins, "mem")
  const e = start(ins, opcode, 0)
  if (mandatory === 0x66) e.operandSize16 = true
  else if (mandatory !== undefined) e.group1.push(mandatory)
  return withRm(e, ins, { ...o, size: 0 }, digit)
}

/** lldt/ltr/sldt/str/verr/verw: r/m16 with a ModRM digit. */
const rm16 = (opcode: Array<number>, digit: number): Handler => (ins) => {
  arity(ins, 1, "r/m16")
  const [o] = ins.operands as [Operand]
  const storeForm = digit === 0 || digit === 1 || (digit === 4 && opcode[1] === 0x01)
  if (!isRm(o) || (widthOf(o) !== 16 && widthOf(o) !== 0 && !(isGpr(o) && storeForm))) return badOperands(ins, "r/m16")
  // NASM: str/smsw r64 carry REX.W, sldt r64 does not.
  const size = isGpr(o) && (digit === 1 || (digit === 4 && opcode[1] === 0x01) || (digit === 0 && regWidth(o) === 16)) ? regWidth(o) : 0
  return withRm(start(ins, opcode, size === 32 ? 0 : size), ins, o, digit)
}

const vmreadWrite = (isRead: boolean): Handler => (ins) => {
  const forms = isRead ? "r/m64, r64" : "r64, r/m64"
  arity(ins, 2, forms)
  const [a, b] = ins.operands as [Operand, Operand]
  const [reg, rm] = isRead ? [b, a] : [a, b]
  if (!isGpr(reg) || regWidth(reg) !== 64 || !isRm(rm) || (widthOf(rm) !== 64 && widthOf(rm) !== 0)) return badOperands(ins, forms)
  return withRm(start(ins, [0x0f, isRead ? 0x78 : 0x79], 0), ins, { ...rm, size: 0 } as Operand, reg.reg.num)
}

/** shld/shrd r/m, reg, imm8|cl. */
const doubleShift = (base: number): Handler => (ins, ctx) => {
  arity(ins, 3, "r/m, reg, imm8 | r/m, reg, cl")
  const [dst, src, count] = ins.operands as [Operand, Operand, Operand]
  if (!isRm(dst) || !isGpr(src)) return badOperands(ins, "r/m, reg, imm8 | r/m, reg, cl")
  const size = operationSize(ins, dst, src)
  if (size === 8) return badOperands(ins, "r/m16/32/64, reg, imm8|cl")
  if (isReg(count) && count.reg.name === "cl") return withRm(start(ins, [0x0f, base + 1], size), ins, dst, src.reg.num)
  if (!isImm(count)) return badOperands(ins, "r/m, reg, imm8 | r/m, reg, cl")
  return imm(withRm(start(ins, [0x0f, base], size), ins, dst, src.reg.num), ctx, count, 1, "unsigned")
}

/** tzcnt/lzcnt/popcnt: F3 0F xx /r, reg, r/m (16/32/64). */
const bitCount = (opcode: number): Handler => (ins) => {
  const e = regRm([0x0f, opcode], false)(ins, undefined as never)
  e.mandatory = 0xf3
  return e
}

const cmpxchgWide: Handler = (ins) => {
  arity(ins, 1, "qword [mem] | oword [mem]")
  const [o] = ins.operands as [Operand]
  if (!isMem(o)) return badOperands(ins, "mem")
  const wide = ins.mnemonic === "cmpxchg16b"
  return withRm(start(ins, [0x0f, 0xc7], wide ? 64 : 0), ins, { ...o, size: 0 }, 1)
}

const enter: Handler = (ins, ctx) => {
  arity(ins, 2, "imm16, imm8")
  const [a, b] = ins.operands as [Operand, Operand]
  if (!isImm(a) || !isImm(b)) return badOperands(ins, "imm16, imm8")
  return imm(imm(start(ins, [0xc8], 0), ctx, a, 2, "unsigned"), ctx, b, 1, "unsigned")
}

/** Instructions without operands: the opcode bytes (REX.W and 66 spelled out). */
export const fixedInstructions: Readonly<Record<string, ReadonlyArray<number>>> = {
  nop: [0x90], hlt: [0xf4], cpuid: [0x0f, 0xa2], vmcall: [0x0f, 0x01, 0xc1], vmlaunch: [0x0f, 0x01, 0xc2],
  vmresume: [0x0f, 0x01, 0xc3], vmxoff: [0x0f, 0x01, 0xc4], vmfunc: [0x0f, 0x01, 0xd4], syscall: [0x0f, 0x05],
  sysret: [0x0f, 0x07], sysenter: [0x0f, 0x34], sysexit: [0x0f, 0x35], iretq: [0x48, 0xcf], iretd: [0xcf],
  iret: [0xcf], iretw: [0x66, 0xcf], cli: [0xfa], sti: [0xfb], clc: [0xf8], stc: [0xf9], cmc: [0xf5], cld: [0xfc],
  std: [0xfd], cqo: [0x48, 0x99], cdq: [0x99], cwd: [0x66, 0x99], cdqe: [0x48, 0x98], cwde: [0x98],
  cbw: [0x66, 0x98], leave: [0xc9], int3: [0xcc], int1: [0xf1], icebp: [0xf1], rdtsc: [0x0f, 0x31],
  rdtscp: [0x0f, 0x01, 0xf9], rdmsr: [0x0f, 0x32], wrmsr: [0x0f, 0x30], rdpmc: [0x0f, 0x33], pause: [0xf3, 0x90],
  ud2: [0x0f, 0x0b], swapgs: [0x0f, 0x01, 0xf8], pushf: [0x9c], pushfq: [0x9c], popf: [0x9d], popfq: [0x9d],
  lahf: [0x9f], sahf: [0x9e], mfence: [0x0f, 0xae, 0xf0], lfence: [0x0f, 0xae, 0xe8], sfence: [0x0f, 0xae, 0xf8],
  wbinvd: [0x0f, 0x09], invd: [0x0f, 0x08], clts: [0x0f, 0x06], monitor: [0x0f, 0x01, 0xc8],
  mwait: [0x0f, 0x01, 0xc9], xgetbv: [0x0f, 0x01, 0xd0], xsetbv: [0x0f, 0x01, 0xd1], stac: [0x0f, 0x01, 0xcb],
  clac: [0x0f, 0x01, 0xca], endbr64: [0xf3, 0x0f, 0x1e, 0xfa], xlatb: [0xd7],
  movsb: [0xa4], movsw: [0x66, 0xa5], movsd: [0xa5], movsq: [0x48, 0xa5],
  stosb: [0xaa], stosw: [0x66, 0xab], stosd: [0xab], stosq: [0x48, 0xab],
  lodsb: [0xac], lodsw: [0x66, 0xad], lodsd: [0xad], lodsq: [0x48, 0xad],
  cmpsb: [0xa6], cmpsw: [0x66, 0xa7], cmpsd: [0xa7], cmpsq: [0x48, 0xa7],
  scasb: [0xae], scasw: [0x66, 0xaf], scasd: [0xaf], scasq: [0x48, 0xaf],
  insb: [0x6c], insw: [0x66, 0x6d], insd: [0x6d], outsb: [0x6e], outsw: [0x66, 0x6f], outsd: [0x6f],
}

/** The multi-byte NOP: nop r/m16/32/64 (0F 1F /0), as compilers pad with. */
const nopRm: Handler = (ins) => {
  const [o] = ins.operands as [Operand]
  if (!isRm(o)) return badOperands(ins, "nothing | r/m16/32/64")
  const size = operationSize(ins, o)
  if (size === 8) return badOperands(ins, "nothing | r/m16/32/64")
  return withRm(start(ins, [0x0f, 0x1f], size), ins, o, 0)
}

const fixed = (bytes: ReadonlyArray<number>): Handler => (ins, ctx) => {
  if (ins.mnemonic === "nop" && ins.operands.length === 1) return nopRm(ins, ctx)
  if (ins.operands.length !== 0) badOperands(ins, "no operands")
  // Spell out 66/REX.W so lock/rep prefixes and o64 land in NASM's order (F3 48 A5).
  let rest = [...bytes]
  const mandatoryF3 = rest[0] === 0xf3 && rest.length > 1
  if (mandatoryF3) rest = rest.slice(1)
  const size16 = rest[0] === 0x66
  if (size16) rest = rest.slice(1)
  const w = rest[0] === 0x48
  if (w) rest = rest.slice(1)
  const e = start(ins, rest, size16 ? 16 : w ? 64 : 0)
  if (mandatoryF3) e.group1.push(0xf3)
  return e
}

const handlers = new Map<string, Handler>()
for (const name of Object.keys(aluNumbers)) handlers.set(name, alu)
for (const name of Object.keys(unaryNumbers)) handlers.set(name, unary)
for (const name of Object.keys(shiftNumbers)) handlers.set(name, shift)
for (const [name, bytes] of Object.entries(fixedInstructions)) handlers.set(name, fixed(bytes))
for (const [cc, n] of Object.entries(conditionCodes)) {
  handlers.set(`j${cc}`, branch("jcc", n))
  handlers.set(`set${cc}`, setcc(n))
  handlers.set(`cmov${cc}`, cmovcc(n))
}
handlers.set("test", test)
handlers.set("mov", mov)
handlers.set("movzx", movExtend(0xb6, 0xb7))
handlers.set("movsx", movExtend(0xbe, 0xbf))
handlers.set("movsxd", movsxd)
handlers.set("lea", lea)
handlers.set("xchg", xchg)
handlers.set("imul", imul)
handlers.set("push", push)
handlers.set("pop", pop)
handlers.set("jmp", branch("jmp", 0))
handlers.set("call", branch("call", 0))
handlers.set("loop", shortOnly(0xe2))
handlers.set("loope", shortOnly(0xe1))
handlers.set("loopz", shortOnly(0xe1))
handlers.set("loopne", shortOnly(0xe0))
handlers.set("loopnz", shortOnly(0xe0))
handlers.set("jrcxz", shortOnly(0xe3))
handlers.set("bt", bitTest(0xa3, 4))
handlers.set("bts", bitTest(0xab, 5))
handlers.set("btr", bitTest(0xb3, 6))
handlers.set("btc", bitTest(0xbb, 7))
handlers.set("bsf", regRm([0x0f, 0xbc], false))
handlers.set("bsr", regRm([0x0f, 0xbd], false))
handlers.set("xadd", rmReg([0x0f, 0xc0]))
handlers.set("cmpxchg", rmReg([0x0f, 0xb0]))
handlers.set("bswap", bswap)
handlers.set("in", inOut(true))
handlers.set("out", inOut(false))
handlers.set("int", intN)
handlers.set("ret", ret)
handlers.set("retn", ret)
handlers.set("lgdt", memOnly([0x0f, 0x01], 2))
handlers.set("lidt", memOnly([0x0f, 0x01], 3))
handlers.set("sgdt", memOnly([0x0f, 0x01], 0))
handlers.set("sidt", memOnly([0x0f, 0x01], 1))
handlers.set("invlpg", memOnly([0x0f, 0x01], 7))
handlers.set("vmptrld", memOnly([0x0f, 0xc7], 6))
handlers.set("vmptrst", memOnly([0x0f, 0xc7], 7))
handlers.set("vmclear", memOnly([0x0f, 0xc7], 6, 0x66))
handlers.set("vmxon", memOnly([0x0f, 0xc7], 6, 0xf3))
handlers.set("vmread", vmreadWrite(true))
handlers.set("vmwrite", vmreadWrite(false))
handlers.set("shld", doubleShift(0xa4))
handlers.set("shrd", doubleShift(0xac))
handlers.set("tzcnt", bitCount(0xbc))
handlers.set("lzcnt", bitCount(0xbd))
handlers.set("popcnt", bitCount(0xb8))
handlers.set("cmpxchg8b", cmpxchgWide)
handlers.set("cmpxchg16b", cmpxchgWide)
handlers.set("enter", enter)
handlers.set("smsw", rm16([0x0f, 0x01], 4))
handlers.set("lmsw", rm16([0x0f, 0x01], 6))
handlers.set("sldt", rm16([0x0f, 0x00], 0))
handlers.set("str", rm16([0x0f, 0x00], 1))
handlers.set("lldt", rm16([0x0f, 0x00], 2))
handlers.set("ltr", rm16([0x0f, 0x00], 3))

export const isMnemonic = (word: string): boolean => handlers.has(word.toLowerCase())

export const mnemonics = (): ReadonlyArray<string> => [...handlers.keys()]

/** Encodes one instruction at ctx.address. */
export const encodeInstruction = (ins: Instruction, ctx: EncodeContext): Array<number> => {
  const handler = handlers.get(ins.mnemonic)
  if (handler === undefined) return fail(`unknown instruction \`${ins.mnemonic}\``, "an x86-64 instruction the guest core executes, a directive or a label", ins.mnemonicColumn, ins.mnemonic)
  const enc = handler(ins, ctx)
  if (ins.prefixes.segment !== undefined && !(enc.rm?.kind === "mem")) {
    // A bare segment prefix (e.g. `fs lodsb`) goes before the other prefixes, like NASM.
    return [segmentPrefixByte(ins.prefixes.segment), ...emit(enc, ctx)]
  }
  return emit(enc, ctx)
}

const segmentPrefixByte = (r: Register): number => [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][r.num]!
