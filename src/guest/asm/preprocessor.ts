import { AsmError, LineProblem } from "./errors.ts"
import { evaluate, parseExpr, TokenStream } from "./expression.ts"
import { stripComment, tokenize } from "./lexer.ts"

/** One line handed to the assembler: where it came from and its text after macro expansion. */
export interface SourceLine {
  readonly file: string
  readonly line: number
  /** The line as written (what error messages show). */
  readonly original: string
  /** The line after single-line and multi-line macro expansion. */
  readonly text: string
  /** Shown in the listing only: preprocessor directives and lines in false conditionals. */
  readonly listOnly?: boolean
}

/** Finds the text of an `%include`d file; undefined when it does not exist. */
export type IncludeResolver = (path: string, includingFile: string) => { readonly fileName: string; readonly source: string } | undefined

export interface PreprocessOptions {
  readonly fileName: string
  readonly defines: Readonly<Record<string, string>>
  readonly includeResolver?: IncludeResolver | undefined
}

interface SingleLineMacro {
  readonly params: ReadonlyArray<string> | undefined
  readonly body: string
}

interface MultiLineMacro {
  readonly name: string
  readonly min: number
  readonly max: number
  readonly greedy: boolean
  readonly body: ReadonlyArray<RawLine>
}

interface RawLine {
  readonly file: string
  readonly line: number
  readonly text: string
}

interface Conditional {
  /** Lines inside are assembled. */
  active: boolean
  /** Some branch of this %if chain has already been taken. */
  taken: boolean
  readonly parentActive: boolean
  sawElse: boolean
  readonly opened: RawLine
}

const identStartRe = /[A-Za-z_.?@$]/
const identRe = /[A-Za-z0-9_$#@~.?]/
const maxDepth = 64

export const preprocess = (source: string, options: PreprocessOptions): Array<SourceLine> => new Preprocessor(options).run(source)

class Preprocessor {
  private readonly defines = new Map<string, SingleLineMacro>()
  private readonly macros = new Map<string, MultiLineMacro>()
  private readonly conditions: Array<Conditional> = []
  private readonly out: Array<SourceLine> = []
  /** Collecting a %macro or %rep body. */
  private collecting: { kind: "macro" | "rep"; depth: number; lines: Array<RawLine>; opened: RawLine; finish: (body: Array<RawLine>) => void } | undefined
  private uniqueCounter = 0
  private includeDepth = 0

  constructor(private readonly options: PreprocessOptions) {
    for (const [name, value] of Object.entries(options.defines)) this.defines.set(name, { params: undefined, body: value })
  }

  run(source: string): Array<SourceLine> {
    this.processFile(source, this.options.fileName)
    const open = this.conditions[this.conditions.length - 1]
    if (open !== undefined) throw this.error(open.opened, "this conditional block is never closed", "`%endif` before the end of the file", 1)
    if (this.collecting !== undefined) {
      const c = this.collecting
      throw this.error(c.opened, `this %${c.kind} block is never closed`, c.kind === "macro" ? "`%endmacro`" : "`%endrep`", 1)
    }
    return this.out
  }

  private error(at: RawLine, problem: string, expected: string, column: number): AsmError {
    return new AsmError({ file: at.file, line: at.line, column, sourceLine: at.text, problem, expected })
  }

  private processFile(source: string, file: string): void {
    const physical = source.split("\n")
    for (let i = 0; i < physical.length; i++) {
      let text = physical[i]!.replace(/\r$/, "")
      const first = i
      // A backslash at the end of a line continues it on the next one.
      while (/\\\s*$/.test(stripComment(text)) && i + 1 < physical.length) {
        text = stripComment(text).replace(/\\\s*$/, "") + physical[++i]!.replace(/\r$/, "")
      }
      if (i === physical.length - 1 && text === "") continue
      this.processLine({ file, line: first + 1, text }, undefined)
    }
  }

  private get active(): boolean {
    const top = this.conditions[this.conditions.length - 1]
    return top === undefined || top.active
  }

  private processLine(raw: RawLine, origin: RawLine | undefined): void {
    const trimmed = raw.text.trimStart()
    const directive = /^%([A-Za-z]+)\b/.exec(trimmed)?.[1]?.toLowerCase()
    if (this.collecting !== undefined) {
      const c = this.collecting
      const opens = c.kind === "macro" ? ["macro", "imacro"] : ["rep"]
      const closes = c.kind === "macro" ? ["endmacro", "endm"] : ["endrep"]
      if (directive !== undefined && opens.includes(directive)) c.depth++
      if (directive !== undefined && closes.includes(directive)) {
        if (--c.depth === 0) {
          this.collecting = undefined
          c.finish(c.lines)
          return
        }
      }
      c.lines.push(raw)
      this.listOnly(raw)
      return
    }
    const column = raw.text.length - trimmed.length + 1
    try {
      if (directive !== undefined && this.conditional(directive, trimmed, raw, column)) return this.listOnly(raw)
      if (!this.active) return this.listOnly(raw)
      if (directive !== undefined) {
        if (directive !== "include" && directive !== "rep") this.listOnly(raw)
        this.directive(directive, trimmed, raw, column)
        return
      }
      const expanded = this.expandSingle(raw.text, new Set(), 0)
      if (this.isMacroCall(expanded)) {
        this.listOnly(raw)
        this.invokeMacro(expanded, raw)
        return
      }
      this.out.push({ file: (origin ?? raw).file, line: (origin ?? raw).line, original: raw.text, text: expanded })
    } catch (e) {
      if (e instanceof LineProblem) {
        const col = e.column > 0 && expandedColumnFits(raw.text, e) ? e.column : locate(raw.text, e.near, column)
        throw this.error(raw, e.problem, e.expected, col)
      }
      throw e
    }
  }

  /** Handles %if-family directives; returns false for other directives. */
  private conditional(name: string, trimmed: string, raw: RawLine, column: number): boolean {
    const rest = trimmed.slice(name.length + 1).trim()
    const top = this.conditions[this.conditions.length - 1]
    const defined = (): boolean => {
      const word = /^[A-Za-z_.?@$][A-Za-z0-9_$#@~.?]*/.exec(stripComment(rest).trim())?.[0]
      if (word === undefined) throw this.error(raw, `%${name} needs a macro name`, `a name after %${name}, e.g. %${name} DEBUG`, column + name.length + 1)
      return this.defines.has(word) || this.defines.has(`\u0000${word.toLowerCase()}`)
    }
    switch (name) {
      case "ifdef":
      case "ifndef":
      case "if": {
        const parentActive = this.active
        const cond = parentActive ? (name === "if" ? this.condition(rest, raw) : defined() === (name === "ifdef")) : false
        this.conditions.push({ active: parentActive && cond, taken: cond, parentActive, sawElse: false, opened: raw })
        return true
      }
      case "elifdef":
      case "elifndef":
      case "elif": {
        if (top === undefined) throw this.error(raw, `%${name} without a matching %if`, "an %if, %ifdef or %ifndef before it", column)
        if (top.sawElse) throw this.error(raw, `%${name} after %else`, "%endif to close the block", column)
        if (top.taken || !top.parentActive) {
          top.active = false
        } else {
          const cond = name === "elif" ? this.condition(rest, raw) : defined() === (name === "elifdef")
          top.active = cond
          top.taken = cond
        }
        return true
      }
      case "else":
        if (top === undefined) throw this.error(raw, "%else without a matching %if", "an %if, %ifdef or %ifndef before it", column)
        if (top.sawElse) throw this.error(raw, "a second %else in the same block", "%endif to close the block", column)
        top.sawElse = true
        top.active = top.parentActive && !top.taken
        top.taken = true
        return true
      case "endif":
        if (top === undefined) throw this.error(raw, "%endif without a matching %if", "an %if, %ifdef or %ifndef before it", column)
        this.conditions.pop()
        return true
      default:
        return false
    }
  }

  private condition(rest: string, raw: RawLine): boolean {
    const text = this.expandSingle(stripComment(rest), new Set(), 0)
    const ts = new TokenStream(tokenize(text))
    const e = parseExpr(ts, false)
    if (!ts.atEnd()) throw this.error(raw, `unexpected \`${ts.peek().text}\` after the %if expression`, "end of line", 1)
    const v = evaluate(e, {
      lookup: (name, col) => {
        throw new LineProblem(`\`${name}\` is not a defined macro or number`, "an expression of numbers and %define'd macros", col, name)
      },
      here: 0n,
      base: 0n,
      final: true,
    })
    return v.value !== 0n
  }

  private directive(name: string, trimmed: string, raw: RawLine, column: number): void {
    const rest = stripComment(trimmed.slice(name.length + 1)).trim()
    const nameColumn = column + name.length + 2
    const wordMatch = /^[A-Za-z_.?@$][A-Za-z0-9_$#@~.?]*/.exec(rest)
    switch (name) {
      case "define":
      case "xdefine":
      case "idefine": {
        if (wordMatch === null) throw this.error(raw, `%${name} needs a macro name`, "a name, e.g. %define ITERS 1000", nameColumn)
        const word = wordMatch[0]
        let after = rest.slice(word.length)
        let params: Array<string> | undefined
        if (after.startsWith("(")) {
          const close = after.indexOf(")")
          if (close < 0) throw this.error(raw, "unclosed parameter list", "`)` after the parameter names", nameColumn + word.length)
          params = after.slice(1, close).split(",").map((p) => p.trim()).filter((p) => p !== "")
          after = after.slice(close + 1)
        }
        let body = after.trim()
        if (name === "xdefine") body = this.expandSingle(body, new Set(), 0)
        // %idefine names match in any case: kept under their lower-case spelling with a marker.
        if (name === "idefine") this.defines.set(`\u0000${word.toLowerCase()}`, { params, body })
        else this.defines.set(word, { params, body })
        return
      }
      case "undef":
        if (wordMatch === null) throw this.error(raw, "%undef needs a macro name", "a name, e.g. %undef DEBUG", nameColumn)
        this.defines.delete(wordMatch[0])
        this.defines.delete(`\u0000${wordMatch[0].toLowerCase()}`)
        return
      case "assign": {
        if (wordMatch === null) throw this.error(raw, "%assign needs a macro name", "a name and a value, e.g. %assign N 4*8", nameColumn)
        const word = wordMatch[0]
        const value = this.evaluateConstant(rest.slice(word.length), raw)
        this.defines.set(word, { params: undefined, body: value.toString() })
        return
      }
      case "macro":
      case "imacro": {
        const m = /^([A-Za-z_.?@$][A-Za-z0-9_$#@~.?]*)\s+(\d+)(?:\s*-\s*(\d+|\*))?(\+)?\s*$/.exec(rest)
        if (m === null) throw this.error(raw, "malformed %macro line", "%macro NAME COUNT, e.g. %macro push2 2 or %macro say 1-3", nameColumn)
        const min = Number(m[2])
        const max = m[3] === undefined ? min : m[3] === "*" ? Infinity : Number(m[3])
        const macroName = m[1]!
        this.collecting = {
          kind: "macro",
          depth: 1,
          lines: [],
          opened: raw,
          // %macro names are case-sensitive, %imacro names are not (kept in lower case, marked).
          finish: (body) => this.macros.set(name === "imacro" ? `\u0000${macroName.toLowerCase()}` : macroName, { name: macroName, min, max, greedy: m[4] === "+", body }),
        }
        return
      }
      case "endmacro":
      case "endm":
        throw this.error(raw, "%endmacro without a matching %macro", "a %macro before it", column)
      case "rep": {
        const count = this.evaluateConstant(rest, raw)
        if (count < 0n || count > 1_000_000n) throw this.error(raw, `%rep count ${count} is out of range`, "a count from 0 to 1000000", nameColumn)
        this.collecting = {
          kind: "rep",
          depth: 1,
          lines: [],
          opened: raw,
          finish: (body) => {
            for (let i = 0n; i < count; i++) for (const l of body) this.processLine(l, undefined)
          },
        }
        return
      }
      case "endrep":
        throw this.error(raw, "%endrep without a matching %rep", "a %rep before it", column)
      case "include": {
        const m = /^["'<](.*)["'>]$/.exec(rest)
        if (m === null) throw this.error(raw, "malformed %include", 'a quoted file name, e.g. %include "kvmsim.inc"', nameColumn)
        const found = this.options.includeResolver?.(m[1]!, raw.file)
        if (found === undefined) throw this.error(raw, `cannot find include file \`${m[1]}\``, "a file that exists, relative to the including file", nameColumn)
        if (++this.includeDepth > maxDepth) throw this.error(raw, "%include nested too deeply (recursive include?)", `at most ${maxDepth} nested includes`, column)
        this.processFile(found.source, found.fileName)
        this.includeDepth--
        return
      }
      case "error":
        throw this.error(raw, `%error: ${rest}`, "the condition that raised this %error to be fixed", column)
      case "warning":
      case "line":
      case "pragma":
        return
      default:
        throw this.error(raw, `unknown preprocessor directive \`%${name}\``, "%define %undef %assign %if %ifdef %ifndef %elif %elifdef %elifndef %else %endif %macro %endmacro %rep %endrep %include %error", column)
    }
  }

  private evaluateConstant(text: string, raw: RawLine): bigint {
    const expanded = this.expandSingle(text, new Set(), 0)
    const ts = new TokenStream(tokenize(expanded))
    const e = parseExpr(ts, false)
    return evaluate(e, {
      lookup: (name, col) => {
        throw new LineProblem(`\`${name}\` is not a defined macro or number`, "a constant expression", col, name)
      },
      here: 0n,
      base: 0n,
      final: true,
    }).value
    void raw
  }

  /** Replaces %define'd names (and NAME(args) calls) outside strings and comments. */
  private expandSingle(text: string, active: Set<string>, depth: number): string {
    if (depth > maxDepth) throw new LineProblem("macro expansion nested too deeply (recursive %define?)", `at most ${maxDepth} levels of expansion`, 0)
    if (this.defines.size === 0) return text
    let out = ""
    let i = 0
    while (i < text.length) {
      const ch = text[i]!
      if (ch === ";") return out + text.slice(i)
      if (ch === "'" || ch === '"' || ch === "`") {
        let j = i + 1
        while (j < text.length && text[j] !== ch) j += ch === "`" && text[j] === "\\" ? 2 : 1
        out += text.slice(i, j + 1)
        i = j + 1
        continue
      }
      if (identStartRe.test(ch) && (i === 0 || !identRe.test(text[i - 1]!)) && !(ch === "$" && !identStartRe.test(text[i + 1] ?? ""))) {
        let j = i + 1
        while (j < text.length && identRe.test(text[j]!)) j++
        const word = text.slice(i, j)
        const def = active.has(word) ? undefined : (this.defines.get(word) ?? this.defines.get(`\u0000${word.toLowerCase()}`))
        if (def === undefined) {
          out += word
          i = j
          continue
        }
        if (def.params === undefined) {
          out += this.expandSingle(def.body, new Set([...active, word]), depth + 1)
          i = j
          continue
        }
        let k = j
        while (text[k] === " " || text[k] === "\t") k++
        if (text[k] !== "(") {
          out += word
          i = j
          continue
        }
        const { args, end } = splitCallArgs(text, k)
        if (args.length !== def.params.length) {
          throw new LineProblem(`macro \`${word}\` takes ${def.params.length} argument(s), given ${args.length}`, `${word}(${def.params.join(", ")})`, i + 1, word)
        }
        let body = def.body
        def.params.forEach((p, idx) => {
          body = body.replace(new RegExp(`(?<![A-Za-z0-9_$#@~.?])${escapeRe(p)}(?![A-Za-z0-9_$#@~.?])`, "g"), () => args[idx]!.trim())
        })
        out += this.expandSingle(body, new Set([...active, word]), depth + 1)
        i = end
        continue
      }
      out += ch
      i++
    }
    return out
  }

  private listOnly(raw: RawLine): void {
    this.out.push({ file: raw.file, line: raw.line, original: raw.text, text: "", listOnly: true })
  }

  private macroNamed(name: string): MultiLineMacro | undefined {
    return this.macros.get(name) ?? this.macros.get(`\u0000${name.toLowerCase()}`)
  }

  private isMacroCall(text: string): boolean {
    if (this.macros.size === 0) return false
    const m = /^\s*([A-Za-z_.?@$][A-Za-z0-9_$#@~.?]*)/.exec(text)
    return m !== null && this.macroNamed(m[1]!) !== undefined
  }

  /** Expands a multi-line macro call; returns false when the line is not one. */
  private invokeMacro(text: string, raw: RawLine): boolean {
    if (this.macros.size === 0) return false
    const m = /^\s*([A-Za-z_.?@$][A-Za-z0-9_$#@~.?]*)(.*)$/.exec(stripComment(text))
    if (m === null) return false
    const macro = this.macroNamed(m[1]!)
    if (macro === undefined) return false
    const argText = m[2]!.trim()
    let args = argText === "" ? [] : splitMacroArgs(argText)
    if (macro.greedy && args.length > macro.max) {
      const keep = args.slice(0, macro.max - 1)
      keep.push(args.slice(macro.max - 1).join(","))
      args = keep
    }
    if (args.length < macro.min || args.length > macro.max) {
      const count = macro.min === macro.max ? `${macro.min}` : `${macro.min} to ${macro.max === Infinity ? "any number of" : macro.max}`
      throw new LineProblem(`macro \`${macro.name}\` takes ${count} argument(s), given ${args.length}`, `${count} comma-separated argument(s)`, 0, m[1])
    }
    if (++this.includeDepth > maxDepth) throw new LineProblem("macro calls nested too deeply (recursive macro?)", `at most ${maxDepth} nested calls`, 0)
    const unique = `..@${++this.uniqueCounter}.`
    for (const line of macro.body) {
      const body = line.text
        .replace(/%%([A-Za-z_.?@$][A-Za-z0-9_$#@~.?]*)/g, (_, n: string) => unique + n)
        .replace(/%\{?(\d+)\}?/g, (all, d: string) => {
          const n = Number(d)
          return n === 0 ? String(args.length) : n <= args.length ? args[n - 1]!.trim() : all
        })
      this.processLine({ file: line.file, line: line.line, text: body }, undefined)
    }
    this.includeDepth--
    return true
  }
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Splits `(a, (b, c), 'x,y')` starting at the `(` into arguments; returns the index after `)`. */
const splitCallArgs = (text: string, open: number): { args: Array<string>; end: number } => {
  const args: Array<string> = []
  let depth = 0
  let start = open + 1
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!
    if (ch === "'" || ch === '"' || ch === "`") {
      const close = text.indexOf(ch, i + 1)
      i = close < 0 ? text.length : close
      continue
    }
    if (ch === "(") depth++
    else if (ch === ")") {
      if (--depth === 0) {
        const last = text.slice(start, i)
        if (args.length > 0 || last.trim() !== "") args.push(last)
        return { args, end: i + 1 }
      }
    } else if (ch === "," && depth === 1) {
      args.push(text.slice(start, i))
      start = i + 1
    }
  }
  throw new LineProblem("unclosed macro argument list", "`)` to close the arguments", open + 1)
}

/** Splits multi-line macro arguments at top-level commas; `{a, b}` groups one argument. */
const splitMacroArgs = (text: string): Array<string> => {
  const args: Array<string> = []
  let current = ""
  let braces = 0
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (ch === "'" || ch === '"' || ch === "`") {
      const close = text.indexOf(ch, i + 1)
      const end = close < 0 ? text.length : close + 1
      current += text.slice(i, end)
      i = end - 1
      continue
    }
    if (ch === "{" && braces++ === 0 && current.trim() === "") continue
    if (ch === "}" && --braces === 0) continue
    if (ch === "," && braces === 0) {
      args.push(current)
      current = ""
      continue
    }
    current += ch
  }
  args.push(current)
  return args
}

const expandedColumnFits = (original: string, p: LineProblem): boolean =>
  p.near === undefined || original.slice(p.column - 1, p.column - 1 + p.near.length) === p.near

/** After macro expansion columns can shift: find the offending text in the original line. */
const locate = (original: string, near: string | undefined, fallback: number): number => {
  if (near !== undefined && near !== "") {
    const at = original.indexOf(near)
    if (at >= 0) return at + 1
  }
  return fallback
}
