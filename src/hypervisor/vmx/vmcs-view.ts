// Typed reads and writes of VMCS fields inside a region page, by encoding, using the layout's
// offset table. No allocation on the number paths; bigint only at the boundary accessors.
import { Access as AccessImport, accessKind as accessKindImport, byteOffset as byteOffsetImport } from "./vmcs-layout.ts"
import type { HostPage } from "./host-memory.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const Access = AccessImport
const accessKind = accessKindImport
const byteOffset = byteOffsetImport

export class VmcsView {
  page: HostPage

  constructor(page: HostPage) {
    this.page = page
  }

  /** Low 32 bits of a supported field (zero-extended for 16-bit fields). Full-access encodings only. */
  lo(encoding: number): number {
    const offset = byteOffset[encoding]!
    return accessKind[encoding] === Access.Bits16 ? this.page.halves[offset >>> 1]! : this.page.words[offset >>> 2]!
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
