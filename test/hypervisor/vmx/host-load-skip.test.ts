// A VM exit skips copying the host-state area when the root state already holds it (loaded
// from the same VMCS, root-state version unchanged, no VMWRITE of a host field or of the exit
// controls since). That must be invisible: machine A runs a VMCALL guest with random host
// actions between exits; twin B does the same but writes its root state before every entry
// (same value, new version), so every B exit copies the whole host-state area. After every
// exit the root states (64-bit registers, selectors, SYSENTER_CS) must be equal.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { ExitControl } from "../../../src/arch/vmx/control-bits.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"
import { adjust, allocRegion, enterVmx, expectStatus, newHost, writeValidVmcs } from "./support.ts"

const HOST_WRITES: ReadonlyArray<readonly [number, ReadonlyArray<bigint>]> = [
  [F.HOST_RIP, [0xffff_ffff_8100_0000n, 0xffff_ffff_8200_0040n]],
  [F.HOST_RSP, [0xffff_c900_0000_8000n, 0xffff_c900_0001_0000n]],
  [F.HOST_CR3, [0x1_0000n, 0x2_3000n]],
  [F.HOST_FS_BASE, [0n, 0x7f00_0000_0000n]],
  [F.HOST_GS_BASE, [0n, 0xffff_8880_0000_0000n]],
  [F.HOST_DS_SELECTOR, [0n, 0x18n]],
  [F.HOST_FS_SELECTOR, [0n, 0x18n]],
  [F.HOST_IA32_SYSENTER_CS, [0n, 0x10n]],
  [F.HOST_IA32_SYSENTER_EIP, [0n, 0xffff_ffff_8180_0000n]],
  [F.HOST_IA32_PAT, [0x0007_0406_0007_0406n, 0x0606_0606_0606_0606n]],
]

type Action =
  | { kind: "none" }
  | { kind: "vmwrite"; field: number; choice: number }
  | { kind: "root"; reg: number; choice: number }
  | { kind: "exitControls"; bits: number }
  | { kind: "otherVmcs" }

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Action>({ kind: "none" }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("vmwrite" as const), field: fc.nat(HOST_WRITES.length - 1), choice: fc.nat(1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("root" as const), reg: fc.nat(3), choice: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("exitControls" as const), bits: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: "otherVmcs" }) },
)

const OPTIONAL_LOADS = [ExitControl.LOAD_IA32_PAT, ExitControl.LOAD_IA32_EFER]

interface Machine {
  readonly lp: LogicalProcessor
  readonly vmcs: ReadonlyArray<bigint>
  readonly launched: Array<boolean>
}

const machine = (): Machine => {
  const { lp } = newHost()
  enterVmx(lp)
  const memory = newGuestMemory(guestCode("top: vmcall\njmp top"))
  const vmcs = [allocRegion(lp), allocRegion(lp)]
  for (const [i, region] of vmcs.entries()) {
    expectStatus(lp.vmclear(region), VmxStatus.Succeed, lp)
    expectStatus(lp.vmptrld(region), VmxStatus.Succeed, lp)
    writeValidVmcs(lp)
    expectStatus(lp.vmwrite(F.HOST_IA32_EFER, lp.root.efer), VmxStatus.Succeed, lp)
    expectStatus(lp.vmwrite(F.HOST_IA32_PAT, lp.root.pat), VmxStatus.Succeed, lp)
    // VMCS 1's exits land elsewhere in the host.
    if (i === 1) expectStatus(lp.vmwrite(F.HOST_RIP, 0xffff_ffff_8300_0000n), VmxStatus.Succeed, lp)
  }
  expectStatus(lp.vmptrld(vmcs[0]!), VmxStatus.Succeed, lp)
  lp.core = new CpuState(memory)
  return { lp, vmcs, launched: [false, false] }
}

const enter = (m: Machine, v: number, fullCopy: boolean): void => {
  // B forgets where its root state came from, so its exit copies the whole host-state area.
  if (fullCopy) m.lp.hostStateFrom = null
  const status = m.launched[v] ? m.lp.vmresume(100) : m.lp.vmlaunch(100)
  expectStatus(status, VmxStatus.VmExit, m.lp)
  m.launched[v] = true
  expect(m.lp.vmreadLo(F.VM_EXIT_REASON)).toBe(ExitReason.VMCALL)
  m.lp.vmwriteLo(F.GUEST_RIP, m.lp.vmreadLo(F.GUEST_RIP) + m.lp.vmreadLo(F.VM_EXIT_INSTRUCTION_LEN))
}

const rootImage = (lp: LogicalProcessor) => ({ words: Array.from(lp.root.words), selectors: { ...lp.root.selectors }, sysenterCs: lp.root.sysenterCs })

const act = (m: Machine, action: Action, fullCopy: boolean): void => {
  const lp = m.lp
  switch (action.kind) {
    case "none":
      return
    case "vmwrite": {
      const [field, values] = HOST_WRITES[action.field]!
      expectStatus(lp.vmwrite(field, values[action.choice]!), VmxStatus.Succeed, lp)
      return
    }
    case "root": {
      // What the host kernel does between exits: new RSP/RIP (another task), FS base, PAT.
      const value = action.choice === 0 ? 0x1234_5000n : 0xffff_c900_0002_0000n
      if (action.reg === 0) lp.root.rsp = value
      else if (action.reg === 1) lp.root.rip = value
      else if (action.reg === 2) lp.root.pat = action.choice === 0 ? 0x0007_0406_0007_0406n : 0x0606_0606_0606_0606n
      else lp.root.cr3 = action.choice === 0 ? 0x1_0000n : 0x5_0000n
      return
    }
    case "exitControls": {
      let extra = 0x200
      for (let b = 0; b < 2; b++) if ((action.bits >> b) & 1) extra |= OPTIONAL_LOADS[b]!
      expectStatus(lp.vmwriteLo(F.VM_EXIT_CONTROLS, adjust(lp.caps.exit, extra)), VmxStatus.Succeed, lp)
      return
    }
    case "otherVmcs":
      expectStatus(lp.vmptrld(m.vmcs[1]!), VmxStatus.Succeed, lp)
      enter(m, 1, fullCopy)
      expectStatus(lp.vmptrld(m.vmcs[0]!), VmxStatus.Succeed, lp)
      return
  }
}

describe("VM exit skips loading unchanged host state", () => {
  it("leaves the root state exactly as a full host-state load would", () => {
    fc.assert(
      fc.property(fc.array(actionArb, { minLength: 1, maxLength: 40 }), (actions) => {
        const a = machine()
        const b = machine()
        enter(a, 0, false)
        enter(b, 0, true)
        expect(rootImage(a.lp)).toEqual(rootImage(b.lp))
        for (const action of actions) {
          act(a, action, false)
          act(b, action, true)
          enter(a, 0, false)
          enter(b, 0, true)
          expect(rootImage(a.lp)).toEqual(rootImage(b.lp))
        }
      }),
      { numRuns: 150 },
    )
  })
})
