// The incremental entry checks re-run a check only when its inputs changed. Two checks read
// inputs outside the VMCS: host.address-space reads the processor's IA32_EFER.LMA, and
// guest.vmcs-link-pointer reads the region the link pointer names. Changing those inputs with
// no VMWRITE in between must still change the outcome of the next VMRESUME.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason, EXIT_REASON_FAILED_VMENTRY } from "../../../src/arch/exit-reasons.ts"
import { VmInstructionError } from "../../../src/arch/vmx/instruction-errors.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"
import { allocRegion, enterVmx, expectStatus, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

const launched = () => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  lp.core = new CpuState(newGuestMemory(guestCode("top: vmcall\njmp top")))
  expectStatus(lp.vmlaunch(100), VmxStatus.VmExit, lp)
  return lp
}

describe("entry checks with inputs outside the VMCS", () => {
  it("a link-pointer region rewritten in memory is re-checked at the next entry", () => {
    const lp = launched()
    const link = allocRegion(lp)
    expectStatus(lp.vmwrite(F.VMCS_LINK_POINTER, link), VmxStatus.Succeed, lp)
    expectStatus(lp.vmresume(100), VmxStatus.VmExit, lp)
    expect(lp.vmreadLo(F.VM_EXIT_REASON)).toBe(ExitReason.VMCALL)
    // The region's revision identifier no longer matches: invalid guest state, qualification 4.
    lp.memory.write32(Number(link), 0x1234)
    expect(lp.vmresume(100)).toBe(VmxStatus.VmExit)
    expect(lp.vmreadLo(F.VM_EXIT_REASON)).toBe((ExitReason.INVALID_STATE | EXIT_REASON_FAILED_VMENTRY) >>> 0)
    expect(lp.vmreadLo(F.EXIT_QUALIFICATION)).toBe(4)
    expect(lp.lastEntryFailure?.name).toBe("guest.vmcs-link-pointer")
    lp.memory.write32(Number(link), lp.caps.revisionId)
    expectStatus(lp.vmresume(100), VmxStatus.VmExit, lp)
    expect(lp.vmreadLo(F.VM_EXIT_REASON)).toBe(ExitReason.VMCALL)
  })

  it("a processor that left IA-32e mode fails host.address-space at the next entry", () => {
    const lp = launched()
    expectStatus(lp.vmresume(100), VmxStatus.VmExit, lp)
    lp.root.efer = 0x1n
    expect(lp.vmresume(100)).toBe(VmxStatus.FailValid)
    expect(lp.vmreadLo(F.VM_INSTRUCTION_ERROR)).toBe(VmInstructionError.ENTRY_INVALID_HOST_STATE_FIELD)
    expect(lp.lastEntryFailure?.name).toBe("host.address-space")
    lp.root.efer = 0xd01n
    expectStatus(lp.vmresume(100), VmxStatus.VmExit, lp)
    expect(lp.vmreadLo(F.VM_EXIT_REASON)).toBe(ExitReason.VMCALL)
  })
})
