// The user-space ABI of /dev/kvm as data (include/uapi/linux/kvm.h, kvm_para.h): API version,
// KVM_EXIT_* reasons, capabilities, hypercall numbers and return codes, and the shapes of the
// structures the ioctls pass — with 64-bit values as bigint.

export const KVM_API_VERSION = 12

/** kvm_run.exit_reason values. */
export const KvmExit = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const
export type KvmExitName = keyof typeof KvmExit

const kvmExitNames = new Map<number, string>(Object.entries(KvmExit).map(([name, n]) => [n, `KVM_EXIT_${name}`]))
/** "KVM_EXIT_IO" for 2: the names kvm_userspace_exit prints. */
export const kvmExitName = (reason: number): string => kvmExitNames.get(reason) ?? `${reason}`

/** kvm_run.internal.suberror for KVM_EXIT_INTERNAL_ERROR. */
export const KvmInternalError = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const

export const KVM_EXIT_IO_IN = 0
export const KVM_EXIT_IO_OUT = 1

/** KVM_CHECK_EXTENSION numbers of the capabilities kvmsim answers. */
export const KvmCap = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  MP_STATE: 14,
  SYNC_MMU: 16,
  USER_NMI: 22,
  SET_IDENTITY_MAP_ADDR: 37,
  INTERNAL_ERROR_DATA: 40,
  MAX_VCPUS: 66,
  READONLY_MEM: 81,
  MAX_VCPU_ID: 128,
  IMMEDIATE_EXIT: 136,
  EXIT_HYPERCALL: 201,
} as const

/** x86 limits of the 5.x/6.x kernels (arch/x86/include/asm/kvm_host.h). */
export const KVM_SOFT_MAX_VCPUS = 240
export const KVM_MAX_VCPUS = 288
export const KVM_USER_MEM_SLOTS = 509

/** Hypercall numbers of include/uapi/linux/kvm_para.h. */
export const KvmHc = {
  VAPIC_POLL_IRQ: 1,
  MMU_OP: 2,
  FEATURES: 3,
  PPC_MAP_MAGIC_PAGE: 4,
  KICK_CPU: 5,
  MIPS_GET_CLOCK_FREQ: 6,
  MIPS_EXIT_VM: 7,
  MIPS_CONSOLE_OUTPUT: 8,
  CLOCK_PAIRING: 9,
  SEND_IPI: 10,
  SCHED_YIELD: 11,
  MAP_GPA_RANGE: 12,
} as const

/** Hypercall return codes (positive; RAX receives the negation). */
export const KvmHcError = {
  EPERM: 1,
  E2BIG: 7,
  EFAULT: 14,
  EINVAL: 22,
  EOPNOTSUPP: 95,
  ENOSYS: 1000,
} as const

export interface KvmRegs {
  rax: bigint
  rbx: bigint
  rcx: bigint
  rdx: bigint
  rsi: bigint
  rdi: bigint
  rsp: bigint
  rbp: bigint
  r8: bigint
  r9: bigint
  r10: bigint
  r11: bigint
  r12: bigint
  r13: bigint
  r14: bigint
  r15: bigint
  rip: bigint
  rflags: bigint
}

/** struct kvm_segment, with the attribute bits unpacked as the ABI has them. */
export interface KvmSegment {
  base: bigint
  limit: number
  selector: number
  type: number
  present: number
  dpl: number
  db: number
  s: number
  l: number
  g: number
  avl: number
  unusable: number
}

export interface KvmDtable {
  base: bigint
  limit: number
}

export interface KvmSregs {
  cs: KvmSegment
  ds: KvmSegment
  es: KvmSegment
  fs: KvmSegment
  gs: KvmSegment
  ss: KvmSegment
  tr: KvmSegment
  ldt: KvmSegment
  gdt: KvmDtable
  idt: KvmDtable
  cr0: bigint
  cr2: bigint
  cr3: bigint
  cr4: bigint
  cr8: bigint
  efer: bigint
  apic_base: bigint
}

export interface KvmMsrEntry {
  index: number
  data: bigint
}

export interface KvmUserspaceMemoryRegion {
  slot: number
  /** KVM_MEM_LOG_DIRTY_PAGES 1, KVM_MEM_READONLY 2. */
  flags: number
  guest_phys_addr: bigint
  memory_size: bigint
  /** The VMM's memory backing the slot (userspace_addr in C). */
  userspace: Uint8Array | null
}

export const KVM_MEM_READONLY = 2

/** The exit part of struct kvm_run, one variant per exit_reason KVM returns. */
export type KvmRunExit =
  | { readonly reason: typeof KvmExit.IO; readonly direction: 0 | 1; readonly size: 1 | 2 | 4; readonly port: number; readonly count: number; readonly data: Uint8Array }
  | { readonly reason: typeof KvmExit.MMIO; readonly physAddr: bigint; readonly data: Uint8Array; readonly len: number; readonly isWrite: boolean }
  | { readonly reason: typeof KvmExit.HLT }
  | { readonly reason: typeof KvmExit.SHUTDOWN }
  | { readonly reason: typeof KvmExit.INTR }
  | { readonly reason: typeof KvmExit.FAIL_ENTRY; readonly hardwareEntryFailureReason: bigint; readonly cpu: number }
  | { readonly reason: typeof KvmExit.INTERNAL_ERROR; readonly suberror: number; readonly data: ReadonlyArray<bigint> }
  | { readonly reason: typeof KvmExit.HYPERCALL; readonly nr: bigint; readonly args: ReadonlyArray<bigint>; ret: bigint }
  | { readonly reason: typeof KvmExit.DEBUG; readonly exception: number; readonly pc: bigint }
