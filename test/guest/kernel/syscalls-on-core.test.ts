// The homework program and the system calls on the guest core, hosted by core-harness.ts.
import { readFileSync } from "node:fs"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { assemble } from "../../../src/guest/asm/index.ts"
import { flatProgram } from "../../../src/guest/kernel/index.ts"
import { cProgram } from "./c-program.ts"
import { bootOnCore } from "./core-harness.ts"
import { EXIT_WITH_AL, userProgram } from "./programs.ts"

const exampleSource = readFileSync(new URL("../../../examples/vcpu-info.asm", import.meta.url), "utf8")
const example = assemble(exampleSource, { fileName: "vcpu-info.asm" })

describe("mini kernel on the guest core: the homework program", () => {
  for (const nrCpus of [1, 2, 4]) {
    it(`vcpu-info.asm on ${nrCpus} vCPU(s): prints, calls 548 for every online CPU, exits 0`, () => {
      const run = bootOnCore({ program: flatProgram(example.bytes), nrCpus, comm: "vcpu-info" })
      expect(run.stoppedBy).toBe("exit")
      expect(run.console).toBe("system call sys_vcpu_info result 0\n")
      expect(run.exitStatus).toBe(0)
      // One hypercall per online CPU, in id order, all from the BSP that runs the program.
      expect(run.vcpuInfo.map((r) => [r.caller, r.requested])).toEqual(Array.from({ length: nrCpus }, (_, i) => [0, BigInt(i)]))
      const afterSyscall = example.symbols.get("after_syscall")!
      // The caller's own block: what SYSCALL and the program left in RCX, RDX, RSI; RBX = the id asked.
      expect(run.vcpuInfo[0]!.regs).toMatchObject({ rbx: 0n, rcx: afterSyscall, rdx: 0x12345678n, rsi: 0x9abcdef0n })
      // Idle CPUs report the registers the kernel's idle loop holds.
      for (let i = 1; i < nrCpus; i++) {
        expect(run.vcpuInfo[i]!.regs).toMatchObject({ rbx: BigInt(i), rcx: 0n, rdx: 0n, rsi: 0x7000n })
        expect(run.halted[i]).toBe(true)
      }
    })
  }

  it("vcpu-info.c built by gcc as a static ELF64 gives the same output and one hypercall per CPU", () => {
    const program = cProgram(new URL("../../../examples/vcpu-info.c", import.meta.url))
    expect(program.segments.length).toBeGreaterThanOrEqual(2)
    const run = bootOnCore({ program, nrCpus: 4, comm: "vcpu-info" })
    expect(run.console).toBe("system call sys_vcpu_info result 0\n")
    expect(run.exitStatus).toBe(0)
    expect(run.vcpuInfo.map((r) => [r.caller, r.requested])).toEqual([[0, 0n], [0, 1n], [0, 2n], [0, 3n]])
  })

  it("uses the hypercall number the boot parameters give (linux-6.x profile)", () => {
    const run = bootOnCore({ program: flatProgram(example.bytes), nrCpus: 2, hypercallVcpuInfo: 0x4b564d01 })
    expect(run.exitStatus).toBe(0)
    expect(run.vcpuInfo).toHaveLength(2)
  })
})

describe("mini kernel: system calls", () => {
  it("getpid, getcpu, sched_yield, bad fd, bad pointer, unknown number", () => {
    const { program, symbols } = userProgram(`
        mov eax, 39
        syscall
        mov [rel r_getpid], rax
        mov eax, 309
        lea rdi, [rel r_cpu]
        lea rsi, [rel r_node]
        xor edx, edx
        syscall
        mov [rel r_getcpu], rax
        mov eax, 24
        syscall
        mov [rel r_yield], rax
        mov eax, 1
        mov edi, 3
        lea rsi, [rel r_cpu]
        mov edx, 1
        syscall
        mov [rel r_badfd], rax
        mov eax, 1
        mov edi, 1
        mov rsi, 0x100000
        mov edx, 4
        syscall
        mov [rel r_kernelptr], rax
        mov eax, 1
        mov edi, 1
        mov rsi, 0x7fff0000
        mov edx, 4
        syscall
        mov [rel r_unmapped], rax
        mov eax, 309
        mov rdi, 0x100000000
        xor esi, esi
        syscall
        mov [rel r_getcpu_fault], rax
        mov eax, 999
        mov rbx, 0x1111
        mov rdx, 0x2222
        syscall
        mov [rel r_unknown], rax
        mov [rel r_rbx], rbx
        mov [rel r_rdx], rdx
        mov [rel r_rcx], rcx
        xor eax, eax
        ${EXIT_WITH_AL}
after_last:
align 8
r_getpid: dq -5
r_getcpu: dq -5
r_cpu: dd 77
r_node: dd 77
r_yield: dq -5
r_badfd: dq -5
r_kernelptr: dq -5
r_unmapped: dq -5
r_getcpu_fault: dq -5
r_unknown: dq -5
r_rbx: dq 0
r_rdx: dq 0
r_rcx: dq 0
`)
    const run = bootOnCore({ program, nrCpus: 2 })
    expect(run.exitStatus).toBe(0)
    const mem = run.cpus[0]!.memory
    const q = (name: string) => BigInt.asIntN(64, mem.readU64(symbols.get(name)!))
    const d = (name: string) => mem.readU32(symbols.get(name)!)
    expect(q("r_getpid")).toBe(1n)
    expect(q("r_getcpu")).toBe(0n)
    expect(d("r_cpu")).toBe(0)
    expect(d("r_node")).toBe(0)
    expect(q("r_yield")).toBe(0n)
    expect(q("r_badfd")).toBe(-9n) // -EBADF
    expect(q("r_kernelptr")).toBe(-14n) // -EFAULT: supervisor page, fixup
    expect(q("r_unmapped")).toBe(-14n) // -EFAULT: not mapped, fixup
    expect(q("r_getcpu_fault")).toBe(-14n)
    expect(q("r_unknown")).toBe(-38n) // -ENOSYS
    // Registers other than RAX, RCX, R11 survive a system call; RCX holds the return address.
    expect(q("r_rbx")).toBe(0x1111n)
    expect(q("r_rdx")).toBe(0x2222n)
    expect(run.console).toBe("")
  })

  it("write sends the bytes to the console and returns the count", () => {
    const { program } = userProgram(`
        mov eax, 1
        mov edi, 2
        lea rsi, [rel msg]
        mov edx, msg_len
        syscall
        ${EXIT_WITH_AL}
msg: db "hello from CPL3", 10
msg_len equ $ - msg
`)
    const run = bootOnCore({ program })
    expect(run.console).toBe("hello from CPL3\n")
    expect(run.exitStatus).toBe(16)
  })

})

describe("mini kernel: more vCPUs than announced", () => {
  it("a vCPU the boot parameters do not announce says so and stays out of the online mask", () => {
    // The program spins a while so that vCPU 2 has finished its message before the VM exits.
    const { program } = userProgram("mov eax, 548\nsyscall\nmov ecx, 20000\nspin: pause\ndec ecx\njnz spin\nxor eax, eax\n" + EXIT_WITH_AL)
    const run = bootOnCore({ program, nrCpus: 2, vcpuCount: 3 })
    expect(run.console).toBe("kvmsim-kernel: not in the boot parameters' CPU count: CPU 2\n")
    expect(run.exitStatus).toBe(0)
    expect(run.vcpuInfo.map((r) => r.requested)).toEqual([0n, 1n])
  })
})

describe("mini kernel: the system-call ABI (property)", () => {
  // Registers other than RAX, RCX and R11 come back as the program left them, whatever the
  // call and whatever they held; RCX is the return address and R11 the RFLAGS at the SYSCALL.
  const saved = ["rbx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r12", "r13", "r14", "r15"] as const
  const { program, symbols } = userProgram(`
        lea rsp, [rel regs_in]
        pop rbx
        pop rdx
        pop rsi
        pop rdi
        pop rbp
        pop r8
        pop r9
        pop r10
        pop r12
        pop r13
        pop r14
        pop r15
        pop rax
        mov rsp, 0x7fffffffef00
        syscall
after:
        mov [rel regs_out + 0], rbx
        mov [rel regs_out + 8], rdx
        mov [rel regs_out + 16], rsi
        mov [rel regs_out + 24], rdi
        mov [rel regs_out + 32], rbp
        mov [rel regs_out + 40], r8
        mov [rel regs_out + 48], r9
        mov [rel regs_out + 56], r10
        mov [rel regs_out + 64], r12
        mov [rel regs_out + 72], r13
        mov [rel regs_out + 80], r14
        mov [rel regs_out + 88], r15
        mov [rel regs_out + 96], rax
        mov [rel regs_out + 104], rcx
        mov [rel regs_out + 112], r11
        mov [rel regs_out + 120], rsp
        xor eax, eax
        ${EXIT_WITH_AL}
align 8
regs_in: times 13 dq 0
regs_out: times 16 dq 0
`)
  const regsIn = Number(symbols.get("regs_in")! - 0x400000n)
  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })

  it("preserves every register but RAX, RCX, R11 for any call number and register values", () => {
    fc.assert(
      fc.property(
        fc.tuple(...saved.map(() => u64)),
        // getpid, sched_yield, unknown numbers (-ENOSYS), write to a bad fd (-EBADF unless rdi is 1 or 2)
        fc.constantFrom(39n, 24n, 9999n, 548n + 1n, 1n << 40n),
        (values, nr) => {
          const bytes = new Uint8Array(program.segments[0]!.data)
          const view = new DataView(bytes.buffer)
          values.forEach((v, i) => view.setBigUint64(regsIn + i * 8, v, true))
          view.setBigUint64(regsIn + saved.length * 8, nr, true)
          const run = bootOnCore({ program: flatProgram(bytes) })
          expect(run.exitStatus).toBe(0)
          const mem = run.cpus[0]!.memory
          const out = (i: number) => mem.readU64(symbols.get("regs_out")! + BigInt(i * 8))
          saved.forEach((name, i) => expect([name, out(i)]).toEqual([name, values[i]]))
          const expected = nr === 39n ? 1n : nr === 24n ? 0n : -38n
          expect(BigInt.asIntN(64, out(12))).toBe(expected)
          expect(out(13)).toBe(symbols.get("after")!) // RCX: the return address
          expect(out(14)).toBe(0x202n) // R11: RFLAGS at the SYSCALL (IF from the kernel's IRETQ; lea/pop/mov leave flags)
          expect(out(15)).toBe(0x7fffffffef00n) // the user stack pointer is back
        },
      ),
      { numRuns: 25 },
    )
  })
})
