// A VM entry that fails while loading its MSR-load list (exit reason 34) has already loaded part
// of the list into the register file. The next entry must load the guest-state area again, as
// hardware does, not keep what the failed list left behind.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason, EXIT_REASON_FAILED_VMENTRY } from "../../../src/arch/exit-reasons.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"
import { enterVmx, expectStatus, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

describe("a VM entry failing in its MSR-load list", () => {
  it("leaves the next entry loading GUEST_SYSENTER_ESP from the VMCS", () => {
    const { lp } = newHost()
    enterVmx(lp)
    loadNewVmcs(lp)
    writeValidVmcs(lp)
    lp.core = new CpuState(newGuestMemory(guestCode("top: vmcall\njmp top")))
    expectStatus(lp.vmwrite(F.GUEST_SYSENTER_ESP, 0x1000n), VmxStatus.Succeed, lp)
    // Entry 1 loads IA32_SYSENTER_ESP, entry 2 (IA32_FS_BASE) is refused by the SDM: fail at 2.
    const list = lp.memory.allocPage()!
    lp.memory.write32(Number(list), 0x175)
    lp.memory.write64(list + 8n, 0x2222_0000n)
    lp.memory.write32(Number(list) + 16, 0xc000_0100)
    expectStatus(lp.vmwrite(F.VM_ENTRY_MSR_LOAD_ADDR, list), VmxStatus.Succeed, lp)
    expectStatus(lp.vmwriteLo(F.VM_ENTRY_MSR_LOAD_COUNT, 2), VmxStatus.Succeed, lp)
    expect(lp.vmlaunch(100)).toBe(VmxStatus.VmExit)
    expect(lp.vmreadLo(F.VM_EXIT_REASON)).toBe((ExitReason.MSR_LOAD_FAIL | EXIT_REASON_FAILED_VMENTRY) >>> 0)
    expect(lp.vmreadLo(F.EXIT_QUALIFICATION)).toBe(2)
    // Without the list the guest runs with the VMCS's value, and the exit saves it back.
    expectStatus(lp.vmwriteLo(F.VM_ENTRY_MSR_LOAD_COUNT, 0), VmxStatus.Succeed, lp)
    expectStatus(lp.vmlaunch(100), VmxStatus.VmExit, lp)
    expect(lp.vmreadLo(F.VM_EXIT_REASON)).toBe(ExitReason.VMCALL)
    expect(lp.vmreadLo(F.GUEST_SYSENTER_ESP)).toBe(0x1000)
  })
})
