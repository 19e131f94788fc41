// VM-entry checks one at a time: starting from a valid VMCS, break exactly one rule and see the
// SDM's outcome — VMfailValid(7) for controls, VMfailValid(8) for host state, a failed entry
// (exit reason 33 | 0x80000000, the check's qualification, launch state still clear) for guest
// state — and the name of the check that failed. Plus the incremental == full property.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { entryChecks } from "../../../src/arch/vmx/entry-checks.ts"
import { EntryControl, ExitControl, PinControl, PrimaryControl, SecondaryControl } from "../../../src/arch/vmx/control-bits.ts"
import { firstFailingCheck } from "../../../src/hypervisor/vmx/entry-check-engine.ts"
import { VmxCapabilities } from "../../../src/hypervisor/vmx/capabilities.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

const read = (lp: LogicalProcessor, field: number): bigint => {
  expect(lp.vmread(field)).toBe(VmxStatus.Succeed)
  return lp.value
}
const write = (lp: LogicalProcessor, field: number, value: bigint | number): void => {
  expect(lp.vmwrite(field, BigInt(value))).toBe(VmxStatus.Succeed)
}
const or = (lp: LogicalProcessor, field: number, bits: number): void => write(lp, field, read(lp, field) | BigInt(bits >>> 0))
const andNot = (lp: LogicalProcessor, field: number, bits: number): void => write(lp, field, read(lp, field) & ~BigInt(bits >>> 0))
const secondary = (lp: LogicalProcessor, bits: number): void => {
  or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.ACTIVATE_SECONDARY_CONTROLS)
  or(lp, F.SECONDARY_VM_EXEC_CONTROL, bits)
}

/** One mutation per implemented check, making exactly that check fail. */
const breakers: Record<string, (lp: LogicalProcessor) => void> = {
  "ctl.pin.allowed": (lp) => andNot(lp, F.PIN_BASED_VM_EXEC_CONTROL, 0x16),
  "ctl.primary.allowed": (lp) => or(lp, F.CPU_BASED_VM_EXEC_CONTROL, 1 << 17),
  "ctl.secondary.allowed": (lp) => secondary(lp, 1 << 22),
  "ctl.cr3-target-count": (lp) => write(lp, F.CR3_TARGET_COUNT, 5),
  "ctl.io-bitmaps": (lp) => {
    or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_IO_BITMAPS)
    write(lp, F.IO_BITMAP_A, 0x1000)
    write(lp, F.IO_BITMAP_B, 0x2008)
  },
  "ctl.msr-bitmap": (lp) => {
    or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.USE_MSR_BITMAPS)
    write(lp, F.MSR_BITMAP, 1n << 40n)
  },
  "ctl.tpr-shadow": (lp) => {
    or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.TPR_SHADOW)
    write(lp, F.VIRTUAL_APIC_PAGE_ADDR, 0x3000)
    write(lp, F.TPR_THRESHOLD, 0x10)
  },
  "ctl.apic-virtualization-needs-tpr-shadow": (lp) => secondary(lp, SecondaryControl.VIRTUALIZE_X2APIC_MODE),
  "ctl.virtual-nmis-need-nmi-exiting": (lp) => or(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.VIRTUAL_NMIS),
  "ctl.nmi-window-needs-virtual-nmis": (lp) => or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.NMI_WINDOW_EXITING),
  "ctl.apic-access-address": (lp) => {
    secondary(lp, SecondaryControl.VIRTUALIZE_APIC_ACCESSES)
    write(lp, F.APIC_ACCESS_ADDR, 0xfee00001)
  },
  "ctl.x2apic-excludes-apic-accesses": (lp) => {
    or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.TPR_SHADOW)
    write(lp, F.VIRTUAL_APIC_PAGE_ADDR, 0x3000)
    secondary(lp, SecondaryControl.VIRTUALIZE_X2APIC_MODE | SecondaryControl.VIRTUALIZE_APIC_ACCESSES)
  },
  "ctl.virtual-interrupt-delivery-needs-external-interrupt-exiting": (lp) => {
    or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.TPR_SHADOW)
    write(lp, F.VIRTUAL_APIC_PAGE_ADDR, 0x3000)
    secondary(lp, SecondaryControl.VIRTUAL_INTR_DELIVERY)
  },
  "ctl.posted-interrupts": (lp) => {
    or(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.POSTED_INTR | PinControl.EXT_INTR_MASK)
    or(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.TPR_SHADOW)
    write(lp, F.VIRTUAL_APIC_PAGE_ADDR, 0x3000)
    secondary(lp, SecondaryControl.VIRTUAL_INTR_DELIVERY)
    // "acknowledge interrupt on exit" is still 0.
  },
  "ctl.vpid-nonzero": (lp) => secondary(lp, SecondaryControl.ENABLE_VPID),
  "ctl.ept-pointer": (lp) => {
    secondary(lp, SecondaryControl.ENABLE_EPT)
    write(lp, F.EPT_POINTER, 0x5000n | 6n | (4n << 3n)) // 5-level walk: unsupported here
  },
  "ctl.unrestricted-guest-needs-ept": (lp) => secondary(lp, SecondaryControl.UNRESTRICTED_GUEST),
  "ctl.pml": (lp) => secondary(lp, SecondaryControl.ENABLE_PML),
  "ctl.vm-functions": (lp) => {
    secondary(lp, SecondaryControl.ENABLE_VMFUNC)
    write(lp, F.VM_FUNCTION_CONTROL, 2)
  },
  "ctl.vmcs-shadowing": (lp) => {
    secondary(lp, SecondaryControl.SHADOW_VMCS)
    write(lp, F.VMREAD_BITMAP, 0x10)
  },
  "ctl.ept-violation-ve": (lp) => {
    secondary(lp, SecondaryControl.EPT_VIOLATION_VE)
    write(lp, F.VE_INFORMATION_ADDRESS, 0x10)
  },
  "ctl.exit.allowed": (lp) => or(lp, F.VM_EXIT_CONTROLS, 1 << 30),
  "ctl.exit.save-preemption-timer": (lp) => or(lp, F.VM_EXIT_CONTROLS, ExitControl.SAVE_VMX_PREEMPTION_TIMER),
  "ctl.exit.msr-store-area": (lp) => {
    write(lp, F.VM_EXIT_MSR_STORE_COUNT, 1)
    write(lp, F.VM_EXIT_MSR_STORE_ADDR, 0x1008)
  },
  "ctl.exit.msr-load-area": (lp) => {
    write(lp, F.VM_EXIT_MSR_LOAD_COUNT, 2)
    write(lp, F.VM_EXIT_MSR_LOAD_ADDR, (1n << 39n) - 16n) // the second entry crosses MAXPHYADDR
  },
  "ctl.entry.allowed": (lp) => or(lp, F.VM_ENTRY_CONTROLS, 1 << 25),
  "ctl.entry.event-injection": (lp) => write(lp, F.VM_ENTRY_INTR_INFO_FIELD, 0x8000_0000 | (1 << 8) | 32),
  "ctl.entry.msr-load-area": (lp) => {
    write(lp, F.VM_ENTRY_MSR_LOAD_COUNT, 1)
    write(lp, F.VM_ENTRY_MSR_LOAD_ADDR, 0x1004)
  },
  "ctl.entry.smm": (lp) => or(lp, F.VM_ENTRY_CONTROLS, EntryControl.SMM),
  "host.cr0.fixed": (lp) => andNot(lp, F.HOST_CR0, 1 << 5),
  "host.cr4.fixed0": (lp) => andNot(lp, F.HOST_CR4, 1 << 13),
  "host.cr4.fixed1": (lp) => or(lp, F.HOST_CR4, 1 << 12),
  "host.cr3.width": (lp) => write(lp, F.HOST_CR3, 1n << 45n),
  "host.sysenter.canonical": (lp) => write(lp, F.HOST_IA32_SYSENTER_EIP, 0x0000_8000_0000_0000n),
  "host.perf-global-ctrl": (lp) => {
    or(lp, F.VM_EXIT_CONTROLS, ExitControl.LOAD_IA32_PERF_GLOBAL_CTRL)
    write(lp, F.HOST_IA32_PERF_GLOBAL_CTRL, 1n << 40n)
  },
  "host.pat": (lp) => {
    or(lp, F.VM_EXIT_CONTROLS, ExitControl.LOAD_IA32_PAT)
    write(lp, F.HOST_IA32_PAT, 0x0007_0406_0007_0402n)
  },
  "host.efer": (lp) => {
    or(lp, F.VM_EXIT_CONTROLS, ExitControl.LOAD_IA32_EFER)
    write(lp, F.HOST_IA32_EFER, 0x101n) // LME without LMA
  },
  "host.selectors.rpl-ti": (lp) => write(lp, F.HOST_DS_SELECTOR, 0x1b),
  "host.cs.nonzero": (lp) => write(lp, F.HOST_CS_SELECTOR, 0),
  "host.tr.nonzero": (lp) => write(lp, F.HOST_TR_SELECTOR, 0),
  "host.ss.nonzero": (lp) => {
    andNot(lp, F.VM_EXIT_CONTROLS, ExitControl.HOST_ADDR_SPACE_SIZE)
    lp.root.efer &= ~0x500n // a processor outside IA-32e mode
    andNot(lp, F.VM_ENTRY_CONTROLS, EntryControl.IA32E_MODE)
    write(lp, F.HOST_SS_SELECTOR, 0)
  },
  "host.bases.canonical": (lp) => write(lp, F.HOST_GS_BASE, 0x0001_0000_0000_0000n),
  "host.address-space": (lp) => andNot(lp, F.VM_EXIT_CONTROLS, ExitControl.HOST_ADDR_SPACE_SIZE),
  "host.address-space.legacy": (lp) => {
    andNot(lp, F.VM_EXIT_CONTROLS, ExitControl.HOST_ADDR_SPACE_SIZE)
    lp.root.efer &= ~0x500n
    andNot(lp, F.VM_ENTRY_CONTROLS, EntryControl.IA32E_MODE)
    andNot(lp, F.HOST_CR4, 1 << 17)
    write(lp, F.HOST_RIP, 0x1_0000_0000n)
  },
  "host.address-space.ia32e": (lp) => andNot(lp, F.HOST_CR4, 1 << 5),
  "guest.cr0.fixed": (lp) => andNot(lp, F.GUEST_CR0, 1 << 5),
  "guest.cr0.pg-needs-pe": (lp) => {
    secondary(lp, SecondaryControl.UNRESTRICTED_GUEST | SecondaryControl.ENABLE_EPT)
    write(lp, F.EPT_POINTER, 0x5000n | 6n | (3n << 3n))
    andNot(lp, F.GUEST_CR0, 1)
  },
  "guest.cr4.fixed": (lp) => andNot(lp, F.GUEST_CR4, 1 << 13),
  "guest.debug-controls": (lp) => {
    or(lp, F.VM_ENTRY_CONTROLS, EntryControl.LOAD_DEBUG_CONTROLS)
    write(lp, F.GUEST_DR7, 1n << 32n)
  },
  "guest.ia32e-mode": (lp) => andNot(lp, F.GUEST_CR4, 1 << 5),
  "guest.cr3.width": (lp) => write(lp, F.GUEST_CR3, 1n << 39n),
  "guest.sysenter.canonical": (lp) => write(lp, F.GUEST_SYSENTER_ESP, 0x00ff_0000_0000_0000n),
  "guest.perf-global-ctrl": (lp) => {
    or(lp, F.VM_ENTRY_CONTROLS, EntryControl.LOAD_IA32_PERF_GLOBAL_CTRL)
    write(lp, F.GUEST_IA32_PERF_GLOBAL_CTRL, 1n << 10n)
  },
  "guest.pat": (lp) => {
    or(lp, F.VM_ENTRY_CONTROLS, EntryControl.LOAD_IA32_PAT)
    write(lp, F.GUEST_IA32_PAT, 0x0800_0000_0000_0000n)
  },
  "guest.efer": (lp) => {
    or(lp, F.VM_ENTRY_CONTROLS, EntryControl.LOAD_IA32_EFER)
    write(lp, F.GUEST_IA32_EFER, 0x100n) // LME without LMA in an IA-32e guest
  },
  "guest.segments.virtual-8086": (lp) => {
    andNot(lp, F.VM_ENTRY_CONTROLS, EntryControl.IA32E_MODE)
    andNot(lp, F.GUEST_CR4, 1 << 5)
    write(lp, F.GUEST_RFLAGS, 0x20002)
  },
  "guest.segments.selectors": (lp) => write(lp, F.GUEST_TR_SELECTOR, 0x1c),
  "guest.segments.bases": (lp) => write(lp, F.GUEST_FS_BASE, 0x8000_0000_0000_0000n),
  "guest.cs.access-rights": (lp) => write(lp, F.GUEST_CS_AR_BYTES, 0xe09b), // L and D both set
  "guest.ss.access-rights": (lp) => write(lp, F.GUEST_SS_AR_BYTES, 0xc091), // type 1
  "guest.data-segments.access-rights": (lp) => write(lp, F.GUEST_DS_AR_BYTES, 0xc013), // not present
  "guest.tr.access-rights": (lp) => write(lp, F.GUEST_TR_AR_BYTES, 0x89), // available, not busy
  "guest.ldtr.access-rights": (lp) => write(lp, F.GUEST_LDTR_AR_BYTES, 0x83),
  "guest.descriptor-tables": (lp) => write(lp, F.GUEST_IDTR_LIMIT, 0x10000),
  "guest.rip": (lp) => write(lp, F.GUEST_RIP, 0x0000_8000_0000_0000n),
  "guest.rflags": (lp) => write(lp, F.GUEST_RFLAGS, 0),
  "guest.activity-state": (lp) => write(lp, F.GUEST_ACTIVITY_STATE, 4),
  "guest.interruptibility": (lp) => write(lp, F.GUEST_INTERRUPTIBILITY_INFO, 1), // STI blocking with IF = 0
  "guest.pending-debug-exceptions": (lp) => write(lp, F.GUEST_PENDING_DBG_EXCEPTIONS, 1n << 20n),
  "guest.vmcs-link-pointer": (lp) => write(lp, F.VMCS_LINK_POINTER, 0x1000),
  "guest.pdptes": (lp) => {
    secondary(lp, SecondaryControl.ENABLE_EPT)
    write(lp, F.EPT_POINTER, 0x5000n | 6n | (3n << 3n))
    andNot(lp, F.VM_ENTRY_CONTROLS, EntryControl.IA32E_MODE)
    andNot(lp, F.GUEST_CR4, 1 << 17)
    andNot(lp, F.GUEST_CS_AR_BYTES, 1 << 13)
    write(lp, F.GUEST_PDPTR2, 0x1003n) // present with reserved bit 1
  },
}

// The Skylake sample allows neither posted interrupts nor virtual-interrupt delivery; these
// checks are exercised on a processor whose capability MSRs allow them.
const capsFor: Record<string, VmxCapabilities> = (() => {
  const apicv = new VmxCapabilities({
    IA32_VMX_TRUE_PINBASED_CTLS: 0x0000_00ff_0000_0016n,
    IA32_VMX_PROCBASED_CTLS2: 0x001f_ffff_0000_0000n,
  })
  return { "ctl.posted-interrupts": apicv, "ctl.virtual-interrupt-delivery-needs-external-interrupt-exiting": apicv }
})()

const freshLp = (caps?: VmxCapabilities) => {
  const { lp } = newHost(1, caps)
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  return lp
}

describe("VM-entry checks", () => {
  it("the valid VMCS passes every check", () => {
    const lp = freshLp()
    expect(firstFailingCheck(lp.checkContext, null)).toBe(-1)
  })

  it("every implemented check has a test that breaks exactly it", () => {
    expect(Object.keys(breakers).sort()).toEqual(entryChecks.map((c) => c.name).sort())
  })

  for (const check of entryChecks) {
    it(`${check.name} → ${check.kind === "control" ? "VMfailValid(7)" : check.kind === "host" ? "VMfailValid(8)" : `exit 33|0x80000000, qualification ${check.qualification}`}`, () => {
      const lp = freshLp(capsFor[check.name])
      breakers[check.name]!(lp)
      const status = lp.vmlaunch()
      expect(lp.lastEntryFailure?.name).toBe(check.name)
      if (check.kind === "guest") {
        expect(status).toBe(VmxStatus.VmExit)
        expect(read(lp, F.VM_EXIT_REASON)).toBe(0x8000_0021n)
        expect(read(lp, F.EXIT_QUALIFICATION)).toBe(BigInt(check.qualification))
        expect(lp.currentLaunched).toBe(false) // launch state stays clear
        expect(lp.root.rip).toBe(0xffff_ffff_8100_0000n) // host state was loaded
      } else {
        expect(status).toBe(VmxStatus.FailValid)
        expect(lp.lastError).toBe(check.kind === "control" ? 7 : 8)
        expect(read(lp, F.VM_INSTRUCTION_ERROR)).toBe(check.kind === "control" ? 7n : 8n)
        expect(lp.currentLaunched).toBe(false)
      }
      expect(lp.explainEntryFailure()).toContain(check.name)
    })
  }

  it("a failed entry explains itself with the bit that is wrong", () => {
    const lp = freshLp()
    breakers["host.cr4.fixed0"]!(lp)
    lp.vmlaunch()
    expect(lp.explainEntryFailure()).toMatch(/^host CR4\.VMXE must be 1 \(IA32_VMX_CR4_FIXED0\)\. Check host\.cr4\.fixed0/)
  })
})

describe("incremental entry checks", () => {
  // Writes that flip checks on and off: each value is valid for some neighbours and not others.
  const writes: Array<[number, ReadonlyArray<bigint>]> = [
    [F.PIN_BASED_VM_EXEC_CONTROL, [0x16n, 0x17n, 0x3en, 0x56n, 0x0n]],
    [F.CPU_BASED_VM_EXEC_CONTROL, [0x0401e1f2n, 0x8401e1f2n, 0x0421e1f2n, 0x0441e1f2n, 0x0601e1f2n, 0x1401e1f2n]],
    [F.SECONDARY_VM_EXEC_CONTROL, [0n, 2n, 0x22n, 0x80n, 0x82n, 0x10n, 0x400000n]],
    [F.VM_EXIT_CONTROLS, [0x36fffn, 0x36dfbn, 0x436fffn, 0x1036fffn]],
    [F.VM_ENTRY_CONTROLS, [0x13ffn, 0x11fbn, 0x17ffn]],
    [F.EPT_POINTER, [0x501en, 0x5026n, 0n]],
    [F.VIRTUAL_PROCESSOR_ID, [0n, 1n]],
    [F.IO_BITMAP_A, [0x1000n, 0x1001n]],
    [F.HOST_CR4, [0x3626e0n, 0x3606e0n, 0x3636e0n]],
    [F.HOST_CS_SELECTOR, [0x10n, 0n, 0x13n]],
    [F.GUEST_CR0, [0x80000031n, 0x80000011n, 0x31n, 0x11n]],
    [F.GUEST_CR4, [0x2020n, 0x20n, 0x2000n]],
    [F.GUEST_RFLAGS, [2n, 0x202n, 0n, 0x20002n]],
    [F.GUEST_INTERRUPTIBILITY_INFO, [0n, 1n, 2n, 3n]],
    [F.GUEST_ACTIVITY_STATE, [0n, 1n, 4n]],
    [F.GUEST_TR_AR_BYTES, [0x8bn, 0x89n, 0x1008bn]],
    [F.VM_ENTRY_INTR_INFO_FIELD, [0n, 0x80000300n | 14n, 0x80000b0en, 0x80000020n]],
    [F.VMCS_LINK_POINTER, [0xffff_ffff_ffff_ffffn, 0x1000n]],
    [F.CR3_TARGET_COUNT, [0n, 4n, 5n]],
    // Segment registers: each field of the segment checks (selectors, bases, limits, rights).
    [F.GUEST_CS_SELECTOR, [0x8n, 0xbn, 0x4n]],
    [F.GUEST_SS_SELECTOR, [0x10n, 0x13n, 0n]],
    [F.GUEST_CS_AR_BYTES, [0xa09bn, 0xa0fbn, 0xc09bn, 0xe09bn, 0xa093n, 0xa09fn]],
    [F.GUEST_SS_AR_BYTES, [0xc093n, 0xc0f3n, 0x10000n, 0xc097n, 0xc09bn]],
    [F.GUEST_DS_AR_BYTES, [0xc093n, 0x10000n, 0xc091n, 0x9bn, 0xc09an]],
    [F.GUEST_GS_AR_BYTES, [0xc093n, 0x10000n, 0x8093n]],
    // With G = 1 the limit's low 12 bits must be ones: 0xffff0000 breaks the granularity rule.
    [F.GUEST_CS_LIMIT, [0xffff_ffffn, 0xfffffn, 0xffff_0000n]],
    [F.GUEST_SS_LIMIT, [0xffff_ffffn, 0xfffffn, 0xffff_0000n]],
    [F.GUEST_GS_LIMIT, [0xffff_ffffn, 0xfffn, 0xffff_0000n]],
    [F.GUEST_CS_BASE, [0n, 0x1_0000_0000n]],
    [F.GUEST_SS_BASE, [0n, 0x1_0000_0000n]],
    [F.GUEST_GS_BASE, [0n, 0x8000_0000_0000n, 0xffff_8000_0000_0000n]],
    [F.GUEST_LDTR_SELECTOR, [0n, 0x4n, 0x20n]],
    [F.GUEST_LDTR_AR_BYTES, [0x10000n, 0x82n, 0x8an]],
    [F.GUEST_LDTR_BASE, [0n, 0x8000_0000_0000n]],
    [F.GUEST_TR_SELECTOR, [0x18n, 0x1cn]],
  ]
  const command = fc.oneof(
    fc.record({ kind: fc.constant("write" as const), field: fc.nat(writes.length - 1), choice: fc.nat(10) }),
    fc.record({ kind: fc.constant("enter" as const) }),
    fc.record({ kind: fc.constant("caps" as const), trueControls: fc.boolean() }),
    fc.record({ kind: fc.constant("hostMode" as const), long: fc.boolean() }),
  )
  it("the first failing check of an incremental run always equals a full run's", () => {
    const trueCaps = new VmxCapabilities()
    const oldCaps = new VmxCapabilities({ IA32_VMX_BASIC: trueCaps.msrs.IA32_VMX_BASIC & ~(1n << 55n) })
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
        const lp = freshLp()
        for (const c of commands) {
          if (c.kind === "write") {
            const [field, values] = writes[c.field]!
            lp.vmwrite(field, values[c.choice % values.length]!)
          } else if (c.kind === "caps") {
            lp.caps = c.trueControls ? trueCaps : oldCaps
          } else if (c.kind === "hostMode") {
            lp.root.efer = c.long ? 0xd01n : 0x1n
          } else {
            const incremental = firstFailingCheck(lp.checkContext, lp.current!.checks)
            const full = firstFailingCheck(lp.checkContext, null)
            expect(incremental).toBe(full)
          }
        }
        expect(firstFailingCheck(lp.checkContext, lp.current!.checks)).toBe(firstFailingCheck(lp.checkContext, null))
      }),
      { numRuns: 400 },
    )
  })
  // From a valid VMCS whose checks are all clean, one changed field can only make checks that
  // read it fail: an incremental run misses the failure exactly when a check under-declares its
  // fields. Each write is then undone, which must pass again.
  it("one field changed from a valid VMCS fails the same check incrementally as in a full run", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(writes.length - 1), fc.nat(10)), { minLength: 1, maxLength: 30 }), (changes) => {
        const lp = freshLp()
        const state = lp.current!.checks
        expect(firstFailingCheck(lp.checkContext, state)).toBe(-1)
        for (const [field, choice] of changes) {
          const [encoding, values] = writes[field]!
          expect(lp.vmread(encoding)).toBe(VmxStatus.Succeed)
          const original = lp.value
          lp.vmwrite(encoding, values[choice % values.length]!)
          expect(firstFailingCheck(lp.checkContext, state)).toBe(firstFailingCheck(lp.checkContext, null))
          lp.vmwrite(encoding, original)
          expect(firstFailingCheck(lp.checkContext, state)).toBe(-1)
        }
      }),
      { numRuns: 300 },
    )
  })
})
