// Runs the VM-entry checks in the SDM's order and reports the first that fails. Incremental
// mode re-runs only checks whose inputs changed since they last passed: every write into the
// VMCS (VMWRITE, and the guest-state saving of a VM exit) marks the checks that read the field.
// A check's verdict depends only on its declared fields, the capability MSRs and, where the rule
// says so, the processor's root state (versioned) or memory (the check runs while it reads it),
// so the first failure is the same as a full run's.
import { entryChecks as entryChecksImport, type EntryCheckInfo } from "../../arch/vmx/entry-checks.ts"
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { checkRules as checkRulesImport, type CheckContext, type CheckRule } from "./entry-check-rules.ts"
import type { VmxCapabilities } from "./capabilities.ts"
import { Access as AccessImport, accessKind as accessKindImport, fieldOrdinal as fieldOrdinalImport, VMCS_FIELD_COUNT as VMCS_FIELD_COUNTImport } from "./vmcs-layout.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const entryChecks = entryChecksImport
const F = FImport
const checkRules = checkRulesImport
const fieldOrdinal = fieldOrdinalImport
const Access = AccessImport
const accessKind = accessKindImport
const VMCS_FIELD_COUNT = VMCS_FIELD_COUNTImport

export const CHECK_COUNT = checkRules.length

if (checkRules.some((rule, i) => entryChecks[i]?.name !== rule.name) || entryChecks.length !== CHECK_COUNT) {
  throw new Error("entry-check rules and src/arch/vmx/entry-checks.ts disagree on names or order")
}

/**
 * The checks that read each field, by field ordinal, flattened so a write walks one typed array:
 * field o's checks are checks[start[o]] .. checks[start[o + 1] - 1]. `armsMemory[o]` is 1 when
 * one of them may read memory.
 */
interface ChecksByField {
  readonly checks: Uint16Array
  readonly start: Int32Array
  readonly armsMemory: Uint8Array
}
const checksByField = (reads: (rule: CheckRule, encoding: number) => boolean): ChecksByField => {
  const lists: Array<Array<number>> = Array.from({ length: VMCS_FIELD_COUNT }, () => [])
  checkRules.forEach((rule, index) => {
    for (const encoding of rule.fields) {
      const ordinal = fieldOrdinal[encoding]!
      if (ordinal < 0) throw new Error(`check ${rule.name} names unknown field 0x${encoding.toString(16)}`)
      if (reads(rule, encoding) && !lists[ordinal]!.includes(index)) lists[ordinal]!.push(index)
    }
  })
  const start = new Int32Array(VMCS_FIELD_COUNT + 1)
  for (let o = 0; o < VMCS_FIELD_COUNT; o++) start[o + 1] = start[o]! + lists[o]!.length
  return {
    checks: Uint16Array.from(lists.flat()),
    start,
    armsMemory: Uint8Array.from(lists, (list) => (list.some((check) => checkRules[check]!.readsMemory !== null) ? 1 : 0)),
  }
}
for (const rule of checkRules) {
  for (const encoding of rule.highHalfOnly) {
    if (!rule.fields.includes(encoding) || accessKind[encoding] !== Access.Bits64) {
      throw new Error(`check ${rule.name}: highHalfOnly names 0x${encoding.toString(16)}, which is not one of its 64-bit or natural-width fields`)
    }
  }
}
/** Checks to re-run after any change of a field. */
const READERS = checksByField(() => true)
/** Checks to re-run after a change confined to bits 31:0 of a field (not those reading only 63:32). */
const LOW_HALF_READERS = checksByField((rule, encoding) => !rule.highHalfOnly.includes(encoding))

/**
 * By field ordinal: 1 when a change of the field (FIELD_HAS_READERS), or a change confined to its
 * bits 31:0 (LOW_HALF_HAS_READERS), marks some check. Hot write paths test these before calling
 * into the check state, so a write no check cares about (KVM's RIP and timer writes) costs a load.
 */
export const FIELD_HAS_READERS = Uint8Array.from({ length: VMCS_FIELD_COUNT }, (_, o) => (READERS.start[o + 1]! > READERS.start[o]! ? 1 : 0))
export const LOW_HALF_HAS_READERS = Uint8Array.from({ length: VMCS_FIELD_COUNT }, (_, o) => (LOW_HALF_READERS.start[o + 1]! > LOW_HALF_READERS.start[o]! ? 1 : 0))

/** Checks that also read the processor's root state: dirty whenever its version changed. */
const PROCESSOR_CHECKS: Uint16Array = Uint16Array.from(checkRules.flatMap((rule, index) => (rule.readsProcessor ? [index] : [])))
/** Checks that may read memory, with the predicate saying whether they do at this entry. */
const MEMORY_CHECKS: Uint16Array = Uint16Array.from(checkRules.flatMap((rule, index) => (rule.readsMemory !== null ? [index] : [])))
const MEMORY_PREDICATES: ReadonlyArray<(ctx: CheckContext) => boolean> = checkRules.flatMap((rule) => (rule.readsMemory !== null ? [rule.readsMemory] : []))
/**
 * Per-VMCS bookkeeping for incremental checking (lives beside the region, not in it): which
 * checks must run again, as flags and as a list, so an entry visits only those instead of
 * scanning every check.
 */
export class EntryCheckState {
  /** 1 when the check's inputs changed since it last passed (or it failed). */
  readonly dirty = new Uint8Array(CHECK_COUNT)
  /** The dirty checks' indices (each once), in no particular order. */
  readonly pending = new Uint16Array(CHECK_COUNT)
  pendingCount = 0
  /** The capabilities the clean verdicts were computed against. */
  caps: VmxCapabilities | null = null
  /** The processor version the clean verdicts of PROCESSOR_CHECKS were computed against. */
  processorVersion = -1
  /**
   * The memory predicates must be asked at the next entry: a field of a memory-reading check
   * changed, or a predicate said its check reads memory (then it runs at every entry until a
   * predicate says otherwise). A predicate reads only its check's fields, so while this is false
   * the answer is still "no memory read".
   */
  memoryArmed = true

  constructor() {
    this.markAllDirty()
  }

  /** Marks one check to run at the next entry. */
  markDirty(check: number): void {
    if (this.dirty[check] === 0) {
      this.dirty[check] = 1
      this.pending[this.pendingCount++] = check
    }
  }

  /** Called for every write that changed a field's stored value. */
  fieldChanged(ordinal: number): void {
    this.markReaders(READERS, ordinal)
  }

  /** Called for a write that changed only bits 31:0 of a 64-bit or natural-width field. */
  fieldLowHalfChanged(ordinal: number): void {
    this.markReaders(LOW_HALF_READERS, ordinal)
  }

  private markReaders(readers: ChecksByField, ordinal: number): void {
    const end = readers.start[ordinal + 1]!
    let i = readers.start[ordinal]!
    if (i === end) return
    const checks = readers.checks
    const dirty = this.dirty
    for (; i < end; i++) {
      const check = checks[i]!
      if (dirty[check] === 0) {
        dirty[check] = 1
        this.pending[this.pendingCount++] = check
      }
    }
    if (readers.armsMemory[ordinal] === 1) this.memoryArmed = true
  }

  /**
   * Every check passed with its current inputs: none pending, the same capabilities and
   * processor version as at the last run, no memory read to re-ask (firstFailingCheck is -1).
   */
  allPassedFor(caps: VmxCapabilities, processorVersion: number): boolean {
    return this.pendingCount === 0 && !this.memoryArmed && this.caps === caps && this.processorVersion === processorVersion
  }

  markAllDirty(): void {
    this.memoryArmed = true
    this.dirty.fill(1)
    for (let i = 0; i < CHECK_COUNT; i++) this.pending[i] = i
    this.pendingCount = CHECK_COUNT
  }
}

const fullRun = (ctx: CheckContext): number => {
  for (let i = 0; i < CHECK_COUNT; i++) if (!checkRules[i]!.passes(ctx)) return i
  return -1
}

/**
 * Index of the first failing check, or -1. `state` null means a full run. Incremental: the
 * dirty checks, sorted into the SDM's order, after marking those whose inputs outside the VMCS
 * may have changed (processor version, memory); a clean check passed with its current inputs,
 * so the first failure among these is the full run's.
 */
export const firstFailingCheck = (ctx: CheckContext, state: EntryCheckState | null): number => {
  if (state === null) return fullRun(ctx)
  if (state.caps !== ctx.caps) {
    state.markAllDirty()
    state.caps = ctx.caps
  }
  const processorVersion = ctx.processorVersion
  if (state.processorVersion !== processorVersion) {
    for (let i = 0; i < PROCESSOR_CHECKS.length; i++) state.markDirty(PROCESSOR_CHECKS[i]!)
    state.processorVersion = processorVersion
  }
  if (state.memoryArmed) {
    let reads = false
    for (let i = 0; i < MEMORY_CHECKS.length; i++) {
      if (MEMORY_PREDICATES[i]!(ctx)) {
        state.markDirty(MEMORY_CHECKS[i]!)
        reads = true
      }
    }
    state.memoryArmed = reads
  }
  const pending = state.pending
  const dirty = state.dirty
  const count = state.pendingCount
  // Insertion sort: the list is short, or already sorted after markAllDirty.
  for (let i = 1; i < count; i++) {
    const v = pending[i]!
    let j = i - 1
    while (j >= 0 && pending[j]! > v) {
      pending[j + 1] = pending[j]!
      j--
    }
    pending[j + 1] = v
  }
  for (let a = 0; a < count; a++) {
    const index = pending[a]!
    if (!checkRules[index]!.passes(ctx)) {
      // Keep the failing check and everything after it for the next entry.
      let kept = 0
      for (let i = a; i < count; i++) pending[kept++] = pending[i]!
      state.pendingCount = kept
      return index
    }
    dirty[index] = 0
  }
  state.pendingCount = 0
  return -1
}

export const checkInfo = (index: number): EntryCheckInfo => entryChecks[index]!

const CR0_BITS: Readonly<Record<number, string>> = { 0: "PE", 1: "MP", 2: "EM", 3: "TS", 4: "ET", 5: "NE", 16: "WP", 18: "AM", 29: "NW", 30: "CD", 31: "PG" }
const CR4_BITS: Readonly<Record<number, string>> = {
  0: "VME", 1: "PVI", 2: "TSD", 3: "DE", 4: "PSE", 5: "PAE", 6: "MCE", 7: "PGE", 8: "PCE", 9: "OSFXSR", 10: "OSXMMEXCPT",
  11: "UMIP", 12: "LA57", 13: "VMXE", 14: "SMXE", 16: "FSGSBASE", 17: "PCIDE", 18: "OSXSAVE", 20: "SMEP", 21: "SMAP", 22: "PKE", 23: "CET",
}

const bitList = (mask: bigint, names: Readonly<Record<number, string>>): Array<string> => {
  const out: Array<string> = []
  for (let bit = 0; bit < 64; bit++) if ((mask >> BigInt(bit)) & 1n) out.push(names[bit] ?? `bit ${bit}`)
  return out
}

const fixedDetail = (who: "host" | "guest", reg: "CR0" | "CR4", value: bigint, fixed0: bigint, fixed1: bigint): string => {
  const names = reg === "CR0" ? CR0_BITS : CR4_BITS
  const parts: Array<string> = []
  for (const name of bitList(fixed0 & ~value, names)) parts.push(`${who} ${reg}.${name} must be 1 (IA32_VMX_${reg}_FIXED0)`)
  for (const name of bitList(value & ~fixed1, names)) parts.push(`${who} ${reg}.${name} must be 0 (IA32_VMX_${reg}_FIXED1)`)
  return parts.join("; ")
}

/**
 * A sentence explaining a failed check for a user: the specific bits where the SDM rule is about
 * fixed bits (e.g. "host CR4.VMXE must be 1 (IA32_VMX_CR4_FIXED0)"), then the check's name and rule.
 */
export const explainFailure = (index: number, ctx: CheckContext): string => {
  const info = checkInfo(index)
  let detail = ""
  switch (info.name) {
    case "host.cr0.fixed":
      detail = fixedDetail("host", "CR0", ctx.view.u64(F.HOST_CR0), ctx.caps.cr0Fixed0, ctx.caps.cr0Fixed1)
      break
    case "host.cr4.fixed0":
    case "host.cr4.fixed1":
      detail = fixedDetail("host", "CR4", ctx.view.u64(F.HOST_CR4), ctx.caps.cr4Fixed0, ctx.caps.cr4Fixed1)
      break
    case "guest.cr0.fixed":
      detail = fixedDetail("guest", "CR0", ctx.view.u64(F.GUEST_CR0), ctx.caps.cr0Fixed0, ctx.caps.cr0Fixed1)
      break
    case "guest.cr4.fixed":
      detail = fixedDetail("guest", "CR4", ctx.view.u64(F.GUEST_CR4), ctx.caps.cr4Fixed0, ctx.caps.cr4Fixed1)
      break
  }
  const outcome =
    info.kind === "control"
      ? "VM-instruction error 7 (VM entry with invalid control field(s))"
      : info.kind === "host"
        ? "VM-instruction error 8 (VM entry with invalid host-state field(s))"
        : `VM-entry failure: exit reason 33 | 0x80000000 (invalid guest state), exit qualification ${info.qualification}`
  return `${detail === "" ? "" : detail + ". "}Check ${info.name} (SDM ${info.sdm}): ${info.explanation}. Result: ${outcome}.`
}
