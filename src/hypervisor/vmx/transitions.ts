// VM entry (SDM Vol. 3C ch. 26) and VM exit (ch. 27) on one logical processor: the launch-state
// checks, the entry checks (error 7, error 8, or a failed entry with exit reason 33/34), loading
// guest state and the MSR-load list, event injection, running the guest core until it exits,
// then recording the exit, saving guest state, the MSR areas and loading host state.
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { EntryControl as EntryControlImport, ExitControl as ExitControlImport, PinControl as PinControlImport } from "../../arch/vmx/control-bits.ts"
import { ExitReason as ExitReasonImport, EXIT_REASON_FAILED_VMENTRY as EXIT_REASON_FAILED_VMENTRYImport } from "../../arch/exit-reasons.ts"
import { VmInstructionError as EImport } from "../../arch/vmx/instruction-errors.ts"
import type { CpuState } from "../../guest/cpu/state.ts"
import { injectEvent as injectEventImport, runBatch as runBatchImport, RunOutcome as RunOutcomeImport } from "./guest-core.ts"
import { checkInfo as checkInfoImport, firstFailingCheck as firstFailingCheckImport } from "./entry-check-engine.ts"
import {
  loadChangedGuestState as loadChangedGuestStateImport,
  loadGuestState as loadGuestStateImport,
  saveGuestState as saveGuestStateImport,
  saveVolatileGuestState as saveVolatileGuestStateImport,
} from "./guest-state.ts"
import { ExitWork as ExitWorkImport, GuestWrites as GuestWritesImport, type ActiveVmcs } from "./platform.ts"
import type { LogicalProcessor } from "./logical-processor.ts"
import { RootReg as RootRegImport } from "./root-state.ts"
import { byteOffset as byteOffsetImport, fieldOrdinal as fieldOrdinalImport, VMCS_LAUNCH_SESSION_OFFSET, VMCS_LAUNCH_STATE_OFFSET } from "./vmcs-layout.ts"
import { loadEntryMsrs as loadEntryMsrsImport, loadExitMsrs as loadExitMsrsImport, storeExitMsrs as storeExitMsrsImport } from "./msr-areas.ts"
import type { VmxStatus as VmxStatusType } from "./outcome.ts"
import { VmxStatus as VmxStatusImport } from "./outcome.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const F = FImport
const EntryControl = EntryControlImport
const ExitControl = ExitControlImport
const PinControl = PinControlImport
const ExitReason = ExitReasonImport
const EXIT_REASON_FAILED_VMENTRY = EXIT_REASON_FAILED_VMENTRYImport
const E = EImport
const injectEvent = injectEventImport
const runBatch = runBatchImport
const RunOutcome = RunOutcomeImport
const checkInfo = checkInfoImport
const firstFailingCheck = firstFailingCheckImport
const loadChangedGuestState = loadChangedGuestStateImport
const loadGuestState = loadGuestStateImport
const saveGuestState = saveGuestStateImport
const saveVolatileGuestState = saveVolatileGuestStateImport
const GuestWrites = GuestWritesImport
const ExitWork = ExitWorkImport
const RootReg = RootRegImport
const byteOffset = byteOffsetImport
const fieldOrdinal = fieldOrdinalImport
const loadEntryMsrs = loadEntryMsrsImport
const loadExitMsrs = loadExitMsrsImport
const storeExitMsrs = storeExitMsrsImport
const VmxStatus = VmxStatusImport
type VmxStatus = VmxStatusType

const TWO32 = 4294967296

/** Word index of a field inside the region (exit-information fields are 32-bit or wider). */
const wordOf = (field: number): number => byteOffset[field]! >>> 2
const W_EXIT_REASON = wordOf(F.VM_EXIT_REASON)
const W_EXIT_QUALIFICATION = wordOf(F.EXIT_QUALIFICATION)
const W_GUEST_LINEAR_ADDRESS = wordOf(F.GUEST_LINEAR_ADDRESS)
const W_GUEST_PHYSICAL_ADDRESS = wordOf(F.GUEST_PHYSICAL_ADDRESS)
const W_EXIT_INTR_INFO = wordOf(F.VM_EXIT_INTR_INFO)
const W_EXIT_INTR_ERROR_CODE = wordOf(F.VM_EXIT_INTR_ERROR_CODE)
const W_IDT_VECTORING_INFO = wordOf(F.IDT_VECTORING_INFO_FIELD)
const W_IDT_VECTORING_ERROR_CODE = wordOf(F.IDT_VECTORING_ERROR_CODE)
const W_EXIT_INSTRUCTION_LEN = wordOf(F.VM_EXIT_INSTRUCTION_LEN)
const W_VMX_INSTRUCTION_INFO = wordOf(F.VMX_INSTRUCTION_INFO)
const W_LAUNCH_STATE = VMCS_LAUNCH_STATE_OFFSET >>> 2
const W_LAUNCH_SESSION = VMCS_LAUNCH_SESSION_OFFSET >>> 2
// Control fields the entry/exit paths read every time (all 32-bit: their value is words[W]).
const W_PIN_CONTROLS = wordOf(F.PIN_BASED_VM_EXEC_CONTROL)
const W_EXIT_CONTROLS = wordOf(F.VM_EXIT_CONTROLS)
const W_ENTRY_CONTROLS = wordOf(F.VM_ENTRY_CONTROLS)
const W_ENTRY_INTR_INFO = wordOf(F.VM_ENTRY_INTR_INFO_FIELD)
const W_ENTRY_MSR_LOAD_COUNT = wordOf(F.VM_ENTRY_MSR_LOAD_COUNT)
const W_EXIT_MSR_STORE_COUNT = wordOf(F.VM_EXIT_MSR_STORE_COUNT)
const W_EXIT_MSR_LOAD_COUNT = wordOf(F.VM_EXIT_MSR_LOAD_COUNT)
const O_ENTRY_INTR_INFO = fieldOrdinal[F.VM_ENTRY_INTR_INFO_FIELD]!
const O_PREEMPTION_TIMER_VALUE = fieldOrdinal[F.VMX_PREEMPTION_TIMER_VALUE]!

/**
 * Which VMCS a register file last synced with (full load or full save). Consulted only when the
 * pair changes: the VMCS that held the register file before loses its claim (syncedCore), so
 * an entry needs nothing but `current.syncedCore === core` to know the register file holds this
 * VMCS's guest state.
 */
const claimedBy = new WeakMap<CpuState, ActiveVmcs>()
const claim = (core: CpuState, vmcs: ActiveVmcs): void => {
  if (vmcs.syncedCore === core) return
  const previous = claimedBy.get(core)
  if (previous !== undefined && previous !== vmcs && previous.syncedCore === core) previous.syncedCore = null
  claimedBy.set(core, vmcs)
  vmcs.syncedCore = core
}
/** Entry controls that load a guest register only under a control bit: DR7, IA32_PAT, IA32_EFER. */
const LOADED_UNDER_CONTROL = EntryControl.LOAD_DEBUG_CONTROLS | EntryControl.LOAD_IA32_PAT | EntryControl.LOAD_IA32_EFER
/**
 * The entry "load" bits whose register an exit with these controls saves: save debug controls
 * (exit bit 2) -> entry bit 2, save PAT (18) -> 14, save EFER (20) -> 15.
 */
const savedAsLoaded = (exitControls: number): number =>
  (exitControls & ExitControl.SAVE_DEBUG_CONTROLS) | ((exitControls >>> 4) & EntryControl.LOAD_IA32_PAT) | ((exitControls >>> 5) & EntryControl.LOAD_IA32_EFER)
if (
  savedAsLoaded(ExitControl.SAVE_DEBUG_CONTROLS) !== EntryControl.LOAD_DEBUG_CONTROLS ||
  savedAsLoaded(ExitControl.SAVE_IA32_PAT) !== EntryControl.LOAD_IA32_PAT ||
  savedAsLoaded(ExitControl.SAVE_IA32_EFER) !== EntryControl.LOAD_IA32_EFER
) {
  throw new Error("savedAsLoaded: control bit positions moved")
}
/** ExitWork bits of the controls in a VMCS region's words. */
const exitWorkOf = (words: Uint32Array): number => {
  const exitControls = words[W_EXIT_CONTROLS]!
  let work = 0
  // The next entry may keep the register file instead of loading the guest-state area only if
  // the exit saved everything that entry loads (DR7, PAT, EFER have separate load/save controls).
  if ((words[W_ENTRY_CONTROLS]! & LOADED_UNDER_CONTROL & ~savedAsLoaded(exitControls)) !== 0) work |= ExitWork.RELOAD_GUEST_STATE
  if ((exitControls & ExitControl.SAVE_VMX_PREEMPTION_TIMER) !== 0 && (words[W_PIN_CONTROLS]! & PinControl.VMX_PREEMPTION_TIMER) !== 0) {
    work |= ExitWork.SAVE_PREEMPTION_TIMER
  }
  if (words[W_EXIT_MSR_STORE_COUNT] !== 0) work |= ExitWork.STORE_MSRS
  if (words[W_EXIT_MSR_LOAD_COUNT] !== 0) work |= ExitWork.LOAD_MSRS
  return work
}
const address = (lp: LogicalProcessor, field: number): number => lp.view.hi(field) * TWO32 + lp.view.lo(field)

export const vmEntry = (lp: LogicalProcessor, launch: boolean, budget: number): VmxStatus => {
  const early = lp.vmxPrologue()
  if (early !== -1) return early
  const current = lp.current
  // A shadow VMCS (region bit 31) can be read and written but never entered (SDM 30.3).
  const region = lp.view.page.words
  if (current === null || region[0]! >>> 31 === 1) return VmxStatus.FailInvalid
  if (lp.root.movSsBlocking) return lp.vmfail(E.ENTRY_EVENTS_BLOCKED_BY_MOV_SS)
  const launched = region[W_LAUNCH_STATE] === 1
  if (launch && launched) return lp.vmfail(E.VMLAUNCH_NONCLEAR_VMCS)
  if (!launch && !launched) return lp.vmfail(E.VMRESUME_NONLAUNCHED_VMCS)
  if (!launch && region[W_LAUNCH_SESSION] !== lp.session) return lp.vmfail(E.VMRESUME_AFTER_VMXOFF)

  // Nothing to re-run (the usual entry after an exit handler's RIP write): every check passed
  // with the inputs it reads now.
  const checks = current.checks
  const failing = checks.allPassedFor(lp.caps, lp.root.version) ? -1 : firstFailingCheck(lp.checkContext, checks)
  lp.lastFailedCheck = failing
  if (failing >= 0) {
    const info = checkInfo(failing)
    if (info.kind === "control") return lp.vmfail(E.ENTRY_INVALID_CONTROL_FIELD)
    if (info.kind === "host") return lp.vmfail(E.ENTRY_INVALID_HOST_STATE_FIELD)
    return failedEntry(lp, ExitReason.INVALID_STATE, info.qualification)
  }

  const core = lp.core
  if (core === null) {
    throw new Error(`logical processor ${lp.id}: VM entry needs a guest register file; set lp.core before VMLAUNCH/VMRESUME`)
  }
  const view = lp.view
  // The register file still holds what the last exit of this VMCS saved unless another VMCS ran
  // on it, or this VMCS ran on another register file, since: then only the fields VMWRITE
  // changed need loading. Its TLB holds translations made under this VMCS only while that pair
  // holds; otherwise it starts over.
  const pairKept = current.syncedCore === core
  let flush = !pairKept
  const guestWrites = current.guestWrites
  if (pairKept && (guestWrites & GuestWrites.OTHER) === 0) {
    if (guestWrites !== 0) loadChangedGuestState(view, core, guestWrites)
  } else {
    if (loadGuestState(view, core)) flush = true
    claim(core, current)
    current.savedGeneration = -1
  }
  current.guestWrites = 0
  const words = view.page.words
  const msrCount = words[W_ENTRY_MSR_LOAD_COUNT]!
  if (msrCount !== 0) {
    const failedEntryIndex = loadEntryMsrs(lp.memory, address(lp, F.VM_ENTRY_MSR_LOAD_ADDR), msrCount, lp.caps.maxMsrListEntries, core)
    if (failedEntryIndex !== 0) {
      // The register file holds a partly loaded list now: the next entry loads everything.
      current.syncedCore = null
      return failedEntry(lp, ExitReason.MSR_LOAD_FAIL, failedEntryIndex)
    }
  }
  if (launch) lp.setLaunched()
  const intercepts = lp.intercepts
  if (current.controlsWritten || intercepts.configuredFrom !== current || intercepts.configuredCaps !== lp.caps) {
    // Its own answer compares with whatever VMCS this processor ran last; the TLB is the core's.
    intercepts.configure(view, lp.caps.preemptionTimerShift, (lp.caps.eptVpidCap & 1n) !== 0n)
    if (intercepts.eptPointer !== current.translationEpt) {
      current.translationEpt = intercepts.eptPointer
      flush = true
    }
    intercepts.configuredFrom = current
    intercepts.configuredCaps = lp.caps
    current.exitWork = exitWorkOf(words)
    current.controlsWritten = false
  } else {
    intercepts.reloadPreemptionTimer(view, lp.caps.preemptionTimerScale)
  }
  // A change of the core's memory slots flushes in the core itself (runBatch, translate).
  const invalidations = lp.platform.translationInvalidations
  if (flush || current.translationInvalidations !== invalidations) {
    core.flushTlb()
    current.translationInvalidations = invalidations
  }
  core.intercepts = intercepts
  lp.nonRoot = true
  lp.guestHalted = false

  // Event injection (26.5): delivered through the guest IDT as if it were the guest's own event.
  const injection = words[W_ENTRY_INTR_INFO]!
  if ((injection & 0x8000_0000) !== 0) {
    const errorCode = (injection & 0x800) !== 0 ? view.lo(F.VM_ENTRY_EXCEPTION_ERROR_CODE) & 0xffff : -1
    const length = view.lo(F.VM_ENTRY_INSTRUCTION_LEN)
    if (!injectEvent(core, injection & 0xff, (injection >>> 8) & 7, errorCode, length)) return vmExit(lp)
  }
  return runGuest(lp, core, budget)
}

/** Continues a guest left in non-root operation when its instruction budget ran out. */
export const continueGuest = (lp: LogicalProcessor, budget: number): VmxStatus => {
  const core = lp.core
  if (!lp.nonRoot || core === null) {
    lp.refusal = `logical processor ${lp.id} is not running a guest`
    return VmxStatus.Refused
  }
  return runGuest(lp, core, budget)
}

const runGuest = (lp: LogicalProcessor, core: CpuState, budget: number): VmxStatus => {
  const outcome = runBatch(core, budget)
  if (outcome === RunOutcome.VM_EXIT) return vmExit(lp)
  if (outcome === RunOutcome.SHUTDOWN) {
    // Under intercepts a triple fault is an exit; record it if the core reported a bare shutdown.
    core.exit.clear()
    core.exit.reason = ExitReason.TRIPLE_FAULT
    return vmExit(lp)
  }
  lp.guestHalted = outcome === RunOutcome.HALTED
  return VmxStatus.GuestRunning
}

/** A VM exit: exit information, guest state, MSR store, host state, MSR load (SDM 27.2-27.6). */
export const vmExit = (lp: LogicalProcessor): VmxStatus => {
  const core = lp.core!
  const view = lp.view
  const record = core.exit
  const current = lp.current!
  const words = view.page.words
  words[W_EXIT_REASON] = record.reason
  words[W_EXIT_QUALIFICATION] = record.qualificationLo
  words[W_EXIT_QUALIFICATION + 1] = record.qualificationHi
  words[W_GUEST_LINEAR_ADDRESS] = record.guestLinearLo
  words[W_GUEST_LINEAR_ADDRESS + 1] = record.guestLinearHi
  words[W_GUEST_PHYSICAL_ADDRESS] = record.guestPhysicalLo
  words[W_GUEST_PHYSICAL_ADDRESS + 1] = record.guestPhysicalHi
  words[W_EXIT_INTR_INFO] = record.interruptionInformation
  words[W_EXIT_INTR_ERROR_CODE] = record.interruptionErrorCode
  words[W_IDT_VECTORING_INFO] = record.idtVectoringInformation
  words[W_IDT_VECTORING_ERROR_CODE] = record.idtVectoringErrorCode
  words[W_EXIT_INSTRUCTION_LEN] = record.instructionLength
  words[W_VMX_INSTRUCTION_INFO] = record.instructionInformation
  // Every VM exit clears the valid bit of the VM-entry interruption-information field (27.2.3).
  const injection = words[W_ENTRY_INTR_INFO]!
  if ((injection & 0x8000_0000) !== 0) {
    words[W_ENTRY_INTR_INFO] = injection & 0x7fff_ffff
    current.checks.fieldChanged(O_ENTRY_INTR_INFO)
  }
  const exitControls = words[W_EXIT_CONTROLS]!
  // Unless the register file's system state changed since the last full save (systemGeneration),
  // only the volatile fields can differ. (A VMWRITE of the exit controls makes the next entry a
  // full load, which makes this exit a full save.)
  if (current.syncedCore === core && current.savedGeneration === core.systemGeneration) {
    saveVolatileGuestState(view, core, current.checks)
  } else {
    saveGuestState(view, core, current.checks)
    claim(core, current)
    current.savedGeneration = core.systemGeneration
  }
  // What the controls ask beyond that, decided when the entry read them (exitWorkOf).
  const work = current.exitWork
  current.guestWrites = (work & ExitWork.RELOAD_GUEST_STATE) === 0 ? 0 : GuestWrites.OTHER
  if (work > ExitWork.RELOAD_GUEST_STATE) {
    if ((work & ExitWork.SAVE_PREEMPTION_TIMER) !== 0) {
      const remaining = Math.max(0, lp.intercepts.preemptionTimerRemaining)
      const value = record.reason === ExitReason.PREEMPTION_TIMER ? 0 : Math.ceil(remaining / lp.caps.preemptionTimerScale)
      if (view.setLo(F.VMX_PREEMPTION_TIMER_VALUE, value)) current.checks.fieldChanged(O_PREEMPTION_TIMER_VALUE)
    }
    if ((work & ExitWork.STORE_MSRS) !== 0 && storeExitMsrs(lp.memory, address(lp, F.VM_EXIT_MSR_STORE_ADDR), words[W_EXIT_MSR_STORE_COUNT]!, core) !== 0) {
      return vmxAbort(lp, 2)
    }
  }
  core.intercepts = null
  lp.nonRoot = false
  lp.guestHalted = false
  lp.lastExitReason = record.reason
  lp.lastExitQualificationLo = record.qualificationLo
  lp.lastExitQualificationHi = record.qualificationHi
  lp.exits++
  return loadHostState(lp, exitControls, (work & ExitWork.LOAD_MSRS) === 0 ? 0 : words[W_EXIT_MSR_LOAD_COUNT]!)
}

/** A VM entry that failed after the control and host checks: exit reason with bit 31 (26.8). */
const failedEntry = (lp: LogicalProcessor, reason: number, qualification: number): VmxStatus => {
  const view = lp.view
  view.setLo(F.VM_EXIT_REASON, (reason | EXIT_REASON_FAILED_VMENTRY) >>> 0)
  view.setLo(F.EXIT_QUALIFICATION, qualification)
  view.setHi(F.EXIT_QUALIFICATION, 0)
  lp.lastExitReason = (reason | EXIT_REASON_FAILED_VMENTRY) >>> 0
  lp.lastExitQualificationLo = qualification
  lp.lastExitQualificationHi = 0
  if (lp.core !== null) lp.core.intercepts = null
  lp.nonRoot = false
  return loadHostState(lp, view.page.words[W_EXIT_CONTROLS]!, view.page.words[W_EXIT_MSR_LOAD_COUNT]!)
}

/** Host-state fields copied as 64-bit halves into the root state: RootReg word index, VMCS word index. */
const HOST_WIDE_FIELDS: ReadonlyArray<readonly [number, number]> = [
  [RootReg.CR0, F.HOST_CR0],
  [RootReg.CR3, F.HOST_CR3],
  [RootReg.CR4, F.HOST_CR4],
  [RootReg.RIP, F.HOST_RIP],
  [RootReg.RSP, F.HOST_RSP],
  [RootReg.FS_BASE, F.HOST_FS_BASE],
  [RootReg.GS_BASE, F.HOST_GS_BASE],
  [RootReg.TR_BASE, F.HOST_TR_BASE],
  [RootReg.GDTR_BASE, F.HOST_GDTR_BASE],
  [RootReg.IDTR_BASE, F.HOST_IDTR_BASE],
  [RootReg.SYSENTER_ESP, F.HOST_IA32_SYSENTER_ESP],
  [RootReg.SYSENTER_EIP, F.HOST_IA32_SYSENTER_EIP],
]
const HOST_ROOT_WORD = Int32Array.from(HOST_WIDE_FIELDS, ([reg]) => reg * 2)
const HOST_VMCS_WORD = Int32Array.from(HOST_WIDE_FIELDS, ([, field]) => byteOffset[field]! >>> 2)
const HOST_WIDE_COUNT = HOST_WIDE_FIELDS.length
/** Half-word indices of the 16-bit host selectors, word index of the 32-bit SYSENTER_CS. */
const halfOf = (field: number): number => byteOffset[field]! >>> 1
const H_HOST_ES_SELECTOR = halfOf(F.HOST_ES_SELECTOR)
const H_HOST_CS_SELECTOR = halfOf(F.HOST_CS_SELECTOR)
const H_HOST_SS_SELECTOR = halfOf(F.HOST_SS_SELECTOR)
const H_HOST_DS_SELECTOR = halfOf(F.HOST_DS_SELECTOR)
const H_HOST_FS_SELECTOR = halfOf(F.HOST_FS_SELECTOR)
const H_HOST_GS_SELECTOR = halfOf(F.HOST_GS_SELECTOR)
const H_HOST_TR_SELECTOR = halfOf(F.HOST_TR_SELECTOR)
const W_HOST_SYSENTER_CS = wordOf(F.HOST_IA32_SYSENTER_CS)

const copyHost = (lp: LogicalProcessor, reg: number, field: number): void => {
  lp.root.words[reg * 2] = lp.view.lo(field)
  lp.root.words[reg * 2 + 1] = lp.view.hi(field)
}

/** Loads the host-state area into the root-mode state (27.5), then the VM-exit MSR-load list of `loadCount` entries. */
const loadHostState = (lp: LogicalProcessor, exitControls: number, loadCount: number): VmxStatus => {
  const view = lp.view
  const root = lp.root
  const current = lp.current!
  // The root state already holds this VMCS's host state when it was loaded from here, nothing
  // wrote the root state since (version) and no VMWRITE changed a host field or the controls.
  if (lp.hostStateFrom !== current || lp.hostStateVersion !== root.version || current.hostWritten || lp.hostStateExitControls !== exitControls) {
    copyHostState(lp, exitControls)
    lp.hostStateFrom = current
    lp.hostStateVersion = root.version
    lp.hostStateExitControls = exitControls
    current.hostWritten = false
  }
  if (loadCount !== 0 && loadExitMsrs(lp.memory, address(lp, F.VM_EXIT_MSR_LOAD_ADDR), loadCount, lp.hostMsrs) !== 0) {
    return vmxAbort(lp, 4)
  }
  return VmxStatus.VmExit
}

/** Copies the host-state area into the root state (27.5.1-27.5.3); `words` writes bump no version. */
const copyHostState = (lp: LogicalProcessor, exitControls: number): void => {
  const view = lp.view
  const root = lp.root
  const rootWords = root.words
  const vmcsWords = view.page.words
  for (let i = 0; i < HOST_WIDE_COUNT; i++) {
    const r = HOST_ROOT_WORD[i]!
    const v = HOST_VMCS_WORD[i]!
    rootWords[r] = vmcsWords[v]!
    rootWords[r + 1] = vmcsWords[v + 1]!
  }
  const selectors = root.selectors
  const vmcsHalves = view.page.halves
  selectors.es = vmcsHalves[H_HOST_ES_SELECTOR]!
  selectors.cs = vmcsHalves[H_HOST_CS_SELECTOR]!
  selectors.ss = vmcsHalves[H_HOST_SS_SELECTOR]!
  selectors.ds = vmcsHalves[H_HOST_DS_SELECTOR]!
  selectors.fs = vmcsHalves[H_HOST_FS_SELECTOR]!
  selectors.gs = vmcsHalves[H_HOST_GS_SELECTOR]!
  selectors.tr = vmcsHalves[H_HOST_TR_SELECTOR]!
  root.sysenterCs = vmcsWords[W_HOST_SYSENTER_CS]!
  if ((exitControls & ExitControl.LOAD_IA32_EFER) !== 0) copyHost(lp, RootReg.EFER, F.HOST_IA32_EFER)
  else {
    // Without "load IA32_EFER", LMA and LME follow "host address-space size" (27.5.1).
    const efer = root.words[RootReg.EFER * 2]!
    root.words[RootReg.EFER * 2] = (exitControls & ExitControl.HOST_ADDR_SPACE_SIZE) !== 0 ? efer | 0x500 : efer & ~0x500
  }
  if ((exitControls & ExitControl.LOAD_IA32_PAT) !== 0) copyHost(lp, RootReg.PAT, F.HOST_IA32_PAT)
  if ((exitControls & ExitControl.LOAD_IA32_PERF_GLOBAL_CTRL) !== 0) copyHost(lp, RootReg.PERF_GLOBAL_CTRL, F.HOST_IA32_PERF_GLOBAL_CTRL)
}

/** VMX abort (27.7): the indicator is written to the VMCS region and the processor shuts down. */
const vmxAbort = (lp: LogicalProcessor, indicator: number): VmxStatus => {
  lp.view.page.words[1] = indicator
  lp.nonRoot = false
  if (lp.core !== null) lp.core.intercepts = null
  lp.shutdown = true
  lp.refusal = `VMX abort ${indicator}: logical processor ${lp.id} is shut down (SDM 27.7)`
  return VmxStatus.Refused
}
