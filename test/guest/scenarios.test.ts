// Scenario tests: small guest programs (assembled by kvmsim's own NASM-dialect assembler) that
// check themselves and halt with EAX = 0 on success or a failure code naming the check.

import { describe, expect, it } from "vitest"
import { RunOutcome } from "../../src/guest/run.ts"
import { ActivityState } from "../../src/guest/cpu/state.ts"
import { makeMachine, recorder } from "./support/machine.ts"

const CHECK = `
%macro CHECK 3            ; operand, expected (imm32 or register), failure code
  cmp %1, %2
  je %%ok
  mov eax, %3
  hlt
%%ok:
%endmacro
%macro UCHECK 3           ; the same from CPL3: report through INT 0x83
  cmp %1, %2
  je %%ok
  mov r14d, %3
  int 0x83
%%ok:
%endmacro
`

const passes = (source: string): void => {
  const m = makeMachine(CHECK + source)
  const outcome = m.run()
  expect(outcome).toBe(RunOutcome.HALTED)
  expect(Number(m.cpu.getReg(0) & 0xffffffffn)).toBe(0)
}

describe("guest scenarios", () => {
  it("delivers exceptions through the IDT with vectors, error codes, CR2 and the right return RIP", () => {
    passes(`
start:
  xor ecx, ecx
  mov eax, 1
  xor edx, edx
  mov qword [rel skip], 3
de_at:
  div rcx
  CHECK qword [rel exc_vec], 0, 1
  lea rdx, [rel de_at]
  CHECK [rel exc_rip], rdx, 2
  CHECK qword [rel exc_cs], 8, 3
  mov qword [rel skip], 2
ud_at:
  ud2
  CHECK qword [rel exc_vec], 6, 4
  lea rdx, [rel ud_at]
  CHECK [rel exc_rip], rdx, 5
  mov qword [rel skip], 0
  int3
bp_after:
  CHECK qword [rel exc_vec], 3, 6
  lea rdx, [rel bp_after]
  CHECK [rel exc_rip], rdx, 7
  int 0x80
int_after:
  CHECK qword [rel exc_vec], 0x80, 8
  lea rdx, [rel int_after]
  CHECK [rel exc_rip], rdx, 9
  mov rbx, 0x0000800000000000
  mov qword [rel skip], 3
  mov rax, [rbx]
  CHECK qword [rel exc_vec], 13, 10
  CHECK qword [rel exc_err], 0, 11
  mov rbx, 0x80000000
  mov qword [rel skip], 3
  mov rax, [rbx]
  CHECK qword [rel exc_vec], 14, 12
  CHECK qword [rel exc_err], 0, 13
  CHECK [rel exc_cr2], rbx, 14
  mov qword [rel skip], 3
  mov [rbx], rax
  CHECK qword [rel exc_err], 2, 15
  CHECK qword [rel exc_count], 7, 16
  mov rax, [rel exc_handler_rsp]
  and eax, 7
  CHECK eax, 0, 17
  xor eax, eax
  hlt
${recorder([0, 3, 6, 13, 14, 0x80])}
`)
  })

  it("paging: R/W with CR0.WP, NX, accessed/dirty bits, INVLPG and CR3 reload, 1 GiB pages", () => {
    passes(`
start:
  and qword [0x50008], -3        ; 0x401000 read-only
  invlpg [0x401000]
  mov rbx, 0x401000
  mov qword [rel skip], 3
  mov [rbx], rax
  CHECK qword [rel exc_vec], 14, 1
  CHECK qword [rel exc_err], 3, 2
  CHECK [rel exc_cr2], rbx, 3
  mov rax, cr0
  btr rax, 16                    ; CR0.WP = 0: supervisor writes ignore R/W
  mov cr0, rax
  mov qword [rbx], 0x1234
  CHECK qword [rel exc_count], 1, 4
  CHECK qword [rbx], 0x1234, 5
  mov byte [0x402000], 0xc3      ; NX page holding a RET
  bts qword [0x50010], 63
  invlpg [0x402000]
  lea rax, [rel nx_back]
  mov [rel resume], rax
  mov rbx, 0x402000
  call rbx
nx_back:
  add rsp, 8
  CHECK qword [rel exc_vec], 14, 6
  CHECK qword [rel exc_err], 0x11, 7
  CHECK [rel exc_cr2], rbx, 8
  and qword [0x50018], -0x61     ; clear A and D of 0x403000
  invlpg [0x403000]
  mov rax, [0x403000]
  test byte [0x50018], 0x20
  jnz .a_ok
  mov eax, 9
  hlt
.a_ok:
  test byte [0x50018], 0x40
  jz .d_clear
  mov eax, 10
  hlt
.d_clear:
  mov [0x403000], rax
  test byte [0x50018], 0x40
  jnz .d_ok
  mov eax, 11
  hlt
.d_ok:
  mov qword [0x404000], 0x1111
  mov qword [0x405000], 0x2222
  mov rax, [0x404000]
  mov qword [0x50020], 0x405007  ; remap 0x404000 -> frame 0x405000
  CHECK qword [0x404000], 0x1111, 12  ; the TLB still holds the old translation
  invlpg [0x404000]
  CHECK qword [0x404000], 0x2222, 13
  mov qword [0x50020], 0x404007
  mov rax, cr3
  mov cr3, rax
  CHECK qword [0x404000], 0x1111, 14
  mov qword [0x12008], 0x83      ; PDPT[1]: 1 GiB page at 0x40000000 -> physical 0
  mov rax, cr3
  mov cr3, rax
  mov rax, [0x40100000]
  CHECK rax, [0x100000], 15
  xor eax, eax
  hlt
${recorder([14])}
`)
  })

  it("privilege, IRETQ to CPL3, TSS RSP0 stack switch, SYSCALL/SYSRET and INT gate DPL", () => {
    passes(`
start:
  lea rax, [rel sys_entry]
  mov rdx, rax
  shr rdx, 32
  mov ecx, 0xc0000082            ; LSTAR
  wrmsr
  mov ecx, 0xc0000084            ; FMASK: clear IF on entry
  mov eax, 0x200
  xor edx, edx
  wrmsr
  and qword [0x50028], -5        ; 0x405000 supervisor-only
  lea rax, [rel user_entry]
  push 0x1b
  push 0x380000
  push 0x202
  push 0x23
  push rax
  iretq
user_entry:
  mov ax, cs
  UCHECK ax, 0x23, 1
  mov qword [rel skip], 1
  hlt
  UCHECK qword [rel exc_vec], 13, 2
  UCHECK qword [rel exc_err], 0, 3
  UCHECK qword [rel exc_cs], 0x23, 4
  UCHECK qword [rel exc_rsp], 0x380000, 5
  mov rax, [rel exc_handler_rsp]
  cmp rax, 0x3f0000
  jae .bad_stack
  cmp rax, 0x3eff00
  jae .stack_ok
.bad_stack:
  mov r14d, 6
  int 0x83
.stack_ok:
  mov qword [rel skip], 1
  cli
  UCHECK qword [rel exc_vec], 13, 7
  mov qword [rel skip], 3
  mov cr3, rax
  UCHECK qword [rel exc_count], 3, 8
  mov qword [rel skip], 2
  rdmsr
  UCHECK qword [rel exc_count], 4, 9
  mov qword [rel skip], 1
  in al, dx
  UCHECK qword [rel exc_count], 5, 10
  mov rbx, 0x405000
  mov qword [rel skip], 3
  mov rax, [rbx]
  UCHECK qword [rel exc_vec], 14, 11
  UCHECK qword [rel exc_err], 5, 12
  mov qword [rel skip], 2
  int 0x81
  UCHECK qword [rel exc_vec], 13, 13
  UCHECK qword [rel exc_err], 0x40a, 14
  mov qword [rel skip], 0
  int 0x80
  UCHECK qword [rel exc_vec], 0x80, 15
  UCHECK qword [rel exc_cs], 0x23, 16
  pushfq
  pop r12
  syscall
after_syscall:
  UCHECK eax, 0x5a, 17
  mov ax, cs
  UCHECK ax, 0x23, 18
  mov ax, ss
  UCHECK ax, 0x1b, 19
  int 0x82

sys_entry:
  mov ax, cs
  CHECK ax, 8, 20
  mov ax, ss
  CHECK ax, 0x10, 21
  lea rdx, [rel after_syscall]
  CHECK rcx, rdx, 22
  CHECK r11, r12, 23
  pushfq
  pop rax
  test eax, 0x200
  jz .if_clear
  mov eax, 24
  hlt
.if_clear:
  mov eax, 0x5a
  o64 sysret

isr_130:
dpl3_130:
  xor eax, eax
  hlt
isr_131:
dpl3_131:
  mov eax, r14d
  hlt
dpl3_128:
${recorder([13, 14, 0x80, 0x81])}
`)
  })

  it("a #PF whose gate is not present becomes #NP and then a double fault on the IST stack", () => {
    passes(`
start:
  mov rbx, 0x80000000
  mov rax, [rbx]
  mov eax, 1
  hlt
isr_8:
ist1_8:
  CHECK qword [rsp], 0, 2
  mov rax, rsp
  cmp rax, 0x3e0000
  jae .bad
  cmp rax, 0x3dff00
  jae .ok
.bad:
  mov eax, 3
  hlt
.ok:
  mov rax, cr2
  CHECK rax, rbx, 4
  xor eax, eax
  hlt
`)
  })

  it("an exception with no usable IDT escalates to a triple fault: shutdown", () => {
    const m = makeMachine(`
start:
  xor ecx, ecx
  div rcx
  hlt
`)
    m.cpu.setIdtr(0n, 0)
    expect(m.run()).toBe(RunOutcome.SHUTDOWN)
    expect(m.cpu.activityState).toBe(ActivityState.SHUTDOWN)
  })

  it("external interrupts wait for RFLAGS.IF and the STI shadow, and wake HLT", () => {
    const m = makeMachine(
      CHECK +
        `
start:
  xor ebx, ebx
  sti
  inc rbx
  inc rbx
  CHECK qword [rel seen_rbx], 1, 1
  hlt
  CHECK qword [rel woke], 1, 2
  xor eax, eax
  cli
  hlt
isr_64:
  mov [rel seen_rbx], rbx
  iretq
isr_65:
  inc qword [rel woke]
  iretq
seen_rbx: dq -1
woke: dq 0
`,
    )
    m.cpu.requestInterrupt(64)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0) & 0xffffffffn).not.toBe(1n)
    expect(m.cpu.activityState).toBe(ActivityState.HLT)
    // Nothing pending: the CPU stays halted.
    expect(m.run()).toBe(RunOutcome.HALTED)
    m.cpu.requestInterrupt(65)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(Number(m.cpu.getReg(0) & 0xffffffffn)).toBe(0)
  })

  it("self-modifying code: a patched instruction runs with its new bytes", () => {
    passes(`
start:
  xor ecx, ecx
again:
patch:
  mov al, 0
  cmp ecx, 1
  je .second
  CHECK al, 0, 1
  mov byte [rel patch+1], 42
  inc ecx
  jmp again
.second:
  CHECK al, 42, 2
  xor eax, eax
  hlt
`)
  })
})
