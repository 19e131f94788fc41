// kvmsim's implementation-specific VMCS data layout (SDM 24.2 leaves everything after the first
// eight bytes to the processor). Fields are packed by width so the whole VMCS fits in the
// 1024-byte region IA32_VMX_BASIC advertises:
//   0: revision identifier (bit 31: shadow-VMCS indicator)   4: VMX-abort indicator
//   8: launch state (0 clear, 1 launched)                    12: VMX session that launched it
//  16: 64-bit and natural-width fields, 8 bytes each, then 32-bit fields, then 16-bit fields.
import { VmcsField, type VmcsFieldName } from "../../arch/vmx/vmcs-fields.ts"
import { FieldWidth, fieldWidth, isHighAccess } from "../../arch/vmx/vmcs-encoding.ts"

export const VMCS_REVISION_OFFSET = 0
export const VMCS_ABORT_OFFSET = 4
export const VMCS_LAUNCH_STATE_OFFSET = 8
export const VMCS_LAUNCH_SESSION_OFFSET = 12
const FIELDS_OFFSET = 16

/** How an encoding is accessed (0 = not a supported component). */
export const Access = { Unsupported: 0, Bits16: 1, Bits32: 2, Bits64: 3, High: 4 } as const

const ENCODING_SPACE = 0x8000
/** Access kind per encoding (encodings above 0x7fff have reserved bits set and are unsupported). */
export const accessKind = new Uint8Array(ENCODING_SPACE)
/** Byte offset of the field's (low) storage inside the region, per encoding. */
export const byteOffset = new Int32Array(ENCODING_SPACE).fill(-1)
/** Dense ordinal of the underlying field (high and full access share one), per encoding. */
export const fieldOrdinal = new Int16Array(ENCODING_SPACE).fill(-1)

/** Full-access encodings of all supported fields, in table order (one per storage slot). */
export const fieldEncodings: ReadonlyArray<number> = (Object.values(VmcsField) as Array<number>).filter((e) => !isHighAccess(e))
export const fieldNameByEncoding = new Map<number, VmcsFieldName>(
  (Object.entries(VmcsField) as Array<[VmcsFieldName, number]>).map(([name, encoding]) => [encoding, name]),
)

const layout = (): number => {
  const wide = fieldEncodings.filter((e) => fieldWidth(e) === FieldWidth.Bits64 || fieldWidth(e) === FieldWidth.Natural)
  const dwords = fieldEncodings.filter((e) => fieldWidth(e) === FieldWidth.Bits32)
  const halves = fieldEncodings.filter((e) => fieldWidth(e) === FieldWidth.Bits16)
  let offset = FIELDS_OFFSET
  const place = (encoding: number, size: number, kind: number): void => {
    accessKind[encoding] = kind
    byteOffset[encoding] = offset
    fieldOrdinal[encoding] = fieldEncodings.indexOf(encoding)
    offset += size
  }
  for (const e of wide) {
    place(e, 8, Access.Bits64)
    // Natural-width fields have no high half; only true 64-bit fields accept the high access.
    if (fieldWidth(e) === FieldWidth.Bits64) {
      accessKind[e + 1] = Access.High
      byteOffset[e + 1] = byteOffset[e]!
      fieldOrdinal[e + 1] = fieldOrdinal[e]!
    }
  }
  for (const e of dwords) place(e, 4, Access.Bits32)
  for (const e of halves) place(e, 2, Access.Bits16)
  return offset
}

/** Bytes of the region the layout uses (must not exceed the VMCS size in IA32_VMX_BASIC). */
export const VMCS_LAYOUT_BYTES = layout()

/**
 * Where a 32-bit read of an encoding finds its value, one lookup per read: 2 * half index + 1
 * for 16-bit fields, 2 * word index for the others (the high word for `_HIGH` access), -1 for
 * unsupported encodings.
 */
export const readIndex = Int32Array.from(accessKind, (kind, encoding) => {
  if (kind === Access.Unsupported) return -1
  const offset = byteOffset[encoding]!
  if (kind === Access.Bits16) return (offset >>> 1) * 2 + 1
  return ((offset >>> 2) + (kind === Access.High ? 1 : 0)) * 2
})
export const VMCS_FIELD_COUNT = fieldEncodings.length
