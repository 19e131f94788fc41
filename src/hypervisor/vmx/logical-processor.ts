// One logical processor's VMX: root-mode state (CR0, CR4, IA32_EFER, IA32_FEATURE_CONTROL, CPL),
// the capability MSRs, the VMXON pointer and current-VMCS pointer, and the VMX instructions as
// methods the (TypeScript) host kernel calls. Checks follow the SDM's pseudo-code order
// (Vol. 3C 30.3): #UD, then #GP, then VMfailInvalid / VMfailValid(n), then the operation.
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { VmInstructionError as EImport } from "../../arch/vmx/instruction-errors.ts"
import { FeatureControl as FeatureControlImport, VmxMsr as VmxMsrImport } from "../../arch/vmx/msrs.ts"
import { FieldType as FieldTypeImport, fieldType as fieldTypeImport } from "../../arch/vmx/vmcs-encoding.ts"
import { VmxCapabilities } from "./capabilities.ts"
import type { HostPage, HostPhysicalMemory } from "./host-memory.ts"
import type { VmxStatus as VmxStatusType } from "./outcome.ts"
import { VmxStatus as VmxStatusImport, describeOutcome as describeOutcomeImport, type OutcomeSource, type VmxOutcome } from "./outcome.ts"
import { GuestWrites as GuestWritesImport, type ActiveVmcs, type VmxPlatform } from "./platform.ts"
import { Access as AccessImport, accessKind as accessKindImport, byteOffset as byteOffsetImport, fieldOrdinal as fieldOrdinalImport, readIndex as readIndexImport, VMCS_LAUNCH_SESSION_OFFSET as VMCS_LAUNCH_SESSION_OFFSETImport, VMCS_LAUNCH_STATE_OFFSET as VMCS_LAUNCH_STATE_OFFSETImport } from "./vmcs-layout.ts"
import { VmcsView } from "./vmcs-view.ts"
import { RootState } from "./root-state.ts"
import type { CpuState } from "../../guest/cpu/state.ts"
import type { CheckContext } from "./entry-check-rules.ts"
import {
  checkInfo as checkInfoImport,
  explainFailure as explainFailureImport,
  FIELD_HAS_READERS as FIELD_HAS_READERSImport,
  LOW_HALF_HAS_READERS as LOW_HALF_HAS_READERSImport,
} from "./entry-check-engine.ts"
import type { EntryCheckInfo } from "../../arch/vmx/entry-checks.ts"
import { VmxIntercepts } from "./vmx-intercepts.ts"
import { continueGuest as continueGuestImport, vmEntry as vmEntryImport } from "./transitions.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const F = FImport
const E = EImport
const FeatureControl = FeatureControlImport
const VmxMsr = VmxMsrImport
const FieldType = FieldTypeImport
const fieldType = fieldTypeImport
const VmxStatus = VmxStatusImport
type VmxStatus = VmxStatusType
const describeOutcome = describeOutcomeImport
const GuestWrites = GuestWritesImport
const Access = AccessImport
const accessKind = accessKindImport
const byteOffset = byteOffsetImport
const fieldOrdinal = fieldOrdinalImport
const readIndex = readIndexImport
const VMCS_LAUNCH_SESSION_OFFSET = VMCS_LAUNCH_SESSION_OFFSETImport
const VMCS_LAUNCH_STATE_OFFSET = VMCS_LAUNCH_STATE_OFFSETImport
const checkInfo = checkInfoImport
const explainFailure = explainFailureImport
const FIELD_HAS_READERS = FIELD_HAS_READERSImport
const LOW_HALF_HAS_READERS = LOW_HALF_HAS_READERSImport
const continueGuest = continueGuestImport
const vmEntry = vmEntryImport

const NO_VMCS = -1

/** What the entry checks read of a processor, as plain fields and a class getter (inlinable). */
class ProcessorCheckContext implements CheckContext {
  readonly view: VmcsView
  readonly memory: HostPhysicalMemory
  readonly root: RootState
  private readonly lp: LogicalProcessor
  constructor(lp: LogicalProcessor) {
    this.lp = lp
    this.view = lp.view
    this.memory = lp.memory
    this.root = lp.root
  }
  get caps(): VmxCapabilities {
    return this.lp.caps
  }
  /** The logical processor is in IA-32e mode (host IA32_EFER.LMA). */
  get hostLongMode(): boolean {
    return this.root.longMode
  }
  get processorVersion(): number {
    return this.root.version
  }
}

const guestWriteBit = (encoding: number): number => {
  switch (encoding & ~1) {
    case F.GUEST_RIP:
      return GuestWrites.RIP
    case F.GUEST_RSP:
      return GuestWrites.RSP
    case F.GUEST_RFLAGS:
      return GuestWrites.RFLAGS
    case F.GUEST_INTERRUPTIBILITY_INFO:
      return GuestWrites.INTERRUPTIBILITY
    case F.VMX_PREEMPTION_TIMER_VALUE:
      return 0 // read by the intercept policy at every entry
    default:
      return GuestWrites.OTHER
  }
}
/** writeEffect flags beside the GuestWrites bits (bits 0-4). */
const WRITES_HOST = 0x100
const WRITES_CONTROL = 0x200
const READ_ONLY = 0x400
/**
 * What a VMWRITE that changes the field records, by encoding, so the write path does one table
 * load instead of decoding the field type and switching on the field: the GuestWrites bit of a
 * guest-state field, WRITES_HOST, WRITES_CONTROL (with GuestWrites.OTHER for the entry and exit
 * controls, which decide what entry loads), READ_ONLY for the exit-information fields.
 */
/** @internal exported for the descriptor's test */
export const writeEffect = Uint16Array.from(accessKind, (_kind, encoding) => {
  switch (fieldType(encoding)) {
    case FieldType.GuestState:
      return guestWriteBit(encoding)
    case FieldType.HostState:
      return WRITES_HOST
    case FieldType.ReadOnly:
      return READ_ONLY
    default:
      return encoding === F.VM_ENTRY_CONTROLS || encoding === F.VM_EXIT_CONTROLS ? WRITES_CONTROL | GuestWrites.OTHER : WRITES_CONTROL
  }
})
/**
 * Everything VMWRITE needs of an encoding in one Int32Array load (0: unsupported): where the
 * stored bits are (half index for 16-bit fields, word index otherwise, the high word for `_HIGH`
 * access), the access kind, whether a change of the field or of only its bits 31:0 marks an entry
 * check, and the writeEffect bits. The field ordinal is read only when a check must be marked.
 */
const D_INDEX_MASK = 0x3ff
const D_KIND_SHIFT = 10
const D_FIELD_HAS_READERS = 1 << 13
const D_LOW_HALF_HAS_READERS = 1 << 14
const D_EFFECT_SHIFT = 16
const D_READ_ONLY = READ_ONLY << D_EFFECT_SHIFT
const D_WRITES_HOST = WRITES_HOST << D_EFFECT_SHIFT
const D_WRITES_CONTROL = WRITES_CONTROL << D_EFFECT_SHIFT
const D_BITS16 = Access.Bits16 << D_KIND_SHIFT
const D_BITS64 = Access.Bits64 << D_KIND_SHIFT
const D_KIND_MASK = 7 << D_KIND_SHIFT
/** @internal exported for the table's test */
export const vmwriteDescriptor = Int32Array.from(accessKind, (kind, encoding) => {
  if (kind === Access.Unsupported) return 0
  const offset = byteOffset[encoding]!
  const index = kind === Access.Bits16 ? offset >>> 1 : (offset >>> 2) + (kind === Access.High ? 1 : 0)
  const ordinal = fieldOrdinal[encoding]!
  return (
    index |
    (kind << D_KIND_SHIFT) |
    (FIELD_HAS_READERS[ordinal] === 1 ? D_FIELD_HAS_READERS : 0) |
    (LOW_HALF_HAS_READERS[ordinal] === 1 ? D_LOW_HALF_HAS_READERS : 0) |
    (writeEffect[encoding]! << D_EFFECT_SHIFT)
  )
})
/** What a VMWRITE changed, for the entry checks. */
const UNCHANGED = 0
const LOW_HALF_CHANGED = 1
const CHANGED = 2
const ALL_ONES = 0xffff_ffff_ffff_ffffn
const CR4_VMXE = 1n << 13n

/** What a changed VMWRITE leaves for the next entry: checks to re-run, guest or host state to reload, controls to re-read. */
const noteVmwrite = (current: ActiveVmcs, d: number, encoding: number, changed: number): void => {
  if (changed === LOW_HALF_CHANGED) {
    if ((d & D_LOW_HALF_HAS_READERS) !== 0) current.checks.fieldLowHalfChanged(fieldOrdinal[encoding]!)
  } else if ((d & D_FIELD_HAS_READERS) !== 0) current.checks.fieldChanged(fieldOrdinal[encoding]!)
  if (d >= 1 << D_EFFECT_SHIFT) {
    // Entry and exit controls decide which guest registers entry loads and exit saves: their
    // effect carries GuestWrites.OTHER, so the next entry loads the whole guest-state area.
    current.guestWrites |= (d >>> D_EFFECT_SHIFT) & 0xff
    if ((d & D_WRITES_HOST) !== 0) current.hostWritten = true
    if ((d & D_WRITES_CONTROL) !== 0) current.controlsWritten = true
  }
}

export class LogicalProcessor implements OutcomeSource {
  readonly id: number
  readonly platform: VmxPlatform
  readonly memory: HostPhysicalMemory
  caps: VmxCapabilities
  readonly root = new RootState()
  featureControl: bigint

  /** In VMX operation (root or non-root). */
  vmxOperation = false
  /** In VMX non-root operation (a guest is running on this processor). */
  nonRoot = false
  /** VMXON region address, or -1. */
  vmxonPointer = NO_VMCS
  /** Current-VMCS pointer as a number, or -1 for the all-ones "no current VMCS". */
  currentVmcs = NO_VMCS
  /** Bookkeeping of the current VMCS (null when none). */
  current: ActiveVmcs | null = null
  /** View over the current VMCS region (its page is meaningless while `current` is null). */
  readonly view: VmcsView
  /** Identifier of this processor's VMX session (changes at every VMXON). */
  session = 0
  private readonly activeHere = new Set<number>()

  /**
   * The register file guest code runs with while this processor is in non-root operation (the
   * vCPU loaded here). VM entry loads the VMCS guest-state area into it, VM exit saves it back;
   * general-purpose registers other than RSP stay in it across exits, as on real hardware.
   */
  core: CpuState | null = null
  /** The execution controls of the current VMCS as the core's intercept policy. */
  readonly intercepts: VmxIntercepts
  /** Host MSRs written by VM-exit MSR-load lists (index → value). */
  readonly hostMsrs = new Map<number, bigint>()
  /** The guest executed HLT without HLT exiting and waits for an event (still non-root). */
  guestHalted = false
  /** A VMX abort shut this processor down. */
  shutdown = false
  /** VM exits completed on this processor. */
  exits = 0
  /**
   * The VMCS whose host-state area the root state was last loaded from, with the root state's
   * version and the exit controls then: while all three hold, a VM exit has nothing to copy.
   */
  /** @internal */ hostStateFrom: ActiveVmcs | null = null
  /** @internal */ hostStateVersion = -1
  /** @internal */ hostStateExitControls = 0
  /** @internal */ readonly checkContext: CheckContext

  // Outcome details of the last instruction.
  lastError = 0
  refusal = ""
  lastExitReason = 0
  lastExitQualificationLo = 0
  lastExitQualificationHi = 0
  /** Index of the entry check that failed at the last VMLAUNCH/VMRESUME, or -1. */
  lastFailedCheck = -1

  get lastExitQualification(): bigint {
    return (BigInt(this.lastExitQualificationHi >>> 0) << 32n) | BigInt(this.lastExitQualificationLo >>> 0)
  }
  /** Value produced by VMREAD, VMPTRST, RDMSR. */
  value = 0n
  /** Status of the last number-typed fast accessor (vmreadLo). */
  status: VmxStatus = VmxStatus.Succeed

  constructor(id: number, platform: VmxPlatform, caps: VmxCapabilities = new VmxCapabilities()) {
    this.id = id
    this.platform = platform
    this.memory = platform.memory
    this.caps = caps
    this.featureControl = caps.msrs.IA32_FEATURE_CONTROL
    // Until VMPTRLD makes a VMCS current the view points at a detached page, so the hot paths
    // never test for "no view"; every instruction that needs a current VMCS checks for one first.
    const detachedPage = new ArrayBuffer(4096)
    this.view = new VmcsView({ bytes: new Uint8Array(detachedPage), halves: new Uint16Array(detachedPage), words: new Uint32Array(detachedPage) })
    this.intercepts = new VmxIntercepts(platform.memory)
    this.checkContext = new ProcessorCheckContext(this)
  }

  // ---------------------------------------------------------------- VM entry

  /** VMLAUNCH: runs the guest for up to `budget` instructions or until a VM exit. */
  vmlaunch(budget = 1_000_000): VmxStatus {
    return vmEntry(this, true, budget)
  }

  /** VMRESUME: like VMLAUNCH for a launched VMCS. */
  vmresume(budget = 1_000_000): VmxStatus {
    return vmEntry(this, false, budget)
  }

  /** Lets a guest that is still in non-root operation (budget spent, or halted) run on. */
  continueGuest(budget = 1_000_000): VmxStatus {
    return continueGuest(this, budget)
  }

  /** The entry check that failed at the last VMLAUNCH/VMRESUME, if any. */
  get lastEntryFailure(): EntryCheckInfo | undefined {
    return this.lastFailedCheck < 0 ? undefined : checkInfo(this.lastFailedCheck)
  }

  /**
   * Why the last VM entry failed, for a user ("host CR4.VMXE must be 1 (IA32_VMX_CR4_FIXED0).
   * Check host.cr4.fixed0 ..."), or undefined if the last entry passed its checks. Reads the
   * current VMCS, so ask before changing it.
   */
  explainEntryFailure(): string | undefined {
    if (this.lastFailedCheck < 0 || this.current === null) return undefined
    return explainFailure(this.lastFailedCheck, this.checkContext)
  }

  /** @internal */ ordinalOf(encoding: number): number {
    return fieldOrdinal[encoding]!
  }

  /** Typed form of a status for callers at the boundary. */
  outcome(status: VmxStatus): VmxOutcome {
    return describeOutcome(status, this)
  }

  /** The current-VMCS pointer as VMPTRST would store it. */
  get currentVmcsPointer(): bigint {
    return this.currentVmcs === NO_VMCS ? ALL_ONES : BigInt(this.currentVmcs)
  }

  /** Addresses of the VMCSs active on this processor. */
  get activeVmcsAddresses(): ReadonlyArray<bigint> {
    return [...this.activeHere].map((a) => BigInt(a))
  }

  // ---------------------------------------------------------------- root-mode registers and MSRs

  /** MOV to CR4. In VMX operation the fixed bits apply (clearing VMXE is #GP). */
  writeCr4(value: bigint): VmxStatus {
    if (this.vmxOperation && ((value & this.caps.cr4Fixed0) !== this.caps.cr4Fixed0 || (value & ~this.caps.cr4Fixed1) !== 0n)) {
      return VmxStatus.GeneralProtection
    }
    if ((value & ~this.caps.cr4Fixed1) !== 0n) return VmxStatus.GeneralProtection
    this.root.cr4 = value
    return VmxStatus.Succeed
  }

  /** MOV to CR0. In VMX operation the fixed bits apply. */
  writeCr0(value: bigint): VmxStatus {
    if (this.vmxOperation && ((value & this.caps.cr0Fixed0) !== this.caps.cr0Fixed0 || (value & ~this.caps.cr0Fixed1) !== 0n)) {
      return VmxStatus.GeneralProtection
    }
    this.root.cr0 = value
    return VmxStatus.Succeed
  }

  /** RDMSR of a VMX-related MSR (capabilities, IA32_FEATURE_CONTROL, IA32_EFER); value in `value`. */
  rdmsr(index: number): VmxStatus {
    if (index === VmxMsr.IA32_FEATURE_CONTROL) {
      this.value = this.featureControl
      return VmxStatus.Succeed
    }
    if (index === 0xc000_0080) {
      this.value = this.root.efer
      return VmxStatus.Succeed
    }
    const cap = this.caps.read(index)
    if (cap === undefined) return VmxStatus.GeneralProtection
    this.value = cap
    return VmxStatus.Succeed
  }

  /** WRMSR: IA32_FEATURE_CONTROL is writable until its lock bit is set; capability MSRs are read-only. */
  wrmsr(index: number, value: bigint): VmxStatus {
    if (index === VmxMsr.IA32_FEATURE_CONTROL) {
      if ((this.featureControl & BigInt(FeatureControl.LOCKED)) !== 0n) return VmxStatus.GeneralProtection
      this.featureControl = value
      return VmxStatus.Succeed
    }
    return VmxStatus.GeneralProtection
  }

  // ---------------------------------------------------------------- helpers

  private fail(error: number): VmxStatus {
    if (this.current === null) return VmxStatus.FailInvalid
    this.lastError = error
    this.view.setLo(F.VM_INSTRUCTION_ERROR, error)
    return VmxStatus.FailValid
  }

  private refuse(message: string): VmxStatus {
    this.refusal = message
    return VmxStatus.Refused
  }

  /** The common prologue of VMCS-pointer instructions: #UD outside VMX operation, #GP at CPL > 0. */
  private prologue(): VmxStatus | -1 {
    if (this.shutdown) return this.refuse(`logical processor ${this.id} is shut down after a VMX abort (SDM 27.7); only a reset recovers`)
    if (!this.vmxOperation) return VmxStatus.InvalidOpcode
    if (this.nonRoot) {
      return this.refuse(`logical processor ${this.id} is in VMX non-root operation: the host cannot execute VMX instructions until the guest exits`)
    }
    if (this.root.cpl > 0) return VmxStatus.GeneralProtection
    return -1
  }

  private badPhysicalAddress(address: bigint): boolean {
    return (address & 0xfffn) !== 0n || !this.memory.isValidAddress(address)
  }

  private pageOf(address: number): HostPage | undefined {
    return this.memory.pageAt(address)
  }

  // ---------------------------------------------------------------- VMXON / VMXOFF

  vmxon(address: bigint): VmxStatus {
    if (this.shutdown) return this.refuse(`logical processor ${this.id} is shut down after a VMX abort (SDM 27.7)`)
    if ((this.root.cr4 & CR4_VMXE) === 0n || (this.root.cr0 & 1n) === 0n) return VmxStatus.InvalidOpcode
    if (!this.vmxOperation) {
      const fc = this.featureControl
      if (
        this.root.cpl > 0 ||
        (this.root.cr0 & this.caps.cr0Fixed0) !== this.caps.cr0Fixed0 ||
        (this.root.cr0 & ~this.caps.cr0Fixed1) !== 0n ||
        (this.root.cr4 & this.caps.cr4Fixed0) !== this.caps.cr4Fixed0 ||
        (this.root.cr4 & ~this.caps.cr4Fixed1) !== 0n ||
        (fc & BigInt(FeatureControl.LOCKED)) === 0n ||
        (fc & BigInt(FeatureControl.VMX_OUTSIDE_SMX)) === 0n
      ) {
        return VmxStatus.GeneralProtection
      }
      if (this.badPhysicalAddress(address)) return VmxStatus.FailInvalid
      const revision = this.memory.read32(Number(address))
      if (revision >>> 0 !== this.caps.revisionId) return VmxStatus.FailInvalid
      this.vmxOperation = true
      this.vmxonPointer = Number(address)
      this.currentVmcs = NO_VMCS
      this.current = null
      this.session = this.platform.nextSession()
      return VmxStatus.Succeed
    }
    if (this.nonRoot) return this.refuse(`logical processor ${this.id} is in VMX non-root operation`)
    if (this.root.cpl > 0) return VmxStatus.GeneralProtection
    return this.fail(E.VMXON_IN_VMX_ROOT_OPERATION)
  }

  vmxoff(): VmxStatus {
    const early = this.prologue()
    if (early !== -1) return early
    // VMXOFF does not write back or clear VMCSs; they stop being active here. Their data is
    // already in memory (this implementation keeps no cache), their launch state is unchanged.
    for (const address of this.activeHere) this.platform.deactivate(address)
    this.activeHere.clear()
    this.vmxOperation = false
    this.vmxonPointer = NO_VMCS
    this.currentVmcs = NO_VMCS
    this.current = null
    return VmxStatus.Succeed
  }

  // ---------------------------------------------------------------- VMCS pointer instructions

  vmclear(address: bigint): VmxStatus {
    const early = this.prologue()
    if (early !== -1) return early
    if (this.badPhysicalAddress(address)) return this.fail(E.VMCLEAR_INVALID_ADDRESS)
    const a = Number(address)
    if (a === this.vmxonPointer) return this.fail(E.VMCLEAR_VMXON_POINTER)
    const record = this.platform.lookup(a)
    if (record !== undefined && record.ownerId !== this.id) {
      return this.refuse(
        `VMCS 0x${a.toString(16)} is active on logical processor ${record.ownerId}; VMCLEAR it there (the SDM leaves clearing it elsewhere undefined)`,
      )
    }
    const page = this.pageOf(a)
    if (page !== undefined) {
      page.words[VMCS_LAUNCH_STATE_OFFSET >>> 2] = 0
      page.words[VMCS_LAUNCH_SESSION_OFFSET >>> 2] = 0
    }
    if (record !== undefined) {
      this.platform.deactivate(a)
      this.activeHere.delete(a)
    }
    if (a === this.currentVmcs) {
      this.currentVmcs = NO_VMCS
      this.current = null
    }
    return VmxStatus.Succeed
  }

  vmptrld(address: bigint): VmxStatus {
    const early = this.prologue()
    if (early !== -1) return early
    if (this.badPhysicalAddress(address)) return this.fail(E.VMPTRLD_INVALID_ADDRESS)
    const a = Number(address)
    if (a === this.vmxonPointer) return this.fail(E.VMPTRLD_VMXON_POINTER)
    const revision = this.memory.read32(a)
    const shadowSupported = (this.caps.secondary.allowed1 & 0x4000) !== 0
    if ((revision & 0x7fff_ffff) !== this.caps.revisionId || (revision >>> 31 === 1 && !shadowSupported)) {
      return this.fail(E.VMPTRLD_INCORRECT_VMCS_REVISION_ID)
    }
    let record = this.platform.lookup(a)
    if (record !== undefined && record.ownerId !== this.id) {
      return this.refuse(
        `VMCS 0x${a.toString(16)} is active on logical processor ${record.ownerId}; VMCLEAR it there before loading it here (the SDM leaves this undefined)`,
      )
    }
    if (record === undefined) {
      record = this.platform.activate(a, this.id)
      this.activeHere.add(a)
    }
    this.currentVmcs = a
    this.current = record
    this.view.page = this.pageOf(a)!
    return VmxStatus.Succeed
  }

  /** VMPTRST: the pointer is left in `value` (all-ones when there is no current VMCS). */
  vmptrst(): VmxStatus {
    const early = this.prologue()
    if (early !== -1) return early
    this.value = this.currentVmcsPointer
    return VmxStatus.Succeed
  }

  // ---------------------------------------------------------------- VMREAD / VMWRITE

  /** Validates an encoding for VMREAD/VMWRITE; returns the access kind or a status. */
  private fieldAccess(encoding: number): number {
    if (encoding < 0 || encoding > 0x7fff || !Number.isInteger(encoding)) return Access.Unsupported
    return accessKind[encoding]!
  }

  /** VMREAD: the value (zero-extended) is left in `value`. */
  vmread(encoding: number): VmxStatus {
    const early = this.prologue()
    if (early !== -1) return early
    if (this.current === null) return VmxStatus.FailInvalid
    const kind = this.fieldAccess(encoding)
    if (kind === Access.Unsupported) return this.fail(E.UNSUPPORTED_VMCS_COMPONENT)
    this.value = this.view.u64(encoding)
    return VmxStatus.Succeed
  }

  /**
   * VMREAD for fields of at most 32 bits (or the low half of wider ones) without bigint: returns
   * the value and leaves the status in `status`.
   */
  vmreadLo(encoding: number): number {
    const early = this.prologue()
    if (early !== -1) {
      this.status = early
      return 0
    }
    if (this.current === null) {
      this.status = VmxStatus.FailInvalid
      return 0
    }
    if ((encoding & 0x7fff) !== encoding || readIndex[encoding]! < 0) {
      this.status = this.fail(E.UNSUPPORTED_VMCS_COMPONENT)
      return 0
    }
    this.status = VmxStatus.Succeed
    return this.view.lo(encoding)
  }

  vmwrite(encoding: number, value: bigint): VmxStatus {
    return this.vmwriteHalves(encoding, Number(value & 0xffff_ffffn), Number((value >> 32n) & 0xffff_ffffn))
  }

  /** VMWRITE of a number (zero-extended to 64 bits): no bigint on the path. */
  vmwriteLo(encoding: number, value: number): VmxStatus {
    return this.vmwriteHalves(encoding, value >>> 0, 0)
  }

  /**
   * VMWRITE's usual case decided in one test (VMX root operation at CPL 0, a current VMCS, a
   * supported field VMWRITE may write), small enough for the compiler to inline into KVM's
   * per-entry writes; everything else takes vmwriteChecked, which checks in the SDM's order.
   */
  private vmwriteHalves(encoding: number, lo: number, hi: number): VmxStatus {
    const current = this.current
    // (e & 0x7fff) === e: a non-negative integer below 0x8000 (NaN, fractions and negatives fail).
    const d = (encoding & 0x7fff) === encoding ? vmwriteDescriptor[encoding]! : 0
    if (current === null || d === 0 || (d & D_READ_ONLY) !== 0 || this.shutdown || !this.vmxOperation || this.nonRoot || this.root.cpl !== 0) {
      return this.vmwriteChecked(encoding, d, lo, hi)
    }
    return this.vmwriteStore(current, d, encoding, lo, hi)
  }

  /** VMWRITE's checks in the SDM's order (the prologue's faults, no current VMCS, the field). */
  private vmwriteChecked(encoding: number, d: number, lo: number, hi: number): VmxStatus {
    const early = this.prologue()
    if (early !== -1) return early
    const current = this.current
    if (current === null) return VmxStatus.FailInvalid
    if (d === 0) return this.fail(E.UNSUPPORTED_VMCS_COMPONENT)
    if ((d & D_READ_ONLY) !== 0 && !this.caps.vmwriteAnyField) return this.fail(E.VMWRITE_READ_ONLY_VMCS_COMPONENT)
    return this.vmwriteStore(current, d, encoding, lo, hi)
  }

  /** Stores a checked VMWRITE and records what the next entry must reload or re-check. */
  private vmwriteStore(current: ActiveVmcs, d: number, encoding: number, lo: number, hi: number): VmxStatus {
    const page = this.view.page
    const index = d & D_INDEX_MASK
    const kind = d & D_KIND_MASK
    // What changed: nothing, only bits 31:0 of a 64-bit or natural-width field (the checks that
    // read only bits 63:32 stay clean), or more.
    let changed = UNCHANGED
    if (kind === D_BITS16) {
      const next = lo & 0xffff
      if (page.halves[index] !== next) {
        page.halves[index] = next
        changed = CHANGED
      }
    } else {
      // High access writes bits 63:32 of the field (its index is already the high word).
      const words = page.words
      if (words[index] !== lo >>> 0) {
        words[index] = lo >>> 0
        changed = kind === D_BITS64 ? LOW_HALF_CHANGED : CHANGED
      }
      if (kind === D_BITS64 && words[index + 1] !== hi >>> 0) {
        words[index + 1] = hi >>> 0
        changed = CHANGED
      }
    }
    if (changed !== UNCHANGED) noteVmwrite(current, d, encoding, changed)
    return VmxStatus.Succeed
  }

  // ---------------------------------------------------------------- launch state

  /** Launch state of the current VMCS: true when launched. */
  get currentLaunched(): boolean {
    return this.current !== null && this.view.page.words[VMCS_LAUNCH_STATE_OFFSET >>> 2] === 1
  }

  /** @internal */ setLaunched(): void {
    this.view.page.words[VMCS_LAUNCH_STATE_OFFSET >>> 2] = 1
    this.view.page.words[VMCS_LAUNCH_SESSION_OFFSET >>> 2] = this.session
  }

  /** @internal */ launchedInThisSession(): boolean {
    return this.view.page.words[VMCS_LAUNCH_SESSION_OFFSET >>> 2] === this.session
  }

  /** @internal */ vmfail(error: number): VmxStatus {
    return this.fail(error)
  }

  /** @internal */ vmxPrologue(): VmxStatus | -1 {
    return this.prologue()
  }

  // ---------------------------------------------------------------- INVEPT / INVVPID

  /** INVEPT type 1 (single-context, descriptor EPTP) or 2 (all-context). */
  invept(type: bigint, eptp: bigint, reserved = 0n): VmxStatus {
    const cap = this.caps.eptVpidCap
    if (!this.vmxOperation || (cap & (1n << 20n)) === 0n) return VmxStatus.InvalidOpcode
    const early = this.prologue()
    if (early !== -1) return early
    const supported = (type === 1n && (cap & (1n << 25n)) !== 0n) || (type === 2n && (cap & (1n << 26n)) !== 0n)
    if (!supported) return this.fail(E.INVALID_OPERAND_TO_INVEPT_INVVPID)
    if (type === 1n) {
      const memoryType = Number(eptp & 7n)
      const okType = (memoryType === 0 && (cap & (1n << 8n)) !== 0n) || (memoryType === 6 && (cap & (1n << 14n)) !== 0n)
      if (!okType || ((eptp >> 3n) & 7n) !== 3n || (eptp & 0xf80n) !== 0n || !this.memory.isValidAddress(eptp)) {
        return this.fail(E.INVALID_OPERAND_TO_INVEPT_INVVPID)
      }
    }
    void reserved
    this.onTranslationsInvalidated()
    return VmxStatus.Succeed
  }

  /** INVVPID type 0 (individual address), 1 (single context), 2 (all contexts), 3 (single, keep globals). */
  invvpid(type: bigint, vpid: bigint, linearAddress = 0n): VmxStatus {
    const cap = this.caps.eptVpidCap
    if (!this.vmxOperation || (cap & (1n << 32n)) === 0n) return VmxStatus.InvalidOpcode
    const early = this.prologue()
    if (early !== -1) return early
    if (type < 0n || type > 3n || (cap & (1n << (40n + type))) === 0n) return this.fail(E.INVALID_OPERAND_TO_INVEPT_INVVPID)
    if ((vpid & ~0xffffn) !== 0n) return this.fail(E.INVALID_OPERAND_TO_INVEPT_INVVPID)
    if (type !== 2n && vpid === 0n) return this.fail(E.INVALID_OPERAND_TO_INVEPT_INVVPID)
    if (type === 0n && BigInt.asIntN(48, linearAddress) !== BigInt.asIntN(64, linearAddress)) return this.fail(E.INVALID_OPERAND_TO_INVEPT_INVVPID)
    this.onTranslationsInvalidated()
    return VmxStatus.Succeed
  }

  /** INVEPT/INVVPID drop the cached translations of the guest core loaded here. */
  private onTranslationsInvalidated(): void {
    this.platform.translationInvalidations++
    if (this.core !== null) this.core.flushTlb()
  }
}
