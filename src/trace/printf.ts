// trace_printk's two halves, as the kernel splits them (lib/vsprintf.c): vbin_printf packs the
// arguments into the record at write time (no formatting), bstr_printf formats them when the
// trace is read. A format is compiled once, when its call site is registered.

import type { LineBytes } from "./line-bytes.ts"

/** How one argument is stored: 1/2/4-byte integers aligned to their size, 8-byte ones to 4, strings inline. */
export type ArgStorage = 1 | 2 | 4 | 8 | "str"

export interface Conversion {
  /** The conversion character: d i u x X o c s. */
  readonly conv: string
  readonly storage: ArgStorage
  readonly signed: boolean
  readonly leftAlign: boolean
  readonly plus: boolean
  readonly space: boolean
  readonly special: boolean
  readonly zeroPad: boolean
  readonly width: number
  /** -1 when absent. */
  readonly precision: number
}

export interface CompiledFormat {
  readonly text: string
  /** literals[i] precedes conversions[i]; the last literal follows the last conversion. */
  readonly literals: ReadonlyArray<string>
  readonly conversions: ReadonlyArray<Conversion>
}

export class FormatError extends Error {
  constructor(format: string, detail: string) {
    super(`trace_printk format ${JSON.stringify(format)}: ${detail}`)
    this.name = "FormatError"
  }
}

/** Parses a printf format the way the kernel's format_decode does (the subset trace_printk users need). */
export const compileFormat = (text: string): CompiledFormat | FormatError => {
  const literals: Array<string> = []
  const conversions: Array<Conversion> = []
  let literal = ""
  let i = 0
  while (i < text.length) {
    const ch = text[i]!
    if (ch !== "%") {
      literal += ch
      i++
      continue
    }
    i++
    if (text[i] === "%") {
      literal += "%"
      i++
      continue
    }
    let leftAlign = false, plus = false, space = false, special = false, zeroPad = false
    for (;;) {
      const f = text[i]
      if (f === "-") leftAlign = true
      else if (f === "+") plus = true
      else if (f === " ") space = true
      else if (f === "#") special = true
      else if (f === "0") zeroPad = true
      else break
      i++
    }
    let width = 0
    while (i < text.length && text[i]! >= "0" && text[i]! <= "9") width = width * 10 + Number(text[i++])
    let precision = -1
    if (text[i] === ".") {
      i++
      precision = 0
      while (i < text.length && text[i]! >= "0" && text[i]! <= "9") precision = precision * 10 + Number(text[i++])
    }
    let size: 1 | 2 | 4 | 8 = 4
    if (text.startsWith("ll", i)) { size = 8; i += 2 }
    else if (text.startsWith("hh", i)) { size = 1; i += 2 }
    else if (text[i] === "l" || text[i] === "z" || text[i] === "t" || text[i] === "L") { size = 8; i++ }
    else if (text[i] === "h") { size = 2; i++ }
    const conv = text[i]
    i++
    if (conv === undefined) return new FormatError(text, "ends inside a conversion")
    let storage: ArgStorage
    let signed = false
    switch (conv) {
      case "d":
      case "i":
        signed = true
        storage = size
        break
      case "u":
      case "x":
      case "X":
      case "o":
        storage = size
        break
      case "c":
        storage = 1
        break
      case "s":
        storage = "str"
        break
      default:
        return new FormatError(text, `conversion %${conv} is not supported (use d i u x X o c s with h hh l ll z)`)
    }
    literals.push(literal)
    literal = ""
    conversions.push({ conv, storage, signed, leftAlign, plus, space, special, zeroPad, width, precision })
  }
  literals.push(literal)
  return { text, literals, conversions }
}

/** Bytes the packed arguments take (vbin_printf's length, before rounding to words). */
export const packedArgBytes = (format: CompiledFormat, strings: ReadonlyArray<string>): number => {
  let at = 0
  let s = 0
  for (const c of format.conversions) {
    if (c.storage === "str") {
      at += byteLengthLatin1(strings[s++] ?? "") + 1
    } else {
      const align = c.storage === 8 ? 4 : c.storage
      at = (at + align - 1) & ~(align - 1)
      at += c.storage
    }
  }
  return at
}

const byteLengthLatin1 = (s: string): number => s.length

// ---- formatting (bstr_printf) ----

const DIGITS_LOWER = "0123456789abcdef"
const DIGITS_UPPER = "0123456789ABCDEF"

/** Formats an unsigned magnitude given as lo/hi 32-bit halves in `base`. */
const magnitudeDigits = (lo: number, hi: number, base: number, upper: boolean): string => {
  if (hi === 0) {
    const s = lo.toString(base)
    return upper ? s.toUpperCase() : s
  }
  if (base === 16) {
    const s = hi.toString(16) + lo.toString(16).padStart(8, "0")
    return upper ? s.toUpperCase() : s
  }
  const v = (BigInt(hi) << 32n) | BigInt(lo)
  return v.toString(base)
}

/** Formats one integer like the kernel's number(): sign, 0x prefix, precision, width, padding. */
export const formatInteger = (c: Conversion, lo: number, hi: number): string => {
  let negative = false
  if (c.signed) {
    const topBit = c.storage === 8 ? hi & 0x80000000 : c.storage === 4 ? lo & 0x80000000 : c.storage === 2 ? lo & 0x8000 : lo & 0x80
    if (topBit !== 0) {
      negative = true
      if (c.storage === 8) {
        const v = -BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0))
        lo = Number(v & 0xffffffffn)
        hi = Number(v >> 32n)
      } else {
        lo = (c.storage === 4 ? 0x100000000 : c.storage === 2 ? 0x10000 : 0x100) - lo
        hi = 0
      }
    }
  }
  const base = c.conv === "x" || c.conv === "X" ? 16 : c.conv === "o" ? 8 : 10
  let digits = magnitudeDigits(lo >>> 0, hi >>> 0, base, c.conv === "X")
  if (c.precision === 0 && digits === "0") digits = ""
  if (c.precision > digits.length) digits = digits.padStart(c.precision, "0")
  let prefix = negative ? "-" : c.signed && c.plus ? "+" : c.signed && c.space ? " " : ""
  if (c.special && base === 16) prefix += c.conv === "X" ? "0X" : "0x"
  else if (c.special && base === 8 && digits[0] !== "0") prefix += "0"
  const length = prefix.length + digits.length
  if (length >= c.width) return prefix + digits
  const pad = c.width - length
  if (c.leftAlign) return prefix + digits + " ".repeat(pad)
  if (c.zeroPad && c.precision < 0) return prefix + "0".repeat(pad) + digits
  return " ".repeat(pad) + prefix + digits
}

export const formatString = (c: Conversion, s: string): string => {
  if (c.precision >= 0 && s.length > c.precision) s = s.slice(0, c.precision)
  if (s.length >= c.width) return s
  return c.leftAlign ? s.padEnd(c.width, " ") : s.padStart(c.width, " ")
}

/**
 * bstr_printf: formats the packed arguments found at byte offset `at` of `bytes` (argument area
 * of `length` bytes). Reads past the area print as 0 / empty, like the kernel's bounded buffer.
 */
export const formatPacked = (format: CompiledFormat, bytes: Uint8Array, at: number, length: number, prefix?: string): string => {
  const end = at + length
  // `prefix` replaces the first literal (callers pass it with their own text in front).
  let out = prefix ?? format.literals[0]!
  let p = at
  const convs = format.conversions
  for (let i = 0; i < convs.length; i++) {
    const c = convs[i]!
    if (c.storage === "str") {
      let s = ""
      while (p < end && bytes[p] !== 0) s += String.fromCharCode(bytes[p++]!)
      p++
      out += formatString(c, s)
    } else if (c.conv === "c") {
      const ch = p < end ? bytes[p]! : 0
      p += 1
      const s = String.fromCharCode(ch)
      out += formatString({ ...c, precision: -1 }, s)
    } else {
      const align = c.storage === 8 ? 4 : c.storage
      p = (p + align - 1) & ~(align - 1)
      let lo = 0
      let hi = 0
      if (p + c.storage <= end) {
        if (c.storage === 1) lo = bytes[p]!
        else if (c.storage === 2) lo = bytes[p]! | (bytes[p + 1]! << 8)
        else {
          lo = (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0
          if (c.storage === 8) hi = (bytes[p + 4]! | (bytes[p + 5]! << 8) | (bytes[p + 6]! << 16) | (bytes[p + 7]! << 24)) >>> 0
        }
      }
      p += c.storage
      out += formatInteger(c, lo, hi)
    }
    out += format.literals[i + 1]!
  }
  return out
}

/** Whether a conversion prints its value alone: no flags, width or precision. */
const isPlain = (c: Conversion): boolean =>
  !c.leftAlign && !c.plus && !c.space && !c.special && !c.zeroPad && c.width === 0 && c.precision < 0

/** Per conversion: 1 when isPlain (digits can be written straight into the line). */
export const plainConversions = (format: CompiledFormat): Uint8Array => Uint8Array.from(format.conversions, (c) => (isPlain(c) ? 1 : 0))

/**
 * formatPacked into a line buffer: the same text, written as bytes. `literals[i]` are the
 * format's literals as Latin-1 bytes (the first one replaced by the caller's prefix), `plain`
 * comes from plainConversions. Returns false if a character does not fit Latin-1.
 */
export const appendPacked = (
  out: LineBytes,
  format: CompiledFormat,
  literals: ReadonlyArray<Uint8Array>,
  plain: Uint8Array,
  bytes: Uint8Array,
  at: number,
  length: number,
): boolean => {
  const end = at + length
  out.raw(literals[0]!)
  let p = at
  const convs = format.conversions
  for (let i = 0; i < convs.length; i++) {
    const c = convs[i]!
    const storage = c.storage
    if (storage === "str") {
      if (plain[i] === 1) {
        while (p < end && bytes[p] !== 0) out.byte(bytes[p++]!)
      } else {
        let s = ""
        while (p < end && bytes[p] !== 0) s += String.fromCharCode(bytes[p++]!)
        out.latin1(formatString(c, s))
      }
      p++
    } else if (c.conv === "c") {
      const ch = p < end ? bytes[p]! : 0
      p += 1
      if (plain[i] === 1) out.byte(ch)
      else out.latin1(formatString({ ...c, precision: -1 }, String.fromCharCode(ch)))
    } else {
      const align = storage === 8 ? 4 : storage
      p = (p + align - 1) & ~(align - 1)
      let lo = 0
      let hi = 0
      if (p + storage <= end) {
        if (storage === 1) lo = bytes[p]!
        else if (storage === 2) lo = bytes[p]! | (bytes[p + 1]! << 8)
        else {
          lo = (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0
          if (storage === 8) hi = (bytes[p + 4]! | (bytes[p + 5]! << 8) | (bytes[p + 6]! << 16) | (bytes[p + 7]! << 24)) >>> 0
        }
      }
      p += storage
      const conv = c.conv
      if (plain[i] === 1 && (conv === "u" || conv === "d" || conv === "i" || conv === "x") && (hi === 0 || storage !== 8)) {
        // The common case: a 32-bit magnitude printed bare.
        if (c.signed) {
          const top = storage === 4 ? lo & 0x80000000 : storage === 2 ? lo & 0x8000 : storage === 1 ? lo & 0x80 : 0
          if (top !== 0) {
            out.byte(0x2d) // "-"
            lo = (storage === 4 ? 0x100000000 : storage === 2 ? 0x10000 : 0x100) - lo
          }
        }
        if (conv === "x") out.hex32(lo)
        else out.uint(lo)
      } else {
        out.latin1(formatInteger(c, lo, hi))
      }
    }
    out.raw(literals[i + 1]!)
  }
  return true
}
