// Some entry checks read only bits 63:32 of a 64-bit or natural-width field (guest.rip: the
// canonical test, or zero outside 64-bit code), so a change confined to bits 31:0 — the RIP an
// exit saves, an exit handler's RIP VMWRITE below 4 GiB — re-runs none of them. The declaration
// must be true of the predicate, and the incremental verdict must stay a full run's.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { firstFailingCheck } from "../../../src/hypervisor/vmx/entry-check-engine.ts"
import { checkRules } from "../../../src/hypervisor/vmx/entry-check-rules.ts"
import { saveVolatileGuestState } from "../../../src/hypervisor/vmx/guest-state.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

const freshLp = () => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  return lp
}

const word = fc.nat(0xffff_ffff).map(BigInt)
const lowWord = fc.oneof(word, fc.constantFrom(0n, 0xffff_ffffn, 0x8000_0000n, 0xfffn, 1n))
/** Bits 63:32 that matter to the RIP check: zero, canonical upper half, non-canonical. */
const highHalf = fc.constantFrom(0n, 0x7fffn, 0xffff_8000n, 0xffff_ffffn, 0x8000n, 0x1n).chain((typical) => fc.oneof(fc.constant(typical), word))
const rip = fc.tuple(highHalf, lowWord).map(([hi, lo]) => (hi << 32n) | lo)

const declaring = checkRules.filter((rule) => rule.highHalfOnly.length !== 0)

describe("checks that read only bits 63:32 of a field", () => {
  it("guest.rip declares GUEST_RIP as read through its high half only", () => {
    expect(declaring.map((rule) => rule.name)).toContain("guest.rip")
    expect(checkRules.find((rule) => rule.name === "guest.rip")!.highHalfOnly).toEqual([F.GUEST_RIP])
  })

  it("keep their verdict whatever bits 31:0 of those fields hold", () => {
    fc.assert(
      fc.property(
        fc.nat(declaring.length - 1),
        fc.array(fc.tuple(word, word), { minLength: 8, maxLength: 8 }),
        fc.array(lowWord, { minLength: 4, maxLength: 4 }),
        (which, inputs, lows) => {
          const lp = freshLp()
          const rule = declaring[which]!
          // Random values in every field the check reads, then only the low halves move.
          rule.fields.forEach((encoding, i) => {
            const [hi, lo] = inputs[i % inputs.length]!
            lp.view.setLo(encoding, Number(lo))
            if (lp.view.lo(encoding) === Number(lo) && rule.highHalfOnly.includes(encoding)) lp.view.setHi(encoding, Number(hi))
          })
          const verdict = rule.passes(lp.checkContext)
          for (const encoding of rule.highHalfOnly) {
            for (const low of lows) {
              lp.view.setLo(encoding, Number(low))
              expect(rule.passes(lp.checkContext)).toBe(verdict)
            }
          }
        },
      ),
      { numRuns: 500 },
    )
  })

  it("an incremental run after RIP VMWRITEs and IA-32e/CS.L changes equals a full run", () => {
    const command = fc.oneof(
      fc.record({ kind: fc.constant("rip" as const), value: rip }),
      fc.record({ kind: fc.constant("ripLo" as const), value: lowWord.map(Number) }),
      fc.record({ kind: fc.constant("entryControls" as const), ia32e: fc.boolean() }),
      fc.record({ kind: fc.constant("csAr" as const), value: fc.constantFrom(0xa09bn, 0xc09bn, 0x809bn) }),
      fc.record({ kind: fc.constant("check" as const) }),
    )
    fc.assert(
      fc.property(fc.array(command, { maxLength: 40 }), (commands) => {
        const lp = freshLp()
        for (const c of commands) {
          if (c.kind === "rip") lp.vmwrite(F.GUEST_RIP, c.value)
          else if (c.kind === "ripLo") lp.vmwriteLo(F.GUEST_RIP, c.value)
          else if (c.kind === "entryControls") {
            const entry = lp.vmreadLo(F.VM_ENTRY_CONTROLS)
            lp.vmwriteLo(F.VM_ENTRY_CONTROLS, c.ia32e ? entry | 0x200 : entry & ~0x200)
          } else if (c.kind === "csAr") lp.vmwrite(F.GUEST_CS_AR_BYTES, c.value)
          else expect(firstFailingCheck(lp.checkContext, lp.current!.checks)).toBe(firstFailingCheck(lp.checkContext, null))
        }
        expect(firstFailingCheck(lp.checkContext, lp.current!.checks)).toBe(firstFailingCheck(lp.checkContext, null))
      }),
      { numRuns: 400 },
    )
  })

  it("an incremental run after exits that save random RIPs equals a full run", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(rip, fc.boolean()), { minLength: 1, maxLength: 30 }), (steps) => {
        const lp = freshLp()
        const checks = lp.current!.checks
        const core = new CpuState(new GuestMemory())
        expect(firstFailingCheck(lp.checkContext, checks)).toBe(-1)
        for (const [value, compatibilityMode] of steps) {
          // In compatibility mode (CS.L = 0) a RIP at or above 4 GiB fails the check.
          lp.vmwrite(F.GUEST_CS_AR_BYTES, compatibilityMode ? 0xc09bn : 0xa09bn)
          // The register file keeps RIP as a number, sign-extended from bit 47.
          core.rip = Number(BigInt.asIntN(48, value))
          saveVolatileGuestState(lp.view, core, checks)
          expect(firstFailingCheck(lp.checkContext, checks)).toBe(firstFailingCheck(lp.checkContext, null))
        }
      }),
      { numRuns: 300 },
    )
  })
})
