import { fail } from "./errors.ts"
import { describe, parseExpr, TokenStream, type Expr } from "./expression.ts"
import { isMnemonic, type Instruction, type Prefixes } from "./instructions.ts"
import { tokenize } from "./lexer.ts"
import { parseOperand, type Operand } from "./operands.ts"
import type { SourceLine } from "./preprocessor.ts"
import { registerNamed, type Register } from "./registers.ts"

export type DataItem = { readonly kind: "expr"; readonly expr: Expr; readonly column: number } | { readonly kind: "bytes"; readonly bytes: Uint8Array } | { readonly kind: "uninitialized" }

export type Statement =
  | { readonly kind: "label"; readonly name: string; readonly column: number }
  | { readonly kind: "equ"; readonly name: string; readonly expr: Expr; readonly column: number }
  | { readonly kind: "instruction"; readonly instruction: Instruction; readonly times: Expr | undefined }
  | { readonly kind: "data"; readonly unit: 1 | 2 | 4 | 8; readonly items: ReadonlyArray<DataItem>; readonly times: Expr | undefined }
  | { readonly kind: "reserve"; readonly unit: number; readonly count: Expr; readonly times: Expr | undefined }
  | { readonly kind: "align"; readonly boundary: Expr; readonly fillNop: boolean; readonly column: number }
  | { readonly kind: "org"; readonly expr: Expr; readonly column: number }

/** Parser state carried from line to line. */
export interface ParseState {
  /** The last non-local label: `.x` means `<lastGlobal>.x`. */
  lastGlobal: string | undefined
  defaultRel: boolean
}

const dataUnits: Readonly<Record<string, 1 | 2 | 4 | 8>> = { db: 1, dw: 2, dd: 4, dq: 8 }
const reserveUnits: Readonly<Record<string, number>> = { resb: 1, resw: 2, resd: 4, resq: 8, rest: 10, reso: 16, resy: 32 }
const prefixWords = new Set(["lock", "rep", "repe", "repz", "repne", "repnz", "o16", "o32", "o64", "a16", "a32", "a64"])
const directiveWords = new Set(["bits", "use64", "org", "section", "segment", "default", "global", "extern", "common", "cpu", "align", "alignb", "equ", "times", "incbin", "static", "absolute", "dt", "do", "dy", "float"])

const isKeyword = (w: string): boolean => {
  const l = w.toLowerCase()
  return isMnemonic(l) || prefixWords.has(l) || directiveWords.has(l) || dataUnits[l] !== undefined || reserveUnits[l] !== undefined
}

/** Local labels (`.x`) are scoped under the last ordinary label; `..@x` and `..x` are not. */
export const qualify = (name: string, state: ParseState, column: number): string => {
  if (!name.startsWith(".") || name.startsWith("..")) return name
  // Before any ordinary label NASM keeps the name as written.
  void column
  return state.lastGlobal === undefined ? name : state.lastGlobal + name
}

const qualifyExpr = (e: Expr, state: ParseState): Expr => {
  switch (e.t) {
    case "sym":
      return { ...e, name: qualify(e.name, state, e.column) }
    case "un":
      return { ...e, a: qualifyExpr(e.a, state) }
    case "bin":
      return { ...e, a: qualifyExpr(e.a, state), b: qualifyExpr(e.b, state) }
    default:
      return e
  }
}

const qualifyOperand = (o: Operand, state: ParseState): Operand => {
  if (o.kind === "imm") return { ...o, expr: qualifyExpr(o.expr, state) }
  if (o.kind === "mem" && o.disp !== undefined) return { ...o, disp: qualifyExpr(o.disp, state) }
  return o
}

const expectEnd = (ts: TokenStream, what: string): void => {
  if (!ts.atEnd()) {
    const t = ts.peek()
    fail(`unexpected ${describe(t)} after ${what}`, "end of line (or a `;` comment)", t.column, t.text)
  }
}

/** Parses one preprocessed line into statements (a label and/or one instruction or directive). */
export const parseLine = (line: SourceLine, state: ParseState): Array<Statement> => {
  let tokens = tokenize(line.text)
  // NASM's primitive form: [bits 64], [org 0x7c00], [default rel].
  if (tokens[0]?.kind === "op" && tokens[0].text === "[" && tokens[1]?.kind === "ident" && directiveWords.has(tokens[1].text.toLowerCase())) {
    const close = tokens.findIndex((t) => t.kind === "op" && t.text === "]")
    if (close < 0) fail("unclosed `[` directive", "`]`", tokens[0].column)
    tokens = [...tokens.slice(1, close), ...tokens.slice(close + 1)]
  }
  const ts = new TokenStream(tokens)
  const out: Array<Statement> = []
  if (ts.atEnd()) return out
  const first = ts.peek()
  let label: { name: string; column: number } | undefined
  if (first.kind === "ident" && ts.isOp(":", 1) && registerNamed(first.text)?.cls !== "sreg") {
    label = { name: first.text, column: first.column }
    ts.next()
    ts.next()
  } else if (first.kind === "ident" && !isKeyword(first.text) && registerNamed(first.text) === undefined) {
    const nextTok = ts.peek(1)
    // NASM accepts a label without a colon (it warns); require that what follows makes sense.
    if (nextTok.kind === "end" || (nextTok.kind === "ident" && isKeyword(nextTok.text))) {
      label = { name: first.text, column: first.column }
      ts.next()
    } else {
      fail(`unknown instruction \`${first.text}\``, "an x86-64 instruction, a directive, or a label followed by `:`", first.column, first.text)
    }
  }
  if (label !== undefined && ts.isWord("equ")) {
    ts.next()
    const name = qualify(label.name, state, label.column)
    const expr = qualifyExpr(parseExpr(ts, false), state)
    expectEnd(ts, "the `equ` value")
    return [{ kind: "equ", name, expr, column: label.column }]
  }
  if (label !== undefined) {
    const name = qualify(label.name, state, label.column)
    if (!label.name.startsWith(".") || label.name.startsWith("..@")) {
      if (!label.name.startsWith("..@")) state.lastGlobal = label.name
    }
    out.push({ kind: "label", name, column: label.column })
  }
  if (ts.atEnd()) return out
  let times: Expr | undefined
  if (ts.isWord("times")) {
    ts.next()
    times = qualifyExpr(parseExpr(ts, false), state)
    if (ts.atEnd()) fail("`times` needs something to repeat", "an instruction or data after the count, e.g. times 4 db 0", ts.peek().column)
  }
  const word = ts.peek()
  if (word.kind !== "ident") fail(`expected an instruction or directive, found ${describe(word)}`, "an instruction, directive or label", word.column, word.text)
  const lower = word.text.toLowerCase()
  if (dataUnits[lower] !== undefined) {
    ts.next()
    out.push({ kind: "data", unit: dataUnits[lower]!, items: parseDataItems(ts, state), times })
    return out
  }
  if (reserveUnits[lower] !== undefined) {
    ts.next()
    const count = qualifyExpr(parseExpr(ts, false), state)
    expectEnd(ts, `the ${lower} count`)
    out.push({ kind: "reserve", unit: reserveUnits[lower]!, count, times })
    return out
  }
  if (times === undefined && directiveWords.has(lower)) {
    ts.next()
    directive(lower, word.column, ts, state, out)
    return out
  }
  out.push({ kind: "instruction", instruction: parseInstruction(ts, state), times })
  return out
}

const directive = (name: string, column: number, ts: TokenStream, state: ParseState, out: Array<Statement>): void => {
  switch (name) {
    case "bits":
    case "use64": {
      const t = name === "use64" ? undefined : ts.next()
      if (t !== undefined && !(t.kind === "number" && t.value === 64n)) {
        fail(`BITS ${t.text} is not supported`, "BITS 64 (the guest core runs 64-bit code; write 16/32-bit boot code is not needed)", t.column, t.text)
      }
      expectEnd(ts, "BITS 64")
      return
    }
    case "org": {
      const expr = parseExpr(ts, false)
      expectEnd(ts, "the ORG address")
      out.push({ kind: "org", expr, column })
      return
    }
    case "section":
    case "segment": {
      const t = ts.next()
      if (t.kind !== "ident" || t.text.toLowerCase() !== ".text") {
        fail(`section \`${t.text}\` is not supported in a flat binary`, "`section .text` (put data in the same section, after the code)", t.column, t.text)
      }
      while (!ts.atEnd()) ts.next() // attributes such as align=16 are accepted and ignored
      return
    }
    case "default": {
      const t = ts.next()
      const w = t.text.toLowerCase()
      if (t.kind !== "ident" || (w !== "rel" && w !== "abs")) fail(`\`default ${t.text}\` is not supported`, "`default rel` or `default abs`", t.column, t.text)
      state.defaultRel = w === "rel"
      expectEnd(ts, `default ${w}`)
      return
    }
    case "global":
    case "static":
    case "cpu":
      while (!ts.atEnd()) ts.next() // meaningful for object files only; a flat binary has no symbol table
      return
    case "extern":
    case "common":
      return fail(`\`${name}\` symbols cannot be resolved in a flat binary`, "every symbol defined in this program (or its %include files)", column, name)
    case "align":
    case "alignb": {
      const boundary = parseExpr(ts, false)
      if (ts.isOp(",")) {
        ts.next()
        const fill = ts.next()
        if (!(fill.kind === "ident" && fill.text.toLowerCase() === "nop") && !(fill.kind === "ident" && fill.text.toLowerCase() === "db")) {
          fail(`align fill \`${fill.text}\` is not supported`, "`align N` (nop fill) or `alignb N` (zero fill)", fill.column, fill.text)
        }
        while (!ts.atEnd()) ts.next()
      }
      expectEnd(ts, "the alignment")
      out.push({ kind: "align", boundary, fillNop: name === "align", column })
      return
    }
    case "equ":
      return fail("`equ` needs a name before it", "NAME equ VALUE", column, "equ")
    case "times":
      return fail("`times` cannot be used here", "times COUNT followed by an instruction or data", column, "times")
    default:
      return fail(`\`${name}\` is not supported`, "db/dw/dd/dq, resb/resw/resd/resq, times, align, equ, org, bits, section .text, default rel", column, name)
  }
}

const parseDataItems = (ts: TokenStream, state: ParseState): Array<DataItem> => {
  const items: Array<DataItem> = []
  for (;;) {
    const t = ts.peek()
    if (t.kind === "end") fail("data directive needs at least one value", "values separated by commas, e.g. db 1, 2, 'text', 0", t.column)
    if (t.kind === "string" && (ts.isOp(",", 1) || ts.peek(1).kind === "end")) {
      ts.next()
      items.push({ kind: "bytes", bytes: t.bytes! })
    } else if (t.kind === "ident" && t.text === "?" && (ts.isOp(",", 1) || ts.peek(1).kind === "end")) {
      ts.next()
      items.push({ kind: "uninitialized" })
    } else {
      items.push({ kind: "expr", expr: qualifyExpr(parseExpr(ts, false), state), column: t.column })
    }
    if (ts.atEnd()) return items
    ts.expectOp(",", "between data values")
  }
}

const parseInstruction = (ts: TokenStream, state: ParseState): Instruction => {
  let lock = false
  let rep: 0xf3 | 0xf2 | undefined
  let o16 = false
  let o64 = false
  let segment: Register | undefined
  for (;;) {
    const t = ts.peek()
    if (t.kind !== "ident") break
    const w = t.text.toLowerCase()
    const seg = registerNamed(w)
    if (w === "lock") lock = true
    else if (w === "rep" || w === "repe" || w === "repz") rep = 0xf3
    else if (w === "repne" || w === "repnz") rep = 0xf2
    else if (w === "o16") o16 = true
    else if (w === "o64") o64 = true
    else if (w === "o32" || w === "a64") {
      // the default operand and address sizes in 64-bit mode: nothing to encode
    } else if (seg?.cls === "sreg" && ts.peek(1).kind === "ident") segment = seg
    else break
    ts.next()
  }
  const m = ts.next()
  if (m.kind !== "ident") fail(`expected an instruction, found ${describe(m)}`, "an instruction mnemonic after the prefixes", m.column, m.text)
  const mnemonic = m.text.toLowerCase()
  if (!isMnemonic(mnemonic)) {
    if (mnemonic === "a32" || mnemonic === "a16") fail(`\`${m.text}\` is not supported`, "64-bit or 32-bit address registers in the memory operand", m.column, m.text)
    fail(`unknown instruction \`${m.text}\``, "an x86-64 instruction the guest core executes, a directive or a label followed by `:`", m.column, m.text)
  }
  const operands: Array<Operand> = []
  if (!ts.atEnd()) {
    for (;;) {
      operands.push(qualifyOperand(parseOperand(ts, state.defaultRel), state))
      if (ts.atEnd()) break
      const t = ts.peek()
      if (!(t.kind === "op" && t.text === ",")) fail(`unexpected ${describe(t)} in the operands of \`${mnemonic}\``, "`,` between operands or the end of the line", t.column, t.text)
      ts.next()
    }
  }
  const prefixes: Prefixes = { lock, rep, o16, o64, segment }
  return { mnemonic, mnemonicColumn: m.column, operands, prefixes }
}
