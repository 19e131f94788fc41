/*
 * vcpu-info.c: the KVM_HC_VCPU_INFO homework's test program (seed 003's test.c) for the kvmsim
 * mini guest kernel:
 *
 *     long r = syscall(548);
 *     printf("system call sys_vcpu_info result %ld\n", r);
 *     return 0;
 *
 * Freestanding (no libc): kvmsim.h provides the system-call wrappers. Build a static ELF64 with
 * the flags and linker script of docs/toolchain.md:
 *
 *   gcc -O2 -ffreestanding -fno-builtin -nostdlib -static -fno-pie -no-pie \
 *       -mno-red-zone -mno-sse -mno-mmx -mno-80387 -fno-stack-protector \
 *       -fcf-protection=none -fno-asynchronous-unwind-tables -Wl,--build-id=none \
 *       -I src/guest/kernel/include -T src/guest/kernel/include/kvmsim.ld \
 *       -o vcpu-info examples/vcpu-info.c
 */
#include "kvmsim.h"

static void print(const char *s)
{
	size_t n = 0;
	while (s[n] != 0)
		n++;
	write(1, s, n);
}

/* printf's %ld */
static void print_long(long v)
{
	char buf[24];
	int i = sizeof buf;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
	buf[--i] = 0;
	do {
		buf[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		buf[--i] = '-';
	print(&buf[i]);
}

void _start(void)
{
	long r = vcpu_info(); /* syscall(548) */
	print("system call sys_vcpu_info result ");
	print_long(r);
	print("\n");
	exit_group(0);
}
