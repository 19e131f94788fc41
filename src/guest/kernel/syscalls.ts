// The mini kernel's system calls: Linux x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
// plus the homework's 548. Errors come back in RAX as -errno, as on Linux.

export const Syscall = {
  write: 1,
  sched_yield: 24,
  getpid: 39,
  exit: 60,
  exit_group: 231,
  getcpu: 309,
  /** The homework's sys_vcpu_info: KVM_HC_VCPU_INFO for every online CPU. */
  vcpu_info: 548,
} as const

export const Errno = {
  EBADF: 9,
  EFAULT: 14,
  ENOSYS: 38,
} as const

/** getpid() of the one user program (the first process, as init is on Linux). */
export const USER_PID = 1

/** Status a killed program leaves (a shell's 128 + signal): SIGILL 4, SIGTRAP 5, SIGBUS 7, SIGFPE 8, SIGSEGV 11. */
export const killedBySignal = (signal: number): number => 128 + signal
export const Signal = { SIGILL: 4, SIGTRAP: 5, SIGBUS: 7, SIGFPE: 8, SIGSEGV: 11 } as const
