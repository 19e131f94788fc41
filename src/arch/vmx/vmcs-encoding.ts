// The VMCS component encoding (Intel SDM Vol. 3C Appendix B / 24.11.2): bit 0 access type
// (1 = high half of a 64-bit field), bits 9:1 index, bits 11:10 type, bit 12 reserved,
// bits 14:13 width, bits 31:15 reserved.

export const FieldWidth = { Bits16: 0, Bits64: 1, Bits32: 2, Natural: 3 } as const
export type FieldWidth = (typeof FieldWidth)[keyof typeof FieldWidth]

export const FieldType = { Control: 0, ReadOnly: 1, GuestState: 2, HostState: 3 } as const
export type FieldType = (typeof FieldType)[keyof typeof FieldType]

export const fieldWidth = (encoding: number): FieldWidth => ((encoding >>> 13) & 3) as FieldWidth
export const fieldType = (encoding: number): FieldType => ((encoding >>> 10) & 3) as FieldType
export const fieldIndex = (encoding: number): number => (encoding >>> 1) & 0x1ff
export const isHighAccess = (encoding: number): boolean => (encoding & 1) === 1
/** Bits that must be zero in any valid encoding: 12 and 31:15. */
export const ENCODING_RESERVED_MASK = 0xffff_9000

/** Width in bits as the field is seen through this encoding (a high access sees 32 bits). */
export const accessBits = (encoding: number): 16 | 32 | 64 => {
  if (isHighAccess(encoding)) return 32
  const width = fieldWidth(encoding)
  return width === FieldWidth.Bits16 ? 16 : width === FieldWidth.Bits32 ? 32 : 64
}

export const widthName = (encoding: number): "16" | "32" | "64" | "natural" => {
  if (isHighAccess(encoding)) return "32"
  return (["16", "64", "32", "natural"] as const)[fieldWidth(encoding)]!
}

export const typeName = (encoding: number): "control" | "ro-exit-info" | "guest-state" | "host-state" =>
  (["control", "ro-exit-info", "guest-state", "host-state"] as const)[fieldType(encoding)]!
