import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { preemptionTimerValue } from "../../../src/hypervisor/kvm/run.ts"

/** The timer value by its definition: ceil(max(1, instructions left) / 2^shift), capped at 32 bits. */
const byDefinition = (sliceLeftNs: number, nsPerInstruction: number, shift: number): number =>
  Math.min(0xffffffff, Math.ceil(Math.max(1, nsPerInstruction === 1 ? sliceLeftNs : Math.floor(sliceLeftNs / nsPerInstruction)) / 2 ** shift))

describe("the VMX-preemption timer value KVM programs", () => {
  it("the add-and-shift path agrees with the rounded-up division, for every slice and scale (fast-check)", () => {
    const sliceLeft = fc.oneof(
      fc.integer({ min: -5, max: 0x7fffffff }),
      fc.integer({ min: 0x7fffff00, max: 0x1_0000_0100 }),
      fc.double({ min: 0, max: 2 ** 53, noNaN: true }),
      fc.constantFrom(1, 2, 0x7fffffff, 0x80000000, 2 ** 40, 0.5, 2.5),
    )
    fc.assert(
      fc.property(sliceLeft, fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 31 }), (left, ns, shift) => {
        expect(preemptionTimerValue(left, ns, 2 ** shift, shift)).toBe(byDefinition(left, ns, shift))
      }),
      { numRuns: 5000 },
    )
  })

  it("edges: at least one tick, rounded up, capped at 0xffffffff", () => {
    expect(preemptionTimerValue(0, 1, 32, 5)).toBe(1)
    expect(preemptionTimerValue(33, 1, 32, 5)).toBe(2)
    expect(preemptionTimerValue(0x7fffffff, 1, 2 ** 31, 31)).toBe(1)
    expect(preemptionTimerValue(2 ** 40, 1, 1, 0)).toBe(0xffffffff)
  })
})
