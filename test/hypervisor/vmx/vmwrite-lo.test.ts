// vmwriteLo, the number-typed VMWRITE KVM uses for its per-entry GUEST_RIP and preemption-timer
// writes, must do exactly what VMWRITE of the zero-extended value does, whatever the encoding
// (16-bit, `_HIGH`, read-only, unsupported, out of range), the value and the processor's state:
// status, VM-instruction error, region bytes, what the next entry reloads and re-checks.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { fieldEncodings } from "../../../src/hypervisor/vmx/vmcs-layout.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

const machine = (): LogicalProcessor => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  return lp
}

/** Every supported encoding, its `_HIGH` access, and some unsupported or invalid ones. */
const ENCODINGS: ReadonlyArray<number> = [
  ...fieldEncodings,
  ...fieldEncodings.map((e) => e + 1),
  0x7fff,
  0x8000,
  -1,
  1.5,
  Number.NaN,
  F.GUEST_RIP,
  F.VMX_PREEMPTION_TIMER_VALUE,
]
const valueArb = fc.oneof(fc.nat(0xffff_ffff), fc.constantFrom(0, 1, 0xffff, 0x1_0000, 0x8000_0000, 0xffff_ffff), fc.integer({ min: -(2 ** 31), max: -1 }))

type Step = { kind: "write"; encoding: number; value: number } | { kind: "state"; which: number }
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant("write" as const), encoding: fc.constantFrom(...ENCODINGS), value: valueArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("state" as const), which: fc.nat(3) }) },
)

/** Processor states the general path refuses or faults in: CPL 3, no current VMCS, outside VMX operation, back to normal. */
const setState = (lp: LogicalProcessor, which: number, vmcs: bigint): void => {
  if (which === 0) lp.root.cpl = 3
  else if (which === 1) lp.vmclear(vmcs)
  else if (which === 2) lp.vmxoff()
  else {
    lp.root.cpl = 0
    if (!lp.vmxOperation) enterVmx(lp)
    lp.vmptrld(vmcs)
  }
}

const snapshot = (lp: LogicalProcessor, vmcs: bigint) => {
  const page = lp.memory.pageAt(Number(vmcs))!
  const record = lp.platform.lookup(Number(vmcs))
  return {
    region: Array.from(page.words),
    lastError: lp.lastError,
    guestWrites: record?.guestWrites,
    hostWritten: record?.hostWritten,
    controlsWritten: record?.controlsWritten,
    dirty: record === undefined ? [] : Array.from(record.checks.dirty),
    pending: record === undefined ? [] : Array.from(record.checks.pending.subarray(0, record.checks.pendingCount)).sort((a, b) => a - b),
    memoryArmed: record?.checks.memoryArmed,
  }
}

describe("vmwriteLo", () => {
  it("does what VMWRITE of the zero-extended value does", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60 }), (steps) => {
        const a = machine()
        const b = machine()
        const vmcsA = a.currentVmcsPointer
        const vmcsB = b.currentVmcsPointer
        for (const step of steps) {
          if (step.kind === "state") {
            setState(a, step.which, vmcsA)
            setState(b, step.which, vmcsB)
            continue
          }
          const statusA = a.vmwriteLo(step.encoding, step.value)
          const statusB = b.vmwrite(step.encoding, BigInt(step.value >>> 0))
          expect(statusA).toBe(statusB)
          expect(snapshot(a, vmcsA)).toEqual(snapshot(b, vmcsB))
        }
      }),
      { numRuns: 300 },
    )
  })
})
