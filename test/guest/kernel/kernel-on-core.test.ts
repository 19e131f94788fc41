// The mini kernel on the guest core, hosted by core-harness.ts (no KVM module involved):
// faults, page permissions, idle CPUs, boot-parameter checks.
import { describe, expect, it } from "vitest"
import { assemble } from "../../../src/guest/asm/index.ts"
import { Reg } from "../../../src/guest/cpu/state.ts"
import { KERNEL_PANIC_STATUS, SegmentFlag, type UserProgram } from "../../../src/guest/kernel/index.ts"
import { bootOnCore } from "./core-harness.ts"
import { EXIT_WITH_AL, userProgram } from "./programs.ts"

describe("mini kernel: hypercalls from user mode", () => {
  it("a VMCALL from user mode gets -KVM_EPERM and the program goes on", () => {
    const { program, symbols } = userProgram(`
        mov eax, 11
        xor ebx, ebx
        vmcall
        mov [rel result], rax
        xor eax, eax
        ${EXIT_WITH_AL}
align 8
result: dq 0
`)
    const run = bootOnCore({ program, nrCpus: 2 })
    expect(run.exitStatus).toBe(0)
    expect(run.userHypercalls).toBe(1)
    expect(run.vcpuInfo).toHaveLength(0)
    expect(BigInt.asIntN(64, run.cpus[0]!.memory.readU64(symbols.get("result")!))).toBe(-1n)
  })
})

describe("mini kernel: user-mode faults kill the program, never the VM", () => {
  const start = 0x400000n
  const fault = (body: string) => {
    const { program, symbols } = userProgram(`${body}\n${EXIT_WITH_AL}`)
    const run = bootOnCore({ program, nrCpus: 2, comm: "faulty" })
    expect(run.stoppedBy).toBe("exit")
    return { run, symbols }
  }

  it("#PF on a NULL read: the kernel's segfault line, status 128 + SIGSEGV", () => {
    const { run, symbols } = fault("nop\nat: mov rax, [0]")
    const ip = symbols.get("at")!
    expect(run.console).toBe(`faulty[1]: segfault at 0 ip ${ip.toString(16).padStart(16, "0")} sp 00007fffffffefd0 error 4 in faulty[400000+1000]\n`)
    expect(run.exitStatus).toBe(139)
  })

  it("#PF reading kernel memory is a protection fault (error 5)", () => {
    const { run } = fault("mov rax, [0x100000]")
    expect(run.console).toContain("segfault at 100000 ip 0000000000400000 sp 00007fffffffefd0 error 5 in faulty[400000+1000]")
    expect(run.exitStatus).toBe(139)
  })

  it("#GP from a privileged instruction at CPL3", () => {
    const { run } = fault("hlt")
    expect(run.console).toBe(`traps: faulty[1] general protection fault ip:${start.toString(16)} sp:7fffffffefd0 error:0 in faulty[400000+1000]\n`)
    expect(run.exitStatus).toBe(139)
  })

  it("#UD", () => {
    const { run } = fault("nop\nnop\nud2")
    expect(run.console).toBe("traps: faulty[1] trap invalid opcode ip:400002 sp:7fffffffefd0 error:0 in faulty[400000+1000]\n")
    expect(run.exitStatus).toBe(132)
  })

  it("#DE", () => {
    const { run } = fault("push 5\nxor ecx, ecx\nmov eax, 7\ncdq\ndiv ecx")
    expect(run.console).toMatch(/^traps: faulty\[1\] trap divide error ip:40000[0-9a-f] sp:7fffffffefc8 error:0 in faulty\[400000\+1000\]\n$/)
    expect(run.exitStatus).toBe(136)
  })

  it("a jump into kernel memory faults on the fetch (error 0x15)", () => {
    const { run } = fault("mov rax, 0x100000\njmp rax")
    expect(run.console).toBe("faulty[1]: segfault at 100000 ip 0000000000100000 sp 00007fffffffefd0 error 15\n")
    expect(run.exitStatus).toBe(139)
  })
})

describe("mini kernel: user pages only where the image says", () => {
  // Two segments as an ELF would have them: code R-X, data RW- (with bss), on separate pages.
  const build = (body: string) => {
    const text = assemble(`BITS 64\nORG 0x401000\n${body}\n${EXIT_WITH_AL}`, { fileName: "text.asm" })
    const program: UserProgram = {
      entry: 0x401000n,
      segments: [
        { vaddr: 0x401000n, memsz: BigInt(text.bytes.length), flags: SegmentFlag.R | SegmentFlag.X, data: text.bytes },
        { vaddr: 0x403000n, memsz: 0x2000n, flags: SegmentFlag.R | SegmentFlag.W, data: new Uint8Array([1, 2, 3, 4]) },
      ],
    }
    return bootOnCore({ program, comm: "elfish" })
  }

  it("data is writable, bss is zero", () => {
    const run = build("mov eax, [0x403000]\nadd eax, [0x404ff0]\nmov dword [0x404ff0], 9\nsub eax, 0x04030201")
    expect(run.console).toBe("")
    expect(run.exitStatus).toBe(0)
  })

  it("writing the code segment faults (present, write, user: error 7)", () => {
    const run = build("mov byte [0x401000], 0x90")
    expect(run.console).toBe("elfish[1]: segfault at 401000 ip 0000000000401000 sp 00007fffffffefd0 error 7 in elfish[401000+1000]\n")
  })

  it("executing the data segment faults (NX: error 0x15)", () => {
    const run = build("mov rax, 0x403000\njmp rax")
    expect(run.console).toBe("elfish[1]: segfault at 403000 ip 0000000000403000 sp 00007fffffffefd0 error 15 in elfish[403000+2000]\n")
  })

  it("a page between the segments is not mapped (error 6 on a write)", () => {
    const run = build("mov dword [0x402000], 1")
    expect(run.console).toContain("segfault at 402000 ip 0000000000401000 sp 00007fffffffefd0 error 6 in elfish[401000+1000]")
  })
})

describe("mini kernel: idle CPUs", () => {
  it("an interrupt wakes an idle CPU, which returns to HLT with its registers intact", () => {
    let woke = false
    const { program } = userProgram("wait: pause\njmp wait")
    const run = bootOnCore({
      program,
      nrCpus: 2,
      maxInstructions: 400_000,
      between: (cpus, halted) => {
        if (!woke && halted[1] === true && cpus[0]!.cpl === 3) {
          cpus[1]!.requestInterrupt(0x40)
          woke = true
        }
        return woke && halted[1] === true && cpus[1]!.highestPendingInterrupt() < 0
      },
    })
    expect(woke).toBe(true)
    const ap = run.cpus[1]!
    expect(run.halted[1]).toBe(true)
    expect(ap.highestPendingInterrupt()).toBe(-1)
    expect(ap.getReg(Reg.RBX)).toBe(1n)
    expect(ap.getReg(Reg.RSI)).toBe(0x7000n)
  })

})

describe("mini kernel: kicked idle CPUs", () => {
  it("a kick without an interrupt (KVM_HC_KICK_CPU) lets the CPU leave HLT; it goes straight back", () => {
    let kicked = false
    let retiredAtKick = 0
    const { program } = userProgram("wait: pause\njmp wait")
    const run = bootOnCore({
      program,
      nrCpus: 2,
      maxInstructions: 400_000,
      between: (cpus, halted) => {
        if (!kicked && halted[1] === true && cpus[0]!.cpl === 3) {
          halted[1] = false // what kvm_vcpu_kick does for a vCPU blocked in HLT
          kicked = true
          retiredAtKick = cpus[1]!.instructionsRetired
          return false
        }
        return kicked && halted[1] === true
      },
    })
    const ap = run.cpus[1]!
    expect(kicked).toBe(true)
    expect(run.halted[1]).toBe(true)
    // jmp .idle; sti retire, then HLT exits again (an exiting instruction does not retire).
    expect(ap.instructionsRetired - retiredAtKick).toBe(2)
    expect(ap.getReg(Reg.RBX)).toBe(1n)
    expect(ap.getReg(Reg.RSI)).toBe(0x7000n)
  })
})

describe("mini kernel: bad boot parameters", () => {
  it("no magic: a message and the panic status", () => {
    const { program } = userProgram("xor eax, eax\n" + EXIT_WITH_AL)
    const run = bootOnCore({ program, patchBootParams: (b) => b.fill(0, 0, 4) })
    expect(run.console).toBe("kvmsim-kernel: boot parameters missing (no magic at 0x7000)\n")
    expect(run.exitStatus).toBe(KERNEL_PANIC_STATUS)
  })

  it("a segment over kernel memory is refused", () => {
    const { program } = userProgram("xor eax, eax\n" + EXIT_WITH_AL)
    // paddr of segment 0 -> 0x100000 (the kernel image)
    const run = bootOnCore({ program, patchBootParams: (b) => new DataView(b.buffer, b.byteOffset).setBigUint64(0x48, 0x100000n, true) })
    expect(run.console).toBe("kvmsim-kernel: program segment outside user memory or misaligned\n")
    expect(run.exitStatus).toBe(KERNEL_PANIC_STATUS)
  })
})
