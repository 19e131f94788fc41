// A reusable byte buffer that readers format trace lines into: one byte per character
// (Latin-1), so a whole read is turned into one string at the end instead of concatenating
// small strings per field and per line. Characters above U+00FF cannot be held; writers report
// that and the caller formats that line as a string instead.

const DIGIT_0 = 0x30
const HEX_DIGITS = Uint8Array.from("0123456789abcdef", (c) => c.charCodeAt(0))

/** The Latin-1 bytes of `text`, or null when it has a character above U+00FF. */
export const latin1Bytes = (text: string): Uint8Array | null => {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c > 0xff) return null
    out[i] = c
  }
  return out
}

/** `.uuuuuu: ` (six zero-padded microsecond digits) at `at`; returns the index after it. */
const writeMicrosTail = (bytes: Uint8Array, at: number, micros: number): number => {
  let rem = micros
  bytes[at] = 0x2e // "."
  for (let i = 6; i >= 1; i--) {
    const q = (rem / 10) | 0
    bytes[at + i] = DIGIT_0 + (rem - q * 10)
    rem = q
  }
  bytes[at + 7] = 0x3a // ":"
  bytes[at + 8] = 0x20
  return at + 9
}

export class LineBytes {
  bytes: Uint8Array
  private view: Buffer
  /** Bytes written so far. */
  length = 0
  private stampSecs = -1
  private stampSecsLength = 0
  private readonly stampSecsBytes = new Uint8Array(16)

  constructor(initialBytes = 1 << 16) {
    this.bytes = new Uint8Array(initialBytes)
    this.view = Buffer.from(this.bytes.buffer, 0, initialBytes)
  }

  /** Makes room for `extra` more bytes. */
  ensure(extra: number): void {
    const need = this.length + extra
    if (need <= this.bytes.length) return
    let size = this.bytes.length * 2
    while (size < need) size *= 2
    const bigger = new Uint8Array(size)
    bigger.set(this.bytes.subarray(0, this.length))
    this.bytes = bigger
    this.view = Buffer.from(bigger.buffer, 0, size)
  }

  /** Empties the buffer and lets a buffer bigger than `maxBytes` go. */
  release(maxBytes: number): void {
    this.length = 0
    if (this.bytes.length <= maxBytes) return
    this.bytes = new Uint8Array(1 << 16)
    this.view = Buffer.from(this.bytes.buffer, 0, this.bytes.length)
  }

  /** The text of bytes [start, end). */
  text(start: number, end: number): string {
    return start === end ? "" : this.view.toString("latin1", start, end)
  }

  byte(b: number): void {
    if (this.length === this.bytes.length) this.ensure(1)
    this.bytes[this.length++] = b
  }

  /** Appends precomputed bytes. */
  raw(src: Uint8Array): void {
    const n = src.length
    this.ensure(n)
    const bytes = this.bytes
    let at = this.length
    // Short runs by hand; longer ones by set() (a native copy beats a bounds-checked loop).
    if (n <= 8) for (let i = 0; i < n; i++) bytes[at++] = src[i]!
    else {
      bytes.set(src, at)
      at += n
    }
    this.length = at
  }

  /** Appends `text`; returns false (with an unspecified part appended) if a character is above U+00FF. */
  latin1(text: string): boolean {
    const n = text.length
    this.ensure(n)
    const bytes = this.bytes
    let at = this.length
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i)
      if (c > 0xff) return false
      bytes[at++] = c
    }
    this.length = at
    return true
  }

  /** Decimal digits of a non-negative integer below 2^53. */
  uint(n: number): void {
    this.ensure(16)
    const bytes = this.bytes
    if (n < 10) {
      bytes[this.length++] = DIGIT_0 + n
      return
    }
    let digits = 1
    for (let p = 10; p <= n && digits < 16; p *= 10) digits++
    let at = this.length + digits
    this.length = at
    while (n >= 10) {
      const q = Math.floor(n / 10)
      bytes[--at] = DIGIT_0 + (n - q * 10)
      n = q
    }
    bytes[--at] = DIGIT_0 + n
  }

  /** Lower-case hex digits of an unsigned 32-bit integer, no leading zeros. */
  hex32(n: number): void {
    this.ensure(8)
    const bytes = this.bytes
    let digits = 1
    while (digits < 8 && n >>> (digits * 4) !== 0) digits++
    let at = this.length + digits
    this.length = at
    for (let i = 0; i < digits; i++) {
      bytes[--at] = HEX_DIGITS[n & 15]!
      n >>>= 4
    }
  }

  /** Hex digits of an unsigned 32-bit integer, zero-padded to 8. */
  hex32Padded(n: number): void {
    this.ensure(8)
    const bytes = this.bytes
    const at = this.length
    for (let i = 7; i >= 0; i--) {
      bytes[at + i] = HEX_DIGITS[n & 15]!
      n >>>= 4
    }
    this.length = at + 8
  }

  /** Lower-case hex of a 64-bit value held as unsigned 32-bit halves, no leading zeros (%llx). */
  hex64(lo: number, hi: number): void {
    if (hi === 0) this.hex32(lo)
    else {
      this.hex32(hi)
      this.hex32Padded(lo)
    }
  }

  /**
   * A line's start: `prefix` (the cached `comm-pid [cpu] flags ` bytes) and the time stamp
   * column, in one pass with the position in a local (the hottest part of reading).
   */
  prefixAndStamp(prefix: Uint8Array, ns: number): void {
    const n = prefix.length
    this.ensure(n + 32)
    const bytes = this.bytes
    bytes.set(prefix, this.length)
    let at = this.length + n
    const us = Math.floor((ns + 500) / 1000)
    const secs = Math.floor(us / 1_000_000)
    if (secs !== this.stampSecs) {
      this.length = at
      this.stampColumn(ns)
      return
    }
    const cached = this.stampSecsBytes
    const m = this.stampSecsLength
    for (let i = 0; i < m; i++) bytes[at++] = cached[i]!
    this.length = writeMicrosTail(bytes, at, (us - secs * 1_000_000) | 0)
  }

  /** `%5lu.%06lu: ` of a nanosecond time, microseconds rounded to nearest (ns2usecs). */
  stampColumn(ns: number): void {
    const us = Math.floor((ns + 500) / 1000)
    const secs = Math.floor(us / 1_000_000)
    const rem = us - secs * 1_000_000
    this.ensure(32)
    let bytes = this.bytes
    if (secs === this.stampSecs) {
      // Consecutive lines usually share their second: copy its digits.
      const cached = this.stampSecsBytes
      for (let i = 0; i < this.stampSecsLength; i++) bytes[this.length++] = cached[i]!
    } else {
      const begin = this.length
      if (secs < 10_000) {
        // Right-align in 5 columns.
        const width = secs < 10 ? 1 : secs < 100 ? 2 : secs < 1000 ? 3 : 4
        for (let i = width; i < 5; i++) bytes[this.length++] = 0x20
      }
      this.uint(secs)
      bytes = this.bytes
      this.stampSecs = secs
      this.stampSecsLength = this.length - begin
      this.stampSecsBytes.set(bytes.subarray(begin, this.length))
    }
    this.length = writeMicrosTail(bytes, this.length, rem)
  }
}
