// VM entry's fast path (reload only what VMWRITE changed into the register file the last exit
// saved from) must be indistinguishable from a full load of the guest-state area. Two identical
// machines run the same guest and the same VMWRITEs between exits; the second is forced onto
// the full-load path by handing each entry a fresh register file (general-purpose registers
// copied over, as they are not in the VMCS). Every exit must leave identical VMCSs and registers.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F, type VmcsFieldName } from "../../../src/arch/vmx/vmcs-fields.ts"
import { FieldType, fieldType, isHighAccess } from "../../../src/arch/vmx/vmcs-encoding.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"
import { guestCode, newGuestMemory } from "./guest-support.ts"

// top: vmcall (3 bytes) / inc rbx (3) / add rax, rbx (3) / jmp top (2)
const CODE = guestCode("top: vmcall\ninc rbx\nadd rax, rbx\njmp top")
const guestFields = (Object.entries(F) as Array<[VmcsFieldName, number]>).filter(
  ([, e]) => fieldType(e) === FieldType.GuestState && !isHighAccess(e),
)

const writes: Array<[number, ReadonlyArray<bigint>]> = [
  [F.GUEST_RIP, [0x100000n, 0x100003n, 0x100006n, 0x100009n]],
  [F.GUEST_RSP, [0x1ff000n, 0x1fe008n]],
  [F.GUEST_RFLAGS, [0x2n, 0x202n, 0x8d7n]],
  [F.GUEST_INTERRUPTIBILITY_INFO, [0n, 8n]],
  [F.GUEST_ES_SELECTOR, [0x10n, 0n]],
  [F.GUEST_DS_BASE, [0n, 0x1000n]],
  [F.GUEST_CR0, [0x8000_0031n, 0x8000_0033n]],
  [F.GUEST_SYSENTER_EIP, [0n, 0xffff_ffff_8100_0000n]],
  [F.VMX_PREEMPTION_TIMER_VALUE, [0n, 3n]],
]

const machine = () => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  const memory = newGuestMemory(CODE, 2 * 1024 * 1024)
  lp.core = new CpuState(memory)
  return { lp, memory }
}

const snapshot = (lp: LogicalProcessor): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, encoding] of [...guestFields, ["VM_EXIT_REASON", F.VM_EXIT_REASON] as [string, number]]) {
    lp.vmread(encoding)
    out[name] = lp.value.toString(16)
  }
  for (let r = 0; r < 16; r++) out[`r${r}`] = lp.core!.getReg(r).toString(16)
  return out
}

describe("VM entry fast path", () => {
  it("equals a full guest-state load after any VMWRITEs between exits", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.tuple(fc.nat(writes.length - 1), fc.nat(3)), { maxLength: 4 }), { minLength: 1, maxLength: 25 }),
        (rounds) => {
          const fast = machine()
          const full = machine()
          expect(fast.lp.vmlaunch(50)).toBe(VmxStatus.VmExit)
          expect(full.lp.vmlaunch(50)).toBe(VmxStatus.VmExit)
          for (const round of rounds) {
            for (const [field, choice] of round) {
              const [encoding, values] = writes[field]!
              fast.lp.vmwrite(encoding, values[choice % values.length]!)
              full.lp.vmwrite(encoding, values[choice % values.length]!)
            }
            const fresh = new CpuState(full.memory)
            for (let r = 0; r < 16; r++) fresh.setReg(r, full.lp.core!.getReg(r))
            full.lp.core = fresh
            const a = fast.lp.vmresume(50)
            const b = full.lp.vmresume(50)
            expect(a).toBe(b)
            if (a !== VmxStatus.VmExit) break
            expect(snapshot(fast.lp)).toEqual(snapshot(full.lp))
          }
        },
      ),
      { numRuns: 100 },
    )
  })
})
