// The kernel's kstrtoull() (lib/kstrtox.c) with its exact acceptance rules, because users type
// `echo VALUE > attr` and expect what a real kernel accepts:
//  - one optional leading '+' (never '-'); no whitespace anywhere except
//  - one optional trailing '\n' (what echo appends);
//  - base 0 picks the radix from the prefix: "0x"/"0X" followed by a hex digit is 16, any other
//    leading "0" is 8 ("0x" alone is "0" in octal followed by garbage: EINVAL), otherwise 10;
//  - at least one digit; overflow past 2^64-1 is ERANGE even if garbage follows;
//  - the text ends at the first NUL, as a C string does.
// Results: a bigint, or a negative errno (-EINVAL 22, -ERANGE 34). Never throws.

import { EINVAL, ERANGE } from "./errno.ts"

const U64_MAX = (1n << 64n) - 1n

const digitValue = (code: number): number => {
  if (code >= 48 && code <= 57) return code - 48
  const lower = code | 0x20
  if (lower >= 97 && lower <= 102) return lower - 97 + 10
  return 99
}

const isHexDigit = (code: number): boolean => digitValue(code) < 16

/** kstrtoull(s, base, &res): the value, or -EINVAL / -ERANGE. base is 0, 8, 10 or 16. */
export const kstrtoull = (text: string, base: 0 | 8 | 10 | 16 = 0): bigint | number => {
  const nul = text.indexOf("\0")
  const s = nul >= 0 ? text.slice(0, nul) : text
  let i = 0
  if (s.charCodeAt(0) === 43 /* + */) i = 1
  let radix: number = base
  if (radix === 0) {
    if (s.charCodeAt(i) === 48 /* 0 */) {
      radix = (s.charCodeAt(i + 1) | 0x20) === 120 /* x */ && isHexDigit(s.charCodeAt(i + 2)) ? 16 : 8
    } else {
      radix = 10
    }
  }
  if (radix === 16 && s.charCodeAt(i) === 48 && (s.charCodeAt(i + 1) | 0x20) === 120) i += 2
  // Accumulate in a Number while exact (< 2^53), then switch to bigint: most inputs are short.
  const start = i
  let small = 0
  let big: bigint | undefined
  let overflow = false
  for (; i < s.length; i++) {
    const value = digitValue(s.charCodeAt(i))
    if (value >= radix) break
    if (big === undefined) {
      const next = small * radix + value
      if (next <= Number.MAX_SAFE_INTEGER) {
        small = next
        continue
      }
      big = BigInt(small)
    }
    if (!overflow) {
      big = big * BigInt(radix) + BigInt(value)
      if (big > U64_MAX) overflow = true
    }
  }
  if (overflow) return -ERANGE
  if (i === start) return -EINVAL
  if (s.charCodeAt(i) === 10 /* \n */) i++
  if (i !== s.length) return -EINVAL
  return big ?? BigInt(small)
}

/** kstrtoull then a width check, as kstrtou8/u16/u32 do: -ERANGE if it does not fit in `bits`. */
export const kstrtouWidth = (text: string, bits: number, base: 0 | 8 | 10 | 16 = 0): bigint | number => {
  const value = kstrtoull(text, base)
  if (typeof value === "number") return value
  if (bits < 64 && value >> BigInt(bits) !== 0n) return -ERANGE
  return value
}
