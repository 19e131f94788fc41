// The intercept interface as VMX uses it: each interceptable event exits when the policy says
// so, leaves RIP at the instruction (or the boundary) and fills the exit record with the
// SDM's reason, qualification, instruction length and information; with the policy saying
// no, the instruction runs natively.

import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { NoIntercepts } from "../../src/guest/intercept.ts"
import { RunOutcome, completeMmioAccess } from "../../src/guest/run.ts"
import { makeMachine, recorder } from "./support/machine.ts"

class Policy extends NoIntercepts {
  hlt = false
  io = false
  rdmsr = false
  cr3Write = false
  invlpg = false
  rdtsc = false
  pause = false
  exceptions = new Set<number>()
  lastIo: Array<unknown> = []
  override exitsOnHlt(): boolean {
    return this.hlt
  }
  override exitsOnIo(port: number, size: number, isIn: boolean, isString: boolean, isRep: boolean): boolean {
    this.lastIo = [port, size, isIn, isString, isRep]
    return this.io
  }
  override exitsOnRdmsr(): boolean {
    return this.rdmsr
  }
  override exitsOnCrWrite(cr: 3 | 8): boolean {
    return cr === 3 && this.cr3Write
  }
  override exitsOnInvlpg(): boolean {
    return this.invlpg
  }
  override exitsOnRdtsc(): boolean {
    return this.rdtsc
  }
  override exitsOnPause(): boolean {
    return this.pause
  }
  override exitsOnException(vector: number): boolean {
    return this.exceptions.has(vector)
  }
}

const machine = (source: string, configure: (p: Policy) => void = () => {}) => {
  const p = new Policy()
  configure(p)
  const m = makeMachine(source, p)
  return { m, p }
}

describe("intercepts: exits and their exit records", () => {
  it("CPUID always exits in non-root mode, with its length and RIP at the instruction", () => {
    const { m } = machine(`start:\n  nop\nat:\n  cpuid\n  hlt\n`)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.CPUID)
    expect(m.cpu.exit.instructionLength).toBe(2)
    expect(m.cpu.ripValue).toBe(m.sym("at"))
  })

  it("HLT exits only with HLT exiting; otherwise the CPU halts", () => {
    const a = machine(`start:\n  hlt\n`, (p) => (p.hlt = true))
    expect(a.m.run()).toBe(RunOutcome.VM_EXIT)
    expect(a.m.cpu.exit.reason).toBe(ExitReason.HLT)
    expect(a.m.cpu.exit.instructionLength).toBe(1)
    const b = machine(`start:\n  hlt\n`)
    expect(b.m.run()).toBe(RunOutcome.HALTED)
  })

  it("I/O exits carry size, direction, string/REP, operand encoding and port (SDM Table 28-5)", () => {
    const out = machine(`start:\n  mov dx, 0x3f8\n  out dx, al\n`, (p) => (p.io = true))
    expect(out.m.run()).toBe(RunOutcome.VM_EXIT)
    expect(out.m.cpu.exit.reason).toBe(ExitReason.IO_INSTRUCTION)
    expect(out.m.cpu.exit.qualification).toBe(0x3f8n << 16n)
    expect(out.m.cpu.exit.instructionLength).toBe(1)
    const inImm = machine(`start:\n  in eax, 0x60\n`, (p) => (p.io = true))
    inImm.m.run()
    expect(inImm.m.cpu.exit.qualification).toBe((0x60n << 16n) | 0x40n | 0x8n | 3n)
    expect(inImm.m.cpu.exit.instructionLength).toBe(2)
    const outs = machine(`start:\n  lea rsi, [rel buf]\n  mov ecx, 4\n  mov dx, 0xe9\n  rep outsb\nbuf: db 1,2,3,4\n`, (p) => (p.io = true))
    outs.m.run()
    const x = outs.m.cpu.exit
    expect(x.qualification).toBe((0xe9n << 16n) | 0x20n | 0x10n)
    expect(x.guestLinearAddress).toBe(outs.m.sym("buf"))
    expect((x.instructionInformation >> 7) & 7).toBe(2) // 64-bit address size
    expect((x.instructionInformation >> 15) & 7).toBe(3) // DS
    expect(outs.p.lastIo).toEqual([0xe9, 1, false, true, true])
  })

  it("RDMSR exits per the MSR policy with no qualification", () => {
    const { m } = machine(`start:\n  mov ecx, 0x10\n  rdmsr\n`, (p) => (p.rdmsr = true))
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.MSR_READ)
    expect(m.cpu.exit.qualification).toBe(0n)
  })

  it("CR0 reads return the read shadow for masked bits; a write changing a masked bit exits (Table 28-3)", () => {
    const { m, p } = machine(`
start:
  mov rax, cr0
  mov rbx, rax
  or rax, 8
  mov cr0, rax
  hlt
`)
    p.cr0GuestHostMask = 0x8 // CR0.TS owned by the host
    p.cr0ReadShadow = 0
    m.cpu.cr0 |= 0x8 // real TS = 1
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.getReg(3) & 8n).toBe(0n) // the guest saw the shadow
    expect(m.cpu.exit.reason).toBe(ExitReason.CR_ACCESS)
    expect(m.cpu.exit.qualification).toBe(0n | (0n << 4n) | (0n << 8n)) // CR0, MOV to CR, RAX
    expect(m.cpu.exit.instructionLength).toBe(3)
  })

  it("CR3 loads exit with CR number, access type and GPR; CLTS and LMSW consult the CR0 mask", () => {
    const a = machine(`start:\n  mov rcx, cr3\n  mov cr3, rcx\n`, (p) => (p.cr3Write = true))
    a.m.run()
    expect(a.m.cpu.exit.reason).toBe(ExitReason.CR_ACCESS)
    expect(a.m.cpu.exit.qualification).toBe(3n | (1n << 8n))
    const b = machine(`start:\n  clts\n`, (p) => {
      p.cr0GuestHostMask = 8
      p.cr0ReadShadow = 8
    })
    b.m.run()
    expect(b.m.cpu.exit.qualification).toBe(2n << 4n)
    const c = machine(`start:\n  mov eax, 0x1f\n  lmsw ax\n`, (p) => {
      p.cr0GuestHostMask = 0xe
      p.cr0ReadShadow = 0
    })
    c.m.run()
    expect(c.m.cpu.exit.qualification).toBe((3n << 4n) | (0x1fn << 16n))
    // Without the mask the same LMSW just runs.
    const d = machine(`start:\n  mov eax, 0x3\n  lmsw ax\n  hlt\n`)
    expect(d.m.run()).toBe(RunOutcome.HALTED)
    expect(d.m.cpu.cr0 & 0xf).toBe(3)
  })

  it("INVLPG exits with the linear address as qualification", () => {
    const { m } = machine(`start:\n  mov rax, 0x404000\n  invlpg [rax+0x10]\n`, (p) => (p.invlpg = true))
    m.run()
    expect(m.cpu.exit.reason).toBe(ExitReason.INVLPG)
    expect(m.cpu.exit.qualification).toBe(0x404010n)
  })

  it("RDTSC exits when asked and applies the TSC offset otherwise", () => {
    const a = machine(`start:\n  rdtsc\n`, (p) => (p.rdtsc = true))
    a.m.run()
    expect(a.m.cpu.exit.reason).toBe(ExitReason.RDTSC)
    const b = machine(`start:\n  rdtsc\n  hlt\n`, (p) => (p.tscOffset = 1_000_000n))
    b.m.run()
    const tsc = (b.m.cpu.getReg(2) << 32n) | b.m.cpu.getReg(0)
    expect(tsc).toBeGreaterThanOrEqual(1_000_000n)
    expect(tsc).toBeLessThan(1_000_100n)
  })

  it("the exception bitmap turns #PF into an exit with the address as qualification, CR2 untouched", () => {
    const { m } = machine(`start:\n  mov rbx, 0x80000000\n  mov rax, [rbx]\n`, (p) => p.exceptions.add(14))
    m.cpu.cr2 = 0x1234n
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    const x = m.cpu.exit
    expect(x.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(x.interruptionInformation >>> 0).toBe(0x80000b0e)
    expect(x.interruptionErrorCode).toBe(0)
    expect(x.qualification).toBe(0x80000000n)
    expect(m.cpu.cr2).toBe(0x1234n)
  })

  it("INT3 under the exception bitmap exits as a software exception with its length", () => {
    const { m } = machine(`start:\nat:\n  int3\n`, (p) => p.exceptions.add(3))
    m.run()
    expect(m.cpu.exit.interruptionInformation >>> 0).toBe(0x80000603)
    expect(m.cpu.exit.instructionLength).toBe(1)
    expect(m.cpu.ripValue).toBe(m.sym("at"))
  })

  it("an exit while delivering an event records it as IDT-vectoring information", () => {
    const { m } = machine(`start:\n  xor ecx, ecx\n  div rcx\n${recorder([0])}`, (p) => p.exceptions.add(14))
    // The #DE handler's stack is unmapped guest-physical memory beyond the slot... use a
    // not-present page for the kernel stack so pushing the #DE frame page-faults.
    m.cpu.setReg(4, 0x80001000n)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    const x = m.cpu.exit
    expect(x.interruptionInformation & 0xff).toBe(14)
    expect(x.idtVectoringInformation >>> 0).toBe(0x80000300) // #DE, hardware exception, valid
  })

  it("data accesses to guest-physical memory with no slot exit as EPT violations carrying the MMIO data", () => {
    const { m } = machine(`
start:
  mov dword [0x900000], 0xdeadbeef
  mov eax, [0x900010]
  hlt
`)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    let x = m.cpu.exit
    expect(x.reason).toBe(ExitReason.EPT_VIOLATION)
    expect(x.guestPhysicalAddress).toBe(0x900000n)
    expect(x.mmioSize).toBe(4)
    expect(x.mmioData).toBe(0xdeadbeefn)
    expect(Number(x.qualification) & 0x187).toBe(0x182) // write, linear valid, translated access
    completeMmioAccess(m.cpu)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    x = m.cpu.exit
    expect(x.guestPhysicalAddress).toBe(0x900010n)
    expect(Number(x.qualification) & 7).toBe(1)
    completeMmioAccess(m.cpu, 0x1234n)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(0x1234n)
  })

  it("VMCALL and VMX instructions exit in non-root mode (and are #UD outside VMX)", () => {
    const a = machine(`start:\n  vmcall\n`)
    a.m.run()
    expect(a.m.cpu.exit.reason).toBe(ExitReason.VMCALL)
    expect(a.m.cpu.exit.instructionLength).toBe(3)
    const b = machine(`start:\n  vmread rax, rbx\n`)
    b.m.run()
    expect(b.m.cpu.exit.reason).toBe(ExitReason.VMREAD)
    const info = b.m.cpu.exit.instructionInformation
    expect((info >> 10) & 1).toBe(1) // register operand
    expect((info >> 3) & 15).toBe(0) // reg1 = RAX (the r/m destination)
    expect((info >> 28) & 15).toBe(3) // reg2 = RBX
    const c = makeMachine(`start:\n  vmcall\n${recorder([6])}\n`)
    c.memory.writeU64(c.sym("skip"), 3n)
    c.run(100)
    expect(c.memory.readU64(c.sym("exc_vec"))).toBe(6n)
  })

  it("the preemption timer and the monitor trap flag end the run with their exits", () => {
    const { m, p } = machine(`start:\n  inc rax\n  jmp start\n`)
    p.preemptionTimerRemaining = 5
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.PREEMPTION_TIMER)
    expect(m.cpu.instructionsRetired).toBe(5)
    expect(p.preemptionTimerRemaining).toBe(0)
    p.preemptionTimerRemaining = -1
    p.monitorTrapFlag = true
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.MONITOR_TRAP_FLAG)
    expect(m.cpu.instructionsRetired).toBe(6)
  })

  it("external-interrupt exiting exits regardless of RFLAGS.IF; the interrupt window opens after STI's shadow", () => {
    const a = machine(`start:\n  nop\n  jmp start\n`, (p) => {
      p.externalInterruptExiting = true
      p.acknowledgeInterruptOnExit = true
    })
    a.m.cpu.requestInterrupt(0x30)
    expect(a.m.run()).toBe(RunOutcome.VM_EXIT)
    expect(a.m.cpu.exit.reason).toBe(ExitReason.EXTERNAL_INTERRUPT)
    expect(a.m.cpu.exit.interruptionInformation >>> 0).toBe(0x80000030)
    expect(a.m.cpu.highestPendingInterrupt()).toBe(-1)
    const b = machine(`start:\n  nop\n  sti\nafter_sti:\n  nop\nwindow:\n  nop\n`, (p) => (p.interruptWindowExiting = true))
    expect(b.m.run()).toBe(RunOutcome.VM_EXIT)
    expect(b.m.cpu.exit.reason).toBe(ExitReason.INTERRUPT_WINDOW)
    expect(b.m.cpu.ripValue).toBe(b.m.sym("window"))
  })

  it("with NMI and external-interrupt exiting on and nothing pending, the guest runs on; an event requested between batches exits at once", () => {
    const { m } = machine(`start:\n  inc rax\n  jmp start\n`, (p) => {
      p.externalInterruptExiting = true
      p.nmiExiting = true
    })
    expect(m.run(5000)).toBe(RunOutcome.BUDGET)
    expect(m.cpu.instructionsRetired).toBe(5000)
    // Nothing pending: the instruction boundary needs no attention (KVM sets both controls, and
    // checking them at every instruction made guests in a VM ~3x slower than bare).
    expect(m.cpu.attention).toBe(0)
    m.cpu.requestInterrupt(0x30)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.EXTERNAL_INTERRUPT)
    expect(m.cpu.instructionsRetired).toBe(5000)
    m.cpu.acknowledgeInterrupt(0x30)
    expect(m.run(300)).toBe(RunOutcome.BUDGET)
    expect(m.cpu.instructionsRetired).toBe(5300)
    m.cpu.requestNmi()
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(m.cpu.instructionsRetired).toBe(5300)
  })

  it("PAUSE exits with PAUSE exiting and is a NOP otherwise", () => {
    const a = machine(`start:\n  pause\n`, (p) => (p.pause = true))
    a.m.run()
    expect(a.m.cpu.exit.reason).toBe(ExitReason.PAUSE_INSTRUCTION)
    const b = machine(`start:\n  pause\n  hlt\n`)
    expect(b.m.run()).toBe(RunOutcome.HALTED)
  })
})

describe("guest-physical memory slots", () => {
  it("removing a slot between batches takes effect at once (no stale translation)", () => {
    const { m } = machine(`
start:
  mov eax, [0xa00000]
  hlt
  mov eax, [0xa00000]
  hlt
`)
    const extra = new Uint8Array(0x1000)
    extra[0] = 0x2a
    expect(m.memory.setRegion(7, 0xa00000n, extra)).toBeUndefined()
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(0x2an)
    m.memory.setRegion(7, 0xa00000n, null)
    m.cpu.activityState = 0
    // The backing is gone: the same read is now an MMIO exit.
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.EPT_VIOLATION)
    expect(m.cpu.exit.guestPhysicalAddress).toBe(0xa00000n)
  })

  it("rejects misaligned and overlapping regions with a message", () => {
    const { m } = machine(`start:\n  hlt\n`)
    expect(m.memory.setRegion(8, 0x1234n, new Uint8Array(0x1000))).toMatch(/multiples of 4096/)
    expect(m.memory.setRegion(8, 0x1000n, new Uint8Array(0x1000))).toMatch(/overlaps slot 0/)
  })
})
