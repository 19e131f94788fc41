// VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, INVEPT, INVVPID: the SDM's checks in its order
// (Vol. 3C 30.3) and their outcomes.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { allocRegion, enterVmx, loadNewVmcs, newHost } from "./support.ts"

describe("VMXON", () => {
  it("#UD with CR4.VMXE clear", () => {
    const { lp } = newHost()
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.InvalidOpcode)
    expect(lp.outcome(VmxStatus.InvalidOpcode)).toEqual({ kind: "#UD" })
  })
  it("#GP when IA32_FEATURE_CONTROL is unlocked or VMX outside SMX is disabled", () => {
    const { lp } = newHost()
    lp.root.cr4 |= 1n << 13n
    lp.featureControl = 0n
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.GeneralProtection)
    expect(lp.wrmsr(0x3a, 0x1n)).toBe(VmxStatus.Succeed) // locked, VMX disabled: BIOS turned it off
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.GeneralProtection)
    expect(lp.wrmsr(0x3a, 0x5n)).toBe(VmxStatus.GeneralProtection) // locked until reset
  })
  it("#GP at CPL 3 and when CR0/CR4 violate the fixed bits", () => {
    const { lp } = newHost()
    lp.root.cr4 |= 1n << 13n
    lp.root.cpl = 3
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.GeneralProtection)
    lp.root.cpl = 0
    lp.root.cr0 &= ~(1n << 5n) // CR0.NE
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.GeneralProtection)
  })
  it("VMfailInvalid for a misaligned or too-wide address or a wrong revision identifier", () => {
    const { lp } = newHost()
    lp.root.cr4 |= 1n << 13n
    expect(lp.vmxon(allocRegion(lp) + 8n)).toBe(VmxStatus.FailInvalid)
    expect(lp.vmxon(1n << 40n)).toBe(VmxStatus.FailInvalid)
    expect(lp.vmxon(allocRegion(lp, 5))).toBe(VmxStatus.FailInvalid)
    expect(lp.vmxon(allocRegion(lp, 0x8000_0004))).toBe(VmxStatus.FailInvalid) // bit 31 must be 0
    expect(lp.vmxOperation).toBe(false)
  })
  it("in VMX root operation: VMfailInvalid without a current VMCS, VMfailValid(15) with one", () => {
    const { lp } = newHost()
    enterVmx(lp)
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.FailInvalid)
    loadNewVmcs(lp)
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(15)
  })
  it("clearing CR4.VMXE in VMX operation is #GP; VMXOFF leaves VMX operation", () => {
    const { lp } = newHost()
    enterVmx(lp)
    expect(lp.writeCr4(lp.root.cr4 & ~(1n << 13n))).toBe(VmxStatus.GeneralProtection)
    expect(lp.vmxoff()).toBe(VmxStatus.Succeed)
    expect(lp.vmxoff()).toBe(VmxStatus.InvalidOpcode)
    expect(lp.writeCr4(lp.root.cr4 & ~(1n << 13n))).toBe(VmxStatus.Succeed)
  })
  it("the capability MSRs read back the Skylake values and refuse writes", () => {
    const { lp } = newHost()
    expect(lp.rdmsr(0x480)).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(0x00da_0400_0000_0004n)
    expect(lp.wrmsr(0x480, 0n)).toBe(VmxStatus.GeneralProtection)
    expect(lp.rdmsr(0x492)).toBe(VmxStatus.GeneralProtection) // no tertiary controls on this CPU
  })
})

describe("VMCLEAR / VMPTRLD / VMPTRST", () => {
  it("#UD outside VMX operation", () => {
    const { lp } = newHost()
    expect(lp.vmptrld(allocRegion(lp))).toBe(VmxStatus.InvalidOpcode)
    expect(lp.vmclear(allocRegion(lp))).toBe(VmxStatus.InvalidOpcode)
    expect(lp.vmptrst()).toBe(VmxStatus.InvalidOpcode)
  })
  it("VMPTRLD errors 9, 10, 11 (VMfailInvalid while no VMCS is current)", () => {
    const { lp } = newHost()
    const vmxon = enterVmx(lp)
    expect(lp.vmptrld(0x1234n)).toBe(VmxStatus.FailInvalid)
    loadNewVmcs(lp)
    expect(lp.vmptrld(0x1234n)).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(9)
    expect(lp.vmptrld(vmxon)).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(10)
    expect(lp.vmptrld(allocRegion(lp, 7))).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(11)
    expect(lp.vmread(F.VM_INSTRUCTION_ERROR)).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(11n)
  })
  it("VMCLEAR errors 2 and 3; it does not check the revision identifier", () => {
    const { lp } = newHost()
    const vmxon = enterVmx(lp)
    const vmcs = loadNewVmcs(lp)
    expect(lp.vmclear(0x1008n)).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(2)
    expect(lp.vmclear(vmxon)).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(3)
    expect(lp.vmclear(allocRegion(lp, 99))).toBe(VmxStatus.Succeed)
    expect(lp.vmclear(vmcs)).toBe(VmxStatus.Succeed)
    expect(lp.vmptrst()).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(0xffff_ffff_ffff_ffffn) // clearing the current VMCS invalidates the pointer
  })
  it("VMPTRST stores the current-VMCS pointer", () => {
    const { lp } = newHost()
    enterVmx(lp)
    lp.vmptrst()
    expect(lp.value).toBe(0xffff_ffff_ffff_ffffn)
    const vmcs = loadNewVmcs(lp)
    lp.vmptrst()
    expect(lp.value).toBe(vmcs)
  })
  it("a VMCS is active on at most one logical processor", () => {
    const { lps, platform } = newHost(2)
    const [a, b] = [lps[0]!, lps[1]!]
    enterVmx(a)
    enterVmx(b)
    const vmcs = loadNewVmcs(a)
    expect(platform.activeOn(vmcs)).toBe(0)
    expect(b.vmptrld(vmcs)).toBe(VmxStatus.Refused)
    expect(b.refusal).toContain("active on logical processor 0")
    expect(b.vmclear(vmcs)).toBe(VmxStatus.Refused)
    expect(a.vmclear(vmcs)).toBe(VmxStatus.Succeed)
    expect(platform.activeOn(vmcs)).toBeUndefined()
    expect(b.vmptrld(vmcs)).toBe(VmxStatus.Succeed)
    expect(platform.activeOn(vmcs)).toBe(1)
  })
})

describe("INVEPT / INVVPID", () => {
  it("validate their type and operands (error 28)", () => {
    const { lp } = newHost()
    expect(lp.invept(2n, 0n)).toBe(VmxStatus.InvalidOpcode)
    enterVmx(lp)
    loadNewVmcs(lp)
    expect(lp.invept(2n, 0n)).toBe(VmxStatus.Succeed)
    expect(lp.invept(1n, 0x501en)).toBe(VmxStatus.Succeed)
    expect(lp.invept(1n, 0x5026n)).toBe(VmxStatus.FailValid) // walk length 5
    expect(lp.lastError).toBe(28)
    expect(lp.invept(3n, 0n)).toBe(VmxStatus.FailValid)
    expect(lp.invvpid(1n, 0n)).toBe(VmxStatus.FailValid) // VPID 0 for single-context
    expect(lp.invvpid(1n, 5n)).toBe(VmxStatus.Succeed)
    expect(lp.invvpid(2n, 0n)).toBe(VmxStatus.Succeed)
    expect(lp.invvpid(0n, 5n, 0x0000_8000_0000_0000n)).toBe(VmxStatus.FailValid) // non-canonical address
    expect(lp.invvpid(4n, 5n)).toBe(VmxStatus.FailValid)
  })
})

describe("VMLAUNCH / VMRESUME before the checks", () => {
  it("a shadow VMCS (revision bit 31) loads, reads and writes, but VMLAUNCH gives VMfailInvalid", () => {
    const { lp } = newHost()
    enterVmx(lp)
    const shadow = allocRegion(lp, (lp.caps.revisionId | 0x8000_0000) >>> 0)
    expect(lp.vmptrld(shadow)).toBe(VmxStatus.Succeed) // VMCS shadowing is supported on this CPU
    expect(lp.vmwrite(F.GUEST_RIP, 0x1234n)).toBe(VmxStatus.Succeed)
    expect(lp.vmlaunch()).toBe(VmxStatus.FailInvalid)
  })
  it("VMfailInvalid without a current VMCS; error 5 for VMRESUME of a clear VMCS; error 26 under MOV-SS blocking", () => {
    const { lp } = newHost()
    enterVmx(lp)
    expect(lp.vmlaunch()).toBe(VmxStatus.FailInvalid)
    loadNewVmcs(lp)
    expect(lp.vmresume()).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(5)
    lp.root.movSsBlocking = true
    expect(lp.vmlaunch()).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(26)
  })
})
