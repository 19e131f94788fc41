import { fail } from "./errors.ts"
import { describe, linearize, parseExpr, type Expr, type TokenStream } from "./expression.ts"
import { gprWidth, registerNamed, type Register } from "./registers.ts"

export interface RegOperand {
  readonly kind: "reg"
  readonly reg: Register
  readonly column: number
}

export interface MemOperand {
  readonly kind: "mem"
  /** Bits from a size keyword (byte=8 … qword=64, tword=80), 0 when none was given. */
  readonly size: number
  readonly seg: Register | undefined
  readonly base: Register | undefined
  readonly index: Register | undefined
  readonly scale: 1 | 2 | 4 | 8
  readonly disp: Expr | undefined
  /** `[rel x]`, `[rip + x]` or `default rel`: RIP-relative. */
  readonly ripRelative: boolean
  /** `[abs x]`: absolute even under `default rel`. */
  readonly forcedAbsolute: boolean
  /** 32-bit address registers (needs the 0x67 prefix). */
  readonly addr32: boolean
  readonly column: number
}

export interface ImmOperand {
  readonly kind: "imm"
  readonly expr: Expr
  /** Bits from a size keyword, 0 when none was given. */
  readonly size: number
  readonly strict: boolean
  readonly jump: "short" | "near" | undefined
  readonly column: number
}

export type Operand = RegOperand | MemOperand | ImmOperand

export const sizeKeywords: Readonly<Record<string, number>> = { byte: 8, word: 16, dword: 32, qword: 64, tword: 80, oword: 128, yword: 256 }

const sizeNames: Readonly<Record<number, string>> = { 8: "byte", 16: "word", 32: "dword", 64: "qword", 80: "tword", 128: "oword" }
export const sizeName = (bits: number): string => sizeNames[bits] ?? `${bits}-bit`

/** Parses one operand up to the next top-level comma or the end of the line. */
export const parseOperand = (ts: TokenStream, defaultRel: boolean): Operand => {
  let size = 0
  let strict = false
  let jump: "short" | "near" | undefined
  const column = ts.peek().column
  for (;;) {
    const t = ts.peek()
    if (t.kind !== "ident") break
    const w = t.text.toLowerCase()
    if (sizeKeywords[w] !== undefined && !ts.isOp(",", 1) && ts.peek(1).kind !== "end") {
      size = sizeKeywords[w]!
      ts.next()
    } else if (w === "strict") {
      strict = true
      ts.next()
    } else if (w === "short" || w === "near") {
      jump = w
      ts.next()
    } else if (w === "far") {
      fail("far jumps and calls are not supported", "a near jump or call, or `jmp qword [mem]`", t.column, t.text)
    } else break
  }
  const first = ts.peek()
  // A segment register followed by ":" before a memory operand: `fs:[rax]`.
  if (first.kind === "ident" && registerNamed(first.text)?.cls === "sreg" && ts.isOp(":", 1) && ts.isOp("[", 2)) {
    ts.next()
    ts.next()
    return parseMemory(ts, size, registerNamed(first.text), defaultRel, column)
  }
  if (ts.isOp("[")) return parseMemory(ts, size, undefined, defaultRel, column)
  if (first.kind === "ident") {
    const reg = registerNamed(first.text)
    if (reg !== undefined && reg.cls !== "rip" && !ts.isOp(",", 1) && ts.peek(1).kind !== "end" && !ts.isOp(":", 1) && ts.peek(1).kind !== "op") {
      const t = ts.peek(1)
      fail(`expected \`,\` after register \`${first.text}\`, found ${describe(t)}`, "`,` between operands", t.column, t.text)
    }
    if (reg !== undefined && (ts.isOp(",", 1) || ts.peek(1).kind === "end")) {
      ts.next()
      if (reg.cls === "rip") fail("`rip` is not a register in NASM syntax", "[rel label] for RIP-relative addressing", first.column, first.text)
      if (size !== 0 && gprWidth(reg.cls) !== undefined && gprWidth(reg.cls) !== size) {
        fail(`size keyword ${sizeName(size)} does not match register \`${reg.name}\``, "no size keyword on a register operand", column)
      }
      return { kind: "reg", reg, column: first.column }
    }
  }
  if (first.kind === "end" || ts.isOp(",")) fail(`expected an operand, found ${describe(first)}`, "a register, memory reference [..] or immediate value", first.column, first.text)
  const expr = parseExpr(ts, false)
  return { kind: "imm", expr, size, strict, jump, column }
}

const parseMemory = (ts: TokenStream, size: number, segOutside: Register | undefined, defaultRel: boolean, column: number): MemOperand => {
  const open = ts.expectOp("[", "to open a memory operand")
  let seg = segOutside
  let rel = false
  let abs = false
  for (;;) {
    const t = ts.peek()
    if (t.kind !== "ident") break
    const w = t.text.toLowerCase()
    if (w === "rel") {
      rel = true
      ts.next()
    } else if (w === "abs") {
      abs = true
      ts.next()
    } else if (sizeKeywords[w] !== undefined && w !== "byte" && w !== "word") {
      // `[qword x]` names the displacement size; NASM accepts it, the encoding is the same.
      ts.next()
    } else if (registerNamed(w)?.cls === "sreg" && ts.isOp(":", 1)) {
      seg = registerNamed(w)
      ts.next()
      ts.next()
    } else break
  }
  const expr = parseExpr(ts, true)
  const close = ts.peek()
  if (!(close.kind === "op" && close.text === "]")) fail(`expected \`]\` to close the memory operand, found ${describe(close)}`, "`]`", close.column, close.text)
  ts.next()
  const { terms, disp } = linearize(expr)
  // Merge repeated registers: [rax + rax*2] is rax*3.
  const merged: Array<{ reg: Register; scale: bigint; column: number }> = []
  for (const term of terms) {
    const same = merged.find((m) => m.reg.name === term.reg.name)
    if (same !== undefined) same.scale += term.scale
    else merged.push({ ...term })
  }
  const ripTerm = merged.find((m) => m.reg.cls === "rip")
  // NASM has no `rip` register: RIP-relative addressing is spelled [rel label] or `default rel`.
  if (ripTerm !== undefined) fail("`rip` is not a register in NASM syntax", "[rel label] (or `default rel` and [label]) for RIP-relative addressing", ripTerm.column, "rip")
  for (const m of merged) {
    if (m.reg.cls !== "r64" && m.reg.cls !== "r32") {
      fail(`register \`${m.reg.name}\` cannot be used in an address`, "64-bit address registers (or 32-bit ones with a 0x67 prefix)", m.column, m.reg.name)
    }
  }
  const widths = new Set(merged.map((m) => m.reg.cls))
  if (widths.size > 1) fail("64-bit and 32-bit registers mixed in one address", "all address registers of the same width", merged[1]!.column, merged[1]!.reg.name)
  let base: Register | undefined
  let index: Register | undefined
  let scale: bigint = 1n
  const ones = merged.filter((m) => m.scale === 1n)
  const scaled = merged.filter((m) => m.scale !== 1n)
  if (merged.length > 2 || scaled.length > 1) fail("too many registers in this address", "at most a base and one index*scale", column)
  if (scaled.length === 1) {
    const s = scaled[0]!
    if (ones.length === 0 && (s.scale === 3n || s.scale === 5n || s.scale === 9n)) {
      // NASM rewrites [rax*5] as [rax + rax*4].
      base = s.reg
      index = s.reg
      scale = s.scale - 1n
    } else if (ones.length === 0 && s.scale === 2n) {
      // …and [rax*2] as [rax + rax], which is shorter than a SIB with a 32-bit zero displacement.
      base = s.reg
      index = s.reg
      scale = 1n
    } else {
      index = s.reg
      scale = s.scale
      base = ones[0]?.reg
    }
    if (scale !== 1n && scale !== 2n && scale !== 4n && scale !== 8n) fail(`scale ${s.scale} is not 1, 2, 4 or 8`, "an index scale of 1, 2, 4 or 8", s.column, s.reg.name)
  } else if (ones.length === 2) {
    base = ones[0]!.reg
    index = ones[1]!.reg
  } else if (ones.length === 1) {
    base = ones[0]!.reg
  }
  // rsp cannot be an index: swap it into the base when the scale is 1.
  if (index !== undefined && index.num === 4 && index.cls !== undefined && index.name.endsWith("sp")) {
    if (scale !== 1n || base === undefined) fail(`\`${index.name}\` cannot be an index register`, "rsp/esp only as a base register", column, index.name)
    ;[base, index] = [index, base]
    if (index?.num === 4 && index.name.endsWith("sp")) fail(`\`${index.name}\` cannot be an index register`, "rsp/esp only as a base register", column, index.name)
  }
  const addr32 = merged.length > 0 && merged[0]!.reg.cls === "r32"
  if (rel && merged.length > 0) fail("`rel` cannot be used with base or index registers", "[rel label] with no registers", column, "rel")
  const ripRelative = merged.length === 0 && seg?.name !== "fs" && seg?.name !== "gs" ? rel || (defaultRel && !abs) : false
  return { kind: "mem", size, seg, base, index, scale: Number(scale) as 1 | 2 | 4 | 8, disp, ripRelative, forcedAbsolute: abs, addr32, column: open.column }
}
