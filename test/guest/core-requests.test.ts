// What other parts of kvmsim asked of the guest core: fresh translations after RIP or the
// fetch context changes from outside runBatch, fences, the segment-override prefix as written
// (checked against iced-x86), the intercept hooks for RDTSCP, WBINVD and descriptor-table
// exiting with the SDM's instruction information, VM-entry event injection, and the full
// guest-physical address of an EPT violation.

import { Decoder, DecoderOptions, Instruction, Register } from "iced-x86"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { Seg } from "../../src/guest/cpu/state.ts"
import { DecodedInstruction, decodeInstruction } from "../../src/guest/decode/decoder.ts"
import { type GuestPhysicalTranslator, InterruptionType, NoIntercepts } from "../../src/guest/intercept.ts"
import { RunOutcome, injectEvent, runBatch } from "../../src/guest/run.ts"
import { PT_4K, makeMachine, recorder } from "./support/machine.ts"

class Policy extends NoIntercepts {
  rdtscpEnabled = true
  wbinvd = false
  descriptorTables = false
  exceptions = new Set<number>()
  exitsOnWbinvd(): boolean {
    return this.wbinvd
  }
  exitsOnDescriptorTable(): boolean {
    return this.descriptorTables
  }
  override exitsOnException(vector: number): boolean {
    return this.exceptions.has(vector)
  }
}

/** EPT stand-in: identity, except pages listed as denied (violation with no permissions). */
class DenyPages implements GuestPhysicalTranslator {
  violationPermissions = 0
  constructor(readonly denied: Set<number>) {}
  translate(gpa: number): number {
    return this.denied.has(Math.floor(gpa / 4096)) ? -1 : gpa
  }
}

describe("RIP and fetch context changed from outside runBatch", () => {
  it("setRip after the host remapped the code page runs the new code without flushTlb", () => {
    const m = makeMachine(`start:\n  hlt\n`)
    // Physical 0x400000: mov eax, 1; hlt — physical 0x401000: mov eax, 2; hlt.
    m.memory.write(0x400000n, Uint8Array.of(0xb8, 1, 0, 0, 0, 0xf4))
    m.memory.write(0x401000n, Uint8Array.of(0xb8, 2, 0, 0, 0, 0xf4))
    m.cpu.setRip(0x400000n)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(1n)
    // Linear 0x400000 now maps physical 0x401000 (the host edits the guest's page table).
    m.memory.writeU64(PT_4K, 0x401000n | 7n)
    m.cpu.activityState = 0
    m.cpu.setRip(0x400000n)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(2n)
  })

  it("a new EPT installed between batches applies to the very next fetch", () => {
    const p = new Policy()
    const m = makeMachine(`start:\n  nop\n  jmp start\n`, p)
    expect(runBatch(m.cpu, 100)).toBe(RunOutcome.BUDGET)
    p.guestPhysical = new DenyPages(new Set([0x100]))
    expect(runBatch(m.cpu, 100)).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.EPT_VIOLATION)
    expect(m.cpu.exit.guestPhysicalAddress).toBe(m.cpu.ripValue)
    expect(m.cpu.exit.qualification & 7n).toBe(4n) // instruction fetch
  })

  it("a RIP moved by a plain field write to another page fetches there", () => {
    const m = makeMachine(`start:\n  mov eax, 7\n  hlt\nother:\n  times 4096 nop\nfar:\n  mov eax, 9\n  hlt\n`)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(7n)
    m.cpu.activityState = 0
    m.cpu.rip = Number(m.sym("far"))
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(9n)
  })
})

describe("fences and prefixes", () => {
  it("LFENCE, MFENCE and SFENCE decode (3 bytes) and run as serializing no-ops", () => {
    const d = new DecodedInstruction()
    for (const [modrm, name] of [
      [0xe8, "lfence"],
      [0xf0, "mfence"],
      [0xf8, "sfence"],
    ] as const) {
      decodeInstruction(Uint8Array.of(0x0f, 0xae, modrm), 0, 3, d)
      expect(d.valid).toBe(true)
      expect(d.length).toBe(3)
      expect(d.mnemonic).toBe(name)
    }
    const m = makeMachine(`start:\n  mov eax, 5\n  db 0x0f, 0xae, 0xe8\n  db 0x0f, 0xae, 0xf0\n  db 0x0f, 0xae, 0xf8\n  inc eax\n  hlt\n`)
    const before = m.cpu.instructionsRetired
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.cpu.getReg(0)).toBe(6n)
    expect(m.cpu.instructionsRetired - before).toBe(6)
  })

  it("segPrefix is the segment-override prefix as iced-x86 reads it (64-bit mode rules)", () => {
    const prefixes = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67]
    const icedSeg: Record<string, number> = { ES: Seg.ES, CS: Seg.CS, SS: Seg.SS, DS: Seg.DS, FS: Seg.FS, GS: Seg.GS, None: -1 }
    const d = new DecodedInstruction()
    const ins = new Instruction()
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...prefixes), { maxLength: 5 }), (pre) => {
        const bytes = Uint8Array.from([...pre, 0x8b, 0x00]) // mov eax, [rax]
        const decoder = new Decoder(64, bytes, DecoderOptions.None)
        decoder.decodeOut(ins)
        decodeInstruction(bytes, 0, bytes.length, d)
        expect(d.segPrefix).toBe(icedSeg[Register[ins.segmentPrefix]!])
        // The effective override in 64-bit mode: only FS and GS.
        expect(d.seg).toBe(d.segPrefix >= 4 ? d.segPrefix : -1)
      }),
      { numRuns: 500 },
    )
  })
})

describe("intercept hooks", () => {
  it("RDTSCP is #UD when 'enable RDTSCP' is 0, and runs when it is 1", () => {
    const p = new Policy()
    p.rdtscpEnabled = false
    const m = makeMachine(`${recorder([6])}\nstart:\n  mov qword [rel skip], 3\nat:\n  rdtscp\n  hlt\n`, p)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.memory.readU64(m.sym("exc_vec"))).toBe(6n)
    expect(m.memory.readU64(m.sym("exc_rip"))).toBe(m.sym("at"))
    const q = new Policy()
    const n = makeMachine(`${recorder([6])}\nstart:\n  rdtscp\n  hlt\n`, q)
    expect(n.run()).toBe(RunOutcome.HALTED)
    expect(n.memory.readU64(n.sym("exc_count"))).toBe(0n)
  })

  it("WBINVD exits with reason 54 under WBINVD exiting, RIP at the instruction", () => {
    const p = new Policy()
    p.wbinvd = true
    const m = makeMachine(`start:\n  nop\nat:\n  wbinvd\n  hlt\n`, p)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    expect(m.cpu.exit.reason).toBe(ExitReason.WBINVD)
    expect(m.cpu.exit.instructionLength).toBe(2)
    expect(m.cpu.ripValue).toBe(m.sym("at"))
    const q = makeMachine(`start:\n  wbinvd\n  hlt\n`, new Policy())
    expect(q.run()).toBe(RunOutcome.HALTED)
  })

  // Expected instruction information built from the SDM's tables (28-10 for reason 46, 28-11 for 47).
  const info = (f: { scale?: number; reg1?: number; asz: number; regForm?: boolean; osz32?: boolean; seg?: number; index?: number; base?: number; identity: number }): bigint =>
    BigInt(
      ((f.scale ?? 0) |
        ((f.reg1 ?? 0) << 3) |
        (f.asz << 7) |
        (f.regForm ? 1 << 10 : 0) |
        (f.osz32 ? 1 << 11 : 0) |
        ((f.seg ?? 0) << 15) |
        (f.index === undefined ? 1 << 22 : f.index << 18) |
        (f.base === undefined ? 1 << 27 : f.base << 23) |
        (f.identity << 28)) >>>
        0,
    )

  const cases: Array<[string, string, number, bigint, bigint]> = [
    ["lgdt [rax+rbx*4+0x10]", "LGDT", ExitReason.GDTR_IDTR, 0x10n, info({ scale: 2, asz: 2, osz32: true, seg: Seg.DS, index: 3, base: 0, identity: 2 })],
    ["lidt [rcx]", "LIDT", ExitReason.GDTR_IDTR, 0n, info({ asz: 2, osz32: true, seg: Seg.DS, base: 1, identity: 3 })],
    ["sgdt [rsp+8]", "SGDT", ExitReason.GDTR_IDTR, 8n, info({ asz: 2, osz32: true, seg: Seg.SS, base: 4, identity: 0 })],
    ["sidt [gs:rdx]", "SIDT", ExitReason.GDTR_IDTR, 0n, info({ asz: 2, osz32: true, seg: Seg.GS, base: 2, identity: 1 })],
    ["sldt eax", "SLDT", ExitReason.LDTR_TR, 0n, info({ asz: 2, regForm: true, reg1: 0, identity: 0 })],
    ["str ecx", "STR", ExitReason.LDTR_TR, 0n, info({ asz: 2, regForm: true, reg1: 1, identity: 1 })],
    ["lldt [rsi+rdi*8+0x20]", "LLDT", ExitReason.LDTR_TR, 0x20n, info({ scale: 3, asz: 2, seg: Seg.DS, index: 7, base: 6, identity: 2 })],
    ["ltr r9w", "LTR", ExitReason.LDTR_TR, 0n, info({ asz: 2, regForm: true, reg1: 9, identity: 3 })],
  ]
  for (const [source, name, reason, qualification, expected] of cases) {
    it(`${name} exits with reason ${reason} under descriptor-table exiting: qualification and instruction information`, () => {
      const p = new Policy()
      p.descriptorTables = true
      const m = makeMachine(`start:\n  nop\nat:\n  ${source}\n  hlt\n`, p)
      expect(m.run()).toBe(RunOutcome.VM_EXIT)
      const x = m.cpu.exit
      expect(x.reason).toBe(reason)
      expect(x.qualification).toBe(qualification)
      // Register forms leave the addressing fields undefined (SDM Table 28-11): compare the rest.
      const defined = (x.instructionInformation & (1 << 10)) !== 0 ? 0x3000_07f8 : 0xffff_ffff
      expect((x.instructionInformation & defined) >>> 0).toBe((Number(expected) & defined) >>> 0)
      const d = new DecodedInstruction()
      decodeInstruction(m.memory.read(m.sym("at"), 15), 0, 15, d)
      expect(x.instructionLength).toBe(d.length)
      expect(m.cpu.ripValue).toBe(m.sym("at"))
    })
  }

  it("without descriptor-table exiting the same instructions run natively", () => {
    const m = makeMachine(`start:\n  sgdt [rel buf]\n  str eax\n  hlt\nbuf: dq 0, 0\n`, new Policy())
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.memory.readU64(m.sym("buf")) & 0xffffn).toBe(BigInt(m.cpu.gdtr.limit))
  })
})

describe("VM-entry event injection", () => {
  it("an injected #GP bypasses the exception bitmap and is delivered with its error code", () => {
    const p = new Policy()
    p.exceptions.add(13)
    const m = makeMachine(`${recorder([13])}\nstart:\n  hlt\n`, p)
    const at = m.cpu.ripValue
    expect(injectEvent(m.cpu, 13, InterruptionType.HARDWARE_EXCEPTION, 0x10, 0)).toBe(true)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.memory.readU64(m.sym("exc_vec"))).toBe(13n)
    expect(m.memory.readU64(m.sym("exc_err"))).toBe(0x10n)
    expect(m.memory.readU64(m.sym("exc_rip"))).toBe(at)
  })

  it("an injected software interrupt pushes RIP + the VM-entry instruction length", () => {
    const m = makeMachine(`${recorder([0x80])}\nstart:\n  hlt\n  nop\n  hlt\n`, new Policy())
    const at = m.cpu.ripValue
    expect(injectEvent(m.cpu, 0x80, InterruptionType.SOFTWARE_INTERRUPT, -1, 2)).toBe(true)
    expect(m.run()).toBe(RunOutcome.HALTED)
    expect(m.memory.readU64(m.sym("exc_vec"))).toBe(0x80n)
    expect(m.memory.readU64(m.sym("exc_rip"))).toBe(at + 2n)
  })

  it("a fault while delivering an injected event is subject to the bitmap: exit with IDT-vectoring information", () => {
    const p = new Policy()
    p.exceptions.add(13)
    // No gate for vector 0x40 (an all-zero descriptor): its delivery raises #GP(0x40*8+2+EXT), which exits.
    const m = makeMachine(`start:\n  hlt\n`, p)
    expect(injectEvent(m.cpu, 0x40, InterruptionType.EXTERNAL_INTERRUPT, -1, 0)).toBe(false)
    const x = m.cpu.exit
    expect(x.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(x.interruptionInformation & 0xff).toBe(13)
    expect(x.interruptionErrorCode).toBe(0x40 * 8 + 2 + 1)
    expect(x.idtVectoringInformation >>> 0).toBe((0x40 | (InterruptionType.EXTERNAL_INTERRUPT << 8) | (1 << 31)) >>> 0)
  })
})

describe("EPT violations on data accesses", () => {
  it("report the full guest-physical address of the access, not its page", () => {
    const p = new Policy()
    p.guestPhysical = new DenyPages(new Set([0x600]))
    const m = makeMachine(`start:\n  mov eax, [0x600abc]\n  hlt\n`, p)
    expect(m.run()).toBe(RunOutcome.VM_EXIT)
    const x = m.cpu.exit
    expect(x.reason).toBe(ExitReason.EPT_VIOLATION)
    expect(x.guestPhysicalAddress).toBe(0x600abcn)
    expect(x.guestLinearAddress).toBe(0x600abcn)
    expect(x.qualification & 7n).toBe(1n) // data read
  })
})
