// Issue 7 end to end: what a user program does wrong stays the program's problem.
import { describe, expect, it } from "vitest"
import { assemble } from "../../src/guest/asm/index.ts"
import { flatProgram } from "../../src/guest/kernel/index.ts"
import { runHomework, traceLines } from "./homework-support.ts"

/** isa-debug-exit's process status for a guest exit status. */
const exitStatus = (guest: number) => ({ kind: "exit", status: (guest << 1) | 1 })

describe("homework end to end: failures are the program's, not the VM's", () => {
  const program = (body: string) => flatProgram(assemble(`BITS 64\nORG 0x400000\n${body}\n`, { fileName: "user.asm" }).bytes)

  it("a user-mode fault prints the segfault line and ends with 128 + SIGSEGV", async () => {
    const run = await runHomework({ profile: "linux-5.0", vcpus: 2, program: program("xor eax, eax\nmov rax, [rax]"), comm: "crash" })
    expect(run.console).toBe("crash[1]: segfault at 0 ip 0000000000400002 sp 00007fffffffefd0 error 4 in crash[400000+1000]\n")
    expect(run.end).toEqual(exitStatus(139))
  })

  it("a VMCALL from user mode sees -KVM_EPERM and nothing reaches the trace", async () => {
    const run = await runHomework({
      profile: "linux-5.0",
      vcpus: 2,
      program: program("mov eax, 11\nxor ebx, ebx\nvmcall\nneg rax\nmov edi, eax\nmov eax, 60\nsyscall"),
      comm: "eperm",
    })
    expect(run.end).toEqual(exitStatus(1)) // -(-KVM_EPERM) = 1
    expect(traceLines(run.trace).filter((l) => l.func === "kvm_emulate_hypercall")).toEqual([])
  })
})
