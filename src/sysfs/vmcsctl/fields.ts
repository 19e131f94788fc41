// The VMCS fields vmcsctl exposes: exactly the 176 of the 2017 patch's listing (document 002,
// section 4, with the OCR errors CRO/VALUEO read as CR0/VALUE0), each with its encoding (Intel
// SDM Vol. 3C Appendix B). Width and type follow from the encoding bits; the permission policy
// (which files are writable) is decided here too.

export type FieldWidthName = "16" | "32" | "64" | "natural"

export interface VmcsctlField {
  readonly name: string
  readonly encoding: number
  /** Bits a store may set: 16, 32 or 64 (a _HIGH half and a 32-bit field are both 32). */
  readonly bits: 16 | 32 | 64
  readonly width: FieldWidthName
  readonly type: "control" | "exit-info" | "guest-state" | "host-state"
  /** Holds a host-physical address (or the high half of one). */
  readonly physicalAddress: boolean
}

const encodings: ReadonlyArray<readonly [string, number]> = [
  ["APIC_ACCESS_ADDR", 0x2014],
  ["APIC_ACCESS_ADDR_HIGH", 0x2015],
  ["CPU_BASED_VM_EXEC_CONTROL", 0x4002],
  ["CR0_GUEST_HOST_MASK", 0x6000],
  ["CR0_READ_SHADOW", 0x6004],
  ["CR3_TARGET_COUNT", 0x400a],
  ["CR3_TARGET_VALUE0", 0x6008],
  ["CR3_TARGET_VALUE1", 0x600a],
  ["CR3_TARGET_VALUE2", 0x600c],
  ["CR3_TARGET_VALUE3", 0x600e],
  ["CR4_GUEST_HOST_MASK", 0x6002],
  ["CR4_READ_SHADOW", 0x6006],
  ["EOI_EXIT_BITMAP0", 0x201c],
  ["EOI_EXIT_BITMAP0_HIGH", 0x201d],
  ["EOI_EXIT_BITMAP1", 0x201e],
  ["EOI_EXIT_BITMAP1_HIGH", 0x201f],
  ["EOI_EXIT_BITMAP2", 0x2020],
  ["EOI_EXIT_BITMAP2_HIGH", 0x2021],
  ["EOI_EXIT_BITMAP3", 0x2022],
  ["EOI_EXIT_BITMAP3_HIGH", 0x2023],
  ["EPT_POINTER", 0x201a],
  ["EPT_POINTER_HIGH", 0x201b],
  ["EXCEPTION_BITMAP", 0x4004],
  ["EXIT_QUALIFICATION", 0x6400],
  ["GUEST_ACTIVITY_STATE", 0x4826],
  ["GUEST_BNDCFGS", 0x2812],
  ["GUEST_BNDCFGS_HIGH", 0x2813],
  ["GUEST_CR0", 0x6800],
  ["GUEST_CR3", 0x6802],
  ["GUEST_CR4", 0x6804],
  ["GUEST_CS_AR_BYTES", 0x4816],
  ["GUEST_CS_BASE", 0x6808],
  ["GUEST_CS_LIMIT", 0x4802],
  ["GUEST_CS_SELECTOR", 0x0802],
  ["GUEST_DR7", 0x681a],
  ["GUEST_DS_AR_BYTES", 0x481a],
  ["GUEST_DS_BASE", 0x680c],
  ["GUEST_DS_LIMIT", 0x4806],
  ["GUEST_DS_SELECTOR", 0x0806],
  ["GUEST_ES_AR_BYTES", 0x4814],
  ["GUEST_ES_BASE", 0x6806],
  ["GUEST_ES_LIMIT", 0x4800],
  ["GUEST_ES_SELECTOR", 0x0800],
  ["GUEST_FS_AR_BYTES", 0x481c],
  ["GUEST_FS_BASE", 0x680e],
  ["GUEST_FS_LIMIT", 0x4808],
  ["GUEST_FS_SELECTOR", 0x0808],
  ["GUEST_GDTR_BASE", 0x6816],
  ["GUEST_GDTR_LIMIT", 0x4810],
  ["GUEST_GS_AR_BYTES", 0x481e],
  ["GUEST_GS_BASE", 0x6810],
  ["GUEST_GS_LIMIT", 0x480a],
  ["GUEST_GS_SELECTOR", 0x080a],
  ["GUEST_IA32_DEBUGCTL", 0x2802],
  ["GUEST_IA32_DEBUGCTL_HIGH", 0x2803],
  ["GUEST_IA32_EFER", 0x2806],
  ["GUEST_IA32_EFER_HIGH", 0x2807],
  ["GUEST_IA32_PAT", 0x2804],
  ["GUEST_IA32_PAT_HIGH", 0x2805],
  ["GUEST_IA32_PERF_GLOBAL_CTRL", 0x2808],
  ["GUEST_IA32_PERF_GLOBAL_CTRL_HIGH", 0x2809],
  ["GUEST_IDTR_BASE", 0x6818],
  ["GUEST_IDTR_LIMIT", 0x4812],
  ["GUEST_INTERRUPTIBILITY_INFO", 0x4824],
  ["GUEST_INTR_STATUS", 0x0810],
  ["GUEST_LDTR_AR_BYTES", 0x4820],
  ["GUEST_LDTR_BASE", 0x6812],
  ["GUEST_LDTR_LIMIT", 0x480c],
  ["GUEST_LDTR_SELECTOR", 0x080c],
  ["GUEST_LINEAR_ADDRESS", 0x640a],
  ["GUEST_PDPTR0", 0x280a],
  ["GUEST_PDPTR0_HIGH", 0x280b],
  ["GUEST_PDPTR1", 0x280c],
  ["GUEST_PDPTR1_HIGH", 0x280d],
  ["GUEST_PDPTR2", 0x280e],
  ["GUEST_PDPTR2_HIGH", 0x280f],
  ["GUEST_PDPTR3", 0x2810],
  ["GUEST_PDPTR3_HIGH", 0x2811],
  ["GUEST_PENDING_DBG_EXCEPTIONS", 0x6822],
  ["GUEST_PHYSICAL_ADDRESS", 0x2400],
  ["GUEST_PHYSICAL_ADDRESS_HIGH", 0x2401],
  ["GUEST_PML_INDEX", 0x0812],
  ["GUEST_RFLAGS", 0x6820],
  ["GUEST_RIP", 0x681e],
  ["GUEST_RSP", 0x681c],
  ["GUEST_SS_AR_BYTES", 0x4818],
  ["GUEST_SS_BASE", 0x680a],
  ["GUEST_SS_LIMIT", 0x4804],
  ["GUEST_SS_SELECTOR", 0x0804],
  ["GUEST_SYSENTER_CS", 0x482a],
  ["GUEST_SYSENTER_EIP", 0x6826],
  ["GUEST_SYSENTER_ESP", 0x6824],
  ["GUEST_TR_AR_BYTES", 0x4822],
  ["GUEST_TR_BASE", 0x6814],
  ["GUEST_TR_LIMIT", 0x480e],
  ["GUEST_TR_SELECTOR", 0x080e],
  ["HOST_CR0", 0x6c00],
  ["HOST_CR3", 0x6c02],
  ["HOST_CR4", 0x6c04],
  ["HOST_CS_SELECTOR", 0x0c02],
  ["HOST_DS_SELECTOR", 0x0c06],
  ["HOST_ES_SELECTOR", 0x0c00],
  ["HOST_FS_BASE", 0x6c06],
  ["HOST_FS_SELECTOR", 0x0c08],
  ["HOST_GDTR_BASE", 0x6c0c],
  ["HOST_GS_BASE", 0x6c08],
  ["HOST_GS_SELECTOR", 0x0c0a],
  ["HOST_IA32_EFER", 0x2c02],
  ["HOST_IA32_EFER_HIGH", 0x2c03],
  ["HOST_IA32_PAT", 0x2c00],
  ["HOST_IA32_PAT_HIGH", 0x2c01],
  ["HOST_IA32_PERF_GLOBAL_CTRL", 0x2c04],
  ["HOST_IA32_PERF_GLOBAL_CTRL_HIGH", 0x2c05],
  ["HOST_IA32_SYSENTER_CS", 0x4c00],
  ["HOST_IA32_SYSENTER_EIP", 0x6c12],
  ["HOST_IA32_SYSENTER_ESP", 0x6c10],
  ["HOST_IDTR_BASE", 0x6c0e],
  ["HOST_RIP", 0x6c16],
  ["HOST_RSP", 0x6c14],
  ["HOST_SS_SELECTOR", 0x0c04],
  ["HOST_TR_BASE", 0x6c0a],
  ["HOST_TR_SELECTOR", 0x0c0c],
  ["IDT_VECTORING_ERROR_CODE", 0x440a],
  ["IDT_VECTORING_INFO_FIELD", 0x4408],
  ["IO_BITMAP_A", 0x2000],
  ["IO_BITMAP_A_HIGH", 0x2001],
  ["IO_BITMAP_B", 0x2002],
  ["IO_BITMAP_B_HIGH", 0x2003],
  ["MSR_BITMAP", 0x2004],
  ["MSR_BITMAP_HIGH", 0x2005],
  ["PAGE_FAULT_ERROR_CODE_MASK", 0x4006],
  ["PAGE_FAULT_ERROR_CODE_MATCH", 0x4008],
  ["PIN_BASED_VM_EXEC_CONTROL", 0x4000],
  ["PLE_GAP", 0x4020],
  ["PLE_WINDOW", 0x4022],
  ["PML_ADDRESS", 0x200e],
  ["PML_ADDRESS_HIGH", 0x200f],
  ["POSTED_INTR_DESC_ADDR", 0x2016],
  ["POSTED_INTR_DESC_ADDR_HIGH", 0x2017],
  ["POSTED_INTR_NV", 0x0002],
  ["SECONDARY_VM_EXEC_CONTROL", 0x401e],
  ["TPR_THRESHOLD", 0x401c],
  ["TSC_MULTIPLIER", 0x2032],
  ["TSC_MULTIPLIER_HIGH", 0x2033],
  ["TSC_OFFSET", 0x2010],
  ["TSC_OFFSET_HIGH", 0x2011],
  ["VIRTUAL_APIC_PAGE_ADDR", 0x2012],
  ["VIRTUAL_APIC_PAGE_ADDR_HIGH", 0x2013],
  ["VIRTUAL_PROCESSOR_ID", 0x0000],
  ["VMCS_LINK_POINTER", 0x2800],
  ["VMCS_LINK_POINTER_HIGH", 0x2801],
  ["VMREAD_BITMAP", 0x2026],
  ["VMWRITE_BITMAP", 0x2028],
  ["VMX_INSTRUCTION_INFO", 0x440e],
  ["VMX_PREEMPTION_TIMER_VALUE", 0x482e],
  ["VM_ENTRY_CONTROLS", 0x4012],
  ["VM_ENTRY_EXCEPTION_ERROR_CODE", 0x4018],
  ["VM_ENTRY_INSTRUCTION_LEN", 0x401a],
  ["VM_ENTRY_INTR_INFO_FIELD", 0x4016],
  ["VM_ENTRY_MSR_LOAD_ADDR", 0x200a],
  ["VM_ENTRY_MSR_LOAD_ADDR_HIGH", 0x200b],
  ["VM_ENTRY_MSR_LOAD_COUNT", 0x4014],
  ["VM_EXIT_CONTROLS", 0x400c],
  ["VM_EXIT_INSTRUCTION_LEN", 0x440c],
  ["VM_EXIT_INTR_ERROR_CODE", 0x4406],
  ["VM_EXIT_INTR_INFO", 0x4404],
  ["VM_EXIT_MSR_LOAD_ADDR", 0x2008],
  ["VM_EXIT_MSR_LOAD_ADDR_HIGH", 0x2009],
  ["VM_EXIT_MSR_LOAD_COUNT", 0x4010],
  ["VM_EXIT_MSR_STORE_ADDR", 0x2006],
  ["VM_EXIT_MSR_STORE_ADDR_HIGH", 0x2007],
  ["VM_EXIT_MSR_STORE_COUNT", 0x400e],
  ["VM_EXIT_REASON", 0x4402],
  ["VM_INSTRUCTION_ERROR", 0x4400],
  ["XSS_EXIT_BITMAP", 0x202c],
  ["XSS_EXIT_BITMAP_HIGH", 0x202d],
]

// Fields whose value is a physical address the processor dereferences: writing a wrong one lets
// a user point the CPU at arbitrary host memory (the reviewers' safety concern), so they are
// read-only unless the module is loaded with unsafe_writes.
const physicalAddressFields = new Set([
  "IO_BITMAP_A",
  "IO_BITMAP_B",
  "MSR_BITMAP",
  "VM_EXIT_MSR_STORE_ADDR",
  "VM_EXIT_MSR_LOAD_ADDR",
  "VM_ENTRY_MSR_LOAD_ADDR",
  "PML_ADDRESS",
  "VIRTUAL_APIC_PAGE_ADDR",
  "APIC_ACCESS_ADDR",
  "POSTED_INTR_DESC_ADDR",
  "EPT_POINTER",
  "VMREAD_BITMAP",
  "VMWRITE_BITMAP",
  "VMCS_LINK_POINTER",
])

const widthOf = (encoding: number): FieldWidthName => (["16", "64", "32", "natural"] as const)[(encoding >>> 13) & 3]!
const typeOf = (encoding: number): VmcsctlField["type"] =>
  (["control", "exit-info", "guest-state", "host-state"] as const)[(encoding >>> 10) & 3]!

export const vmcsctlFields: ReadonlyArray<VmcsctlField> = encodings.map(([name, encoding]) => {
  const high = (encoding & 1) === 1
  const width = high ? "32" : widthOf(encoding)
  const bits: 16 | 32 | 64 = width === "16" ? 16 : width === "32" ? 32 : 64
  return {
    name,
    encoding,
    bits,
    width,
    type: typeOf(encoding),
    physicalAddress: physicalAddressFields.has(high ? name.replace(/_HIGH$/, "") : name),
  }
})

/** The two files that are not fields: the region's first two dwords. */
export const regionFiles = ["abort", "revision_id"] as const

/**
 * Permission bits of a field's file. Exit information is always 0444 (VMWRITE to it fails on
 * processors without "VMWRITE to any field", and KVM never writes it); host state and physical
 * addresses are 0444 unless `unsafeWrites`; everything else is 0644.
 */
export const fieldMode = (field: VmcsctlField, unsafeWrites: boolean): number => {
  if (field.type === "exit-info") return 0o444
  if ((field.type === "host-state" || field.physicalAddress) && !unsafeWrites) return 0o444
  return 0o644
}
