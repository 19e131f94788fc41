// Runs single x86-64 instructions natively, for comparison with kvmsim's interpreter.
// stdin: records of { u8 code[16]; u64 regs[16]; u64 rflags; u64 relocMask; u8 mem[256]; }
// stdout: records of { u64 regs[16]; u64 rflags; u64 fault; u8 mem[256]; }
// The instruction is patched into a 16-byte slot of NOPs inside run_stub; registers named in
// relocMask hold offsets into mem and are relocated to the real buffer (and back). RSP and
// R15 are not available to the instruction (R15 holds the state pointer). fault: 0 none,
// 1 SIGFPE (#DE), 2 SIGSEGV/SIGBUS, 3 SIGILL.
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct state {
  uint64_t regs[16];
  uint64_t rflags;
};

extern void run_stub(struct state *s);
extern unsigned char stub_slot[];

__asm__(
    ".text\n"
    ".globl run_stub\n"
    ".globl stub_slot\n"
    ".p2align 12\n"
    "run_stub:\n"
    "  push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
    "  mov %rdi, %r15\n"
    "  mov 0(%r15), %rax\n mov 8(%r15), %rcx\n mov 16(%r15), %rdx\n mov 24(%r15), %rbx\n"
    "  mov 40(%r15), %rbp\n mov 48(%r15), %rsi\n mov 56(%r15), %rdi\n"
    "  mov 64(%r15), %r8\n mov 72(%r15), %r9\n mov 80(%r15), %r10\n mov 88(%r15), %r11\n"
    "  mov 96(%r15), %r12\n mov 104(%r15), %r13\n mov 112(%r15), %r14\n"
    "  pushq 128(%r15)\n popfq\n"
    "stub_slot:\n"
    "  .fill 16, 1, 0x90\n"
    "  pushfq\n popq 128(%r15)\n"
    "  mov %rax, 0(%r15)\n mov %rcx, 8(%r15)\n mov %rdx, 16(%r15)\n mov %rbx, 24(%r15)\n"
    "  mov %rbp, 40(%r15)\n mov %rsi, 48(%r15)\n mov %rdi, 56(%r15)\n"
    "  mov %r8, 64(%r15)\n mov %r9, 72(%r15)\n mov %r10, 80(%r15)\n mov %r11, 88(%r15)\n"
    "  mov %r12, 96(%r15)\n mov %r13, 104(%r15)\n mov %r14, 112(%r15)\n"
    "  cld\n"
    "  pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
    "  ret\n");

static sigjmp_buf env;
static void on_signal(int sig) { siglongjmp(env, sig == SIGFPE ? 1 : sig == SIGILL ? 3 : 2); }

struct input {
  unsigned char code[16];
  uint64_t regs[16];
  uint64_t rflags;
  uint64_t reloc;
  unsigned char mem[256];
};
struct output {
  uint64_t regs[16];
  uint64_t rflags;
  uint64_t fault;
  unsigned char mem[256];
};

static unsigned char data[256] __attribute__((aligned(64)));

int main(void) {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)stub_slot & ~(uintptr_t)(page - 1);
  if (mprotect((void *)start, (size_t)page * 2, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) return 10;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGFPE, &sa, 0);
  sigaction(SIGSEGV, &sa, 0);
  sigaction(SIGBUS, &sa, 0);
  sigaction(SIGILL, &sa, 0);
  struct input in;
  struct output out;
  static struct state st;
  while (fread(&in, sizeof in, 1, stdin) == 1) {
    memcpy(stub_slot, in.code, 16);
    memcpy(data, in.mem, 256);
    for (int r = 0; r < 16; r++) {
      st.regs[r] = in.regs[r];
      if (in.reloc & (1ull << r)) st.regs[r] += (uint64_t)(uintptr_t)data;
    }
    st.rflags = in.rflags;
    int fault = sigsetjmp(env, 1);
    if (fault == 0) run_stub(&st);
    memset(&out, 0, sizeof out);
    for (int r = 0; r < 16; r++) {
      out.regs[r] = st.regs[r];
      if (in.reloc & (1ull << r)) out.regs[r] -= (uint64_t)(uintptr_t)data;
    }
    out.rflags = st.rflags;
    out.fault = (uint64_t)fault;
    memcpy(out.mem, data, 256);
    fwrite(&out, sizeof out, 1, stdout);
  }
  return 0;
}
