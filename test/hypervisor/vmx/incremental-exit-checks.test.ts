// A VM exit saves guest state and marks the entry checks that read a changed field; a change
// confined to RFLAGS' arithmetic status flags (CF PF AF ZF SF OF) marks none. Whatever the guest
// and VMWRITE do between entries, the incremental verdict must equal a full run of every check.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { firstFailingCheck } from "../../../src/hypervisor/vmx/entry-check-engine.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"

// The guest changes status flags (add, inc, cmp), DF (std/cld) and IF (sti/cli) between VMCALLs.
const CODE = guestCode("top: vmcall\nadd rax, rbx\ninc rbx\nstd\nvmcall\ncmp rax, rbx\ncld\nsti\nvmcall\ncli\njmp top")
// RFLAGS values a VMM might write: valid ones, VM set (invalid in IA-32e mode), reserved bits set.
const RFLAGS_VALUES = [0x2n, 0x202n, 0x8d7n, 0x246n, 0x2_0002n, 0xan, 0x8002n, 0x1_0000_0002n, 0x602n]

describe("incremental entry checks after VM exits", () => {
  it("agree with a full check whatever RFLAGS the guest or VMWRITE leaves", () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.nat(RFLAGS_VALUES.length - 1), { nil: undefined }), { minLength: 1, maxLength: 40 }), (rounds) => {
        const { lp } = newHost()
        enterVmx(lp)
        loadNewVmcs(lp)
        writeValidVmcs(lp)
        lp.core = new CpuState(newGuestMemory(CODE, 2 * 1024 * 1024))
        expect(lp.vmlaunch(50)).toBe(VmxStatus.VmExit)
        for (const choice of rounds) {
          if (choice !== undefined) lp.vmwrite(F.GUEST_RFLAGS, RFLAGS_VALUES[choice]!)
          if (lp.vmreadLo(F.VM_EXIT_REASON) === 18) lp.vmwriteLo(F.GUEST_RIP, lp.vmreadLo(F.GUEST_RIP) + lp.vmreadLo(F.VM_EXIT_INSTRUCTION_LEN))
          const full = firstFailingCheck(lp.checkContext, null)
          expect(firstFailingCheck(lp.checkContext, lp.current!.checks)).toBe(full)
          // A failed guest-state check is a VM exit too (reason 33 with bit 31); the entry reports the same check.
          expect(lp.vmresume(50)).toBe(VmxStatus.VmExit)
          expect(lp.lastFailedCheck).toBe(full)
        }
      }),
      { numRuns: 150 },
    )
  })
})
