import { fail } from "./errors.ts"

export type TokenKind = "ident" | "number" | "string" | "op" | "here" | "base" | "end"

export interface Token {
  readonly kind: TokenKind
  readonly text: string
  /** 1-based column in the line. */
  readonly column: number
  /** For numbers: the value. For strings: the bytes, as a bigint is not enough, see `bytes`. */
  readonly value?: bigint
  readonly bytes?: Uint8Array
}

const identStart = /[A-Za-z_.?@]/
const identChar = /[A-Za-z0-9_$#@~.?]/
// Longest operators first so "<<" wins over "<".
const operators = ["<<<", ">>>", "//", "%%", "<<", ">>", "<=", ">=", "==", "!=", "<>", "&&", "||", "^^", "+", "-", "*", "/", "%", "&", "|", "^", "~", "!", "(", ")", "[", "]", ",", ":", "<", ">", "=", "{", "}"]

/** Parses a NASM number literal (0x1f, 1fh, 0b101, 101b, 17q, 0o17, 0d99, 1_000). */
export const parseNumber = (text: string, column: number): bigint => {
  const t = text.replace(/_/g, "").toLowerCase()
  let digits: string
  let radix: number
  if (/^0[xh]/.test(t)) [digits, radix] = [t.slice(2), 16]
  else if (/^0[by]/.test(t)) [digits, radix] = [t.slice(2), 2]
  else if (/^0[oq]/.test(t)) [digits, radix] = [t.slice(2), 8]
  else if (/^0[dt]/.test(t)) [digits, radix] = [t.slice(2), 10]
  else if (t.endsWith("h")) [digits, radix] = [t.slice(0, -1), 16]
  else if (t.endsWith("b") || t.endsWith("y")) [digits, radix] = [t.slice(0, -1), 2]
  else if (t.endsWith("q") || t.endsWith("o")) [digits, radix] = [t.slice(0, -1), 8]
  else if (t.endsWith("d") || t.endsWith("t")) [digits, radix] = [t.slice(0, -1), 10]
  else [digits, radix] = [t, 10]
  const valid = radix === 16 ? /^[0-9a-f]+$/ : radix === 10 ? /^[0-9]+$/ : radix === 8 ? /^[0-7]+$/ : /^[01]+$/
  if (!valid.test(digits)) fail(`invalid number \`${text}\``, "a number such as 42, 0x2a, 2ah, 0b101010 or 52q", column, text)
  let v = 0n
  const r = BigInt(radix)
  for (const ch of digits) v = v * r + BigInt(parseInt(ch, 16))
  return v
}

const escapes: Record<string, number> = { n: 10, t: 9, r: 13, "0": 0, "\\": 92, "'": 39, '"': 34, "`": 96, a: 7, b: 8, f: 12, v: 11, e: 27 }

const encodeUtf8 = (s: string): Array<number> => [...new TextEncoder().encode(s)]

/** Splits one line (without its comment) into tokens. */
export const tokenize = (line: string): Array<Token> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < line.length) {
    const ch = line[i]!
    const column = i + 1
    if (ch === " " || ch === "\t" || ch === "\r") {
      i++
      continue
    }
    if (ch === ";") break
    if (ch === "'" || ch === '"' || ch === "`") {
      const bytes: Array<number> = []
      let j = i + 1
      while (j < line.length && line[j] !== ch) {
        if (ch === "`" && line[j] === "\\" && j + 1 < line.length) {
          const e = line[j + 1]!
          if (e === "x") {
            const hex = /^[0-9a-fA-F]{1,2}/.exec(line.slice(j + 2))?.[0] ?? ""
            if (hex === "") fail("invalid \\x escape", "two hex digits after \\x", j + 1)
            bytes.push(parseInt(hex, 16))
            j += 2 + hex.length
            continue
          }
          const code = escapes[e]
          if (code === undefined) fail(`unknown escape \`\\${e}\``, "one of \\n \\t \\r \\0 \\\\ \\' \\\" \\` \\xNN", j + 1)
          bytes.push(code!)
          j += 2
          continue
        }
        bytes.push(...encodeUtf8(line[j]!))
        j++
      }
      if (j >= line.length) fail("unterminated string", `a closing ${ch}`, column)
      tokens.push({ kind: "string", text: line.slice(i, j + 1), column, bytes: Uint8Array.from(bytes) })
      i = j + 1
      continue
    }
    if (/[0-9]/.test(ch)) {
      let j = i
      while (j < line.length && /[0-9A-Za-z_]/.test(line[j]!)) j++
      if (line[j] === "." && /[0-9]/.test(line[j + 1] ?? "")) {
        while (j < line.length && /[0-9A-Za-z_.+-]/.test(line[j]!) && !((line[j] === "+" || line[j] === "-") && !/[eE]/.test(line[j - 1]!))) j++
        fail(`floating-point constant \`${line.slice(i, j)}\` is not supported`, "an integer (the guest core has no floating point)", column, line.slice(i, j))
      }
      const text = line.slice(i, j)
      tokens.push({ kind: "number", text, column, value: parseNumber(text, column) })
      i = j
      continue
    }
    if (ch === "$") {
      if (line[i + 1] === "$") {
        tokens.push({ kind: "base", text: "$$", column })
        i += 2
        continue
      }
      if (i + 1 < line.length && identStart.test(line[i + 1]!)) {
        // `$name` escapes a name that is also a keyword or register.
        let j = i + 1
        while (j < line.length && identChar.test(line[j]!)) j++
        tokens.push({ kind: "ident", text: line.slice(i + 1, j), column })
        i = j
        continue
      }
      tokens.push({ kind: "here", text: "$", column })
      i++
      continue
    }
    if (identStart.test(ch)) {
      let j = i
      while (j < line.length && identChar.test(line[j]!)) j++
      tokens.push({ kind: "ident", text: line.slice(i, j), column })
      i = j
      continue
    }
    const op = operators.find((o) => line.startsWith(o, i))
    if (op === undefined) fail(`unexpected character \`${ch}\``, "a label, instruction, operand or comment", column, ch)
    tokens.push({ kind: "op", text: op!, column })
    i += op!.length
  }
  tokens.push({ kind: "end", text: "", column: line.length + 1 })
  return tokens
}

/** Removes a `;` comment, leaving strings intact. */
export const stripComment = (line: string): string => {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (quote !== undefined) {
      if (ch === "\\" && quote === "`") i++
      else if (ch === quote) quote = undefined
    } else if (ch === "'" || ch === '"' || ch === "`") quote = ch
    else if (ch === ";") return line.slice(0, i)
  }
  return line
}
