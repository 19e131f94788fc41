// Test scaffolding: a host with logical processors in VMX operation and VMCSs set up the way a
// careful VMM (KVM's vmx.c) sets them up, so a test can break one thing at a time.
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { HostPhysicalMemory } from "../../../src/hypervisor/vmx/host-memory.ts"
import { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { VmxPlatform } from "../../../src/hypervisor/vmx/platform.ts"
import { VmxCapabilities } from "../../../src/hypervisor/vmx/capabilities.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"

export const newHost = (processors = 1, caps = new VmxCapabilities()) => {
  const memory = new HostPhysicalMemory()
  const platform = new VmxPlatform(memory)
  const lps = Array.from({ length: processors }, (_, id) => new LogicalProcessor(id, platform, caps))
  return { memory, platform, lps, lp: lps[0]! }
}

/** A page holding the revision identifier, as VMXON and VMCS regions need. */
export const allocRegion = (lp: LogicalProcessor, revision = lp.caps.revisionId): bigint => {
  const address = lp.memory.allocPage()!
  lp.memory.write32(Number(address), revision)
  return address
}

export const expectStatus = (actual: number, expected: number, lp?: LogicalProcessor): void => {
  if (actual !== expected) {
    const detail = lp === undefined ? "" : ` (${JSON.stringify(lp.outcome(actual as VmxStatus), (_k, v) => (typeof v === "bigint" ? v.toString(16) : v))})`
    throw new Error(`status ${actual}, expected ${expected}${detail}`)
  }
}

/** CR4.VMXE on, VMXON with a fresh region. */
export const enterVmx = (lp: LogicalProcessor): bigint => {
  lp.root.cr4 |= 1n << 13n
  const region = allocRegion(lp)
  expectStatus(lp.vmxon(region), VmxStatus.Succeed, lp)
  return region
}

/** VMCLEAR + VMPTRLD of a fresh VMCS. */
export const loadNewVmcs = (lp: LogicalProcessor): bigint => {
  const vmcs = allocRegion(lp)
  expectStatus(lp.vmclear(vmcs), VmxStatus.Succeed, lp)
  expectStatus(lp.vmptrld(vmcs), VmxStatus.Succeed, lp)
  return vmcs
}

const w = (lp: LogicalProcessor, field: number, value: bigint | number): void =>
  expectStatus(lp.vmwrite(field, BigInt(value)), VmxStatus.Succeed, lp)

/** Controls = the capability MSRs' must-be-1 bits plus `extra` (what adjust_vmx_controls does). */
export const adjust = (allowed: { allowed0: number; allowed1: number }, extra = 0): number => ((allowed.allowed0 | extra) & allowed.allowed1) >>> 0

/**
 * Writes a complete, valid VMCS for a 64-bit guest at CPL0 (flat segments, paging on) and a
 * 64-bit host, with HLT exiting on. Host state is captured from the processor's root state.
 */
export const writeValidVmcs = (lp: LogicalProcessor, options: { guestRip?: bigint; guestCr3?: bigint; primaryExtra?: number } = {}): void => {
  const caps = lp.caps
  w(lp, F.PIN_BASED_VM_EXEC_CONTROL, adjust(caps.pin))
  w(lp, F.CPU_BASED_VM_EXEC_CONTROL, adjust(caps.primary, 0x80 | (options.primaryExtra ?? 0)))
  w(lp, F.SECONDARY_VM_EXEC_CONTROL, 0)
  w(lp, F.VM_EXIT_CONTROLS, adjust(caps.exit, 0x200))
  w(lp, F.VM_ENTRY_CONTROLS, adjust(caps.entry, 0x200))
  w(lp, F.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn)
  // Host state from the processor, as vmx_set_constant_host_state does.
  w(lp, F.HOST_CR0, lp.root.cr0)
  w(lp, F.HOST_CR3, lp.root.cr3)
  w(lp, F.HOST_CR4, lp.root.cr4)
  w(lp, F.HOST_CS_SELECTOR, 0x10)
  w(lp, F.HOST_SS_SELECTOR, 0x18)
  w(lp, F.HOST_TR_SELECTOR, 0x40)
  w(lp, F.HOST_RIP, 0xffff_ffff_8100_0000n)
  w(lp, F.HOST_RSP, 0xffff_c900_0000_8000n)
  w(lp, F.HOST_GDTR_BASE, 0xffff_fe00_0000_1000n)
  w(lp, F.HOST_IDTR_BASE, 0xffff_fe00_0000_0000n)
  w(lp, F.HOST_TR_BASE, 0xffff_fe00_0000_3000n)
  // Guest: 64-bit, CPL0, paging on.
  w(lp, F.GUEST_CR0, 0x8000_0031n)
  w(lp, F.GUEST_CR3, options.guestCr3 ?? 0x1000n)
  w(lp, F.GUEST_CR4, 0x2020n)
  w(lp, F.GUEST_IA32_EFER, 0x500n)
  w(lp, F.GUEST_RIP, options.guestRip ?? 0x100000n)
  w(lp, F.GUEST_RSP, 0x200000n)
  w(lp, F.GUEST_RFLAGS, 2n)
  w(lp, F.GUEST_CS_SELECTOR, 0x8)
  w(lp, F.GUEST_CS_AR_BYTES, 0xa09b)
  w(lp, F.GUEST_CS_LIMIT, 0xffff_ffff)
  for (const [sel, ar, limit] of [
    [F.GUEST_SS_SELECTOR, F.GUEST_SS_AR_BYTES, F.GUEST_SS_LIMIT],
    [F.GUEST_DS_SELECTOR, F.GUEST_DS_AR_BYTES, F.GUEST_DS_LIMIT],
    [F.GUEST_ES_SELECTOR, F.GUEST_ES_AR_BYTES, F.GUEST_ES_LIMIT],
    [F.GUEST_FS_SELECTOR, F.GUEST_FS_AR_BYTES, F.GUEST_FS_LIMIT],
    [F.GUEST_GS_SELECTOR, F.GUEST_GS_AR_BYTES, F.GUEST_GS_LIMIT],
  ] as const) {
    w(lp, sel, 0x10)
    w(lp, ar, 0xc093)
    w(lp, limit, 0xffff_ffff)
  }
  w(lp, F.GUEST_TR_SELECTOR, 0x18)
  w(lp, F.GUEST_TR_AR_BYTES, 0x8b)
  w(lp, F.GUEST_TR_LIMIT, 0x67)
  w(lp, F.GUEST_LDTR_AR_BYTES, 0x10000)
  w(lp, F.GUEST_GDTR_LIMIT, 0xffff)
  w(lp, F.GUEST_IDTR_LIMIT, 0xffff)
}

/**
 * EPT tables in host memory mapping the first GiB of guest-physical addresses onto the same
 * addresses of the guest's slot space with one 1 GiB page (`permissions` = R/W/X bits).
 * Returns the EPT pointer (WB, 4-level walk) and the PDPT page for tests that edit entries.
 */
export const identityEpt = (lp: LogicalProcessor, permissions = 7): { eptp: bigint; pdpt: bigint; pml4: bigint } => {
  const pml4 = lp.memory.allocPage()!
  const pdpt = lp.memory.allocPage()!
  lp.memory.write64(pml4, pdpt | 7n)
  lp.memory.write64(pdpt, BigInt(permissions) | (6n << 3n) | 0x80n)
  return { eptp: pml4 | 6n | (3n << 3n), pdpt, pml4 }
}
