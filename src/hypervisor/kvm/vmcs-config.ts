// setup_vmcs_config() and vmx_vcpu_setup(): the execution controls KVM asks for, adjusted to
// what the logical processor allows (adjust_vmx_controls: required bits forced on, unsupported
// optional bits dropped), and the VMCS fields a new vCPU starts with.

import { EntryControl, ExitControl, PinControl, PrimaryControl, SecondaryControl } from "../../arch/vmx/control-bits.ts"
import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import type { ControlAllowed, VmxCapabilities } from "../vmx/capabilities.ts"
import type { LogicalProcessor } from "../vmx/logical-processor.ts"
import { VmxStatus } from "../vmx/outcome.ts"

/** Exceptions KVM intercepts with EPT on: #DB (1), #UD (6, hypercall patching), #MC (18), #AC (17). */
export const EXCEPTION_BITMAP = (1 << 1) | (1 << 6) | (1 << 17) | (1 << 18)
/** CR0 bits the guest owns (KVM: only TS with EPT); the rest exit when changed from the shadow. */
export const CR0_GUEST_OWNED = 1 << 3
/** CR4 bits the guest owns (KVM_POSSIBLE_CR4_GUEST_BITS): PVI, DE, PCE, OSFXSR, OSXMMEXCPT, PGE, TSD, FSGSBASE. */
export const CR4_GUEST_OWNED = (1 << 1) | (1 << 3) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 7) | (1 << 2) | (1 << 16)

export interface VmcsConfig {
  readonly pin: number
  readonly primary: number
  readonly secondary: number
  readonly exit: number
  readonly entry: number
}

/** min bits must be allowed; opt bits are taken when allowed. Undefined when a required bit is missing. */
const adjust = (allowed: ControlAllowed, min: number, opt: number): number | undefined => {
  const wanted = ((min | opt) & allowed.allowed1) | allowed.allowed0
  return (wanted & min) === min ? wanted >>> 0 : undefined
}

export const setupVmcsConfig = (caps: VmxCapabilities): VmcsConfig | string => {
  const pin = adjust(caps.pin, PinControl.EXT_INTR_MASK | PinControl.NMI_EXITING, PinControl.VIRTUAL_NMIS | PinControl.VMX_PREEMPTION_TIMER)
  const primary = adjust(
    caps.primary,
    PrimaryControl.HLT_EXITING | PrimaryControl.UNCOND_IO_EXITING | PrimaryControl.USE_MSR_BITMAPS | PrimaryControl.ACTIVATE_SECONDARY_CONTROLS,
    PrimaryControl.USE_TSC_OFFSETTING | PrimaryControl.MWAIT_EXITING | PrimaryControl.MONITOR_EXITING,
  )
  const secondary = adjust(
    caps.secondary,
    SecondaryControl.ENABLE_EPT | SecondaryControl.UNRESTRICTED_GUEST,
    SecondaryControl.ENABLE_VPID | SecondaryControl.ENABLE_RDTSCP,
  )
  const exit = adjust(caps.exit, ExitControl.HOST_ADDR_SPACE_SIZE | ExitControl.ACK_INTR_ON_EXIT, ExitControl.SAVE_IA32_EFER | ExitControl.LOAD_IA32_EFER)
  const entry = adjust(caps.entry, 0, EntryControl.LOAD_IA32_EFER)
  if (pin === undefined || primary === undefined || secondary === undefined || exit === undefined || entry === undefined) {
    return "the CPU lacks a VMX control KVM requires (external-interrupt/NMI/HLT/I-O exiting, MSR bitmaps, EPT, unrestricted guest)"
  }
  return { pin, primary, secondary, exit, entry }
}

/** Writes one field; a failure here is a KVM bug (vmcs_write's WARN). */
export const vmwriteOrThrow = (lp: LogicalProcessor, field: number, value: bigint): void => {
  const status = lp.vmwrite(field, value)
  if (status !== VmxStatus.Succeed) {
    throw new Error(`VMWRITE 0x${field.toString(16)} failed on CPU ${lp.id}: ${JSON.stringify(lp.outcome(status))}`)
  }
}

export const vmreadOrThrow = (lp: LogicalProcessor, field: number): bigint => {
  const status = lp.vmread(field)
  if (status !== VmxStatus.Succeed) throw new Error(`VMREAD 0x${field.toString(16)} failed on CPU ${lp.id}: ${JSON.stringify(lp.outcome(status))}`)
  return lp.value
}

/** Host-state fields from the logical processor's root-mode state (vmx_set_constant_host_state). */
export const writeHostState = (lp: LogicalProcessor, hostRip: bigint): void => {
  const r = lp.root
  vmwriteOrThrow(lp, F.HOST_CR0, r.cr0)
  vmwriteOrThrow(lp, F.HOST_CR3, r.cr3)
  vmwriteOrThrow(lp, F.HOST_CR4, r.cr4)
  vmwriteOrThrow(lp, F.HOST_ES_SELECTOR, BigInt(r.selectors.es))
  vmwriteOrThrow(lp, F.HOST_CS_SELECTOR, BigInt(r.selectors.cs))
  vmwriteOrThrow(lp, F.HOST_SS_SELECTOR, BigInt(r.selectors.ss))
  vmwriteOrThrow(lp, F.HOST_DS_SELECTOR, BigInt(r.selectors.ds))
  vmwriteOrThrow(lp, F.HOST_FS_SELECTOR, BigInt(r.selectors.fs))
  vmwriteOrThrow(lp, F.HOST_GS_SELECTOR, BigInt(r.selectors.gs))
  vmwriteOrThrow(lp, F.HOST_TR_SELECTOR, BigInt(r.selectors.tr))
  vmwriteOrThrow(lp, F.HOST_FS_BASE, r.fsBase)
  vmwriteOrThrow(lp, F.HOST_GS_BASE, r.gsBase)
  vmwriteOrThrow(lp, F.HOST_TR_BASE, r.trBase)
  vmwriteOrThrow(lp, F.HOST_GDTR_BASE, r.gdtrBase)
  vmwriteOrThrow(lp, F.HOST_IDTR_BASE, r.idtrBase)
  vmwriteOrThrow(lp, F.HOST_IA32_SYSENTER_CS, BigInt(r.sysenterCs))
  vmwriteOrThrow(lp, F.HOST_IA32_SYSENTER_ESP, r.sysenterEsp)
  vmwriteOrThrow(lp, F.HOST_IA32_SYSENTER_EIP, r.sysenterEip)
  vmwriteOrThrow(lp, F.HOST_IA32_EFER, r.efer)
  vmwriteOrThrow(lp, F.HOST_IA32_PAT, r.pat)
  vmwriteOrThrow(lp, F.HOST_RSP, r.rsp)
  vmwriteOrThrow(lp, F.HOST_RIP, hostRip)
}
