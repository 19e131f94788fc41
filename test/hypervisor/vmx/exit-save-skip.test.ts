// A VM exit saves only RIP, RSP, RFLAGS, interruptibility, activity state and pending debug
// exceptions when the register file's systemGeneration says nothing else changed since the last
// full save; entry keeps the register file when it already holds the VMCS's state. Both must be
// invisible. Random guest programs of system instructions (MOV CR0/CR3/CR4, LGDT/LIDT, MOV to
// segment registers and SS, WRMSR of SYSENTER/PAT/EFER/FS/GS/KERNEL_GS base, SWAPGS, MOV DR7,
// IRETQ, INT n through the IDT, SYSCALL), each followed by VMCALL, run on machine A; between
// exits the host does random things: VMWRITEs of guest fields (a menu of valid values, or any
// guest field changed and put back), of the exit controls and of the VM-entry MSR-load list
// (SYSENTER_ESP or EFER loaded at every entry), runs another VMCS on the same register file,
// runs this VMCS on a second register file, VMCLEAR and VMPTRLD again. After every exit:
//   - A's VMCS region is byte-identical to itself after a full save of the same register file
//     (saveGuestState, the reference), so nothing the guest changed was left unsaved;
//   - A's VMCS regions and registers equal machine B's, which does the same but hands every
//     entry a fresh copy of its register file, so every entry fully loads and every exit fully
//     saves.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { EntryControl, ExitControl } from "../../../src/arch/vmx/control-bits.ts"
import { FieldType, fieldType, isHighAccess } from "../../../src/arch/vmx/vmcs-encoding.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import type { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { EntryCheckState } from "../../../src/hypervisor/vmx/entry-check-engine.ts"
import { saveGuestState } from "../../../src/hypervisor/vmx/guest-state.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { VmcsView } from "../../../src/hypervisor/vmx/vmcs-view.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"
import { adjust, allocRegion, enterVmx, expectStatus, newHost, writeValidVmcs } from "./support.ts"

/** Guest snippets; `p` picks a variant. Each ends in VMCALL (or HLT, which exits too). */
const SNIPPETS: ReadonlyArray<(p: number) => string> = [
  (p) => `mov rax, cr0\nxor eax, ${[0x40000, 0x2, 0x8][p % 3]}\nmov cr0, rax\nvmcall`,
  (p) => `mov rax, cr4\nxor eax, ${[0x200, 0x80, 0x400][p % 3]}\nmov cr4, rax\nvmcall`,
  (p) => `mov rax, cr3\n${p % 2 === 0 ? "xor eax, 0x8\n" : ""}mov cr3, rax\nvmcall`,
  () => `clts\nvmcall`,
  () => `mov rax, cr0\nxor eax, 0x2\nlmsw ax\nvmcall`,
  () => `mov ax, 0x30\nlldt ax\nvmcall\nxor eax, eax\nlldt ax\nvmcall`,
  () => `mov dword [0x4024], 0x8900\nmov ax, 0x20\nltr ax\nvmcall`,
  // SYSRET or IRETQ to CPL 3 (IRETQ nulls the DPL-0 data segments), VMCALL there, SYSCALL back.
  (p) =>
    `mov ecx, 0xc0000080\nrdmsr\nor eax, 1\nwrmsr\nmov ecx, 0xc0000081\nxor eax, eax\nmov edx, 0x00100008\nwrmsr\n` +
    `lea rax, [rel .k]\nmov rdx, rax\nshr rdx, 32\nmov ecx, 0xc0000082\nwrmsr\nvmcall\n` +
    (p % 2 === 0
      ? `lea rcx, [rel .u]\npushfq\npop r11\no64 sysret\n`
      : `mov rax, rsp\npush 0x43\npush rax\npushfq\npush 0x4b\nlea rax, [rel .u]\npush rax\niretq\n`) +
    `.u: vmcall\nsyscall\n.k: vmcall`,
  (p) => `lgdt [${0x5000 + 16 * (p % 2)}]\nvmcall`,
  (p) => `lidt [${0x5020 + 16 * (p % 2)}]\nvmcall`,
  (p) => `${p % 2 === 0 ? "mov ax, 0x10" : "xor eax, eax"}\nmov ${["ds", "es", "fs", "gs"][(p >> 1) % 4]}, ax\nvmcall`,
  () => `mov ax, 0x10\nmov ss, ax\nnop\nvmcall`,
  (p) => `mov ecx, ${[0x174, 0x175, 0x176, 0xc0000100, 0xc0000101, 0xc0000102][p % 6]}\nmov eax, ${(p * 0x1357) & 0xffffff}\nxor edx, edx\nwrmsr\nvmcall`,
  (p) => `mov ecx, 0x277\nmov eax, ${p % 2 === 0 ? "0x00070406" : "0x06060606"}\nmov edx, eax\nwrmsr\nvmcall`,
  (p) => `mov ecx, 0xc0000080\nrdmsr\nxor eax, ${p % 2 === 0 ? 1 : 0x800}\nwrmsr\nvmcall`,
  () => `swapgs\nvmcall`,
  (p) => `mov rax, dr7\nxor eax, ${1 << p % 8}\nmov dr7, rax\nvmcall`,
  () => `mov rax, rsp\npush 0x10\npush rax\npushfq\npush 0x8\nlea rax, [rel .back]\npush rax\niretq\n.back: vmcall`,
  () => `int 0x21\nvmcall`,
  () =>
    `mov ecx, 0xc0000080\nrdmsr\nor eax, 1\nwrmsr\nmov ecx, 0xc0000081\nxor eax, eax\nmov edx, 8\nwrmsr\n` +
    `lea rax, [rel .back]\nmov rdx, rax\nshr rdx, 32\nmov ecx, 0xc0000082\nwrmsr\nsyscall\n.back: vmcall`,
  () => `hlt`,
  // No system state written: the exit after these saves only the volatile fields.
  () => `inc rbx\nvmcall`,
  () => `vmcall\nvmcall`,
]

/** Guest-state VMWRITEs a host might do between exits, each value keeping the guest state valid. */
const GUEST_WRITES: ReadonlyArray<readonly [number, ReadonlyArray<bigint>]> = [
  [F.GUEST_RSP, [0x1ff000n, 0x1fe000n]],
  [F.GUEST_RFLAGS, [0x2n, 0x246n]],
  [F.GUEST_CR0, [0x8000_0031n, 0x8000_0033n, 0x8004_0031n]],
  [F.GUEST_CR4, [0x2020n, 0x2220n, 0x20a0n]],
  [F.GUEST_DS_SELECTOR, [0x10n, 0x18n]],
  [F.GUEST_FS_BASE, [0n, 0x7000_0000n, 0xffff_8000_0000_0000n]],
  [F.GUEST_GS_BASE, [0n, 0x1234_5000n]],
  [F.GUEST_GDTR_LIMIT, [0x4fn, 0xffffn]],
  [F.GUEST_IDTR_LIMIT, [0x2ffn, 0xfffn]],
  [F.GUEST_SYSENTER_CS, [0n, 0x10n]],
  [F.GUEST_SYSENTER_EIP, [0n, 0xffff_ffff_8100_0000n]],
  [F.GUEST_IA32_PAT, [0x0007_0406_0007_0406n, 0x0606_0606_0606_0606n]],
  [F.GUEST_IA32_EFER, [0x500n, 0xd01n]],
  [F.GUEST_DR7, [0x400n, 0x403n]],
]

const SAVE_BITS = [ExitControl.SAVE_DEBUG_CONTROLS, ExitControl.SAVE_IA32_PAT, ExitControl.SAVE_IA32_EFER]
const ENTRY_LOADS = EntryControl.LOAD_DEBUG_CONTROLS | EntryControl.LOAD_IA32_PAT | EntryControl.LOAD_IA32_EFER
const EXIT_SAVES_AND_LOADS = ExitControl.SAVE_DEBUG_CONTROLS | ExitControl.SAVE_IA32_PAT | ExitControl.LOAD_IA32_PAT | ExitControl.SAVE_IA32_EFER | ExitControl.LOAD_IA32_EFER

/** Every guest-state field (full access), for VMWRITEs that change a field and put it back. */
const ALL_GUEST_FIELDS = (Object.values(F) as Array<number>).filter((e) => fieldType(e) === FieldType.GuestState && !isHighAccess(e))
/** VM-entry MSR-load entries; the "msrLoad" action installs none or one of them. */
const ENTRY_MSRS: ReadonlyArray<readonly [number, bigint]> = [
  [0x175, 0xffff_8000_0000_1000n],
  [0xc000_0080, 0xd01n],
]

type Action =
  | { kind: "none" }
  | { kind: "write"; field: number; choice: number }
  | { kind: "exitControls"; bits: number }
  | { kind: "otherVmcs" }
  | { kind: "otherCore" }
  | { kind: "clearReload" }
  | { kind: "touchAny"; field: number; value: number }
  | { kind: "msrLoad"; which: number }

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Action>({ kind: "none" }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("write" as const), field: fc.nat(GUEST_WRITES.length - 1), choice: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("exitControls" as const), bits: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: "otherVmcs" }) },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: "otherCore" }) },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: "clearReload" }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("touchAny" as const), field: fc.nat(ALL_GUEST_FIELDS.length - 1), value: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("msrLoad" as const), which: fc.nat(ENTRY_MSRS.length) }) },
)

/** Everything in a register file, copied into a new one (B's way to defeat every skip). */
const copyCore = (from: CpuState): CpuState => {
  const to = new CpuState(from.memory)
  to.lo.set(from.lo)
  to.hi.set(from.hi)
  to.rip = from.rip
  to.setRflags32(from.getRflags32())
  to.segSel.set(from.segSel)
  to.segBaseLo.set(from.segBaseLo)
  to.segBaseHi.set(from.segBaseHi)
  to.segLimit.set(from.segLimit)
  to.segAttr.set(from.segAttr)
  to.cpl = from.cpl
  to.gdtrBaseLo = from.gdtrBaseLo
  to.gdtrBaseHi = from.gdtrBaseHi
  to.gdtrLimit = from.gdtrLimit
  to.idtrBaseLo = from.idtrBaseLo
  to.idtrBaseHi = from.idtrBaseHi
  to.idtrLimit = from.idtrLimit
  to.cr0 = from.cr0
  to.cr2Lo = from.cr2Lo
  to.cr2Hi = from.cr2Hi
  to.cr3Lo = from.cr3Lo
  to.cr3Hi = from.cr3Hi
  to.cr4 = from.cr4
  to.cr8 = from.cr8
  to.efer = from.efer
  for (let i = 0; i < 4; i++) to.dr[i] = from.dr[i]!
  to.dr6 = from.dr6
  to.dr7 = from.dr7
  to.msr.set(from.msr)
  to.tscBias = from.tscBias
  to.instructionsRetired = from.instructionsRetired
  to.activityState = from.activityState
  to.interruptibility = from.interruptibility
  to.pendingDebugExceptions = from.pendingDebugExceptions
  return to
}

/** GDT/IDT descriptors for LGDT/LIDT at 0x5000.., an INT 0x21 gate to "vmcall; iretq" at 0x181000. */
const prepareMemory = (memory: GuestMemory): void => {
  const pseudo = (at: number, limit: number, base: number) => {
    memory.writeU32(BigInt(at), (limit & 0xffff) | ((base & 0xffff) << 16))
    memory.writeU32(BigInt(at + 4), base >>> 16)
  }
  pseudo(0x5000, 0x4f, 0x4000)
  pseudo(0x5010, 0x57, 0x4000)
  pseudo(0x5020, 0x2ff, 0x3000)
  pseudo(0x5030, 0xfff, 0x3000)
  // GDT entry 3 (0x18): another 64-bit code segment, already accessed; INT 0x21's gate uses it.
  memory.writeU64(0x4018n, 0x0020_9b00_0000_0000n)
  // GDT 0x20: a 64-bit TSS at 0x6000 (LTR marks it busy; the snippet makes it available again
  // first); GDT 0x30: an LDT at 0x7000.
  memory.writeU64(0x4020n, 0x0000_8900_6000_0067n)
  memory.writeU64(0x4030n, 0x0000_8200_7000_0fffn)
  // GDT 0x40, 0x48: DPL-3 data and 64-bit code for IRETQ to CPL 3.
  memory.writeU64(0x4040n, 0x00cf_f300_0000_ffffn)
  memory.writeU64(0x4048n, 0x0020_fb00_0000_0000n)
  // User-accessible pages, for the guest's trip to CPL 3.
  memory.writeU32(0x1000n, 0x2007)
  memory.writeU32(0x2000n, 0x87)
  const handler = 0x181000
  memory.writeU32(0x3000n + 0x21n * 16n, (handler & 0xffff) | (0x18 << 16))
  memory.writeU32(0x3000n + 0x21n * 16n + 4n, (handler & 0xffff0000) | 0x8e00)
  memory.writeU32(BigInt(handler), 0x48c1010f) // vmcall; iretq
  memory.writeU32(BigInt(handler + 4), 0xcf)
  // VMCS 1's guest at 0x110000: vmcall; jmp back to it.
  memory.writeU32(0x110000n, 0xebc1010f)
  memory.writeU32(0x110004n, 0xfb)
}

interface Machine {
  readonly lp: LogicalProcessor
  readonly vmcs: ReadonlyArray<bigint>
  /** The logical register files (B replaces the object at every entry with a copy). */
  readonly cores: Array<CpuState>
  readonly launched: Array<boolean>
  readonly fresh: boolean
  /** Host page holding ENTRY_MSRS. */
  readonly msrArea: bigint
}

const machine = (code: Uint8Array, fresh: boolean): Machine => {
  const { lp } = newHost()
  enterVmx(lp)
  const memory = newGuestMemory(code)
  prepareMemory(memory)
  const vmcs = [allocRegion(lp), allocRegion(lp)]
  for (const [i, region] of vmcs.entries()) {
    expectStatus(lp.vmclear(region), VmxStatus.Succeed, lp)
    expectStatus(lp.vmptrld(region), VmxStatus.Succeed, lp)
    // VMCS 1 runs "vmcall; jmp" at 0x110000 with other segment and control-register state.
    // "Use MSR bitmaps" with an all-zero bitmap: RDMSR/WRMSR run in the guest.
    writeValidVmcs(lp, { guestRip: i === 0 ? 0x100000n : 0x110000n, primaryExtra: 1 << 28 })
    const w = (field: number, value: bigint | number) => expectStatus(lp.vmwrite(field, BigInt(value)), VmxStatus.Succeed, lp)
    w(F.VM_EXIT_CONTROLS, adjust(lp.caps.exit, 0x200 | EXIT_SAVES_AND_LOADS))
    w(F.VM_ENTRY_CONTROLS, adjust(lp.caps.entry, 0x200 | ENTRY_LOADS))
    w(F.MSR_BITMAP, lp.memory.allocPage()!)
    w(F.HOST_IA32_EFER, lp.root.efer)
    w(F.HOST_IA32_PAT, lp.root.pat)
    w(F.GUEST_GDTR_BASE, 0x4000)
    w(F.GUEST_GDTR_LIMIT, 0x4f)
    w(F.GUEST_IDTR_BASE, 0x3000)
    w(F.GUEST_IDTR_LIMIT, 0xfff)
    w(F.GUEST_IA32_PAT, 0x0007_0406_0007_0406n)
    w(F.GUEST_DR7, 0x400)
    if (i === 1) {
      w(F.GUEST_CR4, 0x20a0)
      w(F.GUEST_ES_SELECTOR, 0x18)
      w(F.GUEST_FS_BASE, 0x5555_0000)
      w(F.GUEST_SYSENTER_ESP, 0x8000)
    }
  }
  expectStatus(lp.vmptrld(vmcs[0]!), VmxStatus.Succeed, lp)
  const msrArea = lp.memory.allocPage()!
  for (const [i, [index, value]] of ENTRY_MSRS.entries()) {
    lp.memory.write32(Number(msrArea) + 16 * i, index)
    lp.memory.write64(msrArea + BigInt(16 * i + 8), value)
  }
  return { lp, vmcs, cores: [new CpuState(memory), new CpuState(memory)], launched: [false, false], fresh, msrArea }
}

/** One VMLAUNCH/VMRESUME of the current VMCS (index v) on logical register file c. */
const enter = (m: Machine, v: number, c: number): number => {
  const core = m.fresh ? copyCore(m.cores[c]!) : m.cores[c]!
  m.cores[c] = core
  m.lp.core = core
  const status = m.launched[v] ? m.lp.vmresume(200) : m.lp.vmlaunch(200)
  if (status === VmxStatus.VmExit) m.launched[v] = true
  return status
}

/** The exit handler: skip the exiting VMCALL/HLT as KVM's skip_emulated_instruction does. */
const handle = (m: Machine): boolean => {
  const reason = m.lp.vmreadLo(F.VM_EXIT_REASON)
  if (reason !== ExitReason.VMCALL && reason !== ExitReason.HLT) return false
  m.lp.vmwriteLo(F.GUEST_RIP, m.lp.vmreadLo(F.GUEST_RIP) + m.lp.vmreadLo(F.VM_EXIT_INSTRUCTION_LEN))
  return true
}

const regionBytes = (m: Machine, v: number): Array<number> => Array.from(m.lp.memory.pageAt(Number(m.vmcs[v]!))!.bytes.subarray(0, 1024))

/** The current VMCS after a full save of `core` on top of it must be unchanged. */
const expectFullySaved = (m: Machine, core: CpuState): void => {
  const page = m.lp.view.page
  const copy = new Uint8Array(page.bytes)
  const view = new VmcsView({ bytes: copy, halves: new Uint16Array(copy.buffer), words: new Uint32Array(copy.buffer) })
  saveGuestState(view, core, new EntryCheckState())
  expect(Array.from(copy.subarray(0, 1024))).toEqual(Array.from(page.bytes.subarray(0, 1024)))
}

/** Runs one host action on a machine; returns false when the run should stop (a non-VMCALL exit). */
const act = (m: Machine, action: Action): boolean => {
  const lp = m.lp
  switch (action.kind) {
    case "none":
      return true
    case "write": {
      const [field, values] = GUEST_WRITES[action.field]!
      expectStatus(lp.vmwrite(field, values[action.choice % values.length]!), VmxStatus.Succeed, lp)
      return true
    }
    case "exitControls": {
      let controls = adjust(lp.caps.exit, 0x200 | ExitControl.LOAD_IA32_PAT | ExitControl.LOAD_IA32_EFER)
      for (let b = 0; b < 3; b++) if ((action.bits >> b) & 1) controls |= SAVE_BITS[b]!
      expectStatus(lp.vmwriteLo(F.VM_EXIT_CONTROLS, adjust(lp.caps.exit, controls)), VmxStatus.Succeed, lp)
      return true
    }
    case "otherVmcs": {
      expectStatus(lp.vmptrld(m.vmcs[1]!), VmxStatus.Succeed, lp)
      const status = enter(m, 1, 0)
      expect(status).toBe(VmxStatus.VmExit)
      expectFullySaved(m, m.lp.core!)
      expect(handle(m)).toBe(true)
      expectStatus(lp.vmptrld(m.vmcs[0]!), VmxStatus.Succeed, lp)
      return true
    }
    case "otherCore": {
      const status = enter(m, 0, 1)
      if (status !== VmxStatus.VmExit) return false
      expectFullySaved(m, m.lp.core!)
      return handle(m)
    }
    case "touchAny": {
      // A different value, then the original back: the VMCS is unchanged but entry must reload.
      const field = ALL_GUEST_FIELDS[action.field]!
      expectStatus(lp.vmread(field), VmxStatus.Succeed, lp)
      const original = lp.value
      expectStatus(lp.vmwrite(field, original ^ BigInt(action.value | 1)), VmxStatus.Succeed, lp)
      expectStatus(lp.vmwrite(field, original), VmxStatus.Succeed, lp)
      return true
    }
    case "msrLoad":
      // Every entry from now on loads the entry (MSR-load lists run at each VM entry).
      expectStatus(lp.vmwrite(F.VM_ENTRY_MSR_LOAD_ADDR, m.msrArea + BigInt(16 * Math.max(0, action.which - 1))), VmxStatus.Succeed, lp)
      expectStatus(lp.vmwriteLo(F.VM_ENTRY_MSR_LOAD_COUNT, action.which === 0 ? 0 : 1), VmxStatus.Succeed, lp)
      return true
    case "clearReload":
      expectStatus(lp.vmclear(m.vmcs[0]!), VmxStatus.Succeed, lp)
      expectStatus(lp.vmptrld(m.vmcs[0]!), VmxStatus.Succeed, lp)
      m.launched[0] = false
      return true
  }
}

describe("VM exit saves only volatile fields when the system generation is unchanged", () => {
  it("leaves every VMCS exactly as full loads and saves would, whatever the guest and host do", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(SNIPPETS.length - 1), fc.nat(47)), { minLength: 1, maxLength: 12 }),
        fc.array(actionArb, { minLength: 1, maxLength: 30 }),
        (snippets, actions) => {
          const source = "top:\n" + snippets.map(([s, p], i) => SNIPPETS[s]!(p).replace(/\.(back|u|k)\b/g, `$1${i}`)).join("\n") + "\njmp top"
          const code = guestCode(source)
          const a = machine(code, false)
          const b = machine(code, true)
          const first = [enter(a, 0, 0), enter(b, 0, 0)]
          expect(first).toEqual([VmxStatus.VmExit, VmxStatus.VmExit])
          for (const action of actions) {
            expectFullySaved(a, a.lp.core!)
            expect(regionBytes(a, 0)).toEqual(regionBytes(b, 0))
            expect(regionBytes(a, 1)).toEqual(regionBytes(b, 1))
            expect(Array.from(a.lp.core!.lo)).toEqual(Array.from(b.lp.core!.lo))
            if (!handle(a) || !handle(b)) return
            const goOn = [act(a, action), act(b, action)]
            expect(goOn[0]).toBe(goOn[1])
            if (!goOn[0]) return
            const status = [enter(a, 0, 0), enter(b, 0, 0)]
            expect(status[0]).toBe(status[1])
            if (status[0] !== VmxStatus.VmExit) return
          }
          expectFullySaved(a, a.lp.core!)
          expect(regionBytes(a, 0)).toEqual(regionBytes(b, 0))
        },
      ),
      { numRuns: 120 },
    )
  })
})
