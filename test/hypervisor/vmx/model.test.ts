// Model-based test of the VMX instruction set across logical processors and VMCSs: fast-check
// generates sequences of VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMLAUNCH and
// VMRESUME, runs them on the simulator and on a small model written from the SDM's pseudo-code,
// and compares every outcome. Failures shrink to a minimal sequence.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { allocRegion, newHost, writeValidVmcs } from "./support.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { newGuestMemory } from "./guest-support.ts"

const LPS = 3
const VMCSS = 3
const HLT = [0xf4]
const ALL_ONES = 0xffff_ffff_ffff_ffffn

interface Real {
  readonly lps: ReadonlyArray<LogicalProcessor>
  readonly vmcs: ReadonlyArray<bigint>
  readonly cores: ReadonlyArray<CpuState>
  readonly vmxonRegions: ReadonlyArray<bigint>
  readonly badRevision: bigint
}

interface VmcsModel {
  launched: boolean
  launchSession: number
  activeOn: number
  fields: Map<number, bigint>
}
interface LpModel {
  vmxOn: boolean
  current: number // index into vmcs, -1 none
  session: number
}
interface Model {
  readonly lps: Array<LpModel>
  readonly vmcs: Array<VmcsModel>
  sessions: number
}

// Fields the commands read and write: widths 16/32/64/natural/high, a read-only exit field
// (writable on this CPU: IA32_VMX_MISC bit 29), one that decides entry (HOST_CR4), an unsupported one.
const fieldsUnderTest = [
  { encoding: F.GUEST_ES_SELECTOR, mask: 0xffffn },
  { encoding: F.EXCEPTION_BITMAP, mask: 0xffff_ffffn },
  { encoding: F.TSC_OFFSET, mask: ALL_ONES },
  { encoding: F.TSC_OFFSET_HIGH, mask: 0xffff_ffffn },
  { encoding: F.CR0_READ_SHADOW, mask: ALL_ONES },
  { encoding: F.VM_EXIT_REASON, mask: 0xffff_ffffn },
  { encoding: F.VM_INSTRUCTION_ERROR, mask: 0xffff_ffffn },
  { encoding: F.HOST_CR4, mask: ALL_ONES },
  { encoding: 0x1234, mask: 0n },
] as const
const HOST_CR4_VALUES = [0x3626e0n, 0x3606e0n]

type Outcome = { status: number; error?: number; value?: bigint }

const fieldValue = (vmcs: VmcsModel, encoding: number): bigint => {
  if (encoding === F.TSC_OFFSET_HIGH) return (vmcs.fields.get(F.TSC_OFFSET) ?? 0n) >> 32n
  return vmcs.fields.get(encoding) ?? 0n
}

/** VMfail(n) of the model: VMfailValid with the error recorded in the current VMCS, else VMfailInvalid. */
const modelFail = (m: Model, lp: number, error: number): Outcome => {
  const current = m.lps[lp]!.current
  if (current < 0) return { status: VmxStatus.FailInvalid }
  m.vmcs[current]!.fields.set(F.VM_INSTRUCTION_ERROR, BigInt(error))
  return { status: VmxStatus.FailValid, error }
}

const observe = (lp: LogicalProcessor, status: number, withValue: boolean): Outcome => {
  if (status === VmxStatus.FailValid) return { status, error: lp.lastError }
  if (status === VmxStatus.Succeed && withValue) return { status, value: lp.value }
  return { status }
}

/** Outcomes observed, so the test can show the sequences reach the interesting cases. */
const seen = new Map<string, number>()

abstract class Cmd implements fc.Command<Model, Real> {
  check(): boolean {
    return true
  }
  abstract expected(m: Model): Outcome
  abstract perform(r: Real): Outcome
  run(m: Model, r: Real): void {
    const expected = this.expected(m)
    const actual = this.perform(r)
    expect(actual, this.toString()).toEqual(expected)
    const key = `${this.constructor.name}:${actual.status}${actual.error === undefined ? "" : `/${actual.error}`}`
    seen.set(key, (seen.get(key) ?? 0) + 1)
  }
  abstract toString(): string
}

class Vmxon extends Cmd {
  constructor(readonly lp: number) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) {
      lp.vmxOn = true
      lp.current = -1
      lp.session = ++m.sessions
      return { status: VmxStatus.Succeed }
    }
    return modelFail(m, this.lp, 15)
  }
  perform(r: Real): Outcome {
    return observe(r.lps[this.lp]!, r.lps[this.lp]!.vmxon(r.vmxonRegions[this.lp]!), false)
  }
  toString(): string {
    return `vmxon(lp${this.lp})`
  }
}

class Vmxoff extends Cmd {
  constructor(readonly lp: number) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    for (const v of m.vmcs) if (v.activeOn === this.lp) v.activeOn = -1
    lp.vmxOn = false
    lp.current = -1
    return { status: VmxStatus.Succeed }
  }
  perform(r: Real): Outcome {
    return observe(r.lps[this.lp]!, r.lps[this.lp]!.vmxoff(), false)
  }
  toString(): string {
    return `vmxoff(lp${this.lp})`
  }
}

class Vmclear extends Cmd {
  constructor(
    readonly lp: number,
    readonly vmcs: number,
  ) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    const v = m.vmcs[this.vmcs]!
    if (v.activeOn >= 0 && v.activeOn !== this.lp) return { status: VmxStatus.Refused }
    v.launched = false
    v.launchSession = 0
    v.activeOn = -1
    if (lp.current === this.vmcs) lp.current = -1
    return { status: VmxStatus.Succeed }
  }
  perform(r: Real): Outcome {
    return observe(r.lps[this.lp]!, r.lps[this.lp]!.vmclear(r.vmcs[this.vmcs]!), false)
  }
  toString(): string {
    return `vmclear(lp${this.lp}, vmcs${this.vmcs})`
  }
}

/** target: 0..VMCSS-1 a VMCS; -1 misaligned; -2 this LP's VMXON region; -3 a region with the wrong revision. */
class Vmptrld extends Cmd {
  constructor(
    readonly lp: number,
    readonly target: number,
  ) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    if (this.target === -1) return modelFail(m, this.lp, 9)
    if (this.target === -2) return modelFail(m, this.lp, 10)
    if (this.target === -3) return modelFail(m, this.lp, 11)
    const v = m.vmcs[this.target]!
    if (v.activeOn >= 0 && v.activeOn !== this.lp) return { status: VmxStatus.Refused }
    v.activeOn = this.lp
    lp.current = this.target
    return { status: VmxStatus.Succeed }
  }
  perform(r: Real): Outcome {
    const lp = r.lps[this.lp]!
    const address =
      this.target === -1 ? r.vmcs[0]! + 8n : this.target === -2 ? r.vmxonRegions[this.lp]! : this.target === -3 ? r.badRevision : r.vmcs[this.target]!
    return observe(lp, lp.vmptrld(address), false)
  }
  toString(): string {
    return `vmptrld(lp${this.lp}, ${this.target >= 0 ? `vmcs${this.target}` : ["", "misaligned", "vmxon-region", "bad-revision"][-this.target]})`
  }
}

class Vmptrst extends Cmd {
  constructor(readonly lp: number) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    return { status: VmxStatus.Succeed, value: lp.current < 0 ? ALL_ONES : BigInt(lp.current) }
  }
  perform(r: Real): Outcome {
    const lp = r.lps[this.lp]!
    const out = observe(lp, lp.vmptrst(), true)
    if (out.value !== undefined && out.value !== ALL_ONES) out.value = BigInt(r.vmcs.indexOf(out.value))
    return out
  }
  toString(): string {
    return `vmptrst(lp${this.lp})`
  }
}

class Vmread extends Cmd {
  constructor(
    readonly lp: number,
    readonly field: number,
  ) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    if (lp.current < 0) return { status: VmxStatus.FailInvalid }
    const { encoding, mask } = fieldsUnderTest[this.field]!
    if (mask === 0n) return modelFail(m, this.lp, 12)
    return { status: VmxStatus.Succeed, value: fieldValue(m.vmcs[lp.current]!, encoding) }
  }
  perform(r: Real): Outcome {
    const lp = r.lps[this.lp]!
    return observe(lp, lp.vmread(fieldsUnderTest[this.field]!.encoding), true)
  }
  toString(): string {
    return `vmread(lp${this.lp}, 0x${fieldsUnderTest[this.field]!.encoding.toString(16)})`
  }
}

class Vmwrite extends Cmd {
  constructor(
    readonly lp: number,
    readonly field: number,
    readonly value: bigint,
  ) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    if (lp.current < 0) return { status: VmxStatus.FailInvalid }
    const { encoding, mask } = fieldsUnderTest[this.field]!
    if (mask === 0n) return modelFail(m, this.lp, 12)
    const v = m.vmcs[lp.current]!
    if (encoding === F.TSC_OFFSET_HIGH) {
      const old = v.fields.get(F.TSC_OFFSET) ?? 0n
      v.fields.set(F.TSC_OFFSET, (old & 0xffff_ffffn) | ((this.value & 0xffff_ffffn) << 32n))
    } else {
      v.fields.set(encoding, this.value & mask)
    }
    return { status: VmxStatus.Succeed }
  }
  perform(r: Real): Outcome {
    const lp = r.lps[this.lp]!
    return observe(lp, lp.vmwrite(fieldsUnderTest[this.field]!.encoding, this.value), false)
  }
  toString(): string {
    return `vmwrite(lp${this.lp}, 0x${fieldsUnderTest[this.field]!.encoding.toString(16)}, 0x${this.value.toString(16)})`
  }
}

class Enter extends Cmd {
  constructor(
    readonly lp: number,
    readonly launch: boolean,
  ) {
    super()
  }
  expected(m: Model): Outcome {
    const lp = m.lps[this.lp]!
    if (!lp.vmxOn) return { status: VmxStatus.InvalidOpcode }
    if (lp.current < 0) return { status: VmxStatus.FailInvalid }
    const v = m.vmcs[lp.current]!
    if (this.launch && v.launched) return modelFail(m, this.lp, 4)
    if (!this.launch && !v.launched) return modelFail(m, this.lp, 5)
    if (!this.launch && v.launchSession !== lp.session) return modelFail(m, this.lp, 6)
    // Host CR4: VMXE (CR4_FIXED0), nothing outside CR4_FIXED1 (0x3727ff), PAE for a 64-bit host.
    const hostCr4 = v.fields.get(F.HOST_CR4) ?? 0n
    if ((hostCr4 & (1n << 13n)) === 0n || (hostCr4 & ~0x3727ffn) !== 0n || (hostCr4 & (1n << 5n)) === 0n) return modelFail(m, this.lp, 8)
    if (this.launch) {
      v.launched = true
      v.launchSession = lp.session
    }
    v.fields.set(F.VM_EXIT_REASON, 12n) // the guest's HLT exits
    return { status: VmxStatus.VmExit }
  }
  perform(r: Real): Outcome {
    const lp = r.lps[this.lp]!
    // Like KVM's vcpu_load: the register file of the vCPU whose VMCS is current.
    const current = lp.currentVmcs >= 0 ? r.vmcs.indexOf(BigInt(lp.currentVmcs)) : -1
    lp.core = current >= 0 ? r.cores[current]! : null
    return observe(lp, this.launch ? lp.vmlaunch(1000) : lp.vmresume(1000), false)
  }
  toString(): string {
    return `${this.launch ? "vmlaunch" : "vmresume"}(lp${this.lp})`
  }
}

const lpArb = fc.nat(LPS - 1)
// Weighted so that sequences spend most of their time in VMX operation with VMCSs loaded.
const commands = [
  fc.oneof(
    { arbitrary: lpArb.map((lp) => new Vmxon(lp) as Cmd), weight: 2 },
    { arbitrary: lpArb.map((lp) => new Vmxoff(lp) as Cmd), weight: 1 },
    { arbitrary: fc.tuple(lpArb, fc.nat(VMCSS - 1)).map(([lp, v]) => new Vmclear(lp, v) as Cmd), weight: 3 },
    { arbitrary: fc.tuple(lpArb, fc.integer({ min: -3, max: VMCSS - 1 })).map(([lp, t]) => new Vmptrld(lp, t) as Cmd), weight: 6 },
    { arbitrary: lpArb.map((lp) => new Vmptrst(lp) as Cmd), weight: 2 },
    { arbitrary: fc.tuple(lpArb, fc.nat(fieldsUnderTest.length - 1)).map(([lp, f]) => new Vmread(lp, f) as Cmd), weight: 4 },
    {
      arbitrary: fc
        .tuple(lpArb, fc.nat(fieldsUnderTest.length - 1), fc.oneof(fc.bigInt({ min: 0n, max: ALL_ONES }), fc.constantFrom(...HOST_CR4_VALUES)))
        .map(([lp, f, value]) => new Vmwrite(lp, f, value) as Cmd),
      weight: 4,
    },
    { arbitrary: fc.tuple(lpArb, fc.boolean()).map(([lp, launch]) => new Enter(lp, launch) as Cmd), weight: 6 },
  ),
]

// The vCPUs' register files: VM entry loads all the state these guests use from the VMCS, so
// they can be shared by every run (the guest only executes HLT in 2 MiB of memory).
const sharedMemory = newGuestMemory(HLT, 2 * 1024 * 1024)
const sharedCores = Array.from({ length: VMCSS }, () => new CpuState(sharedMemory))

const setup = (): { model: Model; real: Real } => {
  const { lps } = newHost(LPS)
  const setupLp = lps[0]!
  for (const lp of lps) lp.root.cr4 |= 1n << 13n
  const vmxonRegions = lps.map((lp) => allocRegion(lp))
  // Prepare each VMCS with valid guest and host state, then leave it clear and inactive.
  setupLp.vmxon(vmxonRegions[0]!)
  const vmcs = Array.from({ length: VMCSS }, () => {
    const address = allocRegion(setupLp)
    setupLp.vmclear(address)
    setupLp.vmptrld(address)
    writeValidVmcs(setupLp)
    setupLp.vmclear(address)
    return address
  })
  setupLp.vmxoff()
  // Every processor starts in VMX root operation (sessions 2, 3, 4 after the setup's 1).
  lps.forEach((lp, i) => lp.vmxon(vmxonRegions[i]!))
  const model: Model = {
    lps: lps.map((_, i) => ({ vmxOn: true, current: -1, session: i + 2 })),
    vmcs: vmcs.map(() => ({
      launched: false,
      launchSession: 0,
      activeOn: -1,
      fields: new Map<number, bigint>([
        [F.GUEST_ES_SELECTOR, 0x10n],
        [F.HOST_CR4, setupLp.root.cr4],
      ]),
    })),
    sessions: 1 + LPS,
  }
  const real: Real = { lps, vmcs, cores: sharedCores, vmxonRegions, badRevision: allocRegion(setupLp, 0x7) }
  return { model, real }
}

describe("model-based VMX instruction test", () => {
  it("agrees with the SDM model over random sequences on 3 processors and 3 VMCSs", () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 200, size: "max" }), (cmds) => {
        fc.modelRun(setup, cmds)
      }),
      { numRuns: 1000 },
    )
    // The generated sequences reach successful entries, every launch-state error and refusals.
    for (const key of ["Enter:5", "Enter:2/4", "Enter:2/5", "Enter:2/6", "Enter:2/8", "Vmptrld:7", "Vmclear:7", "Vmxon:2/15", "Vmptrld:2/11", "Vmread:2/12"]) {
      expect(seen.get(key) ?? 0, key).toBeGreaterThan(0)
    }
  })
})
