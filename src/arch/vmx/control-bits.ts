// VMX control bits (Intel SDM Vol. 3C 24.6-24.8), named as Linux names them without the group prefix
// (arch/x86/include/asm/vmx.h, vmxfeatures.h). Values are masks within the 32-bit control field.

/** pin controls */
export const PinControl = {
  EXT_INTR_MASK: 0x00000001, // bit 0: external-interrupt exiting
  NMI_EXITING: 0x00000008, // bit 3: NMI exiting
  VIRTUAL_NMIS: 0x00000020, // bit 5: virtual NMIs (requires NMI exiting)
  VMX_PREEMPTION_TIMER: 0x00000040, // bit 6: activate VMX-preemption timer
  POSTED_INTR: 0x00000080, // bit 7: process posted interrupts (needs virtual-interrupt delivery and ack-interrupt-on-exit)
} as const

/** primary controls */
export const PrimaryControl = {
  INTR_WINDOW_EXITING: 0x00000004, // bit 2: interrupt-window exiting
  USE_TSC_OFFSETTING: 0x00000008, // bit 3: use TSC offsetting
  HLT_EXITING: 0x00000080, // bit 7: HLT exiting
  INVLPG_EXITING: 0x00000200, // bit 9: INVLPG exiting (also gates INVPCID exits)
  MWAIT_EXITING: 0x00000400, // bit 10: MWAIT exiting
  RDPMC_EXITING: 0x00000800, // bit 11: RDPMC exiting
  RDTSC_EXITING: 0x00001000, // bit 12: RDTSC exiting (also RDTSCP when enabled)
  CR3_LOAD_EXITING: 0x00008000, // bit 15: CR3-load exiting
  CR3_STORE_EXITING: 0x00010000, // bit 16: CR3-store exiting
  ACTIVATE_TERTIARY_CONTROLS: 0x00020000, // bit 17: activate tertiary controls
  CR8_LOAD_EXITING: 0x00080000, // bit 19: CR8-load exiting
  CR8_STORE_EXITING: 0x00100000, // bit 20: CR8-store exiting
  TPR_SHADOW: 0x00200000, // bit 21: use TPR shadow (virtual-APIC page)
  NMI_WINDOW_EXITING: 0x00400000, // bit 22: NMI-window exiting (requires virtual NMIs)
  MOV_DR_EXITING: 0x00800000, // bit 23: MOV-DR exiting
  UNCOND_IO_EXITING: 0x01000000, // bit 24: unconditional I/O exiting (ignored when I/O bitmaps used)
  USE_IO_BITMAPS: 0x02000000, // bit 25: use I/O bitmaps
  MONITOR_TRAP_FLAG: 0x08000000, // bit 27: monitor trap flag
  USE_MSR_BITMAPS: 0x10000000, // bit 28: use MSR bitmaps
  MONITOR_EXITING: 0x20000000, // bit 29: MONITOR exiting
  PAUSE_EXITING: 0x40000000, // bit 30: PAUSE exiting
  ACTIVATE_SECONDARY_CONTROLS: 0x80000000, // bit 31: activate secondary controls
} as const

/** secondary controls */
export const SecondaryControl = {
  VIRTUALIZE_APIC_ACCESSES: 0x00000001, // bit 0: virtualize APIC accesses
  ENABLE_EPT: 0x00000002, // bit 1: enable EPT
  DESC: 0x00000004, // bit 2: descriptor-table exiting (LGDT/LIDT/LLDT/LTR/S*)
  ENABLE_RDTSCP: 0x00000008, // bit 3: enable RDTSCP (else #UD)
  VIRTUALIZE_X2APIC_MODE: 0x00000010, // bit 4: virtualize x2APIC mode
  ENABLE_VPID: 0x00000020, // bit 5: enable VPID
  WBINVD_EXITING: 0x00000040, // bit 6: WBINVD exiting
  UNRESTRICTED_GUEST: 0x00000080, // bit 7: unrestricted guest (requires EPT; relaxes CR0.PE/PG)
  APIC_REGISTER_VIRT: 0x00000100, // bit 8: APIC-register virtualization
  VIRTUAL_INTR_DELIVERY: 0x00000200, // bit 9: virtual-interrupt delivery (requires external-interrupt exiting)
  PAUSE_LOOP_EXITING: 0x00000400, // bit 10: PAUSE-loop exiting (uses PLE_GAP/PLE_WINDOW)
  RDRAND_EXITING: 0x00000800, // bit 11: RDRAND exiting
  ENABLE_INVPCID: 0x00001000, // bit 12: enable INVPCID (else #UD)
  ENABLE_VMFUNC: 0x00002000, // bit 13: enable VM functions
  SHADOW_VMCS: 0x00004000, // bit 14: VMCS shadowing
  ENCLS_EXITING: 0x00008000, // bit 15: ENCLS exiting
  RDSEED_EXITING: 0x00010000, // bit 16: RDSEED exiting
  ENABLE_PML: 0x00020000, // bit 17: enable page-modification logging (requires EPT)
  EPT_VIOLATION_VE: 0x00040000, // bit 18: EPT-violation #VE
  PT_CONCEAL_VMX: 0x00080000, // bit 19: conceal VMX from Intel PT
  ENABLE_XSAVES: 0x00100000, // bit 20: enable XSAVES/XRSTORS (else #UD)
  MODE_BASED_EPT_EXEC: 0x00400000, // bit 22: mode-based execute control for EPT
  PT_USE_GPA: 0x01000000, // bit 24: Intel PT uses guest-physical addresses
  TSC_SCALING: 0x02000000, // bit 25: use TSC scaling (TSC_MULTIPLIER)
  ENABLE_USR_WAIT_PAUSE: 0x04000000, // bit 26: enable user wait and pause (UMWAIT/TPAUSE/UMONITOR)
  BUS_LOCK_DETECTION: 0x40000000, // bit 30: bus-lock detection (VM exit 74)
  NOTIFY_VM_EXITING: 0x80000000, // bit 31: notify VM exiting (VM exit 75, NOTIFY_WINDOW)
} as const

/** tertiary controls */
export const TertiaryControl = {
  IPI_VIRT: 0x00000010, // bit 4: IPI virtualization (PID_POINTER_TABLE, LAST_PID_POINTER_INDEX)
} as const

/** exit controls */
export const ExitControl = {
  SAVE_DEBUG_CONTROLS: 0x00000004, // bit 2: save debug controls (DR7, IA32_DEBUGCTL)
  HOST_ADDR_SPACE_SIZE: 0x00000200, // bit 9: host address-space size (return to 64-bit host)
  LOAD_IA32_PERF_GLOBAL_CTRL: 0x00001000, // bit 12: load IA32_PERF_GLOBAL_CTRL
  ACK_INTR_ON_EXIT: 0x00008000, // bit 15: acknowledge interrupt on exit (vector stored in VM_EXIT_INTR_INFO)
  SAVE_IA32_PAT: 0x00040000, // bit 18: save IA32_PAT
  LOAD_IA32_PAT: 0x00080000, // bit 19: load IA32_PAT
  SAVE_IA32_EFER: 0x00100000, // bit 20: save IA32_EFER
  LOAD_IA32_EFER: 0x00200000, // bit 21: load IA32_EFER
  SAVE_VMX_PREEMPTION_TIMER: 0x00400000, // bit 22: save VMX-preemption timer value (requires the pin-based timer control)
  CLEAR_BNDCFGS: 0x00800000, // bit 23: clear IA32_BNDCFGS
  PT_CONCEAL_PIP: 0x01000000, // bit 24: conceal VMX from Intel PT
  CLEAR_IA32_RTIT_CTL: 0x02000000, // bit 25: clear IA32_RTIT_CTL
  LOAD_CET_STATE: 0x10000000, // bit 28: load host CET state (HOST_S_CET/SSP/INTR_SSP_TABLE)
} as const

/** entry controls */
export const EntryControl = {
  LOAD_DEBUG_CONTROLS: 0x00000004, // bit 2: load debug controls (DR7, IA32_DEBUGCTL)
  IA32E_MODE: 0x00000200, // bit 9: IA-32e mode guest
  SMM: 0x00000400, // bit 10: entry to SMM (dual-monitor only)
  DEACT_DUAL_MONITOR: 0x00000800, // bit 11: deactivate dual-monitor treatment
  LOAD_IA32_PERF_GLOBAL_CTRL: 0x00002000, // bit 13: load IA32_PERF_GLOBAL_CTRL
  LOAD_IA32_PAT: 0x00004000, // bit 14: load IA32_PAT
  LOAD_IA32_EFER: 0x00008000, // bit 15: load IA32_EFER
  LOAD_BNDCFGS: 0x00010000, // bit 16: load IA32_BNDCFGS
  PT_CONCEAL_PIP: 0x00020000, // bit 17: conceal VMX from Intel PT
  LOAD_IA32_RTIT_CTL: 0x00040000, // bit 18: load IA32_RTIT_CTL
  LOAD_CET_STATE: 0x00100000, // bit 20: load guest CET state (GUEST_S_CET/SSP/INTR_SSP_TABLE)
} as const

/** vmfunc controls */
export const VmFunction = {
  EPTP_SWITCHING: 0x00000001, // bit 0: VM function 0: EPTP switching (VM_FUNCTION_CONTROL bit 0; list of 512 EPTPs)
} as const
