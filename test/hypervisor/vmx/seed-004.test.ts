// Seed 004: a bare VMM (like the question's nmiexits.c, written against this layer alone) reads
// the capability MSRs, captures host CR0/CR3/CR4 into its globals, and only then sets CR4.VMXE.
// Its HOST_CR4 therefore lacks VMXE and the first VMLAUNCH fails with VM-instruction error 8.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { allocRegion, newHost } from "./support.ts"
import { newGuestCore } from "./guest-support.ts"

const rdmsr = (lp: LogicalProcessor, index: number): bigint => {
  expect(lp.rdmsr(index)).toBe(VmxStatus.Succeed)
  return lp.value
}

/** The module's init + ioctl path. `vmxeFirst` is the fix: set CR4.VMXE before capturing host state. */
const bareVmm = (lp: LogicalProcessor, vmxeFirst: boolean) => {
  const msr0x480 = Array.from({ length: 17 }, (_, i) => rdmsr(lp, 0x480 + i))
  const vmxonRegion = lp.memory.allocPage()!
  const guestRegion = lp.memory.allocPage()!
  lp.memory.write32(Number(vmxonRegion), Number(msr0x480[0]! & 0xffff_ffffn)) // memcpy(vmxon_region, msr0x480, 4)
  lp.memory.write32(Number(guestRegion), Number(msr0x480[0]! & 0xffff_ffffn))
  const setVmxe = () => expect(lp.writeCr4(lp.root.cr4 | (1n << 13n))).toBe(VmxStatus.Succeed)
  if (vmxeFirst) setVmxe()
  const host = { cr0: lp.root.cr0, cr4: lp.root.cr4, cr3: lp.root.cr3 } // "mov %cr4, %rax; mov %rax, host_CR4"
  if (!vmxeFirst) setVmxe()

  const low = (v: bigint): number => Number(v & 0xffff_ffffn)
  const pin = low(msr0x480[1]!) | (1 << 0) | (1 << 3) // exit on interrupts, NMI exiting
  const cpu = low(msr0x480[2]!) | (1 << 7) | (1 << 29) // HLT + MONITOR exiting
  const exit = low(msr0x480[3]!) | (1 << 9) // exit to a 64-bit host
  const entry = low(msr0x480[4]!) | (1 << 9) // (ours runs a 64-bit guest: the core has no virtual-8086 mode)

  expect(lp.vmxon(vmxonRegion)).toBe(VmxStatus.Succeed)
  expect(lp.vmclear(guestRegion)).toBe(VmxStatus.Succeed)
  expect(lp.vmptrld(guestRegion)).toBe(VmxStatus.Succeed)
  const w = (field: number, value: bigint | number) => expect(lp.vmwrite(field, BigInt(value))).toBe(VmxStatus.Succeed)
  w(F.PIN_BASED_VM_EXEC_CONTROL, pin)
  w(F.CPU_BASED_VM_EXEC_CONTROL, cpu)
  w(F.VM_EXIT_CONTROLS, exit)
  w(F.VM_ENTRY_CONTROLS, entry)
  w(F.PAGE_FAULT_ERROR_CODE_MATCH, 0xffff_ffff)
  w(F.CR0_GUEST_HOST_MASK, 0x8000_0021)
  w(F.CR4_GUEST_HOST_MASK, 0x2000)
  w(F.CR0_READ_SHADOW, 0x8000_0021)
  w(F.CR4_READ_SHADOW, 0x2000)
  w(F.CR3_TARGET_COUNT, 2)
  w(F.CR3_TARGET_VALUE0, 0x1000)
  w(F.CR3_TARGET_VALUE1, host.cr3)
  w(F.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn)
  w(F.HOST_CR0, host.cr0)
  w(F.HOST_CR3, host.cr3)
  w(F.HOST_CR4, host.cr4)
  w(F.HOST_CS_SELECTOR, 0x10)
  w(F.HOST_SS_SELECTOR, 0x18)
  w(F.HOST_TR_SELECTOR, 0x40)
  w(F.HOST_RIP, 0xffff_ffff_a000_1000n) // my_vmm
  w(F.HOST_RSP, 0xffff_c900_0001_0000n)
  w(F.GUEST_CR0, 0x8000_0031)
  w(F.GUEST_CR3, 0x1000)
  w(F.GUEST_CR4, 0x2020)
  w(F.GUEST_RIP, 0x100000)
  w(F.GUEST_RSP, 0x1ff000)
  w(F.GUEST_RFLAGS, 0x2)
  w(F.GUEST_CS_SELECTOR, 0x8)
  w(F.GUEST_CS_AR_BYTES, 0xa09b)
  w(F.GUEST_CS_LIMIT, 0xffff_ffff)
  for (const [sel, ar, limit] of [
    [F.GUEST_SS_SELECTOR, F.GUEST_SS_AR_BYTES, F.GUEST_SS_LIMIT],
    [F.GUEST_DS_SELECTOR, F.GUEST_DS_AR_BYTES, F.GUEST_DS_LIMIT],
    [F.GUEST_ES_SELECTOR, F.GUEST_ES_AR_BYTES, F.GUEST_ES_LIMIT],
    [F.GUEST_FS_SELECTOR, F.GUEST_FS_AR_BYTES, F.GUEST_FS_LIMIT],
    [F.GUEST_GS_SELECTOR, F.GUEST_GS_AR_BYTES, F.GUEST_GS_LIMIT],
  ] as const) {
    w(sel, 0x10)
    w(ar, 0xc093)
    w(limit, 0xffff_ffff)
  }
  w(F.GUEST_TR_SELECTOR, 0x18)
  w(F.GUEST_TR_AR_BYTES, 0x8b)
  w(F.GUEST_TR_LIMIT, 0x67)
  w(F.GUEST_LDTR_AR_BYTES, 0x10000)
  lp.core = newGuestCore([0x90, 0xf4, 0xeb, 0xfd]) // nop; hlt; jmp back to the hlt
  return lp.vmlaunch(10_000)
}

describe("seed 004: why does VMLAUNCH fail with VM-instruction error 8?", () => {
  it("HOST_CR4 captured before setting CR4.VMXE: VMfailValid(8), explained by the host CR4 check", () => {
    const { lp } = newHost()
    expect(bareVmm(lp, false)).toBe(VmxStatus.FailValid)
    expect(lp.lastError).toBe(8)
    expect(lp.vmread(F.VM_INSTRUCTION_ERROR)).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(8n)
    expect(lp.outcome(VmxStatus.FailValid)).toEqual({ kind: "VMfailValid", error: 8, meaning: "VM entry with invalid host-state field(s)" })
    expect(lp.lastEntryFailure?.name).toBe("host.cr4.fixed0")
    expect(lp.explainEntryFailure()).toContain("host CR4.VMXE must be 1 (IA32_VMX_CR4_FIXED0)")
    expect(lp.currentLaunched).toBe(false)
  })

  it("setting CR4.VMXE first: the launch succeeds, the guest runs, and HLT and interrupts exit", () => {
    const { lp } = newHost()
    expect(bareVmm(lp, true)).toBe(VmxStatus.VmExit)
    expect(lp.currentLaunched).toBe(true)
    expect(lp.vmread(F.VM_EXIT_REASON)).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(BigInt(ExitReason.HLT))
    expect(lp.vmread(F.GUEST_RIP)).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(0x100001n) // the HLT, after the NOP
    expect(lp.root.rip).toBe(0xffff_ffff_a000_1000n) // back in my_vmm
    // The seed counts external-interrupt exits: an interrupt arriving while the guest runs exits.
    lp.vmwrite(F.GUEST_RIP, 0x100002n)
    lp.core!.requestInterrupt(0x20)
    expect(lp.vmresume(10_000)).toBe(VmxStatus.VmExit)
    expect(lp.vmread(F.VM_EXIT_REASON)).toBe(VmxStatus.Succeed)
    expect(lp.value).toBe(BigInt(ExitReason.EXTERNAL_INTERRUPT))
  })

  it("VMXON with CR4.VMXE clear is #UD", () => {
    const { lp } = newHost()
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.InvalidOpcode)
  })

  it("VMXON with IA32_FEATURE_CONTROL unlocked is #GP", () => {
    const { lp } = newHost()
    lp.featureControl = 0x4n // VMX enabled but not locked
    lp.writeCr4(lp.root.cr4 | (1n << 13n))
    expect(lp.vmxon(allocRegion(lp))).toBe(VmxStatus.GeneralProtection)
    expect(lp.outcome(VmxStatus.GeneralProtection)).toEqual({ kind: "#GP", errorCode: 0 })
  })
})
