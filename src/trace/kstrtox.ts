// kstrtoul_from_user(..., base 10, ...) as tracefs's numeric files use it: at most 22 bytes are
// looked at, an optional '+', decimal digits, an optional single trailing newline. Anything
// else is EINVAL; a value over 64 bits is ERANGE.

export const EINVAL = 22
export const ERANGE = 34

/** The number written, or -EINVAL / -ERANGE. Values beyond 2^53 come back as Infinity (callers treat them as too large). */
export const parseDecimalWrite = (text: string): number => {
  let s = text.length > 22 ? text.slice(0, 22) : text
  if (s.endsWith("\n")) s = s.slice(0, -1)
  if (s.startsWith("+")) s = s.slice(1)
  if (s.length === 0 || !/^[0-9]+$/.test(s)) return -EINVAL
  const value = BigInt(s)
  if (value > 0xffff_ffff_ffff_ffffn) return -ERANGE
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(value)
}

/** strstrip: the text without leading and trailing whitespace. */
export const strip = (text: string): string => text.replace(/^[\s]+|[\s]+$/g, "")
