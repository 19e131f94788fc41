// A VMWRITE of the VM-entry controls between exits changes what the next entry loads: turning on
// "load IA32_EFER" (SDM 26.3.2.1) must load GUEST_IA32_EFER at the next VMRESUME even though no
// guest-state field was written since the exit (the register file is otherwise reused as the exit
// left it). Likewise a control VMWRITE must reach the intercept policy at the next entry.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { EntryControl, PrimaryControl } from "../../../src/arch/vmx/control-bits.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { expectStatus } from "./support.ts"
import { vmxGuest } from "./guest-support.ts"

const EFER_NXE = 1 << 11

const read = (lp: LogicalProcessor, field: number): bigint => {
  expectStatus(lp.vmread(field), VmxStatus.Succeed, lp)
  return lp.value
}

const launched = (source: string) => {
  const { lp, core } = vmxGuest(source)
  return { lp, core }
}

const skipVmcall = (lp: LogicalProcessor): void => {
  expect(Number(read(lp, F.VM_EXIT_REASON))).toBe(ExitReason.VMCALL)
  lp.vmwrite(F.GUEST_RIP, read(lp, F.GUEST_RIP) + read(lp, F.VM_EXIT_INSTRUCTION_LEN))
}

describe("control VMWRITEs between exits", () => {
  it("turning on 'load IA32_EFER' loads GUEST_IA32_EFER at the next VMRESUME", () => {
    const { lp, core } = launched("vmcall\nvmcall\nhlt")
    // LME | LMA | NXE, written while the control is off: the launch does not load it.
    lp.vmwrite(F.GUEST_IA32_EFER, 0xd00n)
    lp.vmwrite(F.VM_ENTRY_CONTROLS, read(lp, F.VM_ENTRY_CONTROLS) & ~BigInt(EntryControl.LOAD_IA32_EFER))
    expectStatus(lp.vmlaunch(1000), VmxStatus.VmExit, lp)
    expect(core.efer & EFER_NXE).toBe(0)
    skipVmcall(lp)
    lp.vmwrite(F.VM_ENTRY_CONTROLS, read(lp, F.VM_ENTRY_CONTROLS) | BigInt(EntryControl.LOAD_IA32_EFER))
    expectStatus(lp.vmresume(1000), VmxStatus.VmExit, lp)
    expect(core.efer & EFER_NXE).toBe(EFER_NXE)
  })

  it("turning on HLT exiting between exits makes the next HLT exit", () => {
    const { lp } = launched("vmcall\nhlt")
    lp.vmwrite(F.CPU_BASED_VM_EXEC_CONTROL, read(lp, F.CPU_BASED_VM_EXEC_CONTROL) & ~BigInt(PrimaryControl.HLT_EXITING))
    expectStatus(lp.vmlaunch(1000), VmxStatus.VmExit, lp)
    skipVmcall(lp)
    lp.vmwrite(F.CPU_BASED_VM_EXEC_CONTROL, read(lp, F.CPU_BASED_VM_EXEC_CONTROL) | BigInt(PrimaryControl.HLT_EXITING))
    expectStatus(lp.vmresume(1000), VmxStatus.VmExit, lp)
    expect(Number(read(lp, F.VM_EXIT_REASON))).toBe(ExitReason.HLT)
  })
})
