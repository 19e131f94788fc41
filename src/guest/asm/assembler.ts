import { AsmError, LineProblem } from "./errors.ts"
import { evaluate, type EvalContext, type SymbolValue } from "./expression.ts"
import type { EncodeContext } from "./encoding.ts"
import { encodeInstruction } from "./instructions.ts"
import { formatListingLine, type ListingEntry } from "./listing.ts"
import { preprocess, type IncludeResolver, type SourceLine } from "./preprocessor.ts"
import { parseLine, type ParseState, type Statement } from "./statements.ts"

export interface AssembleOptions {
  /** Name used in error messages and the listing. Default "<input>". */
  readonly fileName?: string
  /** Like nasm -D: NAME → VALUE ("" for a bare -DNAME). */
  readonly defines?: Readonly<Record<string, string>>
  /** Finds %include'd files. Without one, %include is an error. */
  readonly includeResolver?: IncludeResolver
  /** Load address when the source has no ORG. Default 0. */
  readonly origin?: bigint
}

export interface AssembleResult {
  /** The flat binary. */
  readonly bytes: Uint8Array
  /** Every label and `equ` constant → its value (labels are addresses). */
  readonly symbols: Map<string, bigint>
  /** A NASM-style listing: line, address, bytes, source. */
  readonly listing: string
  /** Address of bytes[0]. */
  readonly origin: bigint
}

interface Placed {
  readonly line: SourceLine
  readonly statement: Statement
  /** Monotonic size choices per slot (see EncodeContext.choose). */
  readonly choices: Array<number>
}

const MAX_PASSES = 64
/**
 * Like NASM, sizes are re-chosen every pass from the current label values (an `align` can make
 * code after it move back, so a jump may shrink again). If that has not settled after this many
 * passes, sizes may only grow, which always converges.
 */
const MONOTONIC_AFTER = 16

/** Assembles NASM-dialect source to a flat binary. Throws AsmError on bad input. */
export const assembleSync = (source: string, options: AssembleOptions = {}): AssembleResult => {
  const fileName = options.fileName ?? "<input>"
  const lines = preprocess(source, { fileName, defines: options.defines ?? {}, includeResolver: options.includeResolver })
  const state: ParseState = { lastGlobal: undefined, defaultRel: false }
  const placed: Array<Placed> = []
  const defined = new Map<string, SourceLine>()
  let orgStatement: Placed | undefined
  const listedLines: Array<{ line: SourceLine; statements: Array<Placed> }> = []
  for (const line of lines) {
    const statements = line.listOnly === true ? [] : atLine(line, () => parseLine(line, state))
    const entry = { line, statements: [] as Array<Placed> }
    for (const statement of statements) {
      if (statement.kind === "label" || statement.kind === "equ") {
        const previous = defined.get(statement.name)
        if (previous !== undefined) {
          throw atLine(line, () => {
            throw new LineProblem(`symbol \`${statement.name}\` is already defined at ${previous.file}:${previous.line}`, "a name not used for another label or constant", statement.column, statement.name.replace(/^.*(?=\.)/, ""))
          })
        }
        defined.set(statement.name, line)
      }
      const p: Placed = { line, statement, choices: [] }
      if (statement.kind === "org") {
        if (orgStatement !== undefined) {
          atLine(line, () => {
            throw new LineProblem("ORG given twice", "a single ORG at the start of the program", statement.column, "org")
          })
        }
        orgStatement = p
      }
      placed.push(p)
      entry.statements.push(p)
    }
    listedLines.push(entry)
  }

  const symbols = new Map<string, SymbolValue>()
  let origin = options.origin ?? 0n
  if (orgStatement !== undefined) {
    const org = orgStatement
    origin = atLine(org.line, () => {
      if (org.statement.kind !== "org") return 0n
      const v = evaluate(org.statement.expr, { lookup: () => undefined, here: 0n, base: 0n, final: true })
      return BigInt.asUintN(64, v.value)
    })
  }

  const output = new Map<Placed, Array<number>>()
  const addresses = new Map<Placed, bigint>()
  const repeats = new Map<Placed, bigint>()
  let final = false
  for (let pass = 1; ; pass++) {
    // Sizes only grow after MONOTONIC_AFTER passes, so the layout settles: not settling is a bug.
    if (pass > MAX_PASSES) throw new Error(`assembler bug: layout of ${fileName} did not settle after ${MAX_PASSES} passes`)
    let changed = false
    let address = origin
    for (const p of placed) {
      addresses.set(p, address)
      const s = p.statement
      const evalContext: EvalContext = {
        lookup: (name) => symbols.get(name),
        here: address,
        base: origin,
        final,
      }
      atLine(p.line, () => {
        switch (s.kind) {
          case "label": {
            const prev = symbols.get(s.name)
            if (prev === undefined || prev.value !== address) changed = true
            symbols.set(s.name, { value: address, reloc: 1 })
            return
          }
          case "equ": {
            const v = evaluate(s.expr, evalContext)
            if (!v.known) return
            const prev = symbols.get(s.name)
            if (prev === undefined || prev.value !== v.value || prev.reloc !== v.reloc) changed = true
            symbols.set(s.name, { value: v.value, reloc: v.reloc })
            return
          }
          case "org":
            return
          case "align": {
            const b = evaluate(s.boundary, { ...evalContext, final: true })
            if (b.value <= 0n || (b.value & (b.value - 1n)) !== 0n) throw new LineProblem(`alignment ${b.value} is not a power of two`, "a power of two, e.g. align 16", s.column, "align")
            const offset = address - origin
            const pad = (b.value - (offset % b.value)) % b.value
            output.set(p, new Array<number>(Number(pad)).fill(s.fillNop ? 0x90 : 0))
            repeats.set(p, pad)
            address += pad
            return
          }
          default: {
            const count = s.times === undefined ? 1n : evaluate(s.times, evalContext)
            const n = typeof count === "bigint" ? count : count.known ? count.value : 0n
            if (typeof count !== "bigint" && count.known && n < 0n) throw new LineProblem(`TIMES count ${n} is negative`, "a count of zero or more (is the code already past the target size?)", 1, "times")
            if (n > 16_000_000n) throw new LineProblem(`TIMES count ${n} is too large`, "at most 16000000 repetitions", 1, "times")
            const bytes: Array<number> = []
            for (let i = 0n; i < n; i++) {
              const at = address + BigInt(bytes.length)
              const one = encodeStatement(s, p, at, { ...evalContext, here: at }, final, pass > MONOTONIC_AFTER, () => {
                changed = true
              })
              if (i === 0n && n > 1n && s.kind !== "instruction") {
                // Data repeats identically: copy instead of re-evaluating.
                for (let k = 0n; k < n; k++) for (const b of one) bytes.push(b)
                break
              }
              for (const b of one) bytes.push(b)
            }
            output.set(p, bytes)
            repeats.set(p, n)
            address += BigInt(bytes.length)
            return
          }
        }
      })
    }
    if (final) break
    if (!changed && pass > 1) final = true
  }

  const all: Array<number> = []
  for (const p of placed) {
    const bytes = output.get(p)
    if (bytes !== undefined) for (const b of bytes) all.push(b)
  }
  const listing = listedLines
    .map(({ line, statements }) => {
      const entries: Array<ListingEntry> = statements
        .filter((p) => output.has(p))
        .map((p) => ({ address: addresses.get(p)! - origin, bytes: output.get(p)!, repeat: repeats.get(p) ?? 1n, kind: p.statement.kind }))
      return formatListingLine(line, entries)
    })
    .join("")
  const symbolValues = new Map<string, bigint>()
  for (const [name, v] of symbols) symbolValues.set(name, v.value)
  return { bytes: Uint8Array.from(all), symbols: symbolValues, listing, origin }
}

const encodeStatement = (s: Statement, p: Placed, address: bigint, evalContext: EvalContext, final: boolean, monotonic: boolean, onGrow: () => void): Array<number> => {
  switch (s.kind) {
    case "instruction": {
      const ctx: EncodeContext = {
        address,
        evalContext,
        final,
        choose: (slot, desired) => {
          const prev = p.choices[slot] ?? -1
          if (desired === prev) return prev
          if (monotonic && desired < prev) return prev
          if (prev !== -1) onGrow()
          p.choices[slot] = desired
          return desired
        },
      }
      return encodeInstruction(s.instruction, ctx)
    }
    case "data": {
      const out: Array<number> = []
      for (const item of s.items) {
        if (item.kind === "bytes") {
          for (const b of item.bytes) out.push(b)
          const pad = (s.unit - (item.bytes.length % s.unit)) % s.unit
          for (let i = 0; i < pad; i++) out.push(0)
        } else if (item.kind === "uninitialized") {
          for (let i = 0; i < s.unit; i++) out.push(0)
        } else {
          const v = evaluate(item.expr, evalContext)
          const bits = BigInt(s.unit * 8)
          if (final && s.unit < 8 && (v.value < -(1n << (bits - 1n)) || v.value >= 1n << bits)) {
            throw new LineProblem(`value ${v.value} does not fit in ${s.unit * 8} bits`, `a value from ${-(1n << (bits - 1n))} to ${(1n << bits) - 1n}`, item.column)
          }
          let u = BigInt.asUintN(s.unit * 8, v.value)
          for (let i = 0; i < s.unit; i++) {
            out.push(Number(u & 0xffn))
            u >>= 8n
          }
        }
      }
      return out
    }
    case "reserve": {
      const c = evaluate(s.count, { ...evalContext, final: true })
      if (c.value < 0n || c.value > 256n * 1024n * 1024n) throw new LineProblem(`reserve count ${c.value} is out of range`, "a count from 0 to 268435456", 1)
      return new Array<number>(Number(c.value) * s.unit).fill(0)
    }
    default:
      return []
  }
}

/** Runs parsing/encoding for one line, turning its LineProblem into an AsmError with position. */
const atLine = <A>(line: SourceLine, body: () => A): A => {
  try {
    return body()
  } catch (e) {
    if (e instanceof LineProblem) throw problemAt(line, e)
    throw e
  }
}

export const problemAt = (line: SourceLine, p: LineProblem): AsmError => {
  let column = p.column
  const fits = p.near === undefined || line.original.slice(column - 1, column - 1 + p.near.length).toLowerCase() === p.near.toLowerCase()
  if (column <= 0 || line.original !== line.text || !fits) {
    const at = p.near === undefined || p.near === "" ? -1 : line.original.toLowerCase().indexOf(p.near.toLowerCase())
    if (at >= 0) column = at + 1
    else if (column <= 0 || line.original !== line.text) column = line.original.length - line.original.trimStart().length + 1
  }
  return new AsmError({ file: line.file, line: line.line, column, sourceLine: line.original, problem: p.problem, expected: p.expected })
}
