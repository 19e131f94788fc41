import type { SourceLine } from "./preprocessor.ts"

export interface ListingEntry {
  /** Offset from the origin, as NASM lists it. */
  readonly address: bigint
  readonly bytes: ReadonlyArray<number>
  /** times/align repetition count; the bytes hold all repetitions. */
  readonly repeat: bigint
  readonly kind: string
}

const hex = (bytes: ReadonlyArray<number>): string => bytes.map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join("")

/**
 * One source line in NASM's `-l` layout: line number (6), offset (8 hex digits), up to nine
 * bytes of code (longer output continues on the next line with a trailing `-`), the source.
 */
export const formatListingLine = (line: SourceLine, entries: ReadonlyArray<ListingEntry>): string => {
  const number = String(line.line).padStart(6)
  const rows: Array<string> = []
  for (const e of entries) {
    const address = e.address.toString(16).toUpperCase().padStart(8, "0")
    if (e.repeat > 1n && e.bytes.length > 0 && e.bytes.length % Number(e.repeat) === 0 && (e.kind === "data" || e.kind === "align")) {
      const one = e.bytes.slice(0, e.bytes.length / Number(e.repeat))
      rows.push(`${number} ${address} ${`${hex(one)}<rep ${e.repeat.toString(16).toUpperCase()}h>`.padEnd(24)}`)
      continue
    }
    if (e.bytes.length === 0) continue
    for (let i = 0; i < e.bytes.length; i += 9) {
      const chunk = e.bytes.slice(i, i + 9)
      const more = i + 9 < e.bytes.length
      const at = (e.address + BigInt(i)).toString(16).toUpperCase().padStart(8, "0")
      rows.push(`${number} ${at} ${(hex(chunk) + (more ? "-" : "")).padEnd(24)}`)
    }
  }
  if (rows.length === 0) return `${number}${" ".repeat(34)}${line.original}\n`
  return rows.map((r, i) => (i === 0 ? r + line.original : r.trimEnd())).join("\n") + "\n"
}
