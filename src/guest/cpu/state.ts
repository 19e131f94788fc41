// The architectural state of one logical processor. Hot state lives in typed arrays and plain
// number fields (registers as signed 32-bit lo/hi halves, RIP as an exact double holding the
// sign-extended canonical address); everything has bigint accessors for the boundary (KVM's
// GET/SET_REGS, the VMCS guest-state area, tests).

import { Efer, Rflags } from "../../arch/x86.ts"
import type { Engine } from "../exec/engine.ts"
import { ExitRecord, type Intercepts } from "../intercept.ts"
import type { GuestMemory } from "../mmu/memory.ts"
import { LazyFlags } from "./flags.ts"

/** General-purpose register numbers (ModRM/REX order). */
export const Reg = {
  RAX: 0,
  RCX: 1,
  RDX: 2,
  RBX: 3,
  RSP: 4,
  RBP: 5,
  RSI: 6,
  RDI: 7,
  R8: 8,
  R9: 9,
  R10: 10,
  R11: 11,
  R12: 12,
  R13: 13,
  R14: 14,
  R15: 15,
} as const

/** Segment-register numbers (encoding order of MOV Sreg), then LDTR and TR. */
export const Seg = {
  ES: 0,
  CS: 1,
  SS: 2,
  DS: 3,
  FS: 4,
  GS: 5,
  LDTR: 6,
  TR: 7,
} as const

/**
 * Segment access rights in the VMCS format (SDM Vol. 3C 24.4.1): type 3:0, S 4, DPL 6:5, P 7,
 * AVL 12, L 13, D/B 14, G 15, unusable 16.
 */
export const SegAttr = {
  S: 1 << 4,
  P: 1 << 7,
  L: 1 << 13,
  DB: 1 << 14,
  G: 1 << 15,
  UNUSABLE: 1 << 16,
} as const

/** Activity states, numbered as the VMCS guest activity-state field. */
export const ActivityState = {
  ACTIVE: 0,
  HLT: 1,
  SHUTDOWN: 2,
  WAIT_FOR_SIPI: 3,
} as const

/** Interruptibility-state bits, as the VMCS field. */
export const Interruptibility = {
  STI: 1 << 0,
  MOV_SS: 1 << 1,
  SMI: 1 << 2,
  NMI: 1 << 3,
} as const

const TWO32 = 4294967296

const toBig = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
const loOf = (v: bigint): number => Number(BigInt.asIntN(32, v))
const hiOf = (v: bigint): number => Number(BigInt.asIntN(32, v >> 32n))

/** Index of the MSR halves kept in `CpuState.msr` (two Int32 slots each). */
export const MsrSlot = {
  STAR: 0,
  LSTAR: 1,
  CSTAR: 2,
  FMASK: 3,
  KERNEL_GS_BASE: 4,
  TSC_AUX: 5,
  APIC_BASE: 6,
  SYSENTER_CS: 7,
  SYSENTER_ESP: 8,
  SYSENTER_EIP: 9,
  PAT: 10,
  FEATURE_CONTROL: 11,
  TSC_ADJUST: 12,
} as const
const MSR_SLOTS = 13

export class CpuState {
  /** GPR low and high 32-bit halves, signed. */
  readonly lo = new Int32Array(16)
  readonly hi = new Int32Array(16)
  /** RIP as an exact double: a canonical address sign-extended from bit 47 (so negative for the upper half). */
  rip = 0
  /** RFLAGS except the six arithmetic flags while `flags` holds them lazily. Bit 1 is always set. */
  rflagsRest = Rflags.FIXED1
  readonly flags = new LazyFlags()

  /** Segment registers and LDTR/TR: selector, base halves, limit (unsigned, in a double), access rights. */
  readonly segSel = new Int32Array(8)
  readonly segBaseLo = new Int32Array(8)
  readonly segBaseHi = new Int32Array(8)
  readonly segLimit = new Float64Array(8)
  readonly segAttr = new Int32Array(8)
  /** Current privilege level (CS.RPL as the hardware tracks it; kept in sync with SS.DPL). */
  cpl = 0

  gdtrBaseLo = 0
  gdtrBaseHi = 0
  gdtrLimit = 0xffff
  idtrBaseLo = 0
  idtrBaseHi = 0
  idtrLimit = 0xffff

  cr0 = 0x6000_0010
  cr2Lo = 0
  cr2Hi = 0
  cr3Lo = 0
  cr3Hi = 0
  cr4 = 0
  /** CR8 = TPR[7:4]. */
  cr8 = 0
  efer = 0
  readonly dr = [0n, 0n, 0n, 0n]
  dr6 = 0xffff0ff0
  dr7 = 0x400

  /** MSR halves by MsrSlot. FS/GS base live in the segment arrays. */
  readonly msr = new Int32Array(MSR_SLOTS * 2)
  /** The time-stamp counter is a virtual clock: tscBias + instructionsRetired. */
  tscBias = 0
  instructionsRetired = 0

  activityState: number = ActivityState.ACTIVE
  /** Interruptibility state (Interruptibility bits). STI/MOV-SS blocking last for one instruction. */
  interruptibility = 0
  /** Pending debug exceptions (VMCS field; kept for save/restore). Writers bump systemGeneration. */
  pendingDebugExceptions = 0n

  /** Pending external interrupts: a 256-bit request register; the highest vector is delivered first. */
  readonly irr = new Int32Array(8)
  irrCount = 0
  nmiPending = false

  /** VMX non-root: the policy consulted before interceptable events, or null (runs natively). */
  intercepts: Intercepts | null = null
  /** Filled when runBatch returns RunOutcome.VmExit. */
  readonly exit = new ExitRecord()

  /** The address space this CPU sees. */
  memory: GuestMemory

  /** Set by anything that needs runBatch to look at the instruction boundary (events, shadows, MTF...). */
  attention = 0

  /**
   * Bumped by every write to the state a VM exit saves besides RIP, RSP, RFLAGS, interruptibility
   * and activity state: CR0/CR3/CR4, DR7, IA32_EFER, the segment registers (incl. LDTR, TR,
   * FS/GS base), GDTR/IDTR, the MSR slots (SYSENTER_*, PAT, ...), pending debug exceptions.
   * VMX compares it with the value recorded at the last full save or load of a VMCS so an exit
   * can skip saving what did not change. Code writing those fields directly must bump it.
   */
  systemGeneration = 0

  constructor(memory: GuestMemory) {
    this.memory = memory
    this.msr[MsrSlot.APIC_BASE * 2] = 0xfee00900 | 0
    this.msr[MsrSlot.PAT * 2] = 0x00070406
    this.msr[MsrSlot.PAT * 2 + 1] = 0x00070406
    for (let s = 0; s < 8; s++) {
      this.segLimit[s] = 0xffff
      this.segAttr[s] = s === Seg.LDTR ? 0x82 : s === Seg.TR ? 0x8b : 0x93
    }
    this.segAttr[Seg.CS] = 0x9b
    this.segSel[Seg.CS] = 0
  }

  // ---- general-purpose registers ----
  getReg(r: number): bigint {
    return toBig(this.lo[r]!, this.hi[r]!)
  }
  setReg(r: number, v: bigint): void {
    this.lo[r] = loOf(v)
    this.hi[r] = hiOf(v)
  }
  get ripValue(): bigint {
    return BigInt.asUintN(64, BigInt(this.rip))
  }
  /** Sets RIP; a non-canonical value is stored as its sign-extension from bit 47 (callers validate). */
  setRip(v: bigint): void {
    this.rip = Number(BigInt.asIntN(48, v))
    // A RIP set from outside (KVM_SET_REGS, a test, a loader) may come with page tables or
    // code the host rewrote: the next runBatch fetches through fresh translations.
    this.flushTlb()
  }
  isCanonical(v: bigint): boolean {
    return BigInt.asIntN(48, v) === BigInt.asIntN(64, v)
  }

  // ---- RFLAGS ----
  get rflags(): bigint {
    return BigInt(this.getRflags32() >>> 0)
  }
  setRflags(v: bigint): void {
    this.setRflags32(Number(v & 0xffff_ffffn))
  }
  getRflags32(): number {
    return (this.rflagsRest | this.flags.materialize()) | Rflags.FIXED1
  }
  setRflags32(v: number): void {
    this.flags.set(v)
    this.rflagsRest = (v & ~0x8d5 & 0x3f7fd7) | Rflags.FIXED1
    this.attention = 1
  }

  // ---- segments ----
  getSegment(s: number): { selector: number; base: bigint; limit: number; accessRights: number } {
    return {
      selector: this.segSel[s]! & 0xffff,
      base: toBig(this.segBaseLo[s]!, this.segBaseHi[s]!),
      limit: this.segLimit[s]!,
      accessRights: this.segAttr[s]!,
    }
  }
  setSegment(s: number, seg: { selector: number; base: bigint; limit: number; accessRights: number }): void {
    this.segSel[s] = seg.selector & 0xffff
    this.segBaseLo[s] = loOf(seg.base)
    this.segBaseHi[s] = hiOf(seg.base)
    this.segLimit[s] = seg.limit >>> 0
    this.segAttr[s] = seg.accessRights
    this.systemGeneration++
    if (s === Seg.CS) this.cpl = seg.selector & 3
    if (s === Seg.SS && this.cpl !== ((seg.accessRights >> 5) & 3)) this.cpl = (seg.accessRights >> 5) & 3
  }

  // ---- control registers and friends ----
  get cr2(): bigint {
    return toBig(this.cr2Lo, this.cr2Hi)
  }
  set cr2(v: bigint) {
    this.cr2Lo = loOf(v)
    this.cr2Hi = hiOf(v)
  }
  get cr3(): bigint {
    return toBig(this.cr3Lo, this.cr3Hi)
  }
  /** Sets CR3 as a VM entry loads it (no TLB-flush side effects beyond the whole TLB). */
  set cr3(v: bigint) {
    this.cr3Lo = loOf(v)
    this.cr3Hi = hiOf(v)
    this.systemGeneration++
    this.flushTlb()
  }
  get gdtr(): { base: bigint; limit: number } {
    return { base: toBig(this.gdtrBaseLo, this.gdtrBaseHi), limit: this.gdtrLimit }
  }
  setGdtr(base: bigint, limit: number): void {
    this.gdtrBaseLo = loOf(base)
    this.gdtrBaseHi = hiOf(base)
    this.gdtrLimit = limit & 0xffff
    this.systemGeneration++
  }
  get idtr(): { base: bigint; limit: number } {
    return { base: toBig(this.idtrBaseLo, this.idtrBaseHi), limit: this.idtrLimit }
  }
  setIdtr(base: bigint, limit: number): void {
    this.idtrBaseLo = loOf(base)
    this.idtrBaseHi = hiOf(base)
    this.idtrLimit = limit & 0xffff
    this.systemGeneration++
  }
  get longModeActive(): boolean {
    return (this.efer & Efer.LMA) !== 0
  }

  getMsrSlot(slot: number): bigint {
    return toBig(this.msr[slot * 2]!, this.msr[slot * 2 + 1]!)
  }
  setMsrSlot(slot: number, v: bigint): void {
    this.msr[slot * 2] = loOf(v)
    this.msr[slot * 2 + 1] = hiOf(v)
    this.systemGeneration++
  }

  get tsc(): bigint {
    return BigInt.asUintN(64, BigInt(this.tscBias + this.instructionsRetired))
  }
  set tsc(v: bigint) {
    this.tscBias = Number(BigInt.asIntN(64, v)) - this.instructionsRetired
  }

  /** Sets the interruptibility state as VM entry loads it. */
  setInterruptibility(v: number): void {
    this.interruptibility = v & 0xf
    this.attention = 1
  }

  // ---- pending events ----
  /** Requests an external interrupt (vector 16..255); delivered when RFLAGS.IF=1 and no shadow. */
  requestInterrupt(vector: number): void {
    const word = vector >>> 5
    const bit = 1 << (vector & 31)
    if ((this.irr[word]! & bit) === 0) {
      this.irr[word] = this.irr[word]! | bit
      this.irrCount++
    }
    this.attention = 1
  }
  /** Requests an NMI. */
  requestNmi(): void {
    this.nmiPending = true
    this.attention = 1
  }
  /** The highest pending external-interrupt vector, or -1. */
  highestPendingInterrupt(): number {
    if (this.irrCount === 0) return -1
    for (let w = 7; w >= 0; w--) {
      const bits = this.irr[w]!
      if (bits !== 0) return w * 32 + 31 - Math.clz32(bits)
    }
    return -1
  }
  /** Removes `vector` from the request register (on delivery or acknowledgement). */
  acknowledgeInterrupt(vector: number): void {
    const word = vector >>> 5
    const bit = 1 << (vector & 31)
    if ((this.irr[word]! & bit) !== 0) {
      this.irr[word] = this.irr[word]! & ~bit
      this.irrCount--
    }
  }

  /** The execution engine (TLB, decode-cache hookup) runBatch drives; created on first use by engineOf. */
  engine: Engine | null = null

  /** TLB and decoded-code consumers hook this (the MMU installs itself). */
  tlbFlusher: (() => void) | null = null
  /** Flushes every cached translation (what MOV CR3 without PCID, INVEPT and slot changes need). */
  flushTlb(): void {
    if (this.tlbFlusher !== null) this.tlbFlusher()
  }
}

export const U32 = TWO32
