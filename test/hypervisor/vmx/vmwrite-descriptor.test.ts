// VMWRITE reads everything it needs of an encoding from one packed descriptor. Every encoding's
// descriptor must say what the separate layout tables and the field's type say: supported or not,
// access kind, storage index (the one VMREAD finds through readIndex), which check readers a change
// reaches, and what a change records (guest-state bit, host, controls, read-only).
import { describe, expect, it } from "vitest"
import { FieldType, fieldType } from "../../../src/arch/vmx/vmcs-encoding.ts"
import { FIELD_HAS_READERS, LOW_HALF_HAS_READERS } from "../../../src/hypervisor/vmx/entry-check-engine.ts"
import { vmwriteDescriptor, writeEffect } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { Access, accessKind, fieldOrdinal, readIndex } from "../../../src/hypervisor/vmx/vmcs-layout.ts"

const decode = (d: number) => ({
  index: d & 0x3ff,
  kind: (d >>> 10) & 7,
  fieldReaders: (d >>> 13) & 1,
  lowHalfReaders: (d >>> 14) & 1,
  guestWrites: (d >>> 16) & 0xff,
  host: (d >>> 24) & 1,
  control: (d >>> 25) & 1,
  readOnly: (d >>> 26) & 1,
})

describe("VMWRITE's packed per-encoding descriptor", () => {
  it("agrees with the layout tables and the field type for all 0x8000 encodings", () => {
    let supported = 0
    for (let encoding = 0; encoding < 0x8000; encoding++) {
      const d = vmwriteDescriptor[encoding]!
      const kind = accessKind[encoding]!
      if (kind === Access.Unsupported) {
        expect(d, `encoding ${encoding.toString(16)}`).toBe(0)
        continue
      }
      supported++
      const got = decode(d)
      const ordinal = fieldOrdinal[encoding]!
      const type = fieldType(encoding)
      expect(got, `encoding ${encoding.toString(16)}`).toEqual({
        index: readIndex[encoding]! >>> 1,
        kind,
        fieldReaders: FIELD_HAS_READERS[ordinal],
        lowHalfReaders: LOW_HALF_HAS_READERS[ordinal],
        // What a change records is writeEffect's (the classification the incremental-load
        // property tests exercise); here only that the descriptor carries it unchanged.
        guestWrites: writeEffect[encoding]! & 0xff,
        host: type === FieldType.HostState ? 1 : 0,
        control: type === FieldType.Control ? 1 : 0,
        readOnly: type === FieldType.ReadOnly ? 1 : 0,
      })
      // Nothing spills outside the fields decode() reads.
      expect(d & ~0x07ff_7fff).toBe(0)
    }
    expect(supported).toBeGreaterThan(100)
  })
})
