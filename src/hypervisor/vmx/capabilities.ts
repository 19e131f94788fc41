// The VMX capability MSRs of one logical processor, decoded once into the numbers the hot path
// and the entry checks use (allowed-0 / allowed-1 masks, fixed bits). TRUE_* semantics: when
// IA32_VMX_BASIC bit 55 is 1, the TRUE MSRs decide which default-1 controls may be cleared.
import { skylakeVmxMsrValues, VMX_BASIC_TRUE_CTLS, VMX_MISC_VMWRITE_ANY_FIELD, VMX_MISC_ZERO_LEN_INJECTION, VmxMsr, type VmxMsrName } from "../../arch/vmx/msrs.ts"

const lo32 = (v: bigint): number => Number(v & 0xffff_ffffn)
const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffff_ffffn)

export interface ControlAllowed {
  /** Bits that must be 1 (low dword of the capability MSR). */
  readonly allowed0: number
  /** Bits that may be 1 (high dword). */
  readonly allowed1: number
  /** The MSR these come from, for messages. */
  readonly msr: VmxMsrName
}

export class VmxCapabilities {
  readonly msrs: Readonly<Record<VmxMsrName, bigint>>
  readonly revisionId: number
  readonly vmcsRegionBytes: number
  readonly trueControls: boolean
  readonly pin: ControlAllowed
  readonly primary: ControlAllowed
  readonly secondary: ControlAllowed
  readonly exit: ControlAllowed
  readonly entry: ControlAllowed
  readonly cr0Fixed0: bigint
  readonly cr0Fixed1: bigint
  readonly cr4Fixed0: bigint
  readonly cr4Fixed1: bigint
  readonly cr3TargetCount: number
  readonly activityStates: number
  readonly vmwriteAnyField: boolean
  readonly zeroLengthInjection: boolean
  readonly maxMsrListEntries: number
  /** log2 of the TSC-to-preemption-timer ratio (IA32_VMX_MISC bits 4:0). */
  readonly preemptionTimerShift: number
  /** 2 ** preemptionTimerShift: instructions per preemption-timer tick. */
  readonly preemptionTimerScale: number
  readonly eptVpidCap: bigint
  readonly vmfunc: bigint
  /** Error-code consistency for injected hardware exceptions is not checked (BASIC bit 56). */
  readonly errorCodeFreeInjection: boolean

  constructor(overrides: Partial<Record<VmxMsrName, bigint>> = {}) {
    const msrs = { ...skylakeVmxMsrValues, ...overrides }
    this.msrs = msrs
    const basic = msrs.IA32_VMX_BASIC
    this.revisionId = Number(basic & 0x7fff_ffffn)
    this.vmcsRegionBytes = Number((basic >> 32n) & 0x1fffn)
    this.trueControls = (basic & VMX_BASIC_TRUE_CTLS) !== 0n
    this.errorCodeFreeInjection = (basic & (1n << 56n)) !== 0n
    const allowed = (msr: VmxMsrName): ControlAllowed => ({ allowed0: lo32(msrs[msr]), allowed1: hi32(msrs[msr]), msr })
    this.pin = allowed(this.trueControls ? "IA32_VMX_TRUE_PINBASED_CTLS" : "IA32_VMX_PINBASED_CTLS")
    this.primary = allowed(this.trueControls ? "IA32_VMX_TRUE_PROCBASED_CTLS" : "IA32_VMX_PROCBASED_CTLS")
    this.secondary = allowed("IA32_VMX_PROCBASED_CTLS2")
    this.exit = allowed(this.trueControls ? "IA32_VMX_TRUE_EXIT_CTLS" : "IA32_VMX_EXIT_CTLS")
    this.entry = allowed(this.trueControls ? "IA32_VMX_TRUE_ENTRY_CTLS" : "IA32_VMX_ENTRY_CTLS")
    this.cr0Fixed0 = msrs.IA32_VMX_CR0_FIXED0
    this.cr0Fixed1 = msrs.IA32_VMX_CR0_FIXED1
    this.cr4Fixed0 = msrs.IA32_VMX_CR4_FIXED0
    this.cr4Fixed1 = msrs.IA32_VMX_CR4_FIXED1
    const misc = msrs.IA32_VMX_MISC
    this.preemptionTimerShift = Number(misc & 0x1fn)
    this.preemptionTimerScale = 2 ** this.preemptionTimerShift
    this.activityStates = Number((misc >> 6n) & 7n)
    this.cr3TargetCount = Number((misc >> 16n) & 0x1ffn)
    this.maxMsrListEntries = 512 * (Number((misc >> 25n) & 7n) + 1)
    this.vmwriteAnyField = (misc & VMX_MISC_VMWRITE_ANY_FIELD) !== 0n
    this.zeroLengthInjection = (misc & VMX_MISC_ZERO_LEN_INJECTION) !== 0n
    this.eptVpidCap = msrs.IA32_VMX_EPT_VPID_CAP
    this.vmfunc = msrs.IA32_VMX_VMFUNC
  }

  /** RDMSR of a capability MSR by index, or undefined when the index is not one. */
  read(index: number): bigint | undefined {
    for (const [name, msrIndex] of Object.entries(VmxMsr) as Array<[VmxMsrName, number]>) {
      if (msrIndex === index && name !== "IA32_FEATURE_CONTROL") return this.msrs[name]
    }
    return undefined
  }
}
