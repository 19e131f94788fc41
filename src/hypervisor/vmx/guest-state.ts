// Moving the guest-state area between the VMCS and the guest core's register file: VM entry
// loads it (SDM 26.3.2), VM exit saves it (27.3). Numbers only; a field whose value changes on
// save marks the entry checks that read it, so the next entry re-checks just those.
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { EntryControl as EntryControlImport, ExitControl as ExitControlImport } from "../../arch/vmx/control-bits.ts"
import { MsrSlot as MsrSlotImport, Seg as SegImport, type CpuState } from "../../guest/cpu/state.ts"
import { LOW_HALF_HAS_READERS, type EntryCheckState } from "./entry-check-engine.ts"
import { byteOffset as byteOffsetImport, fieldOrdinal as fieldOrdinalImport } from "./vmcs-layout.ts"
import { GuestWrites as GuestWritesImport } from "./platform.ts"
import type { VmcsView } from "./vmcs-view.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const F = FImport
const EntryControl = EntryControlImport
const ExitControl = ExitControlImport
const MsrSlot = MsrSlotImport
const Seg = SegImport
const fieldOrdinal = fieldOrdinalImport
const byteOffset = byteOffsetImport
const GuestWrites = GuestWritesImport

const TWO32 = 4294967296
/** CF PF AF ZF SF OF. */
const RFLAGS_STATUS_FLAGS = 0x8d5
const EFER_LME = 1 << 8
const EFER_LMA = 1 << 10

/** Per segment (Seg order ES CS SS DS FS GS LDTR TR): selector, base, limit, access-rights encodings. */
const SEGMENT_FIELDS: ReadonlyArray<readonly [number, number, number, number]> = [
  [F.GUEST_ES_SELECTOR, F.GUEST_ES_BASE, F.GUEST_ES_LIMIT, F.GUEST_ES_AR_BYTES],
  [F.GUEST_CS_SELECTOR, F.GUEST_CS_BASE, F.GUEST_CS_LIMIT, F.GUEST_CS_AR_BYTES],
  [F.GUEST_SS_SELECTOR, F.GUEST_SS_BASE, F.GUEST_SS_LIMIT, F.GUEST_SS_AR_BYTES],
  [F.GUEST_DS_SELECTOR, F.GUEST_DS_BASE, F.GUEST_DS_LIMIT, F.GUEST_DS_AR_BYTES],
  [F.GUEST_FS_SELECTOR, F.GUEST_FS_BASE, F.GUEST_FS_LIMIT, F.GUEST_FS_AR_BYTES],
  [F.GUEST_GS_SELECTOR, F.GUEST_GS_BASE, F.GUEST_GS_LIMIT, F.GUEST_GS_AR_BYTES],
  [F.GUEST_LDTR_SELECTOR, F.GUEST_LDTR_BASE, F.GUEST_LDTR_LIMIT, F.GUEST_LDTR_AR_BYTES],
  [F.GUEST_TR_SELECTOR, F.GUEST_TR_BASE, F.GUEST_TR_LIMIT, F.GUEST_TR_AR_BYTES],
]

/** Word index and field ordinal of a field, precomputed once. */
const at = (encoding: number): number => byteOffset[encoding]! >>> 2
const ord = (encoding: number): number => fieldOrdinal[encoding]!
const W_EXIT_CONTROLS = at(F.VM_EXIT_CONTROLS)
const W_GUEST_ACTIVITY_STATE = at(F.GUEST_ACTIVITY_STATE)
const O_GUEST_ACTIVITY_STATE = ord(F.GUEST_ACTIVITY_STATE)
const W_GUEST_CR0 = at(F.GUEST_CR0)
const O_GUEST_CR0 = ord(F.GUEST_CR0)
const W_GUEST_CR3 = at(F.GUEST_CR3)
const O_GUEST_CR3 = ord(F.GUEST_CR3)
const W_GUEST_CR4 = at(F.GUEST_CR4)
const O_GUEST_CR4 = ord(F.GUEST_CR4)
const W_GUEST_DR7 = at(F.GUEST_DR7)
const O_GUEST_DR7 = ord(F.GUEST_DR7)
const W_GUEST_GDTR_BASE = at(F.GUEST_GDTR_BASE)
const O_GUEST_GDTR_BASE = ord(F.GUEST_GDTR_BASE)
const W_GUEST_GDTR_LIMIT = at(F.GUEST_GDTR_LIMIT)
const O_GUEST_GDTR_LIMIT = ord(F.GUEST_GDTR_LIMIT)
const W_GUEST_IA32_EFER = at(F.GUEST_IA32_EFER)
const O_GUEST_IA32_EFER = ord(F.GUEST_IA32_EFER)
const W_GUEST_IA32_PAT = at(F.GUEST_IA32_PAT)
const O_GUEST_IA32_PAT = ord(F.GUEST_IA32_PAT)
const W_GUEST_IDTR_BASE = at(F.GUEST_IDTR_BASE)
const O_GUEST_IDTR_BASE = ord(F.GUEST_IDTR_BASE)
const W_GUEST_IDTR_LIMIT = at(F.GUEST_IDTR_LIMIT)
const O_GUEST_IDTR_LIMIT = ord(F.GUEST_IDTR_LIMIT)
const W_GUEST_INTERRUPTIBILITY_INFO = at(F.GUEST_INTERRUPTIBILITY_INFO)
const O_GUEST_INTERRUPTIBILITY_INFO = ord(F.GUEST_INTERRUPTIBILITY_INFO)
const W_GUEST_PENDING_DBG_EXCEPTIONS = at(F.GUEST_PENDING_DBG_EXCEPTIONS)
const O_GUEST_PENDING_DBG_EXCEPTIONS = ord(F.GUEST_PENDING_DBG_EXCEPTIONS)
const W_GUEST_RFLAGS = at(F.GUEST_RFLAGS)
const O_GUEST_RFLAGS = ord(F.GUEST_RFLAGS)
const W_GUEST_RIP = at(F.GUEST_RIP)
const O_GUEST_RIP = ord(F.GUEST_RIP)
const W_GUEST_RSP = at(F.GUEST_RSP)
const O_GUEST_RSP = ord(F.GUEST_RSP)
const W_GUEST_SYSENTER_CS = at(F.GUEST_SYSENTER_CS)
const O_GUEST_SYSENTER_CS = ord(F.GUEST_SYSENTER_CS)
const W_GUEST_SYSENTER_EIP = at(F.GUEST_SYSENTER_EIP)
const O_GUEST_SYSENTER_EIP = ord(F.GUEST_SYSENTER_EIP)
const W_GUEST_SYSENTER_ESP = at(F.GUEST_SYSENTER_ESP)
const O_GUEST_SYSENTER_ESP = ord(F.GUEST_SYSENTER_ESP)
/** Whether a RIP change within its 4 GiB marks any entry check (none does: guest.rip reads bits 63:32). */
const RIP_LOW_HALF_HAS_READERS = LOW_HALF_HAS_READERS[O_GUEST_RIP] === 1


/** Loads guest state into the core. Returns true when cached translations must be flushed. */
export const loadGuestState = (view: VmcsView, cpu: CpuState): boolean => {
  const entry = view.lo(F.VM_ENTRY_CONTROLS)
  let flush = false
  const cr0 = view.lo(F.GUEST_CR0) | 0
  const cr4 = view.lo(F.GUEST_CR4) | 0
  if (cpu.cr0 !== cr0 || cpu.cr4 !== cr4) flush = true
  cpu.cr0 = cr0
  cpu.cr4 = cr4
  const cr3Lo = view.lo(F.GUEST_CR3) | 0
  const cr3Hi = view.hi(F.GUEST_CR3) | 0
  if (cpu.cr3Lo !== cr3Lo || cpu.cr3Hi !== cr3Hi) flush = true
  cpu.cr3Lo = cr3Lo
  cpu.cr3Hi = cr3Hi
  if ((entry & EntryControl.LOAD_DEBUG_CONTROLS) !== 0) cpu.dr7 = view.lo(F.GUEST_DR7)
  cpu.lo[4] = view.lo(F.GUEST_RSP)
  cpu.hi[4] = view.hi(F.GUEST_RSP)
  cpu.rip = (view.hi(F.GUEST_RIP) | 0) * TWO32 + view.lo(F.GUEST_RIP)
  cpu.setRflags32(view.lo(F.GUEST_RFLAGS))
  for (let s = 0; s < 8; s++) {
    const [selector, base, limit, ar] = SEGMENT_FIELDS[s]!
    cpu.segSel[s] = view.lo(selector)
    cpu.segBaseLo[s] = view.lo(base)
    cpu.segBaseHi[s] = view.hi(base)
    cpu.segLimit[s] = view.lo(limit)
    cpu.segAttr[s] = view.lo(ar)
  }
  // CPL comes from SS.DPL at VM entry.
  cpu.cpl = (cpu.segAttr[Seg.SS]! >>> 5) & 3
  cpu.gdtrBaseLo = view.lo(F.GUEST_GDTR_BASE) | 0
  cpu.gdtrBaseHi = view.hi(F.GUEST_GDTR_BASE) | 0
  cpu.gdtrLimit = view.lo(F.GUEST_GDTR_LIMIT) & 0xffff
  cpu.idtrBaseLo = view.lo(F.GUEST_IDTR_BASE) | 0
  cpu.idtrBaseHi = view.hi(F.GUEST_IDTR_BASE) | 0
  cpu.idtrLimit = view.lo(F.GUEST_IDTR_LIMIT) & 0xffff
  cpu.msr[MsrSlot.SYSENTER_CS * 2] = view.lo(F.GUEST_SYSENTER_CS)
  cpu.msr[MsrSlot.SYSENTER_CS * 2 + 1] = 0
  cpu.msr[MsrSlot.SYSENTER_ESP * 2] = view.lo(F.GUEST_SYSENTER_ESP)
  cpu.msr[MsrSlot.SYSENTER_ESP * 2 + 1] = view.hi(F.GUEST_SYSENTER_ESP)
  cpu.msr[MsrSlot.SYSENTER_EIP * 2] = view.lo(F.GUEST_SYSENTER_EIP)
  cpu.msr[MsrSlot.SYSENTER_EIP * 2 + 1] = view.hi(F.GUEST_SYSENTER_EIP)
  let efer = cpu.efer
  if ((entry & EntryControl.LOAD_IA32_EFER) !== 0) {
    efer = view.lo(F.GUEST_IA32_EFER)
  } else {
    // Without "load IA32_EFER", LMA and LME follow "IA-32e mode guest" (SDM 26.3.2.1).
    efer = (entry & EntryControl.IA32E_MODE) !== 0 ? efer | EFER_LMA | EFER_LME : efer & ~(EFER_LMA | EFER_LME)
  }
  if (efer !== cpu.efer) flush = true
  cpu.efer = efer
  if ((entry & EntryControl.LOAD_IA32_PAT) !== 0) {
    cpu.msr[MsrSlot.PAT * 2] = view.lo(F.GUEST_IA32_PAT)
    cpu.msr[MsrSlot.PAT * 2 + 1] = view.hi(F.GUEST_IA32_PAT)
  }
  cpu.setInterruptibility(view.lo(F.GUEST_INTERRUPTIBILITY_INFO))
  cpu.activityState = view.lo(F.GUEST_ACTIVITY_STATE)
  const pdLo = view.lo(F.GUEST_PENDING_DBG_EXCEPTIONS)
  const pdHi = view.hi(F.GUEST_PENDING_DBG_EXCEPTIONS)
  cpu.pendingDebugExceptions = pdLo === 0 && pdHi === 0 ? 0n : (BigInt(pdHi) << 32n) | BigInt(pdLo)
  return flush
}

/** Loads only the guest-state fields a VMWRITE changed (GuestWrites bits) since the last exit. */
export const loadChangedGuestState = (view: VmcsView, cpu: CpuState, changed: number): void => {
  const w = view.page.words
  if ((changed & GuestWrites.RIP) !== 0) {
    const ripHi = w[W_GUEST_RIP + 1]!
    cpu.rip = ripHi === 0 ? w[W_GUEST_RIP]! : (ripHi | 0) * TWO32 + w[W_GUEST_RIP]!
  }
  if ((changed & GuestWrites.RSP) !== 0) {
    cpu.lo[4] = w[W_GUEST_RSP]!
    cpu.hi[4] = w[W_GUEST_RSP + 1]!
  }
  if ((changed & GuestWrites.RFLAGS) !== 0) cpu.setRflags32(w[W_GUEST_RFLAGS]!)
  if ((changed & GuestWrites.INTERRUPTIBILITY) !== 0) cpu.setInterruptibility(w[W_GUEST_INTERRUPTIBILITY_INFO]!)
}

// Word/half indices and field ordinals of the segment fields, flat (no tuple destructuring per exit).
const SEG_SELECTOR_HALF = Int32Array.from(SEGMENT_FIELDS, ([selector]) => byteOffset[selector]! >>> 1)
const SEG_SELECTOR_ORD = Int32Array.from(SEGMENT_FIELDS, ([selector]) => fieldOrdinal[selector]!)
const SEG_BASE_WORD = Int32Array.from(SEGMENT_FIELDS, ([, base]) => byteOffset[base]! >>> 2)
const SEG_BASE_ORD = Int32Array.from(SEGMENT_FIELDS, ([, base]) => fieldOrdinal[base]!)
const SEG_LIMIT_WORD = Int32Array.from(SEGMENT_FIELDS, ([, , limit]) => byteOffset[limit]! >>> 2)
const SEG_LIMIT_ORD = Int32Array.from(SEGMENT_FIELDS, ([, , limit]) => fieldOrdinal[limit]!)
const SEG_AR_WORD = Int32Array.from(SEGMENT_FIELDS, ([, , , ar]) => byteOffset[ar]! >>> 2)
const SEG_AR_ORD = Int32Array.from(SEGMENT_FIELDS, ([, , , ar]) => fieldOrdinal[ar]!)

// Stores go straight into the region's words at the layout's offsets; a changed value marks the
// entry checks that read the field. The region and check state travel as arguments (module-level
// `let`s would be context slots with hole checks on every access).

/** A 64-bit or natural-width field at word `i`. */
const put = (w: Uint32Array, checks: EntryCheckState, i: number, ordinal: number, lo: number, hi: number): void => {
  const l = lo >>> 0
  const h = hi >>> 0
  if (w[i] !== l || w[i + 1] !== h) {
    w[i] = l
    w[i + 1] = h
    checks.fieldChanged(ordinal)
  }
}
/** A 32-bit field at word `i`. */
const put32 = (w: Uint32Array, checks: EntryCheckState, i: number, ordinal: number, value: number): void => {
  const v = value >>> 0
  if (w[i] !== v) {
    w[i] = v
    checks.fieldChanged(ordinal)
  }
}

/** Saves the eight segment registers (selector, base, limit, access rights). */
const saveSegments = (cpu: CpuState, w: Uint32Array, halves: Uint16Array, checks: EntryCheckState): void => {
  const sel = cpu.segSel
  const baseLo = cpu.segBaseLo
  const baseHi = cpu.segBaseHi
  const limit = cpu.segLimit
  const attr = cpu.segAttr
  for (let s = 0; s < 8; s++) {
    const h = SEG_SELECTOR_HALF[s]!
    const v = sel[s]! & 0xffff
    if (halves[h] !== v) {
      halves[h] = v
      checks.fieldChanged(SEG_SELECTOR_ORD[s]!)
    }
    const b = SEG_BASE_WORD[s]!
    const bl = baseLo[s]! >>> 0
    const bh = baseHi[s]! >>> 0
    if (w[b] !== bl || w[b + 1] !== bh) {
      w[b] = bl
      w[b + 1] = bh
      checks.fieldChanged(SEG_BASE_ORD[s]!)
    }
    const l = SEG_LIMIT_WORD[s]!
    const lv = limit[s]! >>> 0
    if (w[l] !== lv) {
      w[l] = lv
      checks.fieldChanged(SEG_LIMIT_ORD[s]!)
    }
    const r = SEG_AR_WORD[s]!
    const rv = attr[s]! >>> 0
    if (w[r] !== rv) {
      w[r] = rv
      checks.fieldChanged(SEG_AR_ORD[s]!)
    }
  }
}

/** GUEST_RFLAGS at an exit; no entry check reads the arithmetic status flags, so a change confined to them re-checks nothing. */
const saveRflags = (w: Uint32Array, checks: EntryCheckState, cpu: CpuState): void => {
  const rflags = cpu.getRflags32() >>> 0
  const oldRflags = w[W_GUEST_RFLAGS]!
  const oldRflagsHi = w[W_GUEST_RFLAGS + 1]!
  if (oldRflags !== rflags || oldRflagsHi !== 0) {
    w[W_GUEST_RFLAGS] = rflags
    w[W_GUEST_RFLAGS + 1] = 0
    if (((oldRflags ^ rflags) & ~RFLAGS_STATUS_FLAGS) !== 0 || oldRflagsHi !== 0) checks.fieldChanged(O_GUEST_RFLAGS)
  }
}

/**
 * Saves guest state into the VMCS at a VM exit: every field, self-contained (it is the reference
 * the volatile-only save is tested against).
 */
export const saveGuestState = (target: VmcsView, cpu: CpuState, checks: EntryCheckState): void => {
  const w = target.page.words
  const exit = w[W_EXIT_CONTROLS]!
  put(w, checks, W_GUEST_CR0, O_GUEST_CR0, cpu.cr0, 0)
  put(w, checks, W_GUEST_CR3, O_GUEST_CR3, cpu.cr3Lo, cpu.cr3Hi)
  put(w, checks, W_GUEST_CR4, O_GUEST_CR4, cpu.cr4, 0)
  if ((exit & ExitControl.SAVE_DEBUG_CONTROLS) !== 0) put(w, checks, W_GUEST_DR7, O_GUEST_DR7, cpu.dr7, 0)
  put(w, checks, W_GUEST_RSP, O_GUEST_RSP, cpu.lo[4]!, cpu.hi[4]!)
  const rip = cpu.rip
  const ripHigh = Math.floor(rip / TWO32)
  put(w, checks, W_GUEST_RIP, O_GUEST_RIP, rip - ripHigh * TWO32, ripHigh)
  saveRflags(w, checks, cpu)
  put32(w, checks, W_GUEST_INTERRUPTIBILITY_INFO, O_GUEST_INTERRUPTIBILITY_INFO, cpu.interruptibility)
  put32(w, checks, W_GUEST_ACTIVITY_STATE, O_GUEST_ACTIVITY_STATE, cpu.activityState)
  saveSegments(cpu, w, target.page.halves, checks)
  put(w, checks, W_GUEST_GDTR_BASE, O_GUEST_GDTR_BASE, cpu.gdtrBaseLo, cpu.gdtrBaseHi)
  put32(w, checks, W_GUEST_GDTR_LIMIT, O_GUEST_GDTR_LIMIT, cpu.gdtrLimit)
  put(w, checks, W_GUEST_IDTR_BASE, O_GUEST_IDTR_BASE, cpu.idtrBaseLo, cpu.idtrBaseHi)
  put32(w, checks, W_GUEST_IDTR_LIMIT, O_GUEST_IDTR_LIMIT, cpu.idtrLimit)
  const msr = cpu.msr
  put32(w, checks, W_GUEST_SYSENTER_CS, O_GUEST_SYSENTER_CS, msr[MsrSlot.SYSENTER_CS * 2]!)
  put(w, checks, W_GUEST_SYSENTER_ESP, O_GUEST_SYSENTER_ESP, msr[MsrSlot.SYSENTER_ESP * 2]!, msr[MsrSlot.SYSENTER_ESP * 2 + 1]!)
  put(w, checks, W_GUEST_SYSENTER_EIP, O_GUEST_SYSENTER_EIP, msr[MsrSlot.SYSENTER_EIP * 2]!, msr[MsrSlot.SYSENTER_EIP * 2 + 1]!)
  if ((exit & ExitControl.SAVE_IA32_EFER) !== 0) put(w, checks, W_GUEST_IA32_EFER, O_GUEST_IA32_EFER, cpu.efer, 0)
  if ((exit & ExitControl.SAVE_IA32_PAT) !== 0) put(w, checks, W_GUEST_IA32_PAT, O_GUEST_IA32_PAT, msr[MsrSlot.PAT * 2]!, msr[MsrSlot.PAT * 2 + 1]!)
  const pending = cpu.pendingDebugExceptions
  if (pending === 0n) put(w, checks, W_GUEST_PENDING_DBG_EXCEPTIONS, O_GUEST_PENDING_DBG_EXCEPTIONS, 0, 0)
  else put(w, checks, W_GUEST_PENDING_DBG_EXCEPTIONS, O_GUEST_PENDING_DBG_EXCEPTIONS, Number(pending & 0xffff_ffffn), Number(pending >> 32n))
}

/**
 * Saves only the fields that change without a systemGeneration bump: RIP, RSP, RFLAGS,
 * interruptibility and activity state (pending debug exceptions are written only by VM entry's
 * full load, which makes the next exit a full save). Valid when the register file's
 * other saved state is known to equal the VMCS's (same generation as the last full save, same
 * exit controls); the result is then byte-identical to saveGuestState's.
 */
export const saveVolatileGuestState = (target: VmcsView, cpu: CpuState, checkState: EntryCheckState): void => {
  const w = target.page.words
  const rspLo = cpu.lo[4]! >>> 0
  const rspHi = cpu.hi[4]! >>> 0
  if (w[W_GUEST_RSP] !== rspLo || w[W_GUEST_RSP + 1] !== rspHi) {
    w[W_GUEST_RSP] = rspLo
    w[W_GUEST_RSP + 1] = rspHi
    checkState.fieldChanged(O_GUEST_RSP)
  }
  const rip = cpu.rip
  // RIP below 4 GiB needs no division to split.
  let ripLo = rip >>> 0
  let ripHi = 0
  if (rip < 0 || rip >= TWO32) {
    const high = Math.floor(rip / TWO32)
    ripLo = (rip - high * TWO32) >>> 0
    ripHi = high >>> 0
  }
  // A RIP that moved within its 4 GiB leaves the checks that read only bits 63:32 clean.
  if (w[W_GUEST_RIP + 1] !== ripHi) {
    w[W_GUEST_RIP] = ripLo
    w[W_GUEST_RIP + 1] = ripHi
    checkState.fieldChanged(O_GUEST_RIP)
  } else if (w[W_GUEST_RIP] !== ripLo) {
    w[W_GUEST_RIP] = ripLo
    if (RIP_LOW_HALF_HAS_READERS) checkState.fieldLowHalfChanged(O_GUEST_RIP)
  }
  saveRflags(w, checkState, cpu)
  const interruptibility = cpu.interruptibility >>> 0
  if (w[W_GUEST_INTERRUPTIBILITY_INFO] !== interruptibility) {
    w[W_GUEST_INTERRUPTIBILITY_INFO] = interruptibility
    checkState.fieldChanged(O_GUEST_INTERRUPTIBILITY_INFO)
  }
  const activity = cpu.activityState >>> 0
  if (w[W_GUEST_ACTIVITY_STATE] !== activity) {
    w[W_GUEST_ACTIVITY_STATE] = activity
    checkState.fieldChanged(O_GUEST_ACTIVITY_STATE)
  }
}
