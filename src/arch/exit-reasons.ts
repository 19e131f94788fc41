// Basic VM-exit reasons (Intel SDM Vol. 3C Appendix C), numbered as the hardware reports them.
// Names are Linux's (arch/x86/include/uapi/asm/vmx.h, without the EXIT_REASON_ prefix); reasons only
// the SDM defines (I/O SMI, GETSEC, RSM, ...) are left out because nothing simulated raises them.

export const ExitReason = {
  EXCEPTION_NMI: 0,
  EXTERNAL_INTERRUPT: 1,
  TRIPLE_FAULT: 2,
  INIT_SIGNAL: 3,
  SIPI_SIGNAL: 4,
  OTHER_SMI: 6,
  INTERRUPT_WINDOW: 7,
  NMI_WINDOW: 8,
  TASK_SWITCH: 9,
  CPUID: 10,
  HLT: 12,
  INVD: 13,
  INVLPG: 14,
  RDPMC: 15,
  RDTSC: 16,
  VMCALL: 18,
  VMCLEAR: 19,
  VMLAUNCH: 20,
  VMPTRLD: 21,
  VMPTRST: 22,
  VMREAD: 23,
  VMRESUME: 24,
  VMWRITE: 25,
  VMOFF: 26,
  VMON: 27,
  CR_ACCESS: 28,
  DR_ACCESS: 29,
  IO_INSTRUCTION: 30,
  MSR_READ: 31,
  MSR_WRITE: 32,
  INVALID_STATE: 33,
  MSR_LOAD_FAIL: 34,
  MWAIT_INSTRUCTION: 36,
  MONITOR_TRAP_FLAG: 37,
  MONITOR_INSTRUCTION: 39,
  PAUSE_INSTRUCTION: 40,
  MCE_DURING_VMENTRY: 41,
  TPR_BELOW_THRESHOLD: 43,
  APIC_ACCESS: 44,
  EOI_INDUCED: 45,
  GDTR_IDTR: 46,
  LDTR_TR: 47,
  EPT_VIOLATION: 48,
  EPT_MISCONFIG: 49,
  INVEPT: 50,
  RDTSCP: 51,
  PREEMPTION_TIMER: 52,
  INVVPID: 53,
  WBINVD: 54,
  XSETBV: 55,
  APIC_WRITE: 56,
  RDRAND: 57,
  INVPCID: 58,
  VMFUNC: 59,
  ENCLS: 60,
  RDSEED: 61,
  PML_FULL: 62,
  XSAVES: 63,
  XRSTORS: 64,
  UMWAIT: 67,
  TPAUSE: 68,
  BUS_LOCK: 74,
  NOTIFY: 75,
  SEAMCALL: 76,
  TDCALL: 77,
  MSR_READ_IMM: 84,
  MSR_WRITE_IMM: 85,
} as const
export type ExitReasonName = keyof typeof ExitReason

/** Bit 31 of the exit-reason field: the exit is a VM-entry failure. */
export const EXIT_REASON_FAILED_VMENTRY = 0x8000_0000

const namesByNumber = new Map<number, ExitReasonName>(
  (Object.entries(ExitReason) as Array<[ExitReasonName, number]>).map(([name, n]) => [n, name]),
)

/** Linux name (without the EXIT_REASON_ prefix) of a basic exit reason, or undefined. */
export const exitReasonName = (basicReason: number): ExitReasonName | undefined => namesByNumber.get(basicReason & 0xffff)
