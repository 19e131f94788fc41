// What a VM exit does beyond the exit record and the volatile save (reload the guest-state area
// at the next entry, save the VMX-preemption timer, store and load MSR lists) is decided from the
// controls when an entry reads them (ActiveVmcs.exitWork), not re-derived at every exit. At every
// exit it must be what the controls say, and invisible: machine A runs a VMCALL guest with random control writes between exits;
// twin B does the same but also writes CR3_TARGET_COUNT to 1 and back to 0 before every entry, so
// every B entry reads the controls afresh. After every exit both VMCS regions, the registers
// the entry loaded and the host MSRs must be equal.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { EntryControl, ExitControl, PinControl } from "../../../src/arch/vmx/control-bits.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { ExitWork } from "../../../src/hypervisor/vmx/platform.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

/** Control bits the exit work depends on: [field, bit]. */
const TOGGLES: ReadonlyArray<readonly [number, number]> = [
  [F.VM_EXIT_CONTROLS, ExitControl.SAVE_VMX_PREEMPTION_TIMER],
  [F.VM_EXIT_CONTROLS, ExitControl.SAVE_IA32_PAT],
  [F.VM_EXIT_CONTROLS, ExitControl.SAVE_IA32_EFER],
  [F.VM_EXIT_CONTROLS, ExitControl.SAVE_DEBUG_CONTROLS],
  [F.VM_ENTRY_CONTROLS, EntryControl.LOAD_IA32_PAT],
  [F.VM_ENTRY_CONTROLS, EntryControl.LOAD_IA32_EFER],
  [F.VM_ENTRY_CONTROLS, EntryControl.LOAD_DEBUG_CONTROLS],
  [F.PIN_BASED_VM_EXEC_CONTROL, PinControl.VMX_PREEMPTION_TIMER],
]

type Action =
  | { kind: "none" }
  | { kind: "toggle"; which: number }
  | { kind: "timer"; value: number }
  | { kind: "msrStore"; count: number }
  | { kind: "msrLoad"; count: number }

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Action>({ kind: "none" }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("toggle" as const), which: fc.nat(TOGGLES.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("timer" as const), value: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("msrStore" as const), count: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("msrLoad" as const), count: fc.nat(2) }) },
)

/** Guest-state area, exit information and controls as one region snapshot. */
const region = (lp: LogicalProcessor): Array<number> => Array.from(lp.view.page.words)

const machine = (): { lp: LogicalProcessor; core: CpuState } => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  // An MSR area (IA32_STAR, IA32_LSTAR) for the store and load lists.
  const area = lp.memory.allocPage()!
  lp.memory.write32(Number(area), 0xc000_0081)
  lp.memory.write32(Number(area) + 16, 0xc000_0082)
  expect(lp.vmwrite(F.VM_EXIT_MSR_STORE_ADDR, area)).toBe(VmxStatus.Succeed)
  expect(lp.vmwrite(F.VM_EXIT_MSR_LOAD_ADDR, area)).toBe(VmxStatus.Succeed)
  expect(lp.vmwrite(F.GUEST_IA32_PAT, 0x0007_0406_0007_0406n)).toBe(VmxStatus.Succeed)
  const core = new CpuState(newGuestMemory(guestCode("top: vmcall\ninc rbx\njmp top")))
  lp.core = core
  return { lp, core }
}

const apply = (lp: LogicalProcessor, action: Action): void => {
  if (action.kind === "toggle") {
    const [field, bit] = TOGGLES[action.which]!
    const allowed = field === F.VM_EXIT_CONTROLS ? lp.caps.exit : field === F.VM_ENTRY_CONTROLS ? lp.caps.entry : lp.caps.pin
    if ((allowed.allowed1 & bit) === 0 || (allowed.allowed0 & bit) !== 0) return
    lp.vmwriteLo(field, lp.vmreadLo(field) ^ bit)
  } else if (action.kind === "timer") lp.vmwriteLo(F.VMX_PREEMPTION_TIMER_VALUE, action.value)
  else if (action.kind === "msrStore") lp.vmwriteLo(F.VM_EXIT_MSR_STORE_COUNT, action.count)
  else if (action.kind === "msrLoad") lp.vmwriteLo(F.VM_EXIT_MSR_LOAD_COUNT, action.count)
}

/** ExitWork as the SDM's controls define it, read from the VMCS now. */
const expectedWork = (lp: LogicalProcessor): number => {
  const exit = lp.vmreadLo(F.VM_EXIT_CONTROLS)
  const entry = lp.vmreadLo(F.VM_ENTRY_CONTROLS)
  const pin = lp.vmreadLo(F.PIN_BASED_VM_EXEC_CONTROL)
  const unsaved =
    ((entry & EntryControl.LOAD_DEBUG_CONTROLS) !== 0 && (exit & ExitControl.SAVE_DEBUG_CONTROLS) === 0) ||
    ((entry & EntryControl.LOAD_IA32_PAT) !== 0 && (exit & ExitControl.SAVE_IA32_PAT) === 0) ||
    ((entry & EntryControl.LOAD_IA32_EFER) !== 0 && (exit & ExitControl.SAVE_IA32_EFER) === 0)
  return (
    (unsaved ? ExitWork.RELOAD_GUEST_STATE : 0) |
    ((exit & ExitControl.SAVE_VMX_PREEMPTION_TIMER) !== 0 && (pin & PinControl.VMX_PREEMPTION_TIMER) !== 0 ? ExitWork.SAVE_PREEMPTION_TIMER : 0) |
    (lp.vmreadLo(F.VM_EXIT_MSR_STORE_COUNT) !== 0 ? ExitWork.STORE_MSRS : 0) |
    (lp.vmreadLo(F.VM_EXIT_MSR_LOAD_COUNT) !== 0 ? ExitWork.LOAD_MSRS : 0)
  )
}

describe("exit work decided when entry reads the controls", () => {
  it("matches the controls at every exit, and the exits match a fresh reading of them", () => {
    fc.assert(
      fc.property(fc.array(actionArb, { minLength: 1, maxLength: 40 }), (actions) => {
        const a = machine()
        const b = machine()
        for (const [i, action] of actions.entries()) {
          for (const m of [a, b]) {
            apply(m.lp, action)
            if (m === b) {
              m.lp.vmwriteLo(F.CR3_TARGET_COUNT, 1)
              m.lp.vmwriteLo(F.CR3_TARGET_COUNT, 0)
            }
          }
          const statusA = i === 0 ? a.lp.vmlaunch(20) : a.lp.vmresume(20)
          const statusB = i === 0 ? b.lp.vmlaunch(20) : b.lp.vmresume(20)
          expect(statusB).toBe(statusA)
          if (statusA === VmxStatus.VmExit && (a.lp.vmreadLo(F.VM_EXIT_REASON) & 0x8000_0000) === 0) {
            expect(a.lp.current!.exitWork).toBe(expectedWork(a.lp))
          }
          expect(region(b.lp)).toEqual(region(a.lp))
          expect(b.core.efer).toBe(a.core.efer)
          expect(Array.from(b.core.msr)).toEqual(Array.from(a.core.msr))
          expect([...b.lp.hostMsrs]).toEqual([...a.lp.hostMsrs])
          expect(b.lp.current!.guestWrites).toBe(a.lp.current!.guestWrites)
          for (const [m, entered] of [[a, statusA], [b, statusB]] as const) {
            let status: number = entered
            if (m.lp.nonRoot) status = m.lp.continueGuest(1000)
            // A VMfail (an invalid control combination) leaves RIP where it was.
            if (status === VmxStatus.VmExit && m.lp.vmreadLo(F.VM_EXIT_REASON) === ExitReason.VMCALL) {
              m.lp.vmwriteLo(F.GUEST_RIP, m.lp.vmreadLo(F.GUEST_RIP) + m.lp.vmreadLo(F.VM_EXIT_INSTRUCTION_LEN))
            }
          }
          expect(region(b.lp)).toEqual(region(a.lp))
        }
      }),
      { numRuns: 100 },
    )
  })
})
