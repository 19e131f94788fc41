; fault-injection.asm: a bare guest that writes "tick\n" to the 0xE9 debug console ten times
; (one OUT, so one VM exit, per character) and halts. Used to show fault injection by VMCS writes:
;
;   kvmsim run --bare examples/fault-injection.asm
;       ten ticks, exit status 0
;   kvmsim run --bare examples/fault-injection.asm --inject GUEST_CR0=0x20@exit:3
;       "tic", then CR0.PG/PE cleared in a 64-bit guest: the next VM entry fails its guest-state
;       checks, KVM_EXIT_FAIL_ENTRY (hardware_entry_failure_reason 0x80000021), exit status 3
;   kvmsim run --bare examples/fault-injection.asm --inject GUEST_RIP=0x100030@exit:2
;       "ti", then the guest resumes at `done` after its second exit: exit status 0
BITS 64
ORG 0x100000

        mov ecx, 10
.tick:  lea rsi, [rel msg]
        mov edx, 0xe9
.char:  lodsb
        out dx, al
        cmp al, 10
        jne .char
        loop .tick
        times 0x30 - ($ - $$) nop
done:   cli
        hlt

msg:    db "tick", 10
