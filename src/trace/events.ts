// Tracepoint definitions: an event is defined once (system, name, numeric id, fields with C
// types, offsets and sizes, print format) and from that come its binary record layout, its
// `format` file and its text. Offsets follow C layout after the 8-byte common header.

/** Era of the ftrace text layout (ftrace.md §0): A = Linux 5.0–5.9 (the default), D = 5.17 and every 6.x. */
export type TraceEra = "A" | "D"

export interface FieldDef {
  /** C type as the kernel's format file spells it ("unsigned int", "u64", "bool", ...). */
  readonly type: string
  readonly name: string
  readonly offset: number
  readonly size: number
  readonly signed: boolean
}

import type { LineBytes } from "./line-bytes.ts"

/** Reads one record's payload: `w` is the word index of the payload (the common header). */
export type RecordFormatter = (words: Uint32Array, bytes: Uint8Array, w: number) => string
/** The same text written into a line buffer (for the events read most; must match the RecordFormatter). */
export type RecordByteFormatter = (out: LineBytes, words: Uint32Array, bytes: Uint8Array, w: number) => void

export interface TraceEventType {
  readonly system: string
  readonly name: string
  readonly id: number
  /** The event's own fields (after the four common ones). */
  readonly fields: ReadonlyArray<FieldDef>
  /** What follows `print fmt: ` in the format file. */
  readonly printFmt: string
  /** Payload bytes: the struct size, padded to 8 when a member is 8 bytes wide. */
  readonly payloadBytes: number
  /** The text after `NAME: ` in `trace`. */
  readonly format: RecordFormatter
  /** Optionally, format as bytes (readers use it instead of `format` when present). */
  readonly formatBytes?: RecordByteFormatter
}

export const COMMON_FIELDS: ReadonlyArray<FieldDef> = [
  { type: "unsigned short", name: "common_type", offset: 0, size: 2, signed: false },
  { type: "unsigned char", name: "common_flags", offset: 2, size: 1, signed: false },
  { type: "unsigned char", name: "common_preempt_count", offset: 3, size: 1, signed: false },
  { type: "int", name: "common_pid", offset: 4, size: 4, signed: true },
]
export const COMMON_BYTES = 8

const SIGNED_TYPES = new Set(["int", "s8", "s16", "s32", "s64", "long", "long long", "char", "bool"])

/**
 * Lays out fields in declaration order with natural alignment after the common header and
 * returns them with the padded struct size.
 */
export const layoutFields = (
  decls: ReadonlyArray<readonly [type: string, name: string, size: number]>,
): { fields: Array<FieldDef>; payloadBytes: number } => {
  let at = COMMON_BYTES
  let maxAlign = 4
  const fields = decls.map(([type, name, size]) => {
    const align = Math.min(size, 8)
    at = Math.ceil(at / align) * align
    const field: FieldDef = { type, name, offset: at, size, signed: type === "bool" ? false : SIGNED_TYPES.has(type) }
    at += size
    if (align > maxAlign) maxAlign = align
    return field
  })
  return { fields, payloadBytes: Math.ceil(at / maxAlign) * maxAlign }
}

const fieldLine = (f: FieldDef): string =>
  `\tfield:${f.type} ${f.name};\toffset:${f.offset};\tsize:${f.size};\tsigned:${f.signed ? 1 : 0};\n`

/** The text of events/<system>/<name>/format. */
export const formatFileText = (event: TraceEventType): string =>
  `name: ${event.name}\nID: ${event.id}\nformat:\n` +
  COMMON_FIELDS.map(fieldLine).join("") +
  "\n" +
  event.fields.map(fieldLine).join("") +
  "\n" +
  `print fmt: ${event.printFmt}\n`

// ---- helpers for formatters ----

/** Lower-case hex of a 64-bit value held as two unsigned 32-bit halves, no leading zeros. */
export const hex64 = (lo: number, hi: number): string =>
  hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, "0")

/** Hex of a 64-bit value zero-padded to 16 digits (%016llx). */
export const hex64Padded = (lo: number, hi: number): string =>
  hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0")

/** Unsigned decimal of a 64-bit value. */
export const dec64 = (lo: number, hi: number): string =>
  hi === 0 ? String(lo) : hi < 0x200000 ? String(hi * 0x100000000 + lo) : ((BigInt(hi) << 32n) | BigInt(lo)).toString()

/** Signed decimal of a 64-bit value. */
export const decS64 = (lo: number, hi: number): string =>
  (hi & 0x80000000) === 0 ? dec64(lo, hi) : BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString()

/** `{ value, "name" }, ...` as __print_symbolic() spells its table in format files. */
export const symbolicTable = (entries: ReadonlyArray<readonly [number, string]>, hex = false): string =>
  entries.map(([n, s]) => `{ ${hex ? "0x" + n.toString(16) : n}, "${s}" }`).join(", ")
