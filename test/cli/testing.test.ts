// kvmsim/testing: the VMCS-lifecycle model agrees with the simulated logical processor, a
// planted bug is found and shrunk to a minimal counterexample that replays from seed and path,
// and the arbitraries produce what they promise (checked against the capability MSRs and the assembler).
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmxCapabilities } from "../../src/hypervisor/vmx/capabilities.ts"
import { VmxStatus } from "../../src/hypervisor/vmx/outcome.ts"
import {
  controlSettingsArbitrary,
  describeMismatch,
  fieldWidthBits,
  guestProgramArbitrary,
  runLifecycle,
  vmcsConfigurationArbitrary,
  vmcsLifecycleArbitrary,
  VmxSubject,
  type VmxCommand,
} from "../../src/cli/testing/index.ts"
import { VmcsField } from "../../src/arch/vmx/vmcs-fields.ts"

/** A planted bug: VMCLEAR forgets to clear the current-VMCS pointer. */
class ForgetfulSubject extends VmxSubject {
  override step(c: VmxCommand) {
    if (c.op === "vmclear" && c.region < 3) {
      const before = this.lp.currentVmcsPointer
      const r = super.step(c)
      if (before === this.regions[c.region]) this.lp.vmptrld(before)
      return r
    }
    return super.step(c)
  }
}

describe("kvmsim/testing: the VMCS lifecycle model", () => {
  it("agrees with the simulated logical processor on 1,000 random lifecycles", () => {
    fc.assert(fc.property(vmcsLifecycleArbitrary(), (cs) => runLifecycle(cs) === undefined), { numRuns: 1000, seed: 9 })
  })

  it("reaches the interesting outcomes (not only #UD)", () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(vmcsLifecycleArbitrary(), (cs) => {
        const s = new VmxSubject()
        for (const c of cs) {
          const o = s.step(c)
          seen.add(`${c.op}:${o.status}:${o.error ?? ""}`)
        }
      }),
      { numRuns: 300, seed: 3 },
    )
    for (const k of ["vmptrld:0:", "vmread:0:", "vmwrite:0:", "vmptrld:2:10", "vmptrld:2:11", "vmclear:2:3", "vmlaunch:2:7", "vmresume:2:5", "vmread:2:12", "vmxon:2:15", "vmread:1:", "vmclear:3:"]) {
      expect(seen).toContain(k)
    }
  })

  it("finds a planted bug and shrinks it to a minimal counterexample that replays from seed and path", () => {
    const property = fc.property(vmcsLifecycleArbitrary(), (cs) => runLifecycle(cs, new ForgetfulSubject()) === undefined)
    const result = fc.check(property, { numRuns: 1000, seed: 1 })
    expect(result.failed).toBe(true)
    const commands = result.counterexample![0]
    // VMXON, VMPTRLD vmcsN, VMCLEAR vmcsN, then one instruction that needs "no current VMCS".
    expect(commands).toHaveLength(4)
    const mismatch = runLifecycle(commands, new ForgetfulSubject())!
    expect(mismatch.step).toBe(3)
    expect(mismatch.expected.status).toBe(VmxStatus.FailInvalid)
    expect(describeMismatch(commands, mismatch)).toMatch(/4\. .*<- expected FailInvalid, got /)
    const replay = fc.check(property, { seed: result.seed, path: result.counterexamplePath!, numRuns: 1 })
    expect(replay.failed).toBe(true)
    expect(replay.counterexample![0]).toEqual(commands)
  })
})

describe("kvmsim/testing: arbitraries", () => {
  it("control settings respect the capability MSRs' allowed-0 and allowed-1 bits", () => {
    const caps = new VmxCapabilities()
    fc.assert(
      fc.property(controlSettingsArbitrary(caps), (s) => {
        for (const [value, allowed] of [[s.pin, caps.pin], [s.primary, caps.primary], [s.secondary, caps.secondary], [s.exit, caps.exit], [s.entry, caps.entry]] as const) {
          expect((value & allowed.allowed0) >>> 0).toBe(allowed.allowed0 >>> 0)
          expect((value & ~allowed.allowed1) >>> 0).toBe(0)
        }
      }),
      { numRuns: 200 },
    )
  })

  it("VMCS configurations write values that fit the field (SDM appendix B widths) and VMWRITE accepts them", () => {
    expect(fieldWidthBits(VmcsField.GUEST_ES_SELECTOR)).toBe(16)
    expect(fieldWidthBits(VmcsField.TSC_OFFSET)).toBe(64)
    expect(fieldWidthBits(VmcsField.TSC_OFFSET_HIGH)).toBe(32)
    expect(fieldWidthBits(VmcsField.EXCEPTION_BITMAP)).toBe(32)
    expect(fieldWidthBits(VmcsField.GUEST_RIP)).toBe(64)
    fc.assert(
      fc.property(vmcsConfigurationArbitrary(), (writes) => {
        const s = new VmxSubject()
        s.step({ op: "vmxon" })
        s.step({ op: "vmptrld", region: 0 })
        for (const w of writes) {
          expect(s.lp.vmwrite(w.encoding, w.value)).toBe(VmxStatus.Succeed)
          expect(s.lp.vmread(w.encoding)).toBe(VmxStatus.Succeed)
          expect(s.lp.value).toBe(w.value)
        }
      }),
      { numRuns: 100 },
    )
  })

  it("guest programs assemble and end in cli; hlt", () => {
    fc.assert(
      fc.property(guestProgramArbitrary(), (p) => {
        expect(p.bytes.subarray(-2)).toEqual(new Uint8Array([0xfa, 0xf4]))
      }),
      { numRuns: 50 },
    )
  })
})
