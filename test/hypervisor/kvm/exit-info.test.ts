// kvm_exit's exit information is what vmx_get_exit_info reports in each kernel: in 5.0 info1 is
// the exit qualification and info2 VM_EXIT_INTR_INFO; from 5.10 info2 is the IDT-vectoring
// information, intr_info VM_EXIT_INTR_INFO and error_code the exception's error code, all 0 after
// a failed VM entry. Interruption information per SDM Table 25-17: vector in bits 7:0, type in
// 10:8 (0 external interrupt, 3 hardware exception), error code valid bit 11, valid bit 31.
import { describe, expect, it } from "vitest"
import type { KernelProfileName } from "../../../src/host/profile.ts"
import { longModeSregs } from "../../../src/hypervisor/vmm/long-mode.ts"
import { runBare } from "./harness.ts"

// 70,000 instructions at 100 ns each reach the host tick (external interrupt 0xec), then #UD at
// 0x100009 (mov ecx, imm32: 5 bytes; dec ecx: 2; jnz: 2).
const program = "mov ecx, 35000\n.l: dec ecx\njnz .l\nud2"
const run = (profile: KernelProfileName) => runBare(program, {}, { profile, nsPerInstruction: 100, events: ["kvm_exit"] })
const exitLines = (trace: string, reason: string): Array<string> => trace.split("\n").filter((l) => l.includes(`kvm_exit: `) && l.includes(` reason ${reason} `))

describe("kvm_exit's exit information", () => {
  it("linux-5.0: info is the exit qualification and VM_EXIT_INTR_INFO", async () => {
    const { trace } = await run("linux-5.0")
    const ticks = exitLines(trace, "EXTERNAL_INTERRUPT")
    expect(ticks.length).toBeGreaterThan(0)
    for (const l of ticks) expect(l).toMatch(/ rip 0x[0-9a-f]+ info 0 800000ec$/)
    expect(exitLines(trace, "EXCEPTION_NMI")).toEqual([expect.stringMatching(/ rip 0x100009 info 0 80000306$/)])
  })

  it("linux-6.x: info2 is the IDT-vectoring information, intr_info VM_EXIT_INTR_INFO, error_code only for exceptions that push one", async () => {
    const { trace } = await run("linux-6.x")
    const ticks = exitLines(trace, "EXTERNAL_INTERRUPT")
    expect(ticks.length).toBeGreaterThan(0)
    for (const l of ticks) expect(l).toMatch(/ info1 0x0{16} info2 0x0{16} intr_info 0x800000ec error_code 0x00000000$/)
    expect(exitLines(trace, "EXCEPTION_NMI")).toEqual([expect.stringMatching(/ rip 0x100009 info1 0x0{16} info2 0x0{16} intr_info 0x80000306 error_code 0x00000000$/)])
  })

  it("linux-6.x: a failed VM entry reports info2, intr_info and error_code as 0", async () => {
    const { trace } = await runBare(
      "hlt",
      {
        configureVcpu: (vcpu) => {
          const s = vcpu.getSregs()
          if (!s.ok) return s.error.message
          const lm = longModeSregs(s.value)
          vcpu.setSregs({ ...lm, cs: { ...lm.cs, db: 1 } }) // L and D/B both set: invalid guest state
          const r = vcpu.getRegs()
          if (!r.ok) return r.error.message
          vcpu.setRegs({ ...r.value, rip: 0x100000n })
          return undefined
        },
      },
      { profile: "linux-6.x", events: ["kvm_exit"] },
    )
    const failed = trace.split("\n").filter((l) => l.includes("kvm_exit: ") && l.includes("FAILED_VMENTRY"))
    expect(failed).toEqual([expect.stringMatching(/ info2 0x0{16} intr_info 0x00000000 error_code 0x00000000$/)])
  })
})
