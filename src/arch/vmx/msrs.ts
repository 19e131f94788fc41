// VMX-related MSRs (Intel SDM Vol. 3C Appendix A) with the values a real Core i7-6700K (Skylake)
// reports, which kvmsim's logical processors use by default.

export const VmxMsr = {
  IA32_FEATURE_CONTROL: 0x03a,
  IA32_VMX_BASIC: 0x480,
  IA32_VMX_PINBASED_CTLS: 0x481,
  IA32_VMX_PROCBASED_CTLS: 0x482,
  IA32_VMX_EXIT_CTLS: 0x483,
  IA32_VMX_ENTRY_CTLS: 0x484,
  IA32_VMX_MISC: 0x485,
  IA32_VMX_CR0_FIXED0: 0x486,
  IA32_VMX_CR0_FIXED1: 0x487,
  IA32_VMX_CR4_FIXED0: 0x488,
  IA32_VMX_CR4_FIXED1: 0x489,
  IA32_VMX_VMCS_ENUM: 0x48a,
  IA32_VMX_PROCBASED_CTLS2: 0x48b,
  IA32_VMX_EPT_VPID_CAP: 0x48c,
  IA32_VMX_TRUE_PINBASED_CTLS: 0x48d,
  IA32_VMX_TRUE_PROCBASED_CTLS: 0x48e,
  IA32_VMX_TRUE_EXIT_CTLS: 0x48f,
  IA32_VMX_TRUE_ENTRY_CTLS: 0x490,
  IA32_VMX_VMFUNC: 0x491,
} as const
export type VmxMsrName = keyof typeof VmxMsr

/** Values read on a Core i7-6700K (VirtualBox CPU database, VBoxCpuReport 2015-11-04). */
export const skylakeVmxMsrValues: Readonly<Record<VmxMsrName, bigint>> = {
  IA32_FEATURE_CONTROL: 0x5n,
  IA32_VMX_BASIC: 0x00da040000000004n,
  IA32_VMX_PINBASED_CTLS: 0x0000007f00000016n,
  IA32_VMX_PROCBASED_CTLS: 0xfff9fffe0401e172n,
  IA32_VMX_EXIT_CTLS: 0x01ffffff00036dffn,
  IA32_VMX_ENTRY_CTLS: 0x0003ffff000011ffn,
  IA32_VMX_MISC: 0x000000007004c1e7n,
  IA32_VMX_CR0_FIXED0: 0x0000000080000021n,
  IA32_VMX_CR0_FIXED1: 0x00000000ffffffffn,
  IA32_VMX_CR4_FIXED0: 0x0000000000002000n,
  IA32_VMX_CR4_FIXED1: 0x00000000003727ffn,
  IA32_VMX_VMCS_ENUM: 0x000000000000002en,
  IA32_VMX_PROCBASED_CTLS2: 0x001ffcff00000000n,
  IA32_VMX_EPT_VPID_CAP: 0x00000f0106334141n,
  IA32_VMX_TRUE_PINBASED_CTLS: 0x0000007f00000016n,
  IA32_VMX_TRUE_PROCBASED_CTLS: 0xfff9fffe04006172n,
  IA32_VMX_TRUE_EXIT_CTLS: 0x01ffffff00036dfbn,
  IA32_VMX_TRUE_ENTRY_CTLS: 0x0003ffff000011fbn,
  IA32_VMX_VMFUNC: 0x0000000000000001n,
}

/** IA32_FEATURE_CONTROL bits VMXON depends on. */
export const FeatureControl = {
  LOCKED: 0x1,
  VMX_INSIDE_SMX: 0x2,
  VMX_OUTSIDE_SMX: 0x4,
} as const

/** IA32_VMX_BASIC bit 55: the TRUE_* control MSRs exist and decide the allowed-0 settings. */
export const VMX_BASIC_TRUE_CTLS = 1n << 55n
/** IA32_VMX_MISC bit 29: VMWRITE may write read-only (exit-information) fields. */
export const VMX_MISC_VMWRITE_ANY_FIELD = 1n << 29n
/** IA32_VMX_MISC bit 30: software interrupts/exceptions may be injected with instruction length 0. */
export const VMX_MISC_ZERO_LEN_INJECTION = 1n << 30n
