// Typed reads and writes of VMCS fields inside a region page, by encoding, using the layout's
// offset table. No allocation on the number paths; bigint only at the boundary accessors.
import { Access as AccessImport, accessKind as accessKindImport, byteOffset as byteOffsetImport, readIndex as readIndexImport } from "./vmcs-layout.ts"
import type { HostPage } from "./host-memory.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const Access = AccessImport
const accessKind = accessKindImport
const byteOffset = byteOffsetImport
const readIndex = readIndexImport

/**
 * Index in a region's `words` of the low 32 bits of a 32-bit, 64-bit or natural-width field: for
 * hot paths that read a fixed field (what `VmcsView.lo` gives, without its table lookup and branch).
 */
export const wordIndexOf = (encoding: number): number => {
  const kind = accessKind[encoding]
  if (kind !== Access.Bits32 && kind !== Access.Bits64) throw new Error(`wordIndexOf: field 0x${encoding.toString(16)} is not a 32-bit or wider field`)
  return byteOffset[encoding]! >>> 2
}

export class VmcsView {
  page: HostPage

  constructor(page: HostPage) {
    this.page = page
  }

  /** The 32 bits a VMREAD of a supported encoding returns: a field's low 32 bits (16-bit fields zero-extended), a `_HIGH` encoding's high word. */
  lo(encoding: number): number {
    const at = readIndex[encoding]!
    return (at & 1) === 0 ? this.page.words[at >>> 1]! : this.page.halves[at >>> 1]!
  }

  /** Bits 63:32 of a 64-bit or natural-width field. */
  hi(encoding: number): number {
    return this.page.words[(byteOffset[encoding]! >>> 2) + 1]!
  }

  u64(encoding: number): bigint {
    const kind = accessKind[encoding]
    if (kind === Access.Bits64) return (BigInt(this.hi(encoding)) << 32n) | BigInt(this.lo(encoding))
    if (kind === Access.High) return BigInt(this.page.words[(byteOffset[encoding]! >>> 2) + 1]!)
    return BigInt(this.lo(encoding))
  }

  /** Writes the low 32 bits (masked to 16 for 16-bit fields); returns true if the stored value changed. */
  setLo(encoding: number, value: number): boolean {
    const offset = byteOffset[encoding]!
    if (accessKind[encoding] === Access.Bits16) {
      const index = offset >>> 1
      const next = value & 0xffff
      if (this.page.halves[index] === next) return false
      this.page.halves[index] = next
      return true
    }
    const index = offset >>> 2
    const next = value >>> 0
    if (this.page.words[index] === next) return false
    this.page.words[index] = next
    return true
  }

  /** Writes bits 63:32 of a 64-bit or natural-width field; returns true if changed. */
  setHi(encoding: number, value: number): boolean {
    const index = (byteOffset[encoding]! >>> 2) + 1
    const next = value >>> 0
    if (this.page.words[index] === next) return false
    this.page.words[index] = next
    return true
  }

  setU64(encoding: number, value: bigint): boolean {
    const a = this.setLo(encoding, Number(value & 0xffff_ffffn))
    const b = accessKind[encoding] === Access.Bits64 ? this.setHi(encoding, Number((value >> 32n) & 0xffff_ffffn)) : false
    return a || b
  }
}
