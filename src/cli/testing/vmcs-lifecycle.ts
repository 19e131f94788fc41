// The VMCS lifecycle as a model-based property: sequences of VMXON, VMXOFF, VMCLEAR, VMPTRLD,
// VMREAD, VMWRITE, VMLAUNCH and VMRESUME run on the simulated logical processor and on a small
// model written from the SDM's pseudo-code (Vol. 3C ch. 30–31); every status, VM-instruction
// error and VMREAD value must agree. `kvmsim check vmcs-lifecycle` runs it; users import the
// model and the arbitraries from `kvmsim/testing` to write their own properties.
//
// The model's scope: one logical processor with CR4.VMXE set, three VMCS regions, the VMXON
// region and a region with a wrong revision identifier as operands; fields of every width plus an
// unsupported encoding. VMCSs are never given valid controls here, so an entry attempt that
// passes the launch-state checks fails the control checks (VM-instruction error 7).

import fc from "fast-check"
import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import { VmxCapabilities } from "../../hypervisor/vmx/capabilities.ts"
import { HostPhysicalMemory } from "../../hypervisor/vmx/host-memory.ts"
import { LogicalProcessor } from "../../hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../../hypervisor/vmx/outcome.ts"
import { VmxPlatform } from "../../hypervisor/vmx/platform.ts"

/** Operand regions: 0..2 VMCSs, 3 the VMXON region, 4 a page with a wrong revision identifier. */
export const REGION_COUNT = 5
export const VMXON_REGION = 3
export const BAD_REVISION_REGION = 4

export const lifecycleFields = [
  { name: "GUEST_ES_SELECTOR", encoding: F.GUEST_ES_SELECTOR, mask: 0xffffn },
  { name: "EXCEPTION_BITMAP", encoding: F.EXCEPTION_BITMAP, mask: 0xffffffffn },
  { name: "TSC_OFFSET", encoding: F.TSC_OFFSET, mask: 0xffffffffffffffffn },
  { name: "CR0_READ_SHADOW", encoding: F.CR0_READ_SHADOW, mask: 0xffffffffffffffffn },
  { name: "0x1234 (unsupported)", encoding: 0x1234, mask: 0n },
] as const

export type VmxCommand =
  | { readonly op: "vmxon" }
  | { readonly op: "vmxoff" }
  | { readonly op: "vmclear"; readonly region: number }
  | { readonly op: "vmptrld"; readonly region: number }
  | { readonly op: "vmread"; readonly field: number }
  | { readonly op: "vmwrite"; readonly field: number; readonly value: bigint }
  | { readonly op: "vmlaunch" }
  | { readonly op: "vmresume" }

export interface Observed {
  readonly status: number
  readonly error?: number
  readonly value?: bigint
}

const UNSUPPORTED = 0x1234

/** The SDM's pseudo-code for one logical processor, over region indices. */
export class VmxModel {
  vmxOn = false
  current = -1
  readonly launched: Array<boolean> = Array.from({ length: REGION_COUNT }, () => false)
  readonly fields: Array<Map<number, bigint>> = Array.from({ length: REGION_COUNT }, () => new Map())

  private fail(error: number): Observed {
    if (this.current < 0) return { status: VmxStatus.FailInvalid }
    this.fields[this.current]!.set(F.VM_INSTRUCTION_ERROR, BigInt(error))
    return { status: VmxStatus.FailValid, error }
  }

  step(c: VmxCommand): Observed {
    if (c.op === "vmxon") {
      if (this.vmxOn) return this.fail(15)
      this.vmxOn = true
      this.current = -1
      return { status: VmxStatus.Succeed }
    }
    if (!this.vmxOn) return { status: VmxStatus.InvalidOpcode }
    switch (c.op) {
      case "vmxoff":
        this.vmxOn = false
        this.current = -1
        return { status: VmxStatus.Succeed }
      case "vmclear":
        if (c.region === VMXON_REGION) return this.fail(3)
        this.launched[c.region] = false
        if (this.current === c.region) this.current = -1
        return { status: VmxStatus.Succeed }
      case "vmptrld":
        if (c.region === VMXON_REGION) return this.fail(10)
        if (c.region === BAD_REVISION_REGION) return this.fail(11)
        this.current = c.region
        return { status: VmxStatus.Succeed }
      case "vmread": {
        if (this.current < 0) return { status: VmxStatus.FailInvalid }
        const f = lifecycleFields[c.field]!
        if (f.encoding === UNSUPPORTED) return this.fail(12)
        return { status: VmxStatus.Succeed, value: this.fields[this.current]!.get(f.encoding) ?? 0n }
      }
      case "vmwrite": {
        if (this.current < 0) return { status: VmxStatus.FailInvalid }
        const f = lifecycleFields[c.field]!
        if (f.encoding === UNSUPPORTED) return this.fail(12)
        this.fields[this.current]!.set(f.encoding, c.value & f.mask)
        return { status: VmxStatus.Succeed }
      }
      case "vmlaunch":
        if (this.current < 0) return { status: VmxStatus.FailInvalid }
        if (this.launched[this.current]) return this.fail(4)
        return this.fail(7)
      case "vmresume":
        if (this.current < 0) return { status: VmxStatus.FailInvalid }
        if (!this.launched[this.current]) return this.fail(5)
        return this.fail(7)
    }
  }
}

/** The simulated side: a logical processor with CR4.VMXE set and the five operand regions. */
export class VmxSubject {
  readonly lp: LogicalProcessor
  readonly regions: Array<bigint>

  constructor(caps: VmxCapabilities = new VmxCapabilities()) {
    const memory = new HostPhysicalMemory()
    const platform = new VmxPlatform(memory)
    this.lp = new LogicalProcessor(0, platform, caps)
    this.lp.writeCr4(this.lp.root.cr4 | (1n << 13n))
    this.regions = Array.from({ length: REGION_COUNT }, (_, i) => {
      const page = memory.allocPage()!
      memory.write32(Number(page), i === BAD_REVISION_REGION ? (caps.revisionId + 1) & 0x7fffffff : caps.revisionId)
      return page
    })
  }

  step(c: VmxCommand): Observed {
    const lp = this.lp
    let status: number
    switch (c.op) {
      case "vmxon":
        status = lp.vmxon(this.regions[VMXON_REGION]!)
        break
      case "vmxoff":
        status = lp.vmxoff()
        break
      case "vmclear":
        status = lp.vmclear(this.regions[c.region]!)
        break
      case "vmptrld":
        status = lp.vmptrld(this.regions[c.region]!)
        break
      case "vmread":
        status = lp.vmread(lifecycleFields[c.field]!.encoding)
        if (status === VmxStatus.Succeed) return { status, value: lp.value }
        break
      case "vmwrite":
        status = lp.vmwrite(lifecycleFields[c.field]!.encoding, c.value)
        break
      case "vmlaunch":
        status = lp.vmlaunch(1000)
        break
      case "vmresume":
        status = lp.vmresume(1000)
        break
    }
    return status === VmxStatus.FailValid ? { status, error: lp.lastError } : { status }
  }
}

// ---------------------------------------------------------------- arbitraries

export const vmxCommandArbitrary: fc.Arbitrary<VmxCommand> = fc.oneof(
  fc.constant<VmxCommand>({ op: "vmxon" }),
  fc.constant<VmxCommand>({ op: "vmxoff" }),
  fc.integer({ min: 0, max: REGION_COUNT - 1 }).map((region): VmxCommand => ({ op: "vmclear", region })),
  fc.integer({ min: 0, max: REGION_COUNT - 1 }).map((region): VmxCommand => ({ op: "vmptrld", region })),
  fc.integer({ min: 0, max: lifecycleFields.length - 1 }).map((field): VmxCommand => ({ op: "vmread", field })),
  fc.record({ field: fc.integer({ min: 0, max: lifecycleFields.length - 1 }), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }).map((r): VmxCommand => ({ op: "vmwrite", ...r })),
  fc.constant<VmxCommand>({ op: "vmlaunch" }),
  fc.constant<VmxCommand>({ op: "vmresume" }),
)

/** A lifecycle: a sequence of VMX instructions, usually starting with VMXON. */
export const vmcsLifecycleArbitrary = (maxLength = 40): fc.Arbitrary<Array<VmxCommand>> =>
  fc.array(vmxCommandArbitrary, { maxLength }).map((cs) => [{ op: "vmxon" } as VmxCommand, ...cs])

export const formatCommand = (c: VmxCommand): string => {
  switch (c.op) {
    case "vmclear":
    case "vmptrld":
      return `${c.op.toUpperCase()} ${c.region === VMXON_REGION ? "[vmxon region]" : c.region === BAD_REVISION_REGION ? "[bad revision]" : `[vmcs${c.region}]`}`
    case "vmread":
      return `VMREAD ${lifecycleFields[c.field]!.name}`
    case "vmwrite":
      return `VMWRITE ${lifecycleFields[c.field]!.name}, 0x${c.value.toString(16)}`
    default:
      return c.op.toUpperCase()
  }
}

const formatObserved = (o: Observed): string => {
  const name = Object.entries(VmxStatus).find(([, v]) => v === o.status)?.[0] ?? String(o.status)
  return `${name}${o.error === undefined ? "" : `(${o.error})`}${o.value === undefined ? "" : ` = 0x${o.value.toString(16)}`}`
}

export interface LifecycleMismatch {
  readonly step: number
  readonly command: VmxCommand
  readonly expected: Observed
  readonly actual: Observed
}

/** Runs one sequence on both sides; the first disagreement, or undefined. */
export const runLifecycle = (commands: ReadonlyArray<VmxCommand>, subject: VmxSubject = new VmxSubject()): LifecycleMismatch | undefined => {
  const model = new VmxModel()
  for (let i = 0; i < commands.length; i++) {
    const command = commands[i]!
    const expected = model.step(command)
    const actual = subject.step(command)
    if (expected.status !== actual.status || expected.error !== actual.error || expected.value !== actual.value) return { step: i, command, expected, actual }
  }
  return undefined
}

export const describeMismatch = (commands: ReadonlyArray<VmxCommand>, m: LifecycleMismatch): string =>
  commands
    .slice(0, m.step + 1)
    .map((c, i) => `  ${String(i + 1).padStart(3)}. ${formatCommand(c)}${i === m.step ? `   <- expected ${formatObserved(m.expected)}, got ${formatObserved(m.actual)}` : ""}`)
    .join("\n")

/** The property: model and simulator agree on every step of every lifecycle. */
export const vmcsLifecycleProperty = (subjectFactory: () => VmxSubject = () => new VmxSubject()) =>
  fc.property(vmcsLifecycleArbitrary(), (commands) => runLifecycle(commands, subjectFactory()) === undefined)
