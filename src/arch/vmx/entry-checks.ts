// The VM-entry checks kvmsim implements, in the order the SDM performs them (Vol. 3C 26.2 checks
// on VMX controls and host state, 26.3 checks on guest state). Each has a stable name a user can
// search for and a one-line explanation; a failing check reports itself by these.

/** What a failure of the check produces. */
export type EntryCheckKind =
  | "control" // VMfailValid(7)
  | "host" // VMfailValid(8)
  | "guest" // VM exit 33 | 0x80000000, launch state unchanged

export interface EntryCheckInfo {
  readonly name: string
  readonly kind: EntryCheckKind
  readonly explanation: string
  /** Exit qualification of the failed entry (guest checks): 0 default, 2 PDPTE, 3 NMI injection, 4 VMCS link pointer. */
  readonly qualification: number
  /** SDM section (older numbering; 2023+ editions add one to the chapter). */
  readonly sdm: string
}

const c = (name: string, explanation: string, sdm = "26.2.1"): EntryCheckInfo => ({ name, kind: "control", explanation, qualification: 0, sdm })
const h = (name: string, explanation: string, sdm = "26.2.2"): EntryCheckInfo => ({ name, kind: "host", explanation, qualification: 0, sdm })
const g = (name: string, explanation: string, qualification = 0, sdm = "26.3.1"): EntryCheckInfo => ({ name, kind: "guest", explanation, qualification, sdm })

export const entryChecks: ReadonlyArray<EntryCheckInfo> = [
  c("ctl.pin.allowed", "pin-based VM-execution controls must respect IA32_VMX_(TRUE_)PINBASED_CTLS: allowed-0 bits set, no bit outside allowed-1", "26.2.1.1"),
  c("ctl.primary.allowed", "primary processor-based controls must respect IA32_VMX_(TRUE_)PROCBASED_CTLS", "26.2.1.1"),
  c("ctl.secondary.allowed", "secondary processor-based controls (used when primary bit 31 is 1) must respect IA32_VMX_PROCBASED_CTLS2", "26.2.1.1"),
  c("ctl.cr3-target-count", "CR3_TARGET_COUNT must not exceed the CR3-target count in IA32_VMX_MISC bits 24:16", "26.2.1.1"),
  c("ctl.io-bitmaps", "with \"use I/O bitmaps\", IO_BITMAP_A and IO_BITMAP_B must be 4 KiB aligned and within the physical-address width", "26.2.1.1"),
  c("ctl.msr-bitmap", "with \"use MSR bitmaps\", MSR_BITMAP must be 4 KiB aligned and within the physical-address width", "26.2.1.1"),
  c("ctl.tpr-shadow", "with \"use TPR shadow\", VIRTUAL_APIC_PAGE_ADDR must be 4 KiB aligned and within width, and without virtual-interrupt delivery TPR_THRESHOLD bits 31:4 must be 0", "26.2.1.1"),
  c("ctl.apic-virtualization-needs-tpr-shadow", "without \"use TPR shadow\", virtualize x2APIC mode, APIC-register virtualization and virtual-interrupt delivery must be 0", "26.2.1.1"),
  c("ctl.virtual-nmis-need-nmi-exiting", "\"virtual NMIs\" may be 1 only if \"NMI exiting\" is 1", "26.2.1.1"),
  c("ctl.nmi-window-needs-virtual-nmis", "\"NMI-window exiting\" may be 1 only if \"virtual NMIs\" is 1", "26.2.1.1"),
  c("ctl.apic-access-address", "with \"virtualize APIC accesses\", APIC_ACCESS_ADDR must be 4 KiB aligned and within the physical-address width", "26.2.1.1"),
  c("ctl.x2apic-excludes-apic-accesses", "\"virtualize x2APIC mode\" and \"virtualize APIC accesses\" cannot both be 1", "26.2.1.1"),
  c("ctl.virtual-interrupt-delivery-needs-external-interrupt-exiting", "\"virtual-interrupt delivery\" requires \"external-interrupt exiting\"", "26.2.1.1"),
  c("ctl.posted-interrupts", "\"process posted interrupts\" requires virtual-interrupt delivery, \"acknowledge interrupt on exit\", POSTED_INTR_NV bits 15:8 = 0 and a 64-byte aligned descriptor address within width", "26.2.1.1"),
  c("ctl.vpid-nonzero", "with \"enable VPID\", VIRTUAL_PROCESSOR_ID must not be 0", "26.2.1.1"),
  c("ctl.ept-pointer", "with \"enable EPT\", EPT_POINTER must be valid: memory type UC or WB as IA32_VMX_EPT_VPID_CAP allows, page-walk length 4 (bits 5:3 = 3), A/D bit only if supported, bits 11:7 and bits beyond the physical-address width 0", "26.2.1.1"),
  c("ctl.unrestricted-guest-needs-ept", "\"unrestricted guest\" requires \"enable EPT\"", "26.2.1.1"),
  c("ctl.pml", "\"enable PML\" requires \"enable EPT\" and a 4 KiB aligned PML_ADDRESS within width", "26.2.1.1"),
  c("ctl.vm-functions", "with \"enable VM functions\", VM_FUNCTION_CONTROL may set only bits IA32_VMX_VMFUNC allows; EPTP switching needs EPT and a 4 KiB aligned EPTP_LIST_ADDRESS", "26.2.1.1"),
  c("ctl.vmcs-shadowing", "with \"VMCS shadowing\", VMREAD_BITMAP and VMWRITE_BITMAP must be 4 KiB aligned and within width", "26.2.1.1"),
  c("ctl.ept-violation-ve", "with \"EPT-violation #VE\", VE_INFORMATION_ADDRESS must be 4 KiB aligned and within width", "26.2.1.1"),
  c("ctl.exit.allowed", "VM-exit controls must respect IA32_VMX_(TRUE_)EXIT_CTLS", "26.2.1.2"),
  c("ctl.exit.save-preemption-timer", "\"save VMX-preemption timer value\" requires the pin-based \"activate VMX-preemption timer\"", "26.2.1.2"),
  c("ctl.exit.msr-store-area", "with VM_EXIT_MSR_STORE_COUNT > 0, VM_EXIT_MSR_STORE_ADDR must be 16-byte aligned and the whole area within width", "26.2.1.2"),
  c("ctl.exit.msr-load-area", "with VM_EXIT_MSR_LOAD_COUNT > 0, VM_EXIT_MSR_LOAD_ADDR must be 16-byte aligned and the whole area within width", "26.2.1.2"),
  c("ctl.entry.allowed", "VM-entry controls must respect IA32_VMX_(TRUE_)ENTRY_CTLS", "26.2.1.3"),
  c("ctl.entry.event-injection", "a valid VM_ENTRY_INTR_INFO_FIELD needs a non-reserved type (not 1), vector 2 for NMI, vector <= 31 for hardware exceptions, vector 0 for type 7, bits 30:12 = 0, error-code delivery exactly for protected-mode exceptions with an error code, error code bits 31:16 = 0, and an instruction length of 1-15 for software events", "26.2.1.3"),
  c("ctl.entry.msr-load-area", "with VM_ENTRY_MSR_LOAD_COUNT > 0, VM_ENTRY_MSR_LOAD_ADDR must be 16-byte aligned and the whole area within width", "26.2.1.3"),
  c("ctl.entry.smm", "\"entry to SMM\" and \"deactivate dual-monitor treatment\" must be 0 outside SMM", "26.2.1.3"),
  h("host.cr0.fixed", "host CR0 must have every bit of IA32_VMX_CR0_FIXED0 set (PE, NE, PG) and no bit outside IA32_VMX_CR0_FIXED1"),
  h("host.cr4.fixed0", "host CR4 must have every bit of IA32_VMX_CR4_FIXED0 set: CR4.VMXE (bit 13) must be 1"),
  h("host.cr4.fixed1", "host CR4 must not set a bit that is 0 in IA32_VMX_CR4_FIXED1"),
  h("host.cr3.width", "HOST_CR3 must not set bits beyond the physical-address width"),
  h("host.sysenter.canonical", "HOST_IA32_SYSENTER_ESP and HOST_IA32_SYSENTER_EIP must be canonical"),
  h("host.perf-global-ctrl", "with \"load IA32_PERF_GLOBAL_CTRL\", HOST_IA32_PERF_GLOBAL_CTRL must not set reserved bits"),
  h("host.pat", "with \"load IA32_PAT\", every byte of HOST_IA32_PAT must be a valid memory type (0, 1, 4, 5, 6 or 7)"),
  h("host.efer", "with \"load IA32_EFER\", HOST_IA32_EFER must not set reserved bits and LMA and LME must both equal \"host address-space size\""),
  h("host.selectors.rpl-ti", "host ES, CS, SS, DS, FS, GS and TR selectors must have RPL = 0 and TI = 0", "26.2.3"),
  h("host.cs.nonzero", "HOST_CS_SELECTOR must not be 0", "26.2.3"),
  h("host.tr.nonzero", "HOST_TR_SELECTOR must not be 0", "26.2.3"),
  h("host.ss.nonzero", "HOST_SS_SELECTOR must not be 0 when \"host address-space size\" is 0", "26.2.3"),
  h("host.bases.canonical", "HOST_FS_BASE, HOST_GS_BASE, HOST_GDTR_BASE, HOST_IDTR_BASE and HOST_TR_BASE must be canonical", "26.2.3"),
  h("host.address-space", "a logical processor in IA-32e mode must set \"host address-space size\"; outside IA-32e mode both it and \"IA-32e mode guest\" must be 0", "26.2.4"),
  h("host.address-space.legacy", "with \"host address-space size\" 0: \"IA-32e mode guest\" 0, host CR4.PCIDE 0 and HOST_RIP bits 63:32 0", "26.2.4"),
  h("host.address-space.ia32e", "with \"host address-space size\" 1: host CR4.PAE must be 1 and HOST_RIP canonical", "26.2.4"),
  g("guest.cr0.fixed", "GUEST_CR0 must respect IA32_VMX_CR0_FIXED0/FIXED1 (PE and PG may be 0 only with \"unrestricted guest\")", 0, "26.3.1.1"),
  g("guest.cr0.pg-needs-pe", "GUEST_CR0.PG = 1 requires GUEST_CR0.PE = 1", 0, "26.3.1.1"),
  g("guest.cr4.fixed", "GUEST_CR4 must respect IA32_VMX_CR4_FIXED0/FIXED1: CR4.VMXE must be 1 (KVM hides it with CR4_READ_SHADOW)", 0, "26.3.1.1"),
  g("guest.debug-controls", "with \"load debug controls\", GUEST_IA32_DEBUGCTL must not set reserved bits and GUEST_DR7 bits 63:32 must be 0", 0, "26.3.1.1"),
  g("guest.ia32e-mode", "\"IA-32e mode guest\" requires GUEST_CR0.PG = 1 and GUEST_CR4.PAE = 1; without it GUEST_CR4.PCIDE must be 0", 0, "26.3.1.1"),
  g("guest.cr3.width", "GUEST_CR3 must not set bits beyond the physical-address width", 0, "26.3.1.1"),
  g("guest.sysenter.canonical", "GUEST_SYSENTER_ESP and GUEST_SYSENTER_EIP must be canonical", 0, "26.3.1.1"),
  g("guest.perf-global-ctrl", "with \"load IA32_PERF_GLOBAL_CTRL\", GUEST_IA32_PERF_GLOBAL_CTRL must not set reserved bits", 0, "26.3.1.1"),
  g("guest.pat", "with \"load IA32_PAT\", every byte of GUEST_IA32_PAT must be a valid memory type (0, 1, 4, 5, 6 or 7)", 0, "26.3.1.1"),
  g("guest.efer", "with \"load IA32_EFER\", GUEST_IA32_EFER must not set reserved bits, LMA must equal \"IA-32e mode guest\" and, with CR0.PG = 1, LME must equal LMA", 0, "26.3.1.1"),
  g("guest.segments.virtual-8086", "with RFLAGS.VM = 1, each of CS, SS, DS, ES, FS, GS must have base = selector << 4, limit 0xffff and access rights 0xf3", 0, "26.3.1.2"),
  g("guest.segments.selectors", "TR and (if usable) LDTR selectors must have TI = 0; SS.RPL must equal CS.RPL unless unrestricted guest", 0, "26.3.1.2"),
  g("guest.segments.bases", "FS, GS, TR and usable LDTR bases must be canonical; CS base and usable SS, DS, ES bases must have bits 63:32 = 0", 0, "26.3.1.2"),
  g("guest.cs.access-rights", "CS access rights: an accessed code segment (type 9, 11, 13 or 15; 3 with unrestricted guest), S = 1, P = 1, reserved bits 0, G consistent with the limit, not both L and D in IA-32e mode, DPL consistent with the type and SS.DPL", 0, "26.3.1.2"),
  g("guest.ss.access-rights", "usable SS: type 3 or 7, S = 1, P = 1, reserved bits 0, G consistent with the limit, DPL = RPL (DPL 0 when CR0.PE = 0)", 0, "26.3.1.2"),
  g("guest.data-segments.access-rights", "usable DS, ES, FS, GS: accessed, readable if code, S = 1, P = 1, reserved bits 0, G consistent with the limit", 0, "26.3.1.2"),
  g("guest.tr.access-rights", "TR must be usable and a busy TSS (type 11; 3 also allowed outside IA-32e mode), S = 0, P = 1, reserved bits 0, G consistent with the limit", 0, "26.3.1.2"),
  g("guest.ldtr.access-rights", "usable LDTR: type 2, S = 0, P = 1, reserved bits 0, G consistent with the limit", 0, "26.3.1.2"),
  g("guest.descriptor-tables", "GUEST_GDTR_BASE and GUEST_IDTR_BASE must be canonical and their limits must have bits 31:16 = 0", 0, "26.3.1.3"),
  g("guest.rip", "GUEST_RIP bits 63:32 must be 0 unless the guest is IA-32e with CS.L = 1, where RIP must be canonical", 0, "26.3.1.4"),
  g("guest.rflags", "GUEST_RFLAGS: reserved bits 0 and bit 1 = 1; VM = 0 in IA-32e mode or with CR0.PE = 0; IF = 1 when injecting an external interrupt", 0, "26.3.1.4"),
  g("guest.activity-state", "GUEST_ACTIVITY_STATE must be 0-3 and supported per IA32_VMX_MISC bits 8:6; HLT requires SS.DPL = 0", 0, "26.3.1.5"),
  g("guest.interruptibility", "GUEST_INTERRUPTIBILITY_INFO: bits 31:5 and SMI blocking 0; not both STI and MOV-SS blocking; STI blocking needs RFLAGS.IF = 1; no STI/MOV-SS blocking when injecting an external interrupt, no STI blocking when injecting an NMI", 0, "26.3.1.5"),
  g("guest.pending-debug-exceptions", "GUEST_PENDING_DBG_EXCEPTIONS: reserved bits 0; with STI/MOV-SS blocking or HLT, BS must be 1 exactly when RFLAGS.TF = 1 and DEBUGCTL.BTF = 0", 0, "26.3.1.5"),
  g("guest.vmcs-link-pointer", "VMCS_LINK_POINTER must be all-ones, or a 4 KiB aligned address within width of a region with the right revision identifier and shadow bit", 4, "26.3.1.5"),
  g("guest.pdptes", "with PAE paging outside IA-32e mode and EPT on, GUEST_PDPTR0-3 must not set reserved bits", 2, "26.3.1.6"),
]

export const entryCheckByName = new Map<string, EntryCheckInfo>(entryChecks.map((check) => [check.name, check]))
