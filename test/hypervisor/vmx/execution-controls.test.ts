// Every execution control of the issue, each with a guest instruction that exits when the
// control says so and runs natively otherwise. Exit reasons are Appendix C's; exit
// qualifications are SDM Vol. 3C Table 27-x layouts.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { ExitControl, PinControl, PrimaryControl, SecondaryControl } from "../../../src/arch/vmx/control-bits.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import type { CpuState } from "../../../src/guest/cpu/state.ts"
import { identityEpt } from "./support.ts"
import { vmxGuest } from "./guest-support.ts"

interface Run {
  readonly lp: LogicalProcessor
  readonly core: CpuState
  readonly status: number
  readonly reason: number
  readonly qualification: bigint
  read(field: number): bigint
}

const vm = (source: string, configure: (lp: LogicalProcessor, core: CpuState) => void = () => {}, budget = 10_000): Run => {
  const { lp, core } = vmxGuest(source)
  configure(lp, core)
  const status = lp.vmlaunch(budget)
  const read = (field: number): bigint => {
    expect(lp.vmread(field)).toBe(VmxStatus.Succeed)
    return lp.value
  }
  // While the guest is still in non-root operation the host cannot VMREAD on this processor.
  const exited = status === VmxStatus.VmExit
  return { lp, core, status, reason: exited ? Number(read(F.VM_EXIT_REASON)) : -1, qualification: exited ? read(F.EXIT_QUALIFICATION) : -1n, read }
}

const set = (lp: LogicalProcessor, field: number, bits: number): void => {
  lp.vmread(field)
  lp.vmwrite(field, lp.value | BigInt(bits >>> 0))
}
const clear = (lp: LogicalProcessor, field: number, bits: number): void => {
  lp.vmread(field)
  lp.vmwrite(field, lp.value & ~BigInt(bits >>> 0))
}
const primary = (bits: number) => (lp: LogicalProcessor) => set(lp, F.CPU_BASED_VM_EXEC_CONTROL, bits)
const secondary = (lp: LogicalProcessor, bits: number): void => {
  set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.ACTIVATE_SECONDARY_CONTROLS)
  set(lp, F.SECONDARY_VM_EXEC_CONTROL, bits)
}
/** The guest reached its final HLT (HLT exiting is on in every test VMCS). */
const reachedHlt = (run: Run): void => {
  expect(run.status).toBe(VmxStatus.VmExit)
  expect(run.reason).toBe(ExitReason.HLT)
}

describe("pin-based controls", () => {
  it("external-interrupt exiting: a pending interrupt exits even with RFLAGS.IF = 0 (vector saved with ack-on-exit)", () => {
    const on = vm("nop\nhlt", (lp, core) => {
      set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.EXT_INTR_MASK)
      set(lp, F.VM_EXIT_CONTROLS, ExitControl.ACK_INTR_ON_EXIT)
      core.requestInterrupt(0x30)
    })
    expect(on.reason).toBe(ExitReason.EXTERNAL_INTERRUPT)
    expect(on.read(F.VM_EXIT_INTR_INFO)).toBe(0x8000_0030n)
    const off = vm("nop\nhlt", (_lp, core) => core.requestInterrupt(0x30))
    reachedHlt(off) // IF = 0: the interrupt stays pending, the guest runs on
  })
  it("NMI exiting: an NMI exits (interruption info type 2 vector 2); without it the guest's handler runs", () => {
    const on = vm("nop\nhlt", (lp, core) => {
      set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.NMI_EXITING)
      core.requestNmi()
    })
    expect(on.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(on.read(F.VM_EXIT_INTR_INFO)).toBe(0x8000_0202n)
    const off = vm("nop\nhlt", (_lp, core) => core.requestNmi())
    reachedHlt(off)
    expect(off.core.getReg(0)).toBe(2n) // the IDT stub for vector 2 ran
  })
  it("virtual NMIs + NMI-window exiting: exits when there is no virtual-NMI blocking, not while blocked", () => {
    const config = (blocked: boolean) => (lp: LogicalProcessor) => {
      set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.NMI_EXITING | PinControl.VIRTUAL_NMIS)
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.NMI_WINDOW_EXITING)
      if (blocked) lp.vmwrite(F.GUEST_INTERRUPTIBILITY_INFO, 8n)
    }
    expect(vm("hlt", config(false)).reason).toBe(ExitReason.NMI_WINDOW)
    reachedHlt(vm("hlt", config(true)))
  })
  it("VMX-preemption timer: value 0 exits before the first instruction; larger values after TSC >> 7 ticks; saved on exit", () => {
    const zero = vm("nop\nhlt", (lp) => {
      set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.VMX_PREEMPTION_TIMER)
      lp.vmwrite(F.VMX_PREEMPTION_TIMER_VALUE, 0n)
    })
    expect(zero.reason).toBe(ExitReason.PREEMPTION_TIMER)
    expect(zero.read(F.GUEST_RIP)).toBe(0x100000n)
    const two = vm("spin: jmp spin", (lp) => {
      set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.VMX_PREEMPTION_TIMER)
      set(lp, F.VM_EXIT_CONTROLS, ExitControl.SAVE_VMX_PREEMPTION_TIMER)
      lp.vmwrite(F.VMX_PREEMPTION_TIMER_VALUE, 2n)
    })
    expect(two.reason).toBe(ExitReason.PREEMPTION_TIMER)
    expect(two.core.instructionsRetired).toBe(256) // 2 ticks of TSC >> 7 (IA32_VMX_MISC bits 4:0 = 7)
    expect(two.read(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(0n)
    const off = vm("spin: jmp spin", () => {}, 1000)
    expect(off.status).toBe(VmxStatus.GuestRunning) // no timer: the guest just keeps running
  })
})

describe("primary processor-based controls", () => {
  it("interrupt-window exiting: exits as soon as RFLAGS.IF = 1 and no STI blocking", () => {
    const on = vm("nop\nhlt", (lp) => {
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.INTR_WINDOW_EXITING)
      lp.vmwrite(F.GUEST_RFLAGS, 0x202n)
    })
    expect(on.reason).toBe(ExitReason.INTERRUPT_WINDOW)
    reachedHlt(vm("nop\nhlt", primary(PrimaryControl.INTR_WINDOW_EXITING))) // IF = 0: the window stays closed
  })
  it("use TSC offsetting: RDTSC returns TSC + TSC_OFFSET only when the control is 1", () => {
    const tscOf = (run: Run) => (run.core.getReg(2) << 32n) | run.core.getReg(0)
    const base = vm("rdtsc\nhlt")
    const offset = vm("rdtsc\nhlt", (lp) => {
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_TSC_OFFSETTING)
      lp.vmwrite(F.TSC_OFFSET, 1_000_000_000n)
    })
    const ignored = vm("rdtsc\nhlt", (lp) => lp.vmwrite(F.TSC_OFFSET, 1_000_000_000n))
    expect(tscOf(offset) - tscOf(base)).toBe(1_000_000_000n)
    expect(tscOf(ignored)).toBe(tscOf(base))
  })
  it("HLT exiting", () => {
    expect(vm("hlt").reason).toBe(ExitReason.HLT)
    const off = vm("hlt", (lp) => clear(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.HLT_EXITING))
    expect(off.status).toBe(VmxStatus.GuestRunning)
    expect(off.lp.guestHalted).toBe(true)
  })
  it("INVLPG exiting: qualification is the linear address", () => {
    const on = vm("invlpg [0x5000]\nhlt", primary(PrimaryControl.INVLPG_EXITING))
    expect(on.reason).toBe(ExitReason.INVLPG)
    expect(on.qualification).toBe(0x5000n)
    expect(on.read(F.VM_EXIT_INSTRUCTION_LEN)).toBe(8n) // 0f 01 3c 25 00 50 00 00
    reachedHlt(vm("invlpg [0x5000]\nhlt"))
  })
  it("MWAIT exiting", () => {
    expect(vm("mwait\nhlt", primary(PrimaryControl.MWAIT_EXITING)).reason).toBe(ExitReason.MWAIT_INSTRUCTION)
    reachedHlt(vm("mwait\nhlt"))
  })
  it("RDPMC exiting", () => {
    expect(vm("xor ecx, ecx\nrdpmc\nhlt", primary(PrimaryControl.RDPMC_EXITING)).reason).toBe(ExitReason.RDPMC)
    reachedHlt(vm("xor ecx, ecx\nrdpmc\nhlt"))
  })
  it("RDTSC exiting", () => {
    const on = vm("rdtsc\nhlt", primary(PrimaryControl.RDTSC_EXITING))
    expect(on.reason).toBe(ExitReason.RDTSC)
    expect(on.read(F.VM_EXIT_INSTRUCTION_LEN)).toBe(2n)
    reachedHlt(vm("rdtsc\nhlt"))
  })
  it("CR3-load exiting, with CR3-target values that do not exit", () => {
    const on = vm("mov rax, cr3\nmov cr3, rax\nhlt", primary(PrimaryControl.CR3_LOAD_EXITING))
    expect(on.reason).toBe(ExitReason.CR_ACCESS)
    expect(on.qualification).toBe(3n) // CR3, MOV to CR, register RAX
    const target = vm("mov rax, cr3\nmov cr3, rax\nhlt", (lp) => {
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.CR3_LOAD_EXITING)
      lp.vmwrite(F.CR3_TARGET_COUNT, 1n)
      lp.vmwrite(F.CR3_TARGET_VALUE0, 0x1000n)
    })
    reachedHlt(target)
    reachedHlt(vm("mov rax, cr3\nmov cr3, rax\nhlt"))
  })
  it("CR3-store exiting", () => {
    const on = vm("mov rbx, cr3\nhlt", primary(PrimaryControl.CR3_STORE_EXITING))
    expect(on.reason).toBe(ExitReason.CR_ACCESS)
    expect(on.qualification).toBe(0x313n) // CR3, MOV from CR, register RBX (3)
    reachedHlt(vm("mov rbx, cr3\nhlt"))
  })
  it("CR8-load and CR8-store exiting", () => {
    const load = vm("mov cr8, rax\nhlt", primary(PrimaryControl.CR8_LOAD_EXITING))
    expect(load.reason).toBe(ExitReason.CR_ACCESS)
    expect(load.qualification).toBe(8n)
    const store = vm("mov rax, cr8\nhlt", primary(PrimaryControl.CR8_STORE_EXITING))
    expect(store.qualification).toBe(0x18n)
    reachedHlt(vm("mov cr8, rax\nmov rax, cr8\nhlt"))
  })
  it("MOV-DR exiting", () => {
    expect(vm("mov rax, dr7\nhlt", primary(PrimaryControl.MOV_DR_EXITING)).reason).toBe(ExitReason.DR_ACCESS)
    reachedHlt(vm("mov rax, dr7\nhlt"))
  })
  it("unconditional I/O exiting: qualification has size, direction, immediate operand and port", () => {
    const on = vm("out 0x80, al\nhlt", primary(PrimaryControl.UNCOND_IO_EXITING))
    expect(on.reason).toBe(ExitReason.IO_INSTRUCTION)
    expect(on.qualification).toBe(0x0080_0040n)
    reachedHlt(vm("out 0x80, al\nhlt"))
  })
  it("use I/O bitmaps: only ports whose bit is 1 exit; unconditional I/O exiting is then ignored", () => {
    const withBitmaps = (lp: LogicalProcessor) => {
      const a = lp.memory.allocPage()!
      const b = lp.memory.allocPage()!
      lp.memory.write8(Number(a) + (0x80 >> 3), 1 << (0x80 & 7))
      lp.memory.write8(Number(b) + ((0x9000 - 0x8000) >> 3), 1 << (0x9000 & 7))
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_IO_BITMAPS | PrimaryControl.UNCOND_IO_EXITING)
      lp.vmwrite(F.IO_BITMAP_A, a)
      lp.vmwrite(F.IO_BITMAP_B, b)
    }
    expect(vm("out 0x80, al\nhlt", withBitmaps).reason).toBe(ExitReason.IO_INSTRUCTION)
    reachedHlt(vm("out 0x81, al\nin al, 0x60\nhlt", withBitmaps))
    const high = vm("mov dx, 0x9000\nin eax, dx\nhlt", withBitmaps)
    expect(high.reason).toBe(ExitReason.IO_INSTRUCTION)
    expect(high.qualification).toBe(0x9000_000bn) // 4 bytes, IN, DX operand
  })
  it("monitor trap flag: an exit after every instruction", () => {
    const on = vm("nop\nnop\nhlt", primary(PrimaryControl.MONITOR_TRAP_FLAG))
    expect(on.reason).toBe(ExitReason.MONITOR_TRAP_FLAG)
    expect(on.read(F.GUEST_RIP)).toBe(0x100001n)
    reachedHlt(vm("nop\nnop\nhlt"))
  })
  it("use MSR bitmaps: RDMSR/WRMSR exit only for MSRs whose bit is 1; without bitmaps every MSR access exits", () => {
    const bitmaps = (lp: LogicalProcessor) => {
      const page = lp.memory.allocPage()!
      lp.memory.write8(Number(page) + (0x174 >> 3), 1 << (0x174 & 7)) // read-low: IA32_SYSENTER_CS
      lp.memory.write8(Number(page) + 3072 + (0x82 >> 3), 1 << (0x82 & 7)) // write-high: IA32_LSTAR
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_MSR_BITMAPS)
      lp.vmwrite(F.MSR_BITMAP, page)
    }
    expect(vm("mov ecx, 0x174\nrdmsr\nhlt", bitmaps).reason).toBe(ExitReason.MSR_READ)
    reachedHlt(vm("mov ecx, 0x175\nrdmsr\nhlt", bitmaps))
    expect(vm("mov ecx, 0xc0000082\nxor eax, eax\nxor edx, edx\nwrmsr\nhlt", bitmaps).reason).toBe(ExitReason.MSR_WRITE)
    reachedHlt(vm("mov ecx, 0xc0000082\nrdmsr\nhlt", bitmaps))
    expect(vm("mov ecx, 0x175\nrdmsr\nhlt").reason).toBe(ExitReason.MSR_READ)
  })
  it("MONITOR exiting", () => {
    expect(vm("monitor\nhlt", primary(PrimaryControl.MONITOR_EXITING)).reason).toBe(ExitReason.MONITOR_INSTRUCTION)
    reachedHlt(vm("monitor\nhlt"))
  })
  it("PAUSE exiting", () => {
    expect(vm("pause\nhlt", primary(PrimaryControl.PAUSE_EXITING)).reason).toBe(ExitReason.PAUSE_INSTRUCTION)
    reachedHlt(vm("pause\nhlt"))
  })
})

describe("secondary processor-based controls", () => {
  const withEpt = (permissions: number) => (lp: LogicalProcessor) => {
    const { eptp } = identityEpt(lp, permissions)
    secondary(lp, SecondaryControl.ENABLE_EPT)
    lp.vmwrite(F.EPT_POINTER, eptp)
  }
  it("enable EPT: guest-physical accesses go through EPT; a write to a read/execute-only page is an EPT violation (48)", () => {
    reachedHlt(vm("mov rax, [0x5000]\nmov [0x5000], rax\nhlt", withEpt(7)))
    const violation = vm("mov rax, [0x5000]\nmov [0x5008], rax\nhlt", withEpt(5))
    expect(violation.reason).toBe(ExitReason.EPT_VIOLATION)
    // Write access (bit 1), the translation allows read+execute (bits 3 and 5), linear address valid (7), final access (8).
    expect(violation.qualification).toBe(0x1aan)
    // The full guest-physical address of the access, not its page (SDM 27.2.1).
    expect(violation.read(F.GUEST_PHYSICAL_ADDRESS)).toBe(0x5008n)
    expect(violation.read(F.GUEST_LINEAR_ADDRESS)).toBe(0x5008n)
  })
  it("an EPT entry that is writable but not readable is an EPT misconfiguration (49)", () => {
    const run = vm("hlt", withEpt(2))
    expect(run.reason).toBe(ExitReason.EPT_MISCONFIG)
    // The first guest-physical access is the paging walk's read of the PML4 at CR3 = 0x1000.
    expect(run.read(F.GUEST_PHYSICAL_ADDRESS)).toBe(0x1000n)
  })
  it("enable RDTSCP with RDTSC exiting: RDTSCP exits with reason 51", () => {
    const on = vm("rdtscp\nhlt", (lp) => {
      secondary(lp, SecondaryControl.ENABLE_RDTSCP)
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.RDTSC_EXITING)
    })
    expect(on.reason).toBe(ExitReason.RDTSCP)
    reachedHlt(vm("rdtscp\nhlt", (lp) => secondary(lp, SecondaryControl.ENABLE_RDTSCP)))
  })
  it("enable RDTSCP clear: RDTSCP raises #UD in the guest (before RDTSC exiting is consulted)", () => {
    const off = vm("rdtscp\nhlt", (lp) => {
      lp.vmwrite(F.EXCEPTION_BITMAP, 1n << 6n)
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.RDTSC_EXITING)
    })
    expect(off.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(off.read(F.VM_EXIT_INTR_INFO)).toBe(0x8000_0306n) // valid, hardware exception, #UD
  })
  it("WBINVD exiting: WBINVD exits with reason 54 and its length; without the control it runs", () => {
    const on = vm("wbinvd\nhlt", (lp) => secondary(lp, SecondaryControl.WBINVD_EXITING))
    expect(on.reason).toBe(ExitReason.WBINVD)
    expect(on.read(F.VM_EXIT_INSTRUCTION_LEN)).toBe(2n)
    reachedHlt(vm("wbinvd\nhlt", (lp) => secondary(lp, 0)))
  })
  it("descriptor-table exiting: SGDT/LIDT exit with reason 46, SLDT/STR with 47; without the control they run", () => {
    const sgdt = vm("sgdt [0x5000]\nhlt", (lp) => secondary(lp, SecondaryControl.DESC))
    expect(sgdt.reason).toBe(ExitReason.GDTR_IDTR)
    expect(sgdt.read(F.VM_EXIT_INSTRUCTION_LEN)).toBe(8n)
    // VM-exit instruction information, bits 29:28: instruction identity (SDM Tables 27-10, 27-11).
    const identity = (run: Run): bigint => (run.read(F.VMX_INSTRUCTION_INFO) >> 28n) & 3n
    expect(identity(sgdt)).toBe(0n) // SGDT
    const lidt = vm("lidt [0x5000]\nhlt", (lp) => secondary(lp, SecondaryControl.DESC))
    expect(lidt.reason).toBe(ExitReason.GDTR_IDTR)
    expect(identity(lidt)).toBe(3n) // LIDT
    const sldt = vm("sldt ax\nhlt", (lp) => secondary(lp, SecondaryControl.DESC))
    expect(sldt.reason).toBe(ExitReason.LDTR_TR)
    expect(identity(sldt)).toBe(0n) // SLDT
    expect((sldt.read(F.VMX_INSTRUCTION_INFO) >> 10n) & 1n).toBe(1n) // register operand
    const str = vm("str ax\nhlt", (lp) => secondary(lp, SecondaryControl.DESC))
    expect(str.reason).toBe(ExitReason.LDTR_TR)
    expect(identity(str)).toBe(1n) // STR
    reachedHlt(vm("sgdt [0x5000]\nsldt ax\nhlt", (lp) => secondary(lp, 0)))
  })
  it("enable VPID: the guest runs with a nonzero VPID; VPID 0 is refused with error 7", () => {
    reachedHlt(
      vm("hlt", (lp) => {
        secondary(lp, SecondaryControl.ENABLE_VPID)
        lp.vmwrite(F.VIRTUAL_PROCESSOR_ID, 1n)
      }),
    )
    const zero = vm("hlt", (lp) => secondary(lp, SecondaryControl.ENABLE_VPID))
    expect(zero.status).toBe(VmxStatus.FailValid)
    expect(zero.lp.lastError).toBe(7)
  })
})

describe("exception bitmap, CR masks and shadows", () => {
  it("exception bitmap: #UD exits with its interruption information; without the bit the guest's handler runs", () => {
    const on = vm("ud2\nhlt", (lp) => lp.vmwrite(F.EXCEPTION_BITMAP, 1n << 6n))
    expect(on.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(on.read(F.VM_EXIT_INTR_INFO)).toBe(0x8000_0306n) // valid, hardware exception, vector 6
    const off = vm("ud2\nhlt")
    reachedHlt(off)
    expect(off.core.getReg(0)).toBe(6n)
  })
  it("#PF with the page-fault error-code mask and match: only write faults exit when mask = match = 2", () => {
    const pfec = (lp: LogicalProcessor) => {
      lp.vmwrite(F.EXCEPTION_BITMAP, 1n << 14n)
      lp.vmwrite(F.PAGE_FAULT_ERROR_CODE_MASK, 2n)
      lp.vmwrite(F.PAGE_FAULT_ERROR_CODE_MATCH, 2n)
    }
    const unmapped = "0x8000000000"
    const write = vm(`mov rax, ${unmapped}\nmov [rax], rax\nhlt`, pfec)
    expect(write.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(write.read(F.VM_EXIT_INTR_INFO)).toBe(0x8000_0b0en) // error code valid, hardware exception, #PF
    expect(write.read(F.VM_EXIT_INTR_ERROR_CODE)).toBe(2n)
    expect(write.qualification).toBe(0x80_0000_0000n) // the faulting linear address
    const read = vm(`mov rax, ${unmapped}\nmov rax, [rax]\nhlt`, pfec)
    reachedHlt(read)
    expect(read.core.getReg(0)).toBe(14n) // delivered to the guest's #PF handler
  })
  it("CR0 guest/host mask and read shadow: reads of owned bits see the shadow; writes changing them exit", () => {
    const owned = (lp: LogicalProcessor) => {
      lp.vmwrite(F.CR0_GUEST_HOST_MASK, 0x8n) // CR0.TS is the host's
      lp.vmwrite(F.CR0_READ_SHADOW, 0x8n) // the guest believes TS = 1
    }
    const read = vm("mov rax, cr0\nhlt", owned)
    reachedHlt(read)
    expect(read.core.getReg(0)).toBe(0x8000_0039n)
    const same = vm("mov rax, cr0\nmov cr0, rax\nhlt", owned) // writes TS = 1 = shadow: no exit
    reachedHlt(same)
    const change = vm("mov rax, cr0\nand eax, ~8\nmov cr0, rax\nhlt", owned)
    expect(change.reason).toBe(ExitReason.CR_ACCESS)
    expect(change.qualification).toBe(0n) // CR0, MOV to CR, RAX
    reachedHlt(vm("mov rax, cr0\nand eax, ~8\nmov cr0, rax\nhlt")) // no mask: the guest owns TS
  })
  it("CR4 guest/host mask and read shadow hide CR4.VMXE from the guest, as KVM does", () => {
    const hidden = vm("mov rax, cr4\nhlt", (lp) => {
      lp.vmwrite(F.CR4_GUEST_HOST_MASK, 0x2000n)
      lp.vmwrite(F.CR4_READ_SHADOW, 0n)
    })
    expect(hidden.core.getReg(0)).toBe(0x20n)
    const setting = vm("mov rax, cr4\nor eax, 0x2000\nmov cr4, rax\nhlt", (lp) => {
      lp.vmwrite(F.CR4_GUEST_HOST_MASK, 0x2000n)
      lp.vmwrite(F.CR4_READ_SHADOW, 0n)
    })
    expect(setting.reason).toBe(ExitReason.CR_ACCESS)
    expect(setting.qualification).toBe(4n)
    expect(vm("mov rax, cr4\nhlt").core.getReg(0)).toBe(0x2020n)
  })
})

describe("VM exits and entries round trip guest state", () => {
  it("VMRESUME after advancing RIP continues the guest where the host says", () => {
    const run = vm("vmcall\nmov eax, 7\nhlt")
    expect(run.reason).toBe(ExitReason.VMCALL)
    expect(run.read(F.VM_EXIT_INSTRUCTION_LEN)).toBe(3n)
    const lp = run.lp
    lp.vmwrite(F.GUEST_RIP, run.read(F.GUEST_RIP) + run.read(F.VM_EXIT_INSTRUCTION_LEN))
    expect(lp.vmresume()).toBe(VmxStatus.VmExit)
    expect(run.read(F.VM_EXIT_REASON)).toBe(BigInt(ExitReason.HLT))
    expect(run.core.getReg(0)).toBe(7n)
    expect(lp.exits).toBe(2)
  })
  it("event injection from VM_ENTRY_INTR_INFO_FIELD delivers through the guest IDT; the valid bit clears on exit", () => {
    const run = vm("hlt", (lp) => lp.vmwrite(F.VM_ENTRY_INTR_INFO_FIELD, BigInt(0x8000_0000 | (3 << 8) | 13) | 0x800n))
    reachedHlt(run)
    expect(run.core.getReg(0)).toBe(13n) // #GP handler ran
    expect(run.read(F.VM_ENTRY_INTR_INFO_FIELD) >> 31n).toBe(0n)
  })
  it("the VM-entry MSR-load list loads guest MSRs; a bad entry fails the entry with reason 34 and its 1-based index", () => {
    const ok = vm("mov ecx, 0xc0000082\nrdmsr\nhlt", (lp) => {
      const area = lp.memory.allocPage()!
      lp.memory.write32(Number(area), 0xc000_0082)
      lp.memory.write64(area + 8n, 0xffff_ffff_8100_0000n)
      lp.vmwrite(F.VM_ENTRY_MSR_LOAD_ADDR, area)
      lp.vmwrite(F.VM_ENTRY_MSR_LOAD_COUNT, 1n)
      lp.vmwrite(F.MSR_BITMAP, lp.memory.allocPage()!) // all zero: RDMSR runs in the guest
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_MSR_BITMAPS)
    })
    reachedHlt(ok)
    expect(ok.core.getReg(0)).toBe(0x8100_0000n)
    const bad = vm("hlt", (lp) => {
      const area = lp.memory.allocPage()!
      lp.memory.write32(Number(area), 0xc000_0082)
      lp.memory.write32(Number(area) + 16, 0xc000_0100) // IA32_FS_BASE may not be loaded this way
      lp.vmwrite(F.VM_ENTRY_MSR_LOAD_ADDR, area)
      lp.vmwrite(F.VM_ENTRY_MSR_LOAD_COUNT, 2n)
    })
    expect(bad.status).toBe(VmxStatus.VmExit)
    expect(bad.reason).toBe(0x8000_0022)
    expect(bad.qualification).toBe(2n)
    expect(bad.lp.currentLaunched).toBe(false)
  })
  it("the VM-exit MSR-store list receives guest MSR values", () => {
    let area = 0n
    const run = vm("mov ecx, 0x175\nmov eax, 0x1234\nxor edx, edx\nwrmsr\nhlt", (lp) => {
      area = lp.memory.allocPage()!
      lp.memory.write32(Number(area), 0x175)
      lp.vmwrite(F.VM_EXIT_MSR_STORE_ADDR, area)
      lp.vmwrite(F.VM_EXIT_MSR_STORE_COUNT, 1n)
      lp.vmwrite(F.MSR_BITMAP, lp.memory.allocPage()!)
      set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_MSR_BITMAPS)
    })
    reachedHlt(run)
    expect(run.lp.memory.read64(area + 8n)).toBe(0x1234n)
    expect(run.read(F.GUEST_SYSENTER_ESP)).toBe(0x1234n)
  })
})

describe("activity state and VMX abort", () => {
  it("entry with GUEST_ACTIVITY_STATE = HLT leaves the guest waiting; an injected interrupt wakes it", () => {
    const waiting = vm("mov eax, 1\nhlt", (lp) => {
      lp.vmwrite(F.GUEST_ACTIVITY_STATE, 1n)
      clear(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.HLT_EXITING)
    })
    expect(waiting.status).toBe(VmxStatus.GuestRunning)
    expect(waiting.lp.guestHalted).toBe(true)
    expect(waiting.core.getReg(0)).toBe(0n) // not one instruction ran
    const woken = vm("mov eax, 1\nhlt", (lp) => {
      lp.vmwrite(F.GUEST_ACTIVITY_STATE, 1n)
      lp.vmwrite(F.VM_ENTRY_INTR_INFO_FIELD, BigInt(0x8000_0000 | (3 << 8) | 6)) // inject #UD
    })
    reachedHlt(woken)
    expect(woken.core.getReg(0)).toBe(6n) // the #UD handler ran, then its HLT exited
  })
  it("a failing VM-exit MSR-load entry is a VMX abort: indicator 4 in the region, processor shut down", () => {
    let vmcs = 0n
    const run = vm("hlt", (lp) => {
      const area = lp.memory.allocPage()!
      lp.memory.write32(Number(area), 0xc000_0100) // IA32_FS_BASE cannot be loaded from the list
      lp.vmwrite(F.VM_EXIT_MSR_LOAD_ADDR, area)
      lp.vmwrite(F.VM_EXIT_MSR_LOAD_COUNT, 1n)
      vmcs = BigInt(lp.currentVmcs)
    })
    expect(run.status).toBe(VmxStatus.Refused)
    expect(run.lp.shutdown).toBe(true)
    expect(run.lp.memory.read32(Number(vmcs) + 4)).toBe(4)
    expect(run.lp.vmread(F.GUEST_RIP)).toBe(VmxStatus.Refused)
    expect(run.lp.refusal).toContain("VMX abort")
  })
})
