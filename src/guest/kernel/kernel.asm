; kvmsim mini guest kernel (NASM dialect, flat binary loaded at 0x100000).
;
; Every vCPU enters at kernel_entry at CPL0 in 64-bit mode (the VMM's bare-mode long-mode
; setup), with RDI = its vCPU id and interrupts disabled. vCPU 0 is the bootstrap processor:
; it loads the GDT (Linux's selector layout), TSS and IDT, builds its page tables, programs
; the SYSCALL MSRs, sleeps in HLT until every CPU the boot parameters announce is online, maps
; the user program (user pages only where its segments say) and enters it at CPL3. The other
; vCPUs load the same GDT and IDT (static data, so they need not wait for the BSP), announce
; themselves with a reschedule IPI to the BSP and idle in HLT with interrupts enabled. The
; boot-parameter block the VMM writes at BOOT_PARAMS is described in docs/guest-kernel.md.

BITS 64

%ifndef KERNEL_BASE
%define KERNEL_BASE 0x100000
%endif

ORG KERNEL_BASE

; ---------------------------------------------------------------------------------------
; Boot-parameter block (written by the VMM before the first KVM_RUN)
; ---------------------------------------------------------------------------------------
BOOT_PARAMS         equ 0x7000
BOOT_MAGIC          equ 0x5042534B          ; "KSBP" little-endian
BOOT_VERSION        equ 1
BP_MAGIC            equ 0x00                ; u32
BP_VERSION          equ 0x04                ; u32
BP_NR_CPUS          equ 0x08                ; u32: online CPUs (1..MAX_CPUS)
BP_HC_VCPU_INFO     equ 0x0C                ; u32: KVM_HC_VCPU_INFO number (0 means 11)
BP_MEM_SIZE         equ 0x10                ; u64: guest RAM size in bytes
BP_ENTRY            equ 0x18                ; u64: user entry point (virtual)
BP_NR_SEGMENTS      equ 0x20                ; u32: 1..MAX_SEGMENTS
BP_FLAGS            equ 0x24                ; u32: reserved, 0
BP_COMM             equ 0x28                ; char[16]: program name, NUL-padded
BP_SEGMENTS         equ 0x40                ; segment descriptors follow
SEG_VADDR           equ 0x00                ; u64
SEG_PADDR           equ 0x08                ; u64: where the VMM copied the bytes
SEG_FILESZ          equ 0x10                ; u64
SEG_MEMSZ           equ 0x18                ; u64: bytes past filesz are zeroed (bss)
SEG_FLAGS           equ 0x20                ; u32: ELF p_flags (PF_X=1, PF_W=2, PF_R=4)
SEG_SIZE            equ 0x28
MAX_SEGMENTS        equ 8
PF_X                equ 1
PF_W                equ 2

; ---------------------------------------------------------------------------------------
; Guest-physical layout below 4 MiB (identity-mapped, supervisor only)
; ---------------------------------------------------------------------------------------
KERNEL_PML4         equ 0x140000
PDPT_LOW            equ 0x141000
PD_LOW              equ 0x142000
PDPT_DIRECT         equ 0x143000
PD_DIRECT           equ 0x144000
PT_LOW              equ 0x145000            ; 4 KiB pages of the first 2 MiB (page 0 absent)
TABLES_END          equ 0x146000
KSTACKS_BASE        equ 0x180000            ; 8 KiB per CPU, up to MAX_CPUS
KSTACK_SIZE         equ 0x2000
PAGE_POOL_BASE      equ 0x200000            ; page tables for user mappings, user stack
PAGE_POOL_END       equ 0x400000
MAX_CPUS            equ 64

; Linux's direct map of physical memory (PAGE_OFFSET) lets the kernel reach any frame.
DIRECT_MAP          equ 0xFFFF888000000000
DIRECT_MAP_PML4_IDX equ 273
DIRECT_MAP_LIMIT    equ 0x40000000          ; 1 GiB mapped with 2 MiB pages

; User address space: programs live between 4 MiB and the stack.
USER_MIN            equ 0x400000
USER_STACK_TOP      equ 0x00007FFFFFFFF000
USER_STACK_PAGES    equ 8
USER_STACK_BOTTOM   equ USER_STACK_TOP - USER_STACK_PAGES * 0x1000
USER_LIMIT          equ 0x0000800000000000  ; end of the canonical lower half

; Page-table entry bits.
PTE_P               equ 0x001
PTE_W               equ 0x002
PTE_U               equ 0x004
PTE_PS              equ 0x080
PTE_NX              equ 0x8000000000000000
PTE_ADDR_MASK       equ 0x000FFFFFFFFFF000

; Selectors: Linux's x86-64 GDT layout (SYSRET derives user CS/SS from STAR[63:48] = 0x23).
KERNEL_CS           equ 0x10
KERNEL_DS           equ 0x18
USER32_CS           equ 0x23
USER_DS             equ 0x2B
USER_CS             equ 0x33
TSS_SEL             equ 0x40

; MSRs and control bits.
MSR_EFER            equ 0xC0000080
MSR_STAR            equ 0xC0000081
MSR_LSTAR           equ 0xC0000082
MSR_SFMASK          equ 0xC0000084
EFER_SCE            equ 0x001
EFER_NXE            equ 0x800
SYSCALL_MASK        equ 0x47700             ; TF DF IF IOPL NT AC, as Linux
CR0_WP              equ 0x10000

; Devices (the VMM's): serial console, isa-debug-exit.
SERIAL_PORT         equ 0x3F8
DEBUG_EXIT_PORT     equ 0xF4

; System call numbers (Linux x86-64) and errno values.
SYS_WRITE           equ 1
SYS_SCHED_YIELD     equ 24
SYS_GETPID          equ 39
SYS_EXIT            equ 60
SYS_EXIT_GROUP      equ 231
SYS_GETCPU          equ 309
SYS_VCPU_INFO       equ 548
KVM_HC_SEND_IPI     equ 10
RESCHEDULE_VECTOR   equ 0xFD                ; Linux's reschedule IPI: wakes an idle CPU
EBADF               equ 9
EFAULT              equ 14
ENOSYS              equ 38
KVM_HC_VCPU_INFO_DEFAULT equ 11
USER_PID            equ 1

; Exit status of the VM when the kernel itself cannot go on.
PANIC_STATUS        equ 255

; =======================================================================================
; Entry (every vCPU)
; =======================================================================================
kernel_entry:
        cli
        cld
        mov r15, rdi                        ; vCPU id from the VMM
        cmp r15, MAX_CPUS
        jae bad_cpu_id_nostack
        ; Claim the id before touching its stack: a VMM that passes the same id twice
        ; would otherwise run two CPUs on one stack.
        mov al, 1
        mov rbx, cpu_claimed
        xchg [rbx + r15], al
        test al, al
        jnz duplicate_cpu_id
        mov rax, r15
        inc rax
        shl rax, 13                         ; * KSTACK_SIZE
        add rax, KSTACKS_BASE
        mov rsp, rax
        test r15, r15
        jnz ap_entry

; =======================================================================================
; Bootstrap processor
; =======================================================================================
bsp_entry:
        mov [rel current_cpu], r15
        mov [rel bsp_stack_top], rsp
        call load_descriptor_tables
        call check_boot_params
        call build_page_tables
        call load_address_space
        mov [rel tss + 4], rsp              ; RSP0: user-mode events land on the BSP stack
        mov ax, TSS_SEL
        ltr ax
        call enable_syscall
        mov rax, 1
        lock or [rel online_mask], rax
        call wait_for_cpus
        call load_user_program
        jmp enter_user

; Validate the block the VMM wrote; any mistake there is reported and stops the VM.
check_boot_params:
        mov rbx, BOOT_PARAMS
        cmp dword [rbx + BP_MAGIC], BOOT_MAGIC
        jne .bad_magic
        cmp dword [rbx + BP_VERSION], BOOT_VERSION
        jne .bad_version
        mov eax, [rbx + BP_NR_CPUS]
        test eax, eax
        jz .bad_cpus
        cmp eax, MAX_CPUS
        ja .bad_cpus
        mov [rel nr_cpus], rax
        mov eax, [rbx + BP_HC_VCPU_INFO]
        test eax, eax
        jnz .have_hc
        mov eax, KVM_HC_VCPU_INFO_DEFAULT
.have_hc:
        mov [rel hc_vcpu_info], rax
        mov rax, [rbx + BP_MEM_SIZE]
        cmp rax, PAGE_POOL_END
        jb .bad_memory
        mov eax, [rbx + BP_NR_SEGMENTS]
        test eax, eax
        jz .bad_segments
        cmp eax, MAX_SEGMENTS
        ja .bad_segments
        ret
.bad_magic:
        mov rsi, msg_bad_magic
        jmp panic_message
.bad_version:
        mov rsi, msg_bad_version
        jmp panic_message
.bad_cpus:
        mov rsi, msg_bad_cpus
        jmp panic_message
.bad_memory:
        mov rsi, msg_bad_memory
        jmp panic_message
.bad_segments:
        mov rsi, msg_bad_segments
        jmp panic_message

; ---------------------------------------------------------------------------------------
; Page tables: 0-4 MiB identity (supervisor; page 0 left out so NULL dereferences fault),
; the direct map of the first GiB at DIRECT_MAP, and user pages added later by map_user_page.
; ---------------------------------------------------------------------------------------
build_page_tables:
        mov rdi, KERNEL_PML4
        mov rcx, TABLES_END
        call zero_range
        mov rdi, KERNEL_PML4
        mov rax, PDPT_LOW | PTE_P | PTE_W | PTE_U
        mov [rdi], rax
        mov rax, PDPT_DIRECT | PTE_P | PTE_W
        mov [rdi + DIRECT_MAP_PML4_IDX * 8], rax
        mov rax, PD_LOW | PTE_P | PTE_W | PTE_U
        mov rdi, PDPT_LOW
        mov [rdi], rax
        mov rdi, PD_LOW
        mov rax, PT_LOW | PTE_P | PTE_W
        mov [rdi], rax
        mov rax, 0x200000 | PTE_P | PTE_W | PTE_PS
        mov [rdi + 8], rax
        mov rdi, PT_LOW
        mov rax, 0x1000 | PTE_P | PTE_W
        mov ecx, 1
.low_page:
        mov [rdi + rcx * 8], rax
        add rax, 0x1000
        inc ecx
        cmp ecx, 512
        jb .low_page
        mov rdi, PDPT_DIRECT
        mov rax, PD_DIRECT | PTE_P | PTE_W
        mov [rdi], rax
        mov rdi, PD_DIRECT
        mov rax, PTE_P | PTE_W | PTE_PS
        xor ecx, ecx
.direct:
        mov [rdi + rcx * 8], rax
        add rax, 0x200000
        inc ecx
        cmp ecx, 512
        jb .direct
        ret

; rdi = start, rcx = end (exclusive, both 8-byte aligned): zero with 64-bit stores.
zero_range:
        xor eax, eax
.loop:
        cmp rdi, rcx
        jae .done
        mov [rdi], rax
        add rdi, 8
        jmp .loop
.done:
        ret

; Load the GDT and IDT (static, in the image) and reload every segment register, CS through
; an IRETQ to the next instruction. Every CPU does this first.
load_descriptor_tables:
        lgdt [rel gdt_ptr]
        lidt [rel idt_ptr]
        mov ax, KERNEL_DS
        mov ds, ax
        mov es, ax
        mov ss, ax
        xor eax, eax
        mov fs, ax
        mov gs, ax
        mov rax, rsp
        push KERNEL_DS
        push rax
        pushfq
        push KERNEL_CS
        mov rax, .cs_loaded
        push rax
        iretq
.cs_loaded:
        ret

; The BSP's own address space: EFER.NXE (and SCE), CR3 on the kernel's tables, CR0.WP.
load_address_space:
        mov ecx, MSR_EFER
        rdmsr
        or eax, EFER_NXE | EFER_SCE
        wrmsr
        mov rax, KERNEL_PML4
        mov cr3, rax
        mov rax, cr0
        or rax, CR0_WP
        mov cr0, rax
        ret

enable_syscall:
        mov ecx, MSR_STAR
        xor eax, eax
        mov edx, (USER32_CS << 16) | KERNEL_CS
        wrmsr
        mov ecx, MSR_LSTAR
        mov rax, syscall_entry
        mov rdx, rax
        shr rdx, 32
        wrmsr
        mov ecx, MSR_SFMASK
        mov eax, SYSCALL_MASK
        xor edx, edx
        wrmsr
        ret

; Sleep until every CPU the boot parameters announce has set its online bit: each AP sends
; a reschedule IPI after setting it (as Linux's BSP sleeps in smp_init while APs come up).
; The check runs with interrupts off and STI's shadow covers HLT, so no wakeup is lost.
wait_for_cpus:
        mov rcx, [rel nr_cpus]
        mov rdx, -1
        cmp rcx, 64
        je .check
        mov rdx, 1
        shl rdx, cl
        dec rdx
.check:
        cli
        mov rax, [rel online_mask]
        and rax, rdx
        cmp rax, rdx
        je .all
        sti
        hlt
        jmp .check
.all:
        ret

; ---------------------------------------------------------------------------------------
; The user program: map each segment (vaddr -> paddr, U/S set, W and NX from its flags),
; zero its bss through the direct map, then the user stack.
; ---------------------------------------------------------------------------------------
load_user_program:
        mov rbx, BOOT_PARAMS + BP_SEGMENTS
        mov r12d, [BOOT_PARAMS + BP_NR_SEGMENTS]
.segment:
        test r12d, r12d
        jz .stack
        call load_segment
        add rbx, SEG_SIZE
        dec r12d
        jmp .segment
.stack:
        xor r13d, r13d
.stack_page:
        cmp r13d, USER_STACK_PAGES
        jae .done
        call alloc_page
        mov rsi, rax
        mov rdi, USER_STACK_TOP - 0x1000
        mov rax, r13
        shl rax, 12
        sub rdi, rax
        mov rdx, PTE_NX | PTE_P | PTE_W | PTE_U
        call map_user_page
        inc r13d
        jmp .stack_page
.done:
        mov rax, cr3                        ; new translations for this CPU
        mov cr3, rax
        ret

; rbx = segment descriptor. Clobbers rax, rcx, rdx, rsi, rdi, r8-r11.
load_segment:
        mov r8, [rbx + SEG_VADDR]
        mov r9, [rbx + SEG_PADDR]
        mov r10, [rbx + SEG_MEMSZ]
        mov r11, [rbx + SEG_FILESZ]
        test r10, r10
        jz .done
        cmp r11, r10
        ja .bad
        mov rax, r8
        xor rax, r9
        test eax, 0xFFF
        jnz .bad
        cmp r8, USER_MIN
        jb .bad
        mov rax, r8
        add rax, r10
        jc .bad
        mov rcx, USER_STACK_BOTTOM
        cmp rax, rcx
        ja .bad
        cmp r9, PAGE_POOL_END
        jb .bad
        mov rax, r9
        add rax, r10
        jc .bad
        cmp rax, [BOOT_PARAMS + BP_MEM_SIZE]
        ja .bad
        cmp rax, DIRECT_MAP_LIMIT
        ja .bad
        ; bss: zero [paddr + filesz, paddr + memsz) through the direct map
        mov rdi, DIRECT_MAP
        add rdi, r9
        mov rcx, rdi
        add rdi, r11
        add rcx, r10
.zero:
        cmp rdi, rcx
        jae .zeroed
        mov byte [rdi], 0
        inc rdi
        jmp .zero
.zeroed:
        ; PTE flags for this segment
        mov rdx, PTE_P | PTE_U
        test dword [rbx + SEG_FLAGS], PF_W
        jz .no_write
        or rdx, PTE_W
.no_write:
        test dword [rbx + SEG_FLAGS], PF_X
        jnz .exec
        mov rax, PTE_NX
        or rdx, rax
.exec:
        ; pages: from vaddr & ~0xfff up to vaddr + memsz
        mov rcx, r8
        add rcx, r10                        ; end
        mov rdi, r8
        and rdi, -0x1000
        mov rsi, r9
        and rsi, -0x1000
.page:
        cmp rdi, rcx
        jae .done
        push rcx
        push rdi
        push rsi
        push rdx
        call map_user_page
        pop rdx
        pop rsi
        pop rdi
        pop rcx
        add rdi, 0x1000
        add rsi, 0x1000
        jmp .page
.done:
        ret
.bad:
        mov rsi, msg_bad_segment
        jmp panic_message

; rdi = user virtual page, rsi = physical frame, rdx = PTE flags. A page shared by two
; segments gets the union of their permissions. Clobbers rax, rcx, r11.
map_user_page:
        push rbx
        mov rbx, KERNEL_PML4
        mov ecx, 39
        call walk_level
        mov ecx, 30
        call walk_level
        mov ecx, 21
        call walk_level
        ; rbx = page table; entry index = vaddr[20:12]
        mov rax, rdi
        shr rax, 12
        and eax, 511
        lea rbx, [rbx + rax * 8]
        mov rax, [rbx]
        test eax, PTE_P
        jz .fresh
        mov rcx, rax
        and rcx, rdx                        ; NX stays only if both mappings have it
        or rax, rdx                         ; W and U from either mapping
        shl rax, 1
        shr rax, 1
        shr rcx, 63
        shl rcx, 63
        or rax, rcx
        jmp .store
.fresh:
        mov rax, rsi
        or rax, rdx
.store:
        mov [rbx], rax
        pop rbx
        ret

; rbx = table, ecx = shift of this level's index in rdi. Returns rbx = next table,
; allocating it (user-accessible, writable) when absent.
walk_level:
        mov rax, rdi
        shr rax, cl
        and eax, 511
        lea r11, [rbx + rax * 8]
        mov rax, [r11]
        test eax, PTE_P
        jz .allocate
        test eax, PTE_PS
        jnz .huge
        mov rbx, PTE_ADDR_MASK
        and rbx, rax
        ret
.allocate:
        push rdi
        push rsi
        call alloc_page
        pop rsi
        pop rdi
        mov rbx, rax
        or rax, PTE_P | PTE_W | PTE_U
        mov [r11], rax
        ret
.huge:
        mov rsi, msg_bad_segment
        jmp panic_message

; Returns rax = a zeroed 4 KiB frame from the page pool. Clobbers rcx, rdi.
alloc_page:
        mov rax, [rel next_free_page]
        cmp rax, PAGE_POOL_END
        jae .exhausted
        lea rcx, [rax + 0x1000]
        mov [rel next_free_page], rcx
        mov rdi, rax
        push rax
        call zero_range
        pop rax
        ret
.exhausted:
        mov rsi, msg_out_of_pages
        jmp panic_message

; First entry to CPL3: IRETQ with a clean register file; the stack holds argc = 0 and the
; empty argv, envp and auxv terminators (all zero), 16-byte aligned like Linux's.
enter_user:
        mov rax, [BOOT_PARAMS + BP_ENTRY]
        push USER_DS
        mov rcx, USER_STACK_TOP - 48
        push rcx
        push 0x202
        push USER_CS
        push rax
        xor eax, eax
        xor ebx, ebx
        xor ecx, ecx
        xor edx, edx
        xor esi, esi
        xor edi, edi
        xor ebp, ebp
        xor r8d, r8d
        xor r9d, r9d
        xor r10d, r10d
        xor r11d, r11d
        xor r12d, r12d
        xor r13d, r13d
        xor r14d, r14d
        xor r15d, r15d
        iretq

; =======================================================================================
; Application processors
; =======================================================================================
; APs keep the VMM's identity-mapping page tables: they only run kernel code in low memory.
ap_entry:
        call load_descriptor_tables
        mov eax, [BOOT_PARAMS + BP_NR_CPUS]
        cmp r15, rax
        jae .not_announced
        mov rax, 1
        mov rcx, r15
        shl rax, cl
        lock or [rel online_mask], rax
        ; Wake the BSP: KVM_HC_SEND_IPI(bitmap = CPU 0, high = 0, min = 0, ICR = vector).
        mov eax, KVM_HC_SEND_IPI
        mov ebx, 1
        xor ecx, ecx
        xor edx, edx
        mov esi, RESCHEDULE_VECTOR
        vmcall
        ; The registers KVM_HC_VCPU_INFO reports for an idle CPU.
        mov rbx, r15
        xor ecx, ecx
        xor edx, edx
        mov esi, BOOT_PARAMS
.idle:
        sti
        hlt
        jmp .idle
.not_announced:
        mov rsi, msg_cpu_not_announced
        call print_string
        mov rax, r15
        call print_dec
        mov al, 10
        call print_char
        jmp halt_forever

bad_cpu_id_nostack:
duplicate_cpu_id:
        ; No stack of its own: report through the console without calls, then stop.
        mov dx, SERIAL_PORT
        mov rsi, msg_bad_cpu_id
.next:
        mov al, [rsi]
        test al, al
        jz halt_forever
        out dx, al
        inc rsi
        jmp .next

halt_forever:
        cli
        hlt
        jmp halt_forever

; =======================================================================================
; System calls
; =======================================================================================
; SYSCALL entry: RCX = user RIP, R11 = user RFLAGS, IF already cleared by SFMASK. Only the
; BSP runs the user program, so one saved user RSP and one kernel stack suffice. All
; registers except RAX, RCX and R11 are preserved, as Linux does.
syscall_entry:
        mov [rel user_rsp], rsp
        mov rsp, [rel bsp_stack_top]
        push qword [rel user_rsp]
        push rcx
        push r11
        push rbx
        push rbp
        push rdi
        push rsi
        push rdx
        push r8
        push r9
        push r10
        push r12
        push r13
        push r14
        push r15
        call syscall_dispatch
        pop r15
        pop r14
        pop r13
        pop r12
        pop r10
        pop r9
        pop r8
        pop rdx
        pop rsi
        pop rdi
        pop rbp
        pop rbx
        pop r11
        pop rcx
        pop rsp
        o64 sysret

; RAX = number; arguments in RDI, RSI, RDX, R10. The dispatcher touches only RAX so the
; handlers see the user's registers (vcpu_info relies on that).
syscall_dispatch:
        cmp rax, SYS_WRITE
        je sys_write
        cmp rax, SYS_SCHED_YIELD
        je sys_sched_yield
        cmp rax, SYS_GETPID
        je sys_getpid
        cmp rax, SYS_EXIT
        je sys_exit
        cmp rax, SYS_EXIT_GROUP
        je sys_exit
        cmp rax, SYS_GETCPU
        je sys_getcpu
        cmp rax, SYS_VCPU_INFO
        je sys_vcpu_info
        mov rax, -ENOSYS
        ret

; write(fd, buf, count): fd 1 and 2 go to the serial console.
sys_write:
        cmp rdi, 1
        je .console
        cmp rdi, 2
        je .console
        mov rax, -EBADF
        ret
.console:
        xor eax, eax
        test rdx, rdx
        jz .written_none                    ; nothing to write: 0, whatever the pointer
        cmp rsi, USER_MIN                   ; access_ok: the buffer must be user memory
        jb uaccess_fault
        mov rax, rsi
        add rax, rdx
        jc uaccess_fault
        mov rcx, USER_LIMIT
        cmp rax, rcx
        ja uaccess_fault
        mov r8, rdx                         ; count
        xor r9d, r9d
        mov dx, SERIAL_PORT
.byte:
        cmp r9, r8
        jae .written
.user_load:
        mov al, [rsi + r9]                  ; may fault: see exception_fixups
        out dx, al
        inc r9
        jmp .byte
.written:
        mov rax, r8
.written_none:
        ret

sys_sched_yield:
        xor eax, eax                        ; the only task stays runnable
        ret

sys_getpid:
        mov eax, USER_PID
        ret

; exit / exit_group: the status (low 8 bits, as wait() sees it) leaves through isa-debug-exit.
sys_exit:
        movzx eax, dil
        jmp exit_vm

; getcpu(unsigned *cpu, unsigned *node, void *unused)
sys_getcpu:
        test rdi, rdi
        jz .node
        cmp rdi, USER_MIN
        jb uaccess_fault
        lea rax, [rdi + 4]
        mov rcx, USER_LIMIT
        cmp rax, rcx
        ja uaccess_fault
        mov rax, [rel current_cpu]
.user_store_cpu:
        mov [rdi], eax
.node:
        test rsi, rsi
        jz .done
        cmp rsi, USER_MIN
        jb uaccess_fault
        lea rax, [rsi + 4]
        mov rcx, USER_LIMIT
        cmp rax, rcx
        ja uaccess_fault
.user_store_node:
        mov dword [rsi], 0
.done:
        xor eax, eax
        ret

; vcpu_info(): KVM_HC_VCPU_INFO for every online CPU, as the homework's sys_vcpu_info does
; with for_each_online_cpu + kvm_hypercall1. RCX (the user RIP), RDX and RSI still hold what
; SYSCALL and the program left there, so the host sees them in the caller's block.
sys_vcpu_info:
        mov r12, [rel online_mask]
        xor r13d, r13d                      ; cpu
        mov r14d, 1                         ; 1 << cpu
.cpu:
        test r12, r14
        jz .next
        mov rbx, r13
        mov rax, [rel hc_vcpu_info]
        vmcall
.next:
        inc r13d
        shl r14, 1
        jnz .cpu
        xor eax, eax
        ret

; A user pointer the kernel could not use.
uaccess_fault:
        mov rax, -EFAULT
        ret

; eax = status. Also the end of the VM when the kernel stops.
exit_vm:
        mov dx, DEBUG_EXIT_PORT
        out dx, eax
        jmp halt_forever

; =======================================================================================
; Exceptions and interrupts
; =======================================================================================
; Stubs push (error code or 0, vector) and join exception_common.
exc_de:
        push 0
        push 0
        jmp exception_common
exc_db:
        push 0
        push 1
        jmp exception_common
exc_nmi:
        iretq                               ; nothing to do for an NMI; never kills the program
exc_bp:
        push 0
        push 3
        jmp exception_common
exc_of:
        push 0
        push 4
        jmp exception_common
exc_br:
        push 0
        push 5
        jmp exception_common
exc_ud:
        push 0
        push 6
        jmp exception_common
exc_nm:
        push 0
        push 7
        jmp exception_common
exc_df:
        push 8
        jmp exception_common
exc_09:
        push 0
        push 9
        jmp exception_common
exc_ts:
        push 10
        jmp exception_common
exc_np:
        push 11
        jmp exception_common
exc_ss:
        push 12
        jmp exception_common
exc_gp:
        push 13
        jmp exception_common
exc_pf:
        push 14
        jmp exception_common
exc_15:
        push 0
        push 15
        jmp exception_common
exc_mf:
        push 0
        push 16
        jmp exception_common
exc_ac:
        push 17
        jmp exception_common
exc_mc:
        push 0
        push 18
        jmp exception_common
exc_xm:
        push 0
        push 19
        jmp exception_common
exc_ve:
        push 0
        push 20
        jmp exception_common
exc_cp:
        push 21
        jmp exception_common
exc_reserved:
        push 0
        push 22
        jmp exception_common

irq_stub:
        iretq

; Frame after the 15 pushes below: [rsp + 15*8] vector, +16*8 error code, +17*8 RIP,
; +18*8 CS, +19*8 RFLAGS, +20*8 RSP, +21*8 SS.
FRAME_VECTOR        equ 15 * 8
FRAME_ERROR         equ 16 * 8
FRAME_RIP           equ 17 * 8
FRAME_CS            equ 18 * 8
FRAME_RSP           equ 20 * 8

exception_common:
        push rax
        push rbx
        push rcx
        push rdx
        push rsi
        push rdi
        push rbp
        push r8
        push r9
        push r10
        push r11
        push r12
        push r13
        push r14
        push r15
        test byte [rsp + FRAME_CS], 3
        jnz user_exception
        ; Kernel mode: a fault on a user pointer at a known instruction resumes at its fixup.
        cmp qword [rsp + FRAME_VECTOR], 14
        jne kernel_exception
        mov rax, [rsp + FRAME_RIP]
        mov rbx, exception_fixups
.fixup:
        mov rcx, [rbx]
        test rcx, rcx
        jz kernel_exception
        cmp rcx, rax
        je .found
        add rbx, 16
        jmp .fixup
.found:
        mov rcx, [rbx + 8]
        mov [rsp + FRAME_RIP], rcx
        pop r15
        pop r14
        pop r13
        pop r12
        pop r11
        pop r10
        pop r9
        pop r8
        pop rbp
        pop rdi
        pop rsi
        pop rdx
        pop rcx
        pop rbx
        pop rax
        add rsp, 16
        iretq

kernel_exception:
        mov rsi, msg_panic_exception
        call print_string
        mov rax, [rsp + FRAME_VECTOR]
        call print_dec
        mov rsi, msg_panic_ip
        call print_string
        mov rax, [rsp + FRAME_RIP]
        mov ecx, 16
        call print_hex
        mov rsi, msg_panic_error
        call print_string
        mov rax, [rsp + FRAME_ERROR]
        mov ecx, 1
        call print_hex
        mov rsi, msg_panic_cr2
        call print_string
        mov rax, cr2
        mov ecx, 1
        call print_hex
        mov al, 10
        call print_char
        mov rsi, msg_panic_tail
        jmp panic_message

; A user-mode exception kills the program with the line Linux 5.0 prints for it and the
; status a shell reports for the signal (128 + signal number); the VM itself goes on to exit
; cleanly through isa-debug-exit.
user_exception:
        mov rax, [rsp + FRAME_VECTOR]
        cmp rax, 14
        je .page_fault
        cmp rax, 13
        je .general_protection
        ; every other vector: "traps: comm[pid] trap <name> ip:.. sp:.. error:.."
        mov rsi, msg_traps
        call print_string
        call print_comm_pid
        mov rsi, msg_trap_word
        call print_string
        mov rbx, [rsp + FRAME_VECTOR]
        mov rcx, trap_names
        mov rsi, [rcx + rbx * 8]
        call print_string
        call print_ip_sp_error
        mov rcx, trap_signals
        movzx eax, byte [rcx + rbx]
        add eax, 128
        jmp exit_vm
.general_protection:
        mov rsi, msg_traps
        call print_string
        call print_comm_pid
        mov rsi, msg_general_protection
        call print_string
        call print_ip_sp_error
        mov eax, 128 + 11
        jmp exit_vm
.page_fault:
        ; "comm[pid]: segfault at <addr> ip <%px> sp <%px> error <code>"
        call print_comm_pid
        mov rsi, msg_segfault_at
        call print_string
        mov rax, cr2
        mov ecx, 1
        call print_hex
        mov rsi, msg_segfault_ip
        call print_string
        mov rax, [rsp + FRAME_RIP]
        mov ecx, 16
        call print_hex
        mov rsi, msg_segfault_sp
        call print_string
        mov rax, [rsp + FRAME_RSP]
        mov ecx, 16
        call print_hex
        mov rsi, msg_segfault_error
        call print_string
        mov rax, [rsp + FRAME_ERROR]
        mov ecx, 1
        call print_hex
        call print_vma
        mov al, 10
        call print_char
        mov eax, 128 + 11
        jmp exit_vm

; Called from user_exception (one return address deeper: frame offsets + 8).
print_ip_sp_error:
        mov rsi, msg_ip
        call print_string
        mov rax, [rsp + 8 + FRAME_RIP]
        mov ecx, 1
        call print_hex
        mov rsi, msg_sp
        call print_string
        mov rax, [rsp + 8 + FRAME_RSP]
        mov ecx, 1
        call print_hex
        mov rsi, msg_error
        call print_string
        mov rax, [rsp + 8 + FRAME_ERROR]
        mov ecx, 1
        call print_hex
        mov rax, [rsp + 8 + FRAME_RIP]
        call print_vma_of
        mov al, 10
        jmp print_char

; " in comm[start+size]" for the segment holding the faulting RIP, as print_vma_addr does.
print_vma:
        mov rax, [rsp + 8 + FRAME_RIP]
print_vma_of:
        push rbx
        push r12
        mov rbx, BOOT_PARAMS + BP_SEGMENTS
        mov r12d, [BOOT_PARAMS + BP_NR_SEGMENTS]
.segment:
        test r12d, r12d
        jz .none
        mov rcx, [rbx + SEG_VADDR]
        and rcx, -0x1000
        mov rdx, [rbx + SEG_VADDR]
        add rdx, [rbx + SEG_MEMSZ]
        add rdx, 0xFFF
        and rdx, -0x1000
        cmp rax, rcx
        jb .other
        cmp rax, rdx
        jb .found
.other:
        add rbx, SEG_SIZE
        dec r12d
        jmp .segment
.found:
        push rdx
        push rcx
        mov rsi, msg_in
        call print_string
        call print_comm
        mov al, '['
        call print_char
        pop rax
        mov rdx, rax
        mov ecx, 1
        call print_hex
        mov al, '+'
        call print_char
        pop rax
        sub rax, rdx
        call print_hex
        mov al, ']'
        call print_char
.none:
        pop r12
        pop rbx
        ret

print_comm_pid:
        call print_comm
        mov al, '['
        call print_char
        mov eax, USER_PID
        call print_dec
        mov al, ']'
        jmp print_char

; The program name from the boot block (at most 15 characters, as TASK_COMM_LEN).
print_comm:
        push rsi
        push rcx
        mov rsi, BOOT_PARAMS + BP_COMM
        xor ecx, ecx
.char:
        cmp ecx, 15
        jae .done
        mov al, [rsi + rcx]
        test al, al
        jz .done
        call print_char
        inc ecx
        jmp .char
.done:
        pop rcx
        pop rsi
        ret

; rsi = message: print it, then stop the VM with PANIC_STATUS.
panic_message:
        call print_string
        mov eax, PANIC_STATUS
        jmp exit_vm

; =======================================================================================
; Console output (registers preserved except where noted)
; =======================================================================================
print_char:                                 ; al
        push rdx
        mov dx, SERIAL_PORT
        out dx, al
        pop rdx
        ret

print_string:                               ; rsi = NUL-terminated
        push rax
        push rsi
.char:
        mov al, [rsi]
        test al, al
        jz .done
        call print_char
        inc rsi
        jmp .char
.done:
        pop rsi
        pop rax
        ret

; rax = value, ecx = minimum digits (1 for %lx, 16 for %px); lower-case hex.
print_hex:
        push rax
        push rbx
        push rcx
        push rdx
        mov rbx, rax
        mov edx, 16                         ; digits still to consider
.skip:
        cmp edx, ecx
        jbe .digits
        mov rax, rbx
        push rcx
        lea ecx, [rdx * 4 - 4]
        shr rax, cl
        pop rcx
        and eax, 0xF
        jnz .digits
        dec edx
        jmp .skip
.digits:
        test edx, edx
        jz .done
        mov rax, rbx
        lea ecx, [rdx * 4 - 4]
        shr rax, cl
        and eax, 0xF
        mov rcx, hex_digits
        mov al, [rcx + rax]
        call print_char
        dec edx
        jmp .digits
.done:
        pop rdx
        pop rcx
        pop rbx
        pop rax
        ret

; rax = unsigned value, printed in decimal.
print_dec:
        push rax
        push rbx
        push rcx
        push rdx
        mov rbx, 10
        xor ecx, ecx
.divide:
        xor edx, edx
        div rbx
        push rdx
        inc ecx
        test rax, rax
        jnz .divide
.emit:
        pop rax
        add al, '0'
        call print_char
        dec ecx
        jnz .emit
        pop rdx
        pop rcx
        pop rbx
        pop rax
        ret

; =======================================================================================
; Data
; =======================================================================================
; (faulting instruction, where to resume) for kernel accesses to user memory.
exception_fixups:
        dq sys_write.user_load, uaccess_fault
        dq sys_getcpu.user_store_cpu, uaccess_fault
        dq sys_getcpu.user_store_node, uaccess_fault
        dq 0, 0

; Names and signals Linux 5.0's do_error_trap uses per vector (#GP and #PF have own lines).
trap_names:
        dq name_de, name_db, name_nmi, name_bp, name_of, name_br, name_ud, name_nm
        dq name_df, name_09, name_ts, name_np, name_ss, name_gp, name_pf, name_15
        dq name_mf, name_ac, name_mc, name_xm, name_ve, name_cp, name_unknown, name_unknown
        dq name_unknown, name_unknown, name_unknown, name_unknown
        dq name_unknown, name_unknown, name_unknown, name_unknown
; SIGFPE 8, SIGTRAP 5, SIGSEGV 11, SIGILL 4, SIGBUS 7
trap_signals:
        db 8, 5, 11, 5, 11, 11, 4, 11, 11, 8, 11, 7, 7, 11, 11, 11
        db 8, 7, 11, 8, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11

align 16
gdt:
        dq 0                                ; 0x00 null
        dq 0x00CF9B000000FFFF               ; 0x08 kernel 32-bit code (Linux's slot)
        dq 0x00AF9B000000FFFF               ; 0x10 kernel 64-bit code
        dq 0x00CF93000000FFFF               ; 0x18 kernel data
        dq 0x00CFFB000000FFFF               ; 0x23 user 32-bit code
        dq 0x00CFF3000000FFFF               ; 0x2B user data
        dq 0x00AFFB000000FFFF               ; 0x33 user 64-bit code
        dq 0                                ; 0x38 unused
gdt_tss:                                    ; 0x40 TSS: present, DPL0, available 64-bit, 104 bytes
        dq 103 | (((tss - $$ + KERNEL_BASE) & 0xFFFFFF) << 16) | (0x89 << 40) | ((((tss - $$ + KERNEL_BASE) >> 24) & 0xFF) << 56)
        dq (tss - $$ + KERNEL_BASE) >> 32
gdt_end:

align 8
gdt_ptr:
        dw gdt_end - gdt - 1
        dq gdt
align 8
idt_ptr:
        dw idt_end - idt - 1
        dq idt

; A 64-bit interrupt gate to %1 with type/attributes %2 (0x8E: present, DPL0; 0xEE: DPL3).
; `label - $$` is a plain number, so its bits can be split at assembly time.
%macro GATE 2
        dq (((%1) - $$ + KERNEL_BASE) & 0xFFFF) | (KERNEL_CS << 16) | ((%2) << 40) | ((((%1) - $$ + KERNEL_BASE) >> 16) << 48)
        dq ((%1) - $$ + KERNEL_BASE) >> 32
%endmacro

; The IDT: the 32 exception vectors go to their stubs (int3 and into callable from user mode),
; vectors 32..255 to a stub that only returns (an IPI wakes an idle CPU out of HLT; there is
; no local APIC to acknowledge).
align 16
idt:
        GATE exc_de, 0x8E
        GATE exc_db, 0x8E
        GATE exc_nmi, 0x8E
        GATE exc_bp, 0xEE
        GATE exc_of, 0xEE
        GATE exc_br, 0x8E
        GATE exc_ud, 0x8E
        GATE exc_nm, 0x8E
        GATE exc_df, 0x8E
        GATE exc_09, 0x8E
        GATE exc_ts, 0x8E
        GATE exc_np, 0x8E
        GATE exc_ss, 0x8E
        GATE exc_gp, 0x8E
        GATE exc_pf, 0x8E
        GATE exc_15, 0x8E
        GATE exc_mf, 0x8E
        GATE exc_ac, 0x8E
        GATE exc_mc, 0x8E
        GATE exc_xm, 0x8E
        GATE exc_ve, 0x8E
        GATE exc_cp, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        GATE exc_reserved, 0x8E
        times 224 dq ((irq_stub - $$ + KERNEL_BASE) & 0xFFFF) | (KERNEL_CS << 16) | (0x8E << 40) | (((irq_stub - $$ + KERNEL_BASE) >> 16) << 48), (irq_stub - $$ + KERNEL_BASE) >> 32
idt_end:

align 16
tss:
        times 104 db 0

align 8
current_cpu:        dq 0
bsp_stack_top:      dq 0
user_rsp:           dq 0
nr_cpus:            dq 0
hc_vcpu_info:       dq 0
online_mask:        dq 0
next_free_page:     dq PAGE_POOL_BASE
cpu_claimed:        times MAX_CPUS db 0

hex_digits:         db "0123456789abcdef"

msg_bad_magic:      db "kvmsim-kernel: boot parameters missing (no magic at 0x7000)", 10, 0
msg_bad_version:    db "kvmsim-kernel: unsupported boot-parameter version", 10, 0
msg_bad_cpus:       db "kvmsim-kernel: boot parameters: number of CPUs must be 1..64", 10, 0
msg_bad_memory:     db "kvmsim-kernel: boot parameters: at least 4 MiB of memory needed", 10, 0
msg_bad_segments:   db "kvmsim-kernel: boot parameters: 1..8 program segments needed", 10, 0
msg_bad_segment:    db "kvmsim-kernel: program segment outside user memory or misaligned", 10, 0
msg_out_of_pages:   db "kvmsim-kernel: out of page-table memory", 10, 0
msg_bad_cpu_id:     db "kvmsim-kernel: vCPU id in RDI out of range or already booted", 10, 0
msg_cpu_not_announced: db "kvmsim-kernel: not in the boot parameters' CPU count: CPU ", 0
msg_panic_exception: db "kvmsim-kernel: exception ", 0
msg_panic_ip:       db " ip ", 0
msg_panic_error:    db " error ", 0
msg_panic_cr2:      db " cr2 ", 0
msg_panic_tail:     db "Kernel panic - not syncing: Fatal exception", 10, 0
msg_traps:          db "traps: ", 0
msg_trap_word:      db " trap ", 0
msg_general_protection: db " general protection fault", 0
msg_ip:             db " ip:", 0
msg_sp:             db " sp:", 0
msg_error:          db " error:", 0
msg_in:             db " in ", 0
msg_segfault_at:    db ": segfault at ", 0
msg_segfault_ip:    db " ip ", 0
msg_segfault_sp:    db " sp ", 0
msg_segfault_error: db " error ", 0
name_de:            db "divide error", 0
name_db:            db "debug", 0
name_nmi:           db "nmi", 0
name_bp:            db "int3", 0
name_of:            db "overflow", 0
name_br:            db "bounds", 0
name_ud:            db "invalid opcode", 0
name_nm:            db "device not available", 0
name_df:            db "double fault", 0
name_09:            db "coprocessor segment overrun", 0
name_ts:            db "invalid TSS", 0
name_np:            db "segment not present", 0
name_ss:            db "stack segment", 0
name_gp:            db "general protection", 0
name_pf:            db "page fault", 0
name_15:            db "spurious interrupt bug", 0
name_mf:            db "coprocessor error", 0
name_ac:            db "alignment check", 0
name_mc:            db "machine check", 0
name_xm:            db "simd exception", 0
name_ve:            db "virtualization exception", 0
name_cp:            db "control protection", 0
name_unknown:       db "reserved", 0

kernel_end:
