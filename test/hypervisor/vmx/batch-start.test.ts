// The guest core starts a batch under intercepts without boundary work when nothing needs it
// (KVM always sets NMI and external-interrupt exiting). An event left pending while the guest ran
// under controls that let it wait — a masked interrupt, a blocked NMI — must still exit at the
// first instruction boundary once the host turns the exiting control on between exits
// (SDM 25.2: external-interrupt exiting ignores RFLAGS.IF; NMI exiting ignores NMI blocking;
// interrupt-window exiting exits at once when IF = 1 and nothing blocks).
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { ExitControl, PinControl, PrimaryControl } from "../../../src/arch/vmx/control-bits.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import type { CpuState } from "../../../src/guest/cpu/state.ts"
import { Interruptibility } from "../../../src/guest/cpu/state.ts"
import { expectStatus } from "./support.ts"
import { vmxGuest } from "./guest-support.ts"

const set = (lp: LogicalProcessor, field: number, bits: number): void => {
  lp.vmread(field)
  lp.vmwrite(field, lp.value | BigInt(bits >>> 0))
}
const reasonOf = (lp: LogicalProcessor): number => {
  lp.vmread(F.VM_EXIT_REASON)
  return Number(lp.value)
}

/**
 * Launches "vmcall; inc rbx; hlt" with `before` applied to the register file; at the VMCALL exit
 * `between` changes controls (VMWRITEs that keep the register file, no full reload), RIP skips
 * the VMCALL, and VMRESUME runs on. Returns the second exit's reason and RBX.
 */
const roundTrip = (before: (lp: LogicalProcessor, core: CpuState) => void, between: (lp: LogicalProcessor) => void) => {
  const { lp, core } = vmxGuest("vmcall\ninc rbx\nhlt")
  before(lp, core)
  expectStatus(lp.vmlaunch(1000), VmxStatus.VmExit, lp)
  expect(reasonOf(lp)).toBe(ExitReason.VMCALL)
  between(lp)
  lp.vmread(F.GUEST_RIP)
  lp.vmwrite(F.GUEST_RIP, lp.value + 3n)
  expectStatus(lp.vmresume(1000), VmxStatus.VmExit, lp)
  return { reason: reasonOf(lp), rbx: core.getReg(3) }
}

describe("batch start under intercepts", () => {
  it("an interrupt pending with IF = 0 exits before the next guest instruction once external-interrupt exiting is turned on", () => {
    const r = roundTrip(
      (lp, core) => {
        set(lp, F.VM_EXIT_CONTROLS, ExitControl.ACK_INTR_ON_EXIT)
        core.requestInterrupt(0x30)
      },
      (lp) => set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.EXT_INTR_MASK),
    )
    expect(r.reason).toBe(ExitReason.EXTERNAL_INTERRUPT)
    expect(r.rbx).toBe(0n)
  })

  it("an NMI pending under NMI blocking exits once NMI exiting is turned on", () => {
    const r = roundTrip(
      (lp, core) => {
        lp.vmwrite(F.GUEST_INTERRUPTIBILITY_INFO, BigInt(Interruptibility.NMI))
        core.requestNmi()
      },
      (lp) => set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.NMI_EXITING),
    )
    expect(r.reason).toBe(ExitReason.EXCEPTION_NMI)
    expect(r.rbx).toBe(0n)
  })

  it("interrupt-window exiting turned on with RFLAGS.IF = 1 exits before the next guest instruction", () => {
    const r = roundTrip(
      (lp) => lp.vmwrite(F.GUEST_RFLAGS, 0x202n),
      (lp) => set(lp, F.CPU_BASED_VM_EXEC_CONTROL, PrimaryControl.INTR_WINDOW_EXITING),
    )
    expect(r.reason).toBe(ExitReason.INTERRUPT_WINDOW)
    expect(r.rbx).toBe(0n)
  })

  it("with NMI and external-interrupt exiting on and nothing pending, the guest runs to its HLT", () => {
    const r = roundTrip(
      (lp) => set(lp, F.PIN_BASED_VM_EXEC_CONTROL, PinControl.EXT_INTR_MASK | PinControl.NMI_EXITING),
      () => {},
    )
    expect(r.reason).toBe(ExitReason.HLT)
    expect(r.rbx).toBe(1n)
  })
})
