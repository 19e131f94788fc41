; vcpu-info.asm: the KVM_HC_VCPU_INFO homework's test program as a flat user image for the
; kvmsim mini guest kernel. It does what the homework's test.c does:
;     long r = syscall(548); printf("system call sys_vcpu_info result %ld\n", r); return 0;
; The kernel issues KVM_HC_VCPU_INFO for every online CPU; the host's trace file shows one
; block per vCPU. RDX and RSI hold recognisable values at the SYSCALL so that the caller's
; block in the trace can be checked (the kernel leaves them as the program set them; RCX is
; the address of `after_syscall`, saved by SYSCALL).
;
; Build and run: kvmsim runs it under the mini kernel (see docs/guest-kernel.md).

BITS 64
ORG 0x400000

SYS_WRITE       equ 1
SYS_EXIT_GROUP  equ 231
SYS_VCPU_INFO   equ 548
MARK_RDX        equ 0x12345678
MARK_RSI        equ 0x9ABCDEF0

_start:
        mov eax, SYS_VCPU_INFO
        mov edx, MARK_RDX
        mov esi, MARK_RSI
        syscall
after_syscall:
        mov r12, rax                        ; r = syscall(548)

        mov eax, SYS_WRITE
        mov edi, 1
        lea rsi, [rel prefix]
        mov edx, prefix_len
        syscall

        ; "%ld": the number, with a minus sign when negative, built backwards in `digits`
        lea rdi, [rel digits_end]
        mov rax, r12
        test rax, rax
        jns .digit
        neg rax
.digit:
        xor edx, edx
        mov ecx, 10
        div rcx
        add dl, '0'
        dec rdi
        mov [rdi], dl
        test rax, rax
        jnz .digit
        test r12, r12
        jns .print
        dec rdi
        mov byte [rdi], '-'
.print:
        mov rsi, rdi
        lea rdx, [rel digits_end]
        sub rdx, rsi
        inc rdx                             ; the newline after the digits
        mov eax, SYS_WRITE
        mov edi, 1
        syscall

        mov eax, SYS_EXIT_GROUP
        xor edi, edi
        syscall

prefix:         db "system call sys_vcpu_info result "
prefix_len      equ $ - prefix
digits:         times 24 db 0
digits_end:     db 10
