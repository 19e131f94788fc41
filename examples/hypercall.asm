; hypercall.asm: a bare guest (CPL0, no mini kernel) that issues hypercall 0x100 — the number
; examples/hypercall-module.ts registers — with a0 = 20 and a1 = 22, and ends with the sum as
; its exit status (isa-debug-exit at port 0xf4): 42 when the module is loaded. Without the
; module KVM answers -KVM_ENOSYS and the guest exits with status 1.
;
;   kvmsim run --bare --module examples/hypercall-module.ts examples/hypercall.asm --trace
BITS 64
ORG 0x100000

        mov eax, 0x100          ; hypercall number (RAX)
        mov ebx, 20             ; a0 (RBX)
        mov ecx, 22             ; a1 (RCX)
        vmcall
        cmp rax, 42
        jne .wrong
        mov al, 0               ; exit status 0: the module answered 20 + 22
        out 0xf4, al
.wrong:
        mov al, 1
        out 0xf4, al
        cli
        hlt
