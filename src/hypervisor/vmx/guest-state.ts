// Moving the guest-state area between the VMCS and the guest core's register file: VM entry
// loads it (SDM 26.3.2), VM exit saves it (27.3). Numbers only; a field whose value changes on
// save marks the entry checks that read it, so the next entry re-checks just those.
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { EntryControl as EntryControlImport, ExitControl as ExitControlImport } from "../../arch/vmx/control-bits.ts"
import { MsrSlot as MsrSlotImport, Seg as SegImport, type CpuState } from "../../guest/cpu/state.ts"
import type { EntryCheckState } from "./entry-check-engine.ts"
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

/** Splits an exact double (RIP, sign-extended canonical) into unsigned halves. */
const hiOfDouble = (v: number): number => Math.floor(v / TWO32) >>> 0
const loOfDouble = (v: number): number => (v - Math.floor(v / TWO32) * TWO32) >>> 0

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
  if ((changed & GuestWrites.RIP) !== 0) cpu.rip = (view.hi(F.GUEST_RIP) | 0) * TWO32 + view.lo(F.GUEST_RIP)
  if ((changed & GuestWrites.RSP) !== 0) {
    cpu.lo[4] = view.lo(F.GUEST_RSP)
    cpu.hi[4] = view.hi(F.GUEST_RSP)
  }
  if ((changed & GuestWrites.RFLAGS) !== 0) cpu.setRflags32(view.lo(F.GUEST_RFLAGS))
  if ((changed & GuestWrites.INTERRUPTIBILITY) !== 0) cpu.setInterruptibility(view.lo(F.GUEST_INTERRUPTIBILITY_INFO))
}

// The VMCS and check state of the exit being saved (module-level: no closures per exit).
// Stores go straight into the region's words at the layout's offsets; a changed value marks the
// entry checks that read the field.
let view: VmcsView
let checks: EntryCheckState
let words: Uint32Array
let halves: Uint16Array
/** A 64-bit or natural-width field. */
const put = (encoding: number, lo: number, hi: number): void => {
  const i = byteOffset[encoding]! >>> 2
  const l = lo >>> 0
  const h = hi >>> 0
  if (words[i] !== l || words[i + 1] !== h) {
    words[i] = l
    words[i + 1] = h
    checks.fieldChanged(fieldOrdinal[encoding]!)
  }
}
/** A 32-bit field. */
const put32 = (encoding: number, value: number): void => {
  const i = byteOffset[encoding]! >>> 2
  const v = value >>> 0
  if (words[i] !== v) {
    words[i] = v
    checks.fieldChanged(fieldOrdinal[encoding]!)
  }
}
/** A 16-bit field. */
const put16 = (encoding: number, value: number): void => {
  const i = byteOffset[encoding]! >>> 1
  const v = value & 0xffff
  if (halves[i] !== v) {
    halves[i] = v
    checks.fieldChanged(fieldOrdinal[encoding]!)
  }
}

/** Saves guest state into the VMCS at a VM exit. */
export const saveGuestState = (target: VmcsView, cpu: CpuState, checkState: EntryCheckState): void => {
  view = target
  checks = checkState
  words = target.page.words
  halves = target.page.halves
  const exit = view.lo(F.VM_EXIT_CONTROLS)
  put(F.GUEST_CR0, cpu.cr0 >>> 0, 0)
  put(F.GUEST_CR3, cpu.cr3Lo >>> 0, cpu.cr3Hi >>> 0)
  put(F.GUEST_CR4, cpu.cr4 >>> 0, 0)
  if ((exit & ExitControl.SAVE_DEBUG_CONTROLS) !== 0) put(F.GUEST_DR7, cpu.dr7 >>> 0, 0)
  put(F.GUEST_RSP, cpu.lo[4]! >>> 0, cpu.hi[4]! >>> 0)
  put(F.GUEST_RIP, loOfDouble(cpu.rip), hiOfDouble(cpu.rip))
  put(F.GUEST_RFLAGS, cpu.getRflags32() >>> 0, 0)
  for (let s = 0; s < 8; s++) {
    const [selector, base, limit, ar] = SEGMENT_FIELDS[s]!
    put16(selector, cpu.segSel[s]!)
    put(base, cpu.segBaseLo[s]! >>> 0, cpu.segBaseHi[s]! >>> 0)
    put32(limit, cpu.segLimit[s]!)
    put32(ar, cpu.segAttr[s]!)
  }
  put(F.GUEST_GDTR_BASE, cpu.gdtrBaseLo >>> 0, cpu.gdtrBaseHi >>> 0)
  put32(F.GUEST_GDTR_LIMIT, cpu.gdtrLimit)
  put(F.GUEST_IDTR_BASE, cpu.idtrBaseLo >>> 0, cpu.idtrBaseHi >>> 0)
  put32(F.GUEST_IDTR_LIMIT, cpu.idtrLimit)
  put32(F.GUEST_SYSENTER_CS, cpu.msr[MsrSlot.SYSENTER_CS * 2]!)
  put(F.GUEST_SYSENTER_ESP, cpu.msr[MsrSlot.SYSENTER_ESP * 2]! >>> 0, cpu.msr[MsrSlot.SYSENTER_ESP * 2 + 1]! >>> 0)
  put(F.GUEST_SYSENTER_EIP, cpu.msr[MsrSlot.SYSENTER_EIP * 2]! >>> 0, cpu.msr[MsrSlot.SYSENTER_EIP * 2 + 1]! >>> 0)
  if ((exit & ExitControl.SAVE_IA32_EFER) !== 0) put(F.GUEST_IA32_EFER, cpu.efer >>> 0, 0)
  if ((exit & ExitControl.SAVE_IA32_PAT) !== 0) put(F.GUEST_IA32_PAT, cpu.msr[MsrSlot.PAT * 2]! >>> 0, cpu.msr[MsrSlot.PAT * 2 + 1]! >>> 0)
  put32(F.GUEST_INTERRUPTIBILITY_INFO, cpu.interruptibility)
  put32(F.GUEST_ACTIVITY_STATE, cpu.activityState)
  const pending = cpu.pendingDebugExceptions
  if (pending === 0n) put(F.GUEST_PENDING_DBG_EXCEPTIONS, 0, 0)
  else put(F.GUEST_PENDING_DBG_EXCEPTIONS, Number(pending & 0xffff_ffffn), Number(pending >> 32n))
}
