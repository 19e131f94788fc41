// wordIndexOf gives KVM's hot paths a fixed field's word in the region instead of VmcsView.lo's
// table lookup. For every 32-bit, 64-bit and natural-width field the word it names must hold what
// VMREAD returns (the field's low 32 bits) after any VMWRITE, and fields it cannot describe with
// one 32-bit word (16-bit fields, `_HIGH` accesses, unsupported encodings) must be refused.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { Access, accessKind, fieldEncodings } from "../../../src/hypervisor/vmx/vmcs-layout.ts"
import { wordIndexOf } from "../../../src/hypervisor/vmx/vmcs-view.ts"
import { enterVmx, loadNewVmcs, newHost } from "./support.ts"

const wordFields = fieldEncodings.filter((e) => accessKind[e] === Access.Bits32 || accessKind[e] === Access.Bits64)
const otherEncodings = [...fieldEncodings.filter((e) => accessKind[e] === Access.Bits16), ...fieldEncodings.map((e) => e + 1).filter((e) => accessKind[e] === Access.High), 0x7fff]

describe("wordIndexOf", () => {
  it("covers the fields KVM's hot paths read this way", () => {
    for (const field of [F.VM_EXIT_INSTRUCTION_LEN, F.GUEST_INTERRUPTIBILITY_INFO, F.VMX_PREEMPTION_TIMER_VALUE, F.IDT_VECTORING_INFO_FIELD]) {
      expect(wordFields).toContain(field)
    }
  })

  it("names the word VMREAD reads, for every 32-bit and wider field, after any VMWRITE", () => {
    const { lp } = newHost()
    enterVmx(lp)
    loadNewVmcs(lp)
    // vmwriteAnyField (IA32_VMX_MISC bit 29) lets the exit-information fields be written too.
    const writable = wordFields.filter((e) => lp.vmwrite(e, 0n) === VmxStatus.Succeed)
    expect(writable.length).toBeGreaterThan(wordFields.length / 2)
    fc.assert(
      fc.property(fc.constantFrom(...writable), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (field, value) => {
        expect(lp.vmwrite(field, value)).toBe(VmxStatus.Succeed)
        const read = lp.vmreadLo(field)
        expect(lp.status).toBe(VmxStatus.Succeed)
        expect(lp.view.page.words[wordIndexOf(field)]).toBe(read)
      }),
    )
  })

  it("gives distinct words to distinct fields", () => {
    const words = wordFields.map(wordIndexOf)
    expect(new Set(words).size).toBe(words.length)
  })

  it("refuses 16-bit fields, _HIGH accesses and unsupported encodings", () => {
    for (const encoding of otherEncodings) expect(() => wordIndexOf(encoding)).toThrow(/not a 32-bit or wider field/)
  })
})
