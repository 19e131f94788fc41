/*
 * vcpu-info.c: the KVM_HC_VCPU_INFO homework's test program (seed 003's test.c) for the kvmsim
 * mini guest kernel, as a freestanding static ELF64:
 *
 *     long r = syscall(548);
 *     printf("system call sys_vcpu_info result %ld\n", r);
 *     return 0;
 */
static long sys0(long nr)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
	return ret;
}

static long sys3(long nr, long a0, long a1, long a2)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a0), "S"(a1), "d"(a2) : "rcx", "r11", "memory");
	return ret;
}

static unsigned long length(const char *s)
{
	unsigned long n = 0;
	while (s[n] != 0)
		n++;
	return n;
}

static void print(const char *s)
{
	sys3(1, 1, (long)s, (long)length(s));
}

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
	long r = sys0(548);
	print("system call sys_vcpu_info result ");
	print_long(r);
	print("\n");
	sys3(231, 0, 0, 0);
	for (;;)
		;
}
