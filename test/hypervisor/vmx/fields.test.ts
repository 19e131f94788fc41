// VMREAD/VMWRITE of every VMCS field: width masking, _HIGH aliasing, read-only fields (error 13
// unless IA32_VMX_MISC bit 29), unsupported encodings (error 12), VMfailInvalid without a VMCS.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField, type VmcsFieldName } from "../../../src/arch/vmx/vmcs-fields.ts"
import { FieldType, fieldType, fieldWidth, FieldWidth, isHighAccess } from "../../../src/arch/vmx/vmcs-encoding.ts"
import { VmxCapabilities } from "../../../src/hypervisor/vmx/capabilities.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { VMCS_LAYOUT_BYTES } from "../../../src/hypervisor/vmx/vmcs-layout.ts"
import { skylakeVmxMsrValues } from "../../../src/arch/vmx/msrs.ts"
import { enterVmx, loadNewVmcs, newHost } from "./support.ts"

const fields = Object.entries(VmcsField) as Array<[VmcsFieldName, number]>
const widthMask = (encoding: number): bigint => {
  if (isHighAccess(encoding)) return 0xffff_ffffn
  const width = fieldWidth(encoding)
  return width === FieldWidth.Bits16 ? 0xffffn : width === FieldWidth.Bits32 ? 0xffff_ffffn : 0xffff_ffff_ffff_ffffn
}

const setup = (caps?: VmxCapabilities) => {
  const host = newHost(1, caps)
  enterVmx(host.lp)
  loadNewVmcs(host.lp)
  return host
}

describe("VMWRITE/VMREAD", () => {
  it("the layout fits the 1024-byte VMCS region IA32_VMX_BASIC advertises", () => {
    expect(VMCS_LAYOUT_BYTES).toBeLessThanOrEqual(new VmxCapabilities().vmcsRegionBytes)
  })

  it("every field round-trips, masked to its width, for random values", () => {
    const { lp } = setup()
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (value) => {
        for (const [name, encoding] of fields) {
          expect(lp.vmwrite(encoding, value), name).toBe(VmxStatus.Succeed)
          expect(lp.vmread(encoding), name).toBe(VmxStatus.Succeed)
          expect(lp.value, name).toBe(value & widthMask(encoding))
        }
      }),
      { numRuns: 50 },
    )
  })

  it("_HIGH encodings alias bits 63:32 of their 64-bit field", () => {
    const { lp } = setup()
    for (const [name, encoding] of fields.filter(([, e]) => isHighAccess(e))) {
      const full = encoding - 1
      lp.vmwrite(full, 0x1122_3344_5566_7788n)
      expect(lp.vmread(encoding)).toBe(VmxStatus.Succeed)
      expect(lp.value, name).toBe(0x1122_3344n)
      lp.vmwrite(encoding, 0xaabb_ccdd_eeff_0011n) // only the low 32 bits of the source matter
      lp.vmread(full)
      expect(lp.value, name).toBe(0xeeff_0011_5566_7788n)
      expect(lp.vmreadLo(encoding)).toBe(0xeeff_0011)
    }
  })

  it("fields do not overlap: writing one leaves every other unchanged", () => {
    const { lp } = setup()
    const full = fields.filter(([, e]) => !isHighAccess(e))
    full.forEach(([, e], i) => lp.vmwrite(e, BigInt(i + 1) * 0x0101_0101_0101_0101n))
    full.forEach(([name, e], i) => {
      lp.vmread(e)
      expect(lp.value, name).toBe((BigInt(i + 1) * 0x0101_0101_0101_0101n) & widthMask(e))
    })
  })

  it("read-only fields refuse VMWRITE with error 13 when IA32_VMX_MISC bit 29 is 0", () => {
    const misc = skylakeVmxMsrValues.IA32_VMX_MISC & ~(1n << 29n)
    const { lp } = setup(new VmxCapabilities({ IA32_VMX_MISC: misc }))
    for (const [name, encoding] of fields.filter(([, e]) => fieldType(e) === FieldType.ReadOnly)) {
      expect(lp.vmwrite(encoding, 5n), name).toBe(VmxStatus.FailValid)
      expect(lp.lastError).toBe(13)
      expect(lp.vmread(0x4400)).toBe(VmxStatus.Succeed)
      expect(lp.value).toBe(13n)
    }
    // The VM-instruction error field itself was written by the failures, not by VMWRITE.
  })

  it("with the Skylake IA32_VMX_MISC (bit 29 = 1) read-only fields accept VMWRITE", () => {
    const { lp } = setup()
    expect(lp.vmwrite(VmcsField.EXIT_QUALIFICATION, 0x1234n)).toBe(VmxStatus.Succeed)
    lp.vmread(VmcsField.EXIT_QUALIFICATION)
    expect(lp.value).toBe(0x1234n)
  })

  it("unsupported encodings give VMfailValid(12)", () => {
    const { lp } = setup()
    const supported = new Set(fields.map(([, e]) => e))
    // Every 15-bit encoding: those not in the table (including high access of 16/32/natural fields) fail.
    for (let encoding = 0; encoding < 0x8000; encoding++) {
      if (supported.has(encoding)) continue
      if ((encoding & 1) === 1 && supported.has(encoding - 1) && fieldWidth(encoding) === FieldWidth.Bits64) continue // SHARED_EPT_POINTER's unnamed high half
      expect(lp.vmread(encoding), `0x${encoding.toString(16)}`).toBe(VmxStatus.FailValid)
      expect(lp.lastError).toBe(12)
    }
    for (const encoding of [0x8000, 0x1_0000_0800, -1, 0xffff_ffff]) {
      expect(lp.vmwrite(encoding, 1n)).toBe(VmxStatus.FailValid)
      expect(lp.lastError).toBe(12)
    }
  })

  it("without a current VMCS, VMREAD and VMWRITE give VMfailInvalid; outside VMX operation #UD", () => {
    const { lp } = newHost()
    expect(lp.vmread(VmcsField.GUEST_RIP)).toBe(VmxStatus.InvalidOpcode)
    enterVmx(lp)
    expect(lp.vmread(VmcsField.GUEST_RIP)).toBe(VmxStatus.FailInvalid)
    expect(lp.vmwrite(VmcsField.GUEST_RIP, 1n)).toBe(VmxStatus.FailInvalid)
    lp.root.cpl = 3
    expect(lp.vmread(VmcsField.GUEST_RIP)).toBe(VmxStatus.GeneralProtection)
  })
})
