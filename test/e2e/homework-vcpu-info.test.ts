// Issue 7 end to end: the homework program under the mini kernel on the simulated host, for
// both kernel profiles and 1, 2 and 4 vCPUs, the C build, and the failure paths.
import { readFileSync } from "node:fs"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { exitReasonName } from "../../src/arch/exit-reasons.ts"
import { assemble } from "../../src/guest/asm/index.ts"
import { flatProgram } from "../../src/guest/kernel/index.ts"
import type { KernelProfileName } from "../../src/host/profile.ts"
import { cProgram } from "../guest/kernel/c-program.ts"
import { blockRegisters, type HomeworkRun, runHomework, traceLines, vcpuInfoBlocks } from "./homework-support.ts"

const example = assemble(readFileSync(new URL("../../examples/vcpu-info.asm", import.meta.url), "utf8"), { fileName: "vcpu-info.asm" })
const afterSyscall = example.symbols.get("after_syscall")!
const vcpuInfoC = cProgram(new URL("../../examples/vcpu-info.c", import.meta.url))

/** isa-debug-exit's process status for a guest exit status. */
const exitStatus = (guest: number) => ({ kind: "exit", status: (guest << 1) | 1 })

const BLOCK_SHAPE = [
  /^vcpu id: \d+$/,
  /^vcpu pid level: \d+$/,
  /^pid: \d+$/,
  /^regs: rax=\d+, rbx=\d+, rcx=\d+, rdx=\d+, rsi=\d+, rdi=\d+, rsp=\d+, rbp=\d+$/,
  /^regs: r8=\d+, r9=\d+, r10=\d+, r11=\d+, r12=\d+, r13=\d+, r14=\d+, r15=\d+$/,
  /^rip: 0x[0-9a-f]+, rflags: 0x[0-9a-f]+$/,
  /^vm exits nums: \d+$/,
  /^exits by reason: (none|(\w+=\d+)( \w+=\d+)*)$/,
]

/** The checks every homework run must pass, whatever the program's language. */
const checkHomeworkTrace = (run: HomeworkRun, profile: KernelProfileName, nrCpus: number) => {
  const lines = traceLines(run.trace)
  const blocks = vcpuInfoBlocks(lines.filter((l) => l.func === "kvm_emulate_hypercall"))
  // One block per online CPU, in the order the kernel's for_each_online_cpu walks them.
  expect(blocks.map((b) => b.id)).toEqual(Array.from({ length: nrCpus }, (_, i) => i))
  const caller = run.vcpus[0]!
  for (const block of blocks) {
    expect(block.lines.map((l) => l.message)).toHaveLength(BLOCK_SHAPE.length)
    block.lines.forEach((l, i) => expect(l.message).toMatch(BLOCK_SHAPE[i]!))
    // Every line comes from the caller's vCPU thread (the BSP runs the program), as the host lists it.
    for (const l of block.lines) {
      expect(l.pid).toBe(caller.pid)
      expect(run.tasks.get(l.pid)).toBe(l.comm.slice(0, 15))
      expect(l.func).toBe("kvm_emulate_hypercall")
      expect(l.flags).toBe(profile === "linux-5.0" ? "...." : ".....")
    }
    // The pid printed is that of the REQUESTED vCPU's thread (the host task list agrees).
    const target = run.vcpus[block.id]!
    const pidLine = /^pid: (\d+)$/.exec(block.lines[2]!.message)!
    expect(Number(pidLine[1])).toBe(target.pid)
    expect(run.tasks.get(target.pid)).toBe(target.comm)
    // Exit counts: the total equals the sum of the per-reason counts printed with it.
    const total = Number(/^vm exits nums: (\d+)$/.exec(block.lines[6]!.message)![1])
    const byReason = block.lines[7]!.message.slice("exits by reason: ".length)
    const sum = byReason === "none" ? 0 : byReason.split(" ").reduce((s, kv) => s + Number(kv.split("=")[1]), 0)
    expect(sum).toBe(total)
    // An idle vCPU does nothing after its HLT: its final statistics are what the trace showed.
    if (block.id !== 0) {
      expect(total).toBe(target.exits)
      const finalByReason = target.exitsByReason.flatMap((n, reason) => (n > 0 ? [`${exitReasonName(reason) ?? reason}=${n}`] : [])).join(" ")
      expect(byReason).toBe(finalByReason === "" ? "none" : finalByReason)
      expect(byReason).toContain("HLT=1")
    } else {
      expect(total).toBeLessThanOrEqual(target.exits)
      expect(byReason).toMatch(/VMCALL=\d+/)
    }
    // Registers the kernel put there: RBX = the id asked about (for the caller: the id it asked about).
    const regs = blockRegisters(block)
    if (block.id === 0) {
      expect(regs.get("rbx")).toBe(0n)
    } else {
      expect(regs.get("rbx")).toBe(BigInt(block.id))
      expect(regs.get("rcx")).toBe(0n)
      expect(regs.get("rdx")).toBe(0n)
      expect(regs.get("rsi")).toBe(0x7000n)
    }
  }
  return blocks
}

const profiles: ReadonlyArray<KernelProfileName> = ["linux-5.0", "linux-6.x"]

describe("homework end to end: vcpu-info.asm under the mini kernel", () => {
  for (const profile of profiles) {
    for (const nrCpus of [1, 2, 4]) {
      it(`${profile}, ${nrCpus} vCPU(s)`, async () => {
        const run = await runHomework({ profile, vcpus: nrCpus, program: flatProgram(example.bytes), comm: "vcpu-info" })
        expect(run.console).toBe("system call sys_vcpu_info result 0\n")
        expect(run.end).toEqual(exitStatus(0))
        const blocks = checkHomeworkTrace(run, profile, nrCpus)
        // The caller's own block: RCX is the return address SYSCALL saved, RDX/RSI the program's marks.
        const regs = blockRegisters(blocks[0]!)
        expect(regs.get("rcx")).toBe(afterSyscall)
        expect(regs.get("rdx")).toBe(0x12345678n)
        expect(regs.get("rsi")).toBe(0x9abcdef0n)
        expect(regs.get("rax")).toBe(BigInt(profile === "linux-5.0" ? 11 : 13))
        // vCPU threads are named as the profile's QEMU names them.
        expect(run.vcpus.map((v) => v.comm)).toEqual(
          run.vcpus.map((_, i) => (profile === "linux-5.0" ? "qemu-system-x86" : `CPU ${i}/KVM`)),
        )
      })
    }
  }

  it("the homework's line format in linux-5.0", async () => {
    const run = await runHomework({ profile: "linux-5.0", vcpus: 2, program: flatProgram(example.bytes), comm: "vcpu-info" })
    const pid = run.vcpus[0]!.pid
    const printk = run.trace.split("\n").filter((l) => l.includes("kvm_emulate_hypercall: "))
    expect(printk.length).toBe(2 * 8)
    for (const line of printk) {
      expect(line).toMatch(new RegExp(`^ qemu-system-x86-${pid} \\[\\d{3}\\] \\.\\.\\.\\. +\\d+\\.\\d{6}: kvm_emulate_hypercall: `))
    }
    expect(printk[0]).toMatch(/: kvm_emulate_hypercall: vcpu id: 0$/)
    expect(printk[8]).toMatch(/: kvm_emulate_hypercall: vcpu id: 1$/)
    expect(printk[10]).toMatch(new RegExp(`: kvm_emulate_hypercall: pid: ${run.vcpus[1]!.pid}$`))
  })
})

describe("homework end to end: any scheduling", () => {
  it("for any scheduler seed, 4 vCPUs: same console, exit and trace structure (no lost wakeup)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom<KernelProfileName>("linux-5.0", "linux-6.x"), async (seed, profile) => {
        const run = await runHomework({ profile, vcpus: 4, program: flatProgram(example.bytes), comm: "vcpu-info", seed })
        expect(run.console).toBe("system call sys_vcpu_info result 0\n")
        expect(run.end).toEqual(exitStatus(0))
        checkHomeworkTrace(run, profile, 4)
      }),
      { numRuns: 20 },
    )
  })
})

describe("homework end to end: vcpu-info.c built by gcc", () => {
  for (const profile of profiles) {
    it(`${profile}, 4 vCPUs: same output, same trace structure`, async () => {
      const run = await runHomework({ profile, vcpus: 4, program: vcpuInfoC, comm: "vcpu-info" })
      expect(run.console).toBe("system call sys_vcpu_info result 0\n")
      expect(run.end).toEqual(exitStatus(0))
      const blocks = checkHomeworkTrace(run, profile, 4)
      // The caller's RCX is the return address of the C wrapper's SYSCALL: inside the text segment.
      const rcx = blockRegisters(blocks[0]!).get("rcx")!
      const text = vcpuInfoC.segments.find((s) => (s.flags & 1) !== 0)!
      expect(rcx > text.vaddr && rcx < text.vaddr + text.memsz).toBe(true)
    })
  }
})

describe("homework end to end: system-call errors", () => {
  const program = (body: string) => flatProgram(assemble(`BITS 64\nORG 0x400000\n${body}\n`, { fileName: "user.asm" }).bytes)

  it("an unknown system call returns -ENOSYS", async () => {
    const run = await runHomework({
      profile: "linux-5.0",
      vcpus: 1,
      program: program("mov eax, 1000\nsyscall\nneg eax\nmov edi, eax\nmov eax, 60\nsyscall"),
      comm: "nosys",
    })
    expect(run.end).toEqual(exitStatus(38))
  })
})
