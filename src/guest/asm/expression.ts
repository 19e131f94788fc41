import { fail } from "./errors.ts"
import type { Token } from "./lexer.ts"
import { registerNamed, type Register } from "./registers.ts"

export type Expr =
  | { readonly t: "num"; readonly v: bigint; readonly column: number }
  | { readonly t: "sym"; readonly name: string; readonly column: number }
  | { readonly t: "here"; readonly column: number }
  | { readonly t: "base"; readonly column: number }
  | { readonly t: "reg"; readonly reg: Register; readonly column: number }
  | { readonly t: "un"; readonly op: string; readonly a: Expr; readonly column: number }
  | { readonly t: "bin"; readonly op: string; readonly a: Expr; readonly b: Expr; readonly column: number }

/** A cursor over one line's tokens. */
export class TokenStream {
  pos = 0
  constructor(readonly tokens: ReadonlyArray<Token>) {}
  peek(offset = 0): Token {
    return this.tokens[Math.min(this.pos + offset, this.tokens.length - 1)]!
  }
  next(): Token {
    const t = this.peek()
    if (this.pos < this.tokens.length - 1) this.pos++
    return t
  }
  atEnd(): boolean {
    return this.peek().kind === "end"
  }
  isOp(text: string, offset = 0): boolean {
    const t = this.peek(offset)
    return t.kind === "op" && t.text === text
  }
  isWord(word: string, offset = 0): boolean {
    const t = this.peek(offset)
    return t.kind === "ident" && t.text.toLowerCase() === word
  }
  expectOp(text: string, what: string): Token {
    const t = this.peek()
    if (!(t.kind === "op" && t.text === text)) fail(`expected \`${text}\` ${what}, found ${describe(t)}`, `\`${text}\``, t.column, t.text)
    return this.next()
  }
}

export const describe = (t: Token): string => (t.kind === "end" ? "end of line" : `\`${t.text}\``)

// Binary operator precedence, lowest first (NASM's order).
const levels: ReadonlyArray<ReadonlyArray<string>> = [
  ["||"],
  ["^^"],
  ["&&"],
  ["=", "==", "<", "<=", ">", ">=", "!=", "<>"],
  ["|"],
  ["^"],
  ["&"],
  ["<<", ">>", "<<<", ">>>"],
  ["+", "-"],
  ["*", "/", "//", "%", "%%"],
]

/** Words that end an expression because they belong to the operand syntax, not to the value. */
const stopWords = new Set(["rel", "abs"])

/**
 * Parses an expression. With `allowRegisters`, register names become `reg` leaves (memory
 * operands); otherwise a register name is an error, reported by the caller's context.
 */
export const parseExpr = (ts: TokenStream, allowRegisters: boolean): Expr => parseLevel(ts, 0, allowRegisters)

const parseLevel = (ts: TokenStream, level: number, regs: boolean): Expr => {
  if (level >= levels.length) return parseUnary(ts, regs)
  let left = parseLevel(ts, level + 1, regs)
  for (;;) {
    const t = ts.peek()
    if (t.kind !== "op" || !levels[level]!.includes(t.text)) return left
    ts.next()
    const right = parseLevel(ts, level + 1, regs)
    left = { t: "bin", op: t.text, a: left, b: right, column: t.column }
  }
}

const parseUnary = (ts: TokenStream, regs: boolean): Expr => {
  const t = ts.peek()
  if (t.kind === "op" && (t.text === "-" || t.text === "+" || t.text === "~" || t.text === "!")) {
    ts.next()
    return { t: "un", op: t.text, a: parseUnary(ts, regs), column: t.column }
  }
  return parsePrimary(ts, regs)
}

const parsePrimary = (ts: TokenStream, regs: boolean): Expr => {
  const t = ts.next()
  switch (t.kind) {
    case "number":
      return { t: "num", v: t.value!, column: t.column }
    case "string": {
      // A character constant: its bytes little-endian, like NASM.
      const bytes = t.bytes!
      if (bytes.length > 8) fail(`character constant ${t.text} is longer than 8 bytes`, "at most 8 characters", t.column, t.text)
      let v = 0n
      for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!)
      return { t: "num", v, column: t.column }
    }
    case "here":
      return { t: "here", column: t.column }
    case "base":
      return { t: "base", column: t.column }
    case "ident": {
      const reg = registerNamed(t.text)
      if (reg !== undefined) {
        if (!regs) fail(`register \`${t.text}\` cannot be used in a constant expression`, "a number, label or constant", t.column, t.text)
        return { t: "reg", reg, column: t.column }
      }
      if (stopWords.has(t.text.toLowerCase())) fail(`\`${t.text}\` is misplaced`, "`rel`/`abs` right after `[`", t.column, t.text)
      return { t: "sym", name: t.text, column: t.column }
    }
    case "op":
      if (t.text === "(") {
        const e = parseExpr(ts, regs)
        ts.expectOp(")", "to close `(`")
        return e
      }
      break
    default:
      break
  }
  return fail(`expected an expression, found ${describe(t)}`, "a number, label, `$`, `$$` or `(`", t.column, t.text)
}

/** The result of evaluating an expression in one pass. */
export interface Value {
  value: bigint
  /** False when a symbol it uses has no value yet (forward reference in an early pass). */
  known: boolean
  /**
   * How many section-relative terms it carries (labels, `$`, `$$`, counted +1/-1). NASM treats
   * a relocatable value (reloc !== 0) as unknown-size: never shortened to imm8/disp8.
   */
  reloc: number
}

export interface SymbolValue {
  readonly value: bigint
  readonly reloc: number
}

export interface EvalContext {
  /** Resolves a symbol name; undefined when it is not (yet) defined. */
  lookup(name: string, column: number): SymbolValue | undefined
  readonly here: bigint
  readonly base: bigint
  /** In the final pass an undefined symbol is an error. */
  readonly final: boolean
}

const wrap = (v: bigint): bigint => BigInt.asIntN(64, v)

export const evaluate = (e: Expr, ctx: EvalContext): Value => {
  switch (e.t) {
    case "num":
      return { value: wrap(e.v), known: true, reloc: 0 }
    case "here":
      return { value: ctx.here, known: true, reloc: 1 }
    case "base":
      return { value: ctx.base, known: true, reloc: 1 }
    case "reg":
      return fail(`register \`${e.reg.name}\` is not allowed here`, "a constant or label", e.column, e.reg.name)
    case "sym": {
      const s = ctx.lookup(e.name, e.column)
      if (s === undefined) {
        if (ctx.final) fail(`symbol \`${e.name}\` is not defined`, "a label or `equ` constant defined somewhere in the program", e.column, e.name)
        return { value: 0n, known: false, reloc: 0 }
      }
      return { value: s.value, known: true, reloc: s.reloc }
    }
    case "un": {
      const a = evaluate(e.a, ctx)
      switch (e.op) {
        case "-":
          return { value: wrap(-a.value), known: a.known, reloc: -a.reloc }
        case "+":
          return a
        case "~":
          return { value: wrap(~a.value), known: a.known, reloc: 0 }
        default:
          return { value: a.value === 0n ? 1n : 0n, known: a.known, reloc: 0 }
      }
    }
    case "bin": {
      const a = evaluate(e.a, ctx)
      const b = evaluate(e.b, ctx)
      const known = a.known && b.known
      const x = a.value
      const y = b.value
      const ux = BigInt.asUintN(64, x)
      const uy = BigInt.asUintN(64, y)
      const bool = (c: boolean): Value => ({ value: c ? 1n : 0n, known, reloc: 0 })
      const num = (v: bigint, reloc = 0): Value => ({ value: wrap(v), known, reloc })
      const divisor = (): void => {
        if (y === 0n && known) fail("division by zero", "a non-zero divisor", e.column)
      }
      switch (e.op) {
        case "+":
          return num(x + y, a.reloc + b.reloc)
        case "-":
          return num(x - y, a.reloc - b.reloc)
        case "*":
          return num(x * y)
        case "/":
          divisor()
          return num(y === 0n ? 0n : ux / uy)
        case "//":
          divisor()
          return num(y === 0n ? 0n : x / y)
        case "%":
          divisor()
          return num(y === 0n ? 0n : ux % uy)
        case "%%":
          divisor()
          return num(y === 0n ? 0n : x % y)
        case "<<":
        case "<<<":
          return num(y >= 64n || y < 0n ? 0n : x << y)
        case ">>":
          return num(y >= 64n || y < 0n ? 0n : ux >> y)
        case ">>>":
          return num(x >> (y >= 64n || y < 0n ? 63n : y))
        case "&":
          return num(x & y)
        case "|":
          return num(x | y)
        case "^":
          return num(x ^ y)
        case "=":
        case "==":
          return bool(x === y)
        case "!=":
        case "<>":
          return bool(x !== y)
        case "<":
          return bool(x < y)
        case "<=":
          return bool(x <= y)
        case ">":
          return bool(x > y)
        case ">=":
          return bool(x >= y)
        case "&&":
          return bool(x !== 0n && y !== 0n)
        case "||":
          return bool(x !== 0n || y !== 0n)
        default:
          return bool((x !== 0n) !== (y !== 0n))
      }
    }
  }
}

/** The register terms of a memory expression and what is left as displacement. */
export interface LinearAddress {
  readonly terms: Array<{ reg: Register; scale: bigint; column: number }>
  readonly disp: Expr | undefined
}

const constantOf = (e: Expr): bigint | undefined => {
  try {
    const v = evaluate(e, { lookup: () => undefined, here: 0n, base: 0n, final: false })
    return v.known && v.reloc === 0 && !containsSymbol(e) ? v.value : undefined
  } catch {
    return undefined
  }
}

const containsSymbol = (e: Expr): boolean =>
  e.t === "sym" || e.t === "here" || e.t === "base" || (e.t === "un" && containsSymbol(e.a)) || (e.t === "bin" && (containsSymbol(e.a) || containsSymbol(e.b)))

export const containsRegister = (e: Expr): boolean =>
  e.t === "reg" || (e.t === "un" && containsRegister(e.a)) || (e.t === "bin" && (containsRegister(e.a) || containsRegister(e.b)))

/** Splits `[rax + rcx*4 + label - 8]` into register terms and a displacement expression. */
export const linearize = (e: Expr): LinearAddress => {
  const terms: Array<{ reg: Register; scale: bigint; column: number }> = []
  const rest: Array<{ sign: 1 | -1; e: Expr }> = []
  const walk = (x: Expr, sign: 1 | -1): void => {
    if (!containsRegister(x)) {
      rest.push({ sign, e: x })
      return
    }
    if (x.t === "reg") {
      if (sign < 0) fail(`register \`${x.reg.name}\` cannot be subtracted`, "registers added, e.g. [rbx + rsi*4 - 8]", x.column, x.reg.name)
      terms.push({ reg: x.reg, scale: 1n, column: x.column })
      return
    }
    if (x.t === "bin" && (x.op === "+" || x.op === "-")) {
      walk(x.a, sign)
      walk(x.b, x.op === "-" ? (sign === 1 ? -1 : 1) : sign)
      return
    }
    if (x.t === "un" && x.op === "+") return walk(x.a, sign)
    if (x.t === "bin" && x.op === "*") {
      const [r, k] = x.a.t === "reg" ? [x.a, x.b] : x.b.t === "reg" ? [x.b, x.a] : [undefined, undefined]
      const scale = k === undefined ? undefined : constantOf(k)
      if (r !== undefined && r.t === "reg" && scale !== undefined && sign > 0) {
        terms.push({ reg: r.reg, scale, column: r.column })
        return
      }
    }
    fail("this address expression is not base + index*scale + displacement", "an address like [base + index*scale + displacement] with scale 1, 2, 4 or 8", x.column)
  }
  walk(e, 1)
  let disp: Expr | undefined
  for (const r of rest) {
    const term: Expr = r.sign < 0 ? { t: "un", op: "-", a: r.e, column: r.e.column } : r.e
    disp = disp === undefined ? term : { t: "bin", op: "+", a: disp, b: term, column: term.column }
  }
  return { terms, disp }
}
