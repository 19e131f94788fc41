/*
 * kvmsim.h — everything a C guest program for kvmsim needs, in one freestanding header.
 *
 *   KVM hypercalls (VMCALL, the Linux ABI of arch/x86/include/asm/kvm_para.h):
 *     nr in RAX, arguments in RBX, RCX, RDX, RSI; the result comes back in RAX.
 *     Hypercalls are only allowed at CPL0: from a user program (CPL3) KVM returns
 *     -KVM_EPERM, which is why the mini guest kernel offers syscall 548 (vcpu_info).
 *   Port I/O: inb/outb/inw/outw/inl/outl (port 0xE9 is the debug console).
 *   The mini guest kernel's system calls, through SYSCALL (the Linux x86-64 ABI:
 *     nr in RAX, arguments in RDI, RSI, RDX, R10, R8, R9; RCX and R11 are clobbered).
 *
 * Build (see docs/toolchain.md):
 *   gcc -O2 -ffreestanding -fno-builtin -nostdlib -static -fno-pie -no-pie \
 *       -mno-red-zone -mno-sse -mno-mmx -mno-80387 -fno-stack-protector \
 *       -fcf-protection=none -fno-asynchronous-unwind-tables -Wl,--build-id=none \
 *       -T kvmsim.ld -o prog prog.c
 */
#ifndef KVMSIM_H
#define KVMSIM_H

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long int64_t;
typedef unsigned long size_t;
typedef long ssize_t;

/* ---- KVM hypercalls ------------------------------------------------------------------ */

#define KVM_HC_VAPIC_POLL_IRQ   1
#define KVM_HC_MMU_OP           2
#define KVM_HC_FEATURES         3
#define KVM_HC_PPC_MAP_MAGIC_PAGE 4
#define KVM_HC_KICK_CPU         5
#define KVM_HC_MIPS_GET_CLOCK_FREQ 6
#define KVM_HC_MIPS_EXIT_VM     7
#define KVM_HC_MIPS_CONSOLE_OUTPUT 8
#define KVM_HC_CLOCK_PAIRING    9
#define KVM_HC_SEND_IPI         10
/* The homework's hypercall on the linux-5.0 profile (on linux-6.x, 11 is KVM_HC_SCHED_YIELD
 * and VCPU_INFO has a configurable number: pass it to kvm_hypercall1 yourself). */
#define KVM_HC_VCPU_INFO        11

/* Errors KVM returns in RAX (include/uapi/linux/kvm_para.h), negated. */
#define KVM_ENOSYS              1000
#define KVM_EFAULT              14
#define KVM_EINVAL              22
#define KVM_E2BIG               7
#define KVM_EPERM               1
#define KVM_EOPNOTSUPP          95

static inline long kvm_hypercall0(unsigned int nr)
{
	long ret;
	__asm__ volatile("vmcall" : "=a"(ret) : "a"((unsigned long)nr) : "memory");
	return ret;
}

static inline long kvm_hypercall1(unsigned int nr, unsigned long p1)
{
	long ret;
	__asm__ volatile("vmcall" : "=a"(ret) : "a"((unsigned long)nr), "b"(p1) : "memory");
	return ret;
}

static inline long kvm_hypercall2(unsigned int nr, unsigned long p1, unsigned long p2)
{
	long ret;
	__asm__ volatile("vmcall" : "=a"(ret) : "a"((unsigned long)nr), "b"(p1), "c"(p2) : "memory");
	return ret;
}

static inline long kvm_hypercall3(unsigned int nr, unsigned long p1, unsigned long p2, unsigned long p3)
{
	long ret;
	__asm__ volatile("vmcall" : "=a"(ret) : "a"((unsigned long)nr), "b"(p1), "c"(p2), "d"(p3) : "memory");
	return ret;
}

static inline long kvm_hypercall4(unsigned int nr, unsigned long p1, unsigned long p2, unsigned long p3, unsigned long p4)
{
	long ret;
	__asm__ volatile("vmcall" : "=a"(ret) : "a"((unsigned long)nr), "b"(p1), "c"(p2), "d"(p3), "S"(p4) : "memory");
	return ret;
}

/* ---- Port I/O ------------------------------------------------------------------------ */

#define KVMSIM_DEBUG_PORT 0xE9

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port) : "memory"); }
static inline void outw(uint16_t port, uint16_t value) { __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port) : "memory"); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory"); }

static inline uint8_t inb(uint16_t port)
{
	uint8_t value;
	__asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port) : "memory");
	return value;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t value;
	__asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port) : "memory");
	return value;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t value;
	__asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
	return value;
}

/* Stops a bare-metal guest (CPL0): the vCPU halts, or exits to the host if HLT exiting is on. */
static inline void hlt(void) { __asm__ volatile("hlt" : : : "memory"); }

/* ---- System calls of the mini guest kernel ---------------------------------------------- */

#define SYS_write        1
#define SYS_sched_yield  24
#define SYS_getpid       39
#define SYS_exit         60
#define SYS_exit_group   231
#define SYS_getcpu       309
/* The homework's system call: asks the kernel to issue KVM_HC_VCPU_INFO for every online CPU. */
#define SYS_vcpu_info    548

static inline long kvmsim_syscall0(long nr)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
	return ret;
}

static inline long kvmsim_syscall1(long nr, long a1)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1) : "rcx", "r11", "memory");
	return ret;
}

static inline long kvmsim_syscall3(long nr, long a1, long a2, long a3)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3) : "rcx", "r11", "memory");
	return ret;
}

static inline ssize_t write(int fd, const void *buf, size_t count) { return kvmsim_syscall3(SYS_write, fd, (long)buf, (long)count); }
static inline long sched_yield(void) { return kvmsim_syscall0(SYS_sched_yield); }
static inline long getpid(void) { return kvmsim_syscall0(SYS_getpid); }
static inline long vcpu_info(void) { return kvmsim_syscall0(SYS_vcpu_info); }

/* getcpu(cpu, node, cache): the kernel ignores `cache`, as Linux does. */
static inline long getcpu(unsigned int *cpu, unsigned int *node)
{
	long ret;
	register long r10 __asm__("r10") = 0;
	__asm__ volatile("syscall" : "=a"(ret) : "a"((long)SYS_getcpu), "D"(cpu), "S"(node), "r"(r10) : "rcx", "r11", "memory");
	return ret;
}

static inline __attribute__((noreturn)) void exit(int status)
{
	kvmsim_syscall1(SYS_exit, status);
	__builtin_unreachable();
}

static inline __attribute__((noreturn)) void exit_group(int status)
{
	kvmsim_syscall1(SYS_exit_group, status);
	__builtin_unreachable();
}

#endif /* KVMSIM_H */
