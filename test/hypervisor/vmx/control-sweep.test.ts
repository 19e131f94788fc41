// The kvm-unit-tests-style sweep: every bit 0-31 of the pin-based, primary and secondary
// processor-based, VM-exit and VM-entry controls, set and cleared, against the capability MSRs.
// A setting the allowed-0/allowed-1 bits permit passes the control checks (the guest runs and
// exits, or a later host/guest check decides); any other setting is VMfailValid(7) from the
// check on that control field.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { EntryControl, ExitControl, PinControl, PrimaryControl, SecondaryControl } from "../../../src/arch/vmx/control-bits.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { VmxCapabilities, type ControlAllowed } from "../../../src/hypervisor/vmx/capabilities.ts"
import { adjust, enterVmx, identityEpt, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"
import { newGuestCore } from "./guest-support.ts"

type Group = "pin" | "primary" | "secondary" | "exit" | "entry"
const fieldOf: Record<Group, number> = {
  pin: F.PIN_BASED_VM_EXEC_CONTROL,
  primary: F.CPU_BASED_VM_EXEC_CONTROL,
  secondary: F.SECONDARY_VM_EXEC_CONTROL,
  exit: F.VM_EXIT_CONTROLS,
  entry: F.VM_ENTRY_CONTROLS,
}

/**
 * Controls that other control checks tie to a second setting (SDM 26.2.1): when the swept bit is
 * set, the test also sets what it depends on, so only the allowed-bit check can object.
 */
const prerequisites = (lp: LogicalProcessor, group: Group, mask: number): void => {
  const or = (field: number, bits: number) => {
    lp.vmread(field)
    lp.vmwrite(field, lp.value | BigInt(bits >>> 0))
  }
  if (group === "pin" && mask === PinControl.VIRTUAL_NMIS) or(F.PIN_BASED_VM_EXEC_CONTROL, PinControl.NMI_EXITING)
  if (group === "primary" && mask === PrimaryControl.NMI_WINDOW_EXITING) or(F.PIN_BASED_VM_EXEC_CONTROL, PinControl.NMI_EXITING | PinControl.VIRTUAL_NMIS)
  if (group === "exit" && mask === ExitControl.SAVE_VMX_PREEMPTION_TIMER) or(F.PIN_BASED_VM_EXEC_CONTROL, PinControl.VMX_PREEMPTION_TIMER)
  if (group === "secondary") {
    if (mask === SecondaryControl.VIRTUALIZE_X2APIC_MODE) or(F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.TPR_SHADOW)
    if (mask === SecondaryControl.ENABLE_VPID) lp.vmwrite(F.VIRTUAL_PROCESSOR_ID, 1n)
    if (mask === SecondaryControl.UNRESTRICTED_GUEST || mask === SecondaryControl.ENABLE_PML) or(F.SECONDARY_VM_EXEC_CONTROL, SecondaryControl.ENABLE_EPT)
  }
}

/** Bits the capability MSRs allow to be 1 that a VM entry outside SMM must still leave 0. */
const SMM_ONLY = new Set<number>([EntryControl.SMM, EntryControl.DEACT_DUAL_MONITOR])

const launch = (group: Group, bit: number, set: boolean) => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  const { eptp } = identityEpt(lp)
  lp.vmwrite(F.EPT_POINTER, eptp)
  lp.vmwrite(F.HOST_IA32_EFER, 0xd01n)
  lp.vmwrite(F.GUEST_IA32_EFER, 0x500n)
  if (group === "secondary") {
    lp.vmread(F.CPU_BASED_VM_EXEC_CONTROL)
    lp.vmwrite(F.CPU_BASED_VM_EXEC_CONTROL, lp.value | BigInt(PrimaryControl.ACTIVATE_SECONDARY_CONTROLS >>> 0))
  }
  const mask = (1 << bit) >>> 0
  lp.vmread(fieldOf[group])
  const base = Number(lp.value)
  lp.vmwrite(fieldOf[group], BigInt((set ? base | mask : base & ~mask) >>> 0))
  if (set) prerequisites(lp, group, mask)
  lp.core = newGuestCore([0xf4])
  const status = lp.vmlaunch(1000)
  return { lp, status, mask }
}

describe("control-bit sweep against the capability MSRs", () => {
  const caps = newHost().lp.caps
  const allowedOf: Record<Group, ControlAllowed> = { pin: caps.pin, primary: caps.primary, secondary: caps.secondary, exit: caps.exit, entry: caps.entry }
  for (const group of ["pin", "primary", "secondary", "exit", "entry"] as const) {
    it(`${group}: each bit set and cleared`, () => {
      const allowed = allowedOf[group]
      const successes: Array<string> = []
      for (let bit = 0; bit < 32; bit++) {
        for (const set of [true, false]) {
          const { lp, status, mask } = launch(group, bit, set)
          const permitted = set ? (allowed.allowed1 & mask) !== 0 : (allowed.allowed0 & mask) === 0
          const label = `${group} bit ${bit} ${set ? "set" : "cleared"}`
          if (!permitted) {
            expect(status, label).toBe(VmxStatus.FailValid)
            expect(lp.lastError, label).toBe(7)
            expect(lp.lastEntryFailure?.name, label).toBe(`ctl.${group}.allowed`)
          } else if (group === "entry" && set && SMM_ONLY.has(mask)) {
            expect(status, label).toBe(VmxStatus.FailValid)
            expect(lp.lastEntryFailure?.name, label).toBe("ctl.entry.smm")
          } else {
            // Past the control checks: either the guest ran and exited, or a host/guest-state
            // check that the changed control makes relevant decided (never a control check).
            expect(lp.lastEntryFailure?.kind ?? "none", label).not.toBe("control")
            if (status === VmxStatus.VmExit && (lp.lastExitReason & 0x8000_0000) === 0) successes.push(label)
          }
        }
      }
      // Most permitted settings really run the guest (the exceptions change the guest's or host's mode).
      expect(successes.length).toBeGreaterThan(32)
    })
  }

  it("without TRUE controls (IA32_VMX_BASIC bit 55 = 0) the default-1 bits cannot be cleared", () => {
    const { lp } = newHost()
    const old = new VmxCapabilities({
      IA32_VMX_BASIC: lp.caps.msrs.IA32_VMX_BASIC & ~(1n << 55n),
    })
    expect(old.primary.allowed0).toBe(0x0401e172) // CR3-load/store exiting are default-1 here
    const fresh = newHost(1, old).lp
    enterVmx(fresh)
    loadNewVmcs(fresh)
    writeValidVmcs(fresh)
    fresh.vmwrite(F.CPU_BASED_VM_EXEC_CONTROL, BigInt(adjust(lp.caps.primary, 0x80))) // TRUE-allowed: CR3 exiting clear
    fresh.core = newGuestCore([0xf4])
    expect(fresh.vmlaunch(100)).toBe(VmxStatus.FailValid)
    expect(fresh.lastError).toBe(7)
  })
})
