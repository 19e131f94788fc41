// Per-CPU execution machinery shared by the handlers: linear-memory access through the TLB,
// effective addresses, sized register access, raising guest exceptions and VM exits (by
// throwing one of two preallocated sentinels that runBatch catches), and event delivery
// through the 64-bit IDT with double/triple-fault escalation.

import { ExitReason } from "../../arch/exit-reasons.ts"
import { Rflags } from "../../arch/x86.ts"
import { ActivityState, Interruptibility, Seg, type CpuState } from "../cpu/state.ts"
import { type DecodeCache, decodeCacheOf } from "../decode/cache.ts"
import { AccessKind, InterruptionType } from "../intercept.ts"
import { type BlockCache, blockCacheOf } from "./blocks.ts"
import {
  ACCESS_FETCH,
  ACCESS_READ,
  ACCESS_WRITE,
  P_EXEC_SUP,
  P_EXEC_USER,
  P_MAPPED,
  P_READ_USER,
  P_WRITE_SUP,
  P_WRITE_USER,
  PageWalker,
  TLB_MASK,
  Tlb,
  WALK_EPT_EXIT,
  WALK_PAGE_FAULT,
} from "../mmu/tlb.ts"

/** Thrown (preallocated, no stack) when the current instruction raises a guest exception. */
export const FAULT: { readonly sentinel: "fault" } = Object.freeze({ sentinel: "fault" })
/** Thrown when the current instruction or event causes a VM exit (the exit record is filled). */
export const EXIT: { readonly sentinel: "exit" } = Object.freeze({ sentinel: "exit" })
/** Thrown when a triple fault shuts the processor down (no intercepts installed). */
export const SHUTDOWN: { readonly sentinel: "shutdown" } = Object.freeze({ sentinel: "shutdown" })

/** What a handler returns after filling the exit record (RunOutcome.VM_EXIT). */
export const EXITED = 1
/** What a handler returns when the instruction completed. */
export const DONE = -1
/** What a handler returns after `raise`: the guest exception in faultVector/faultError is pending. */
export const FAULTED = -3

export const TWO32 = 4294967296
const CANONICAL_LIMIT = 0x8000_0000_0000

/** Exception classes for double-fault escalation (SDM Vol. 3A Table 6-5). */
const isContributory = (v: number): boolean => v === 0 || (v >= 10 && v <= 13)

export class Engine {
  readonly tlb = new Tlb()
  readonly walker: PageWalker
  readonly cache: DecodeCache
  memoryGeneration: number
  /** Scratch: the high half of the last 64-bit read. */
  tHi = 0
  /** Pending exception of the current instruction (set before throwing FAULT). */
  faultVector = -1
  faultError = -1
  /** Linear address of a #PF (becomes CR2 or the exit qualification). */
  faultAddress = 0
  /** Event being delivered (for double faults and IDT-vectoring): -1 when none. */
  deliveringVector = -1
  deliveringType = 0
  deliveringError = -1
  /** RIP of the next instruction (set by the loop before each instruction). */
  nextRip = 0
  /** Length of the current instruction (for exits). */
  curLen = 0
  /** Set by STI / MOV SS / POP SS: the next boundary is inside the shadow. */
  shadowFresh = false
  /** MMIO completion: a guest-physical address whose next access is satisfied by the host. */
  mmioReplayGpa = -1
  mmioReplayLo = 0
  mmioReplayHi = 0
  /** Current code page: linear base, offset map, cache generation. */
  codeBase = NaN
  codeMap: Int32Array = new Int32Array(0)
  codeGeneration = -1
  /** Iterations of the last incomplete REP chunk (budget units it used). */
  repIterations = 0
  /** Next RIP after a compiled block ran. */
  blockRip = 0
  /** Compiled blocks of this address space, and whether runBatch may use them. */
  readonly blocks: BlockCache
  blocksEnabled = true
  /** Budget units the last runBatch used. */
  used = 0
  /** Set by injectEvent for the one delivery that must bypass the exception bitmap. */
  injecting = false
  /**
   * What translations and fetch permissions depended on at the end of the last batch: a change
   * made from outside runBatch (VM entry loading CR0/CR4/EFER/CS, a new intercept policy or EPT)
   * flushes the TLB and the current code page, as a VM entry without VPID does.
   */
  ctxCr0 = -1
  ctxCr4 = -1
  ctxEfer = -1
  ctxCpl = -1
  ctxIntercepts: unknown = null
  ctxGuestPhysical: unknown = null

  constructor(readonly cpu: CpuState) {
    this.walker = new PageWalker(cpu, this.tlb)
    this.cache = decodeCacheOf(cpu.memory)
    this.blocks = blockCacheOf(this.cache)
    this.memoryGeneration = cpu.memory.generation
    cpu.tlbFlusher = () => this.flushTlb()
  }

  flushTlb(): void {
    this.tlb.flushAll()
    this.codeBase = NaN
  }

  // ---------------------------------------------------------------- exceptions and exits

  /** Raises guest exception `vector` (errorCode -1 when it has none) for the current instruction. */
  fault(vector: number, errorCode: number): never {
    this.faultVector = vector
    this.faultError = errorCode
    throw FAULT
  }

  /**
   * Records guest exception `vector` for the current instruction and returns FAULTED, which a
   * handler returns through executeSlow so the loop delivers it without a throw (`fault`
   * throws instead, for exceptions raised deep inside helpers and memory accesses).
   */
  raise(vector: number, errorCode: number): typeof FAULTED {
    this.faultVector = vector
    this.faultError = errorCode
    return FAULTED
  }

  gp(errorCode = 0): never {
    return this.fault(13, errorCode)
  }

  ud(): never {
    return this.fault(6, -1)
  }

  /**
   * Fills the exit record for an instruction-caused exit and returns EXITED (= RunOutcome.VM_EXIT),
   * which the handler returns through executeSlow to the loop: no throw on the exit path.
   */
  exitNow(reason: number, qualLo: number, qualHi: number, info: number): typeof EXITED {
    const x = this.cpu.exit
    x.clear()
    x.reason = reason
    x.qualificationLo = qualLo
    x.qualificationHi = qualHi
    x.instructionLength = this.curLen
    x.instructionInformation = info
    return EXITED
  }

  /** exitNow, then throws EXIT: for exits raised deep inside a helper with no return path. */
  exitInstruction(reason: number, qualLo: number, qualHi: number, info: number): never {
    this.exitNow(reason, qualLo, qualHi, info)
    throw EXIT
  }

  // ---------------------------------------------------------------- linear memory

  private pageFault(lin: number, access: number): never {
    this.faultAddress = lin
    return this.fault(14, this.walker.faultError | 0)
  }

  private eptExit(lin: number, access: number, size: number, dataLo: number, dataHi: number): never {
    const w = this.walker
    const x = this.cpu.exit
    x.clear()
    x.reason = w.eptCode === -2 ? ExitReason.EPT_MISCONFIG : ExitReason.EPT_VIOLATION
    if (w.eptCode !== -2) {
      const accessBits = access === ACCESS_WRITE ? AccessKind.WRITE : access === ACCESS_FETCH ? AccessKind.FETCH : AccessKind.READ
      const perms = this.cpu.intercepts?.guestPhysical?.violationPermissions ?? 0
      // bit 7: guest-linear address valid; bit 8: the access was to the translated address (not a walk).
      x.qualificationLo = (w.eptDuringWalk ? AccessKind.READ : accessBits) | ((perms & 7) << 3) | (1 << 7) | (w.eptDuringWalk ? 0 : 1 << 8)
    }
    // The walk translates whole pages; the SDM reports the full guest-physical address of the
    // access itself (the page plus the offset of the linear address in it).
    const gpa = w.eptDuringWalk ? w.eptGpa : Math.floor(w.eptGpa / 4096) * 4096 + (lin - Math.floor(lin / 4096) * 4096)
    x.guestPhysicalLo = gpa % TWO32 | 0
    x.guestPhysicalHi = Math.floor(gpa / TWO32)
    x.guestLinearLo = ((lin % TWO32) + TWO32) % TWO32 | 0
    x.guestLinearHi = Math.floor(lin / TWO32) | 0
    if (!w.eptDuringWalk && access !== ACCESS_FETCH && size > 0) {
      x.mmioSize = size
      if (access === ACCESS_WRITE) {
        x.mmioDataLo = dataLo
        x.mmioDataHi = dataHi
      }
    }
    this.markIdtVectoring()
    throw EXIT
  }

  /** An exit during event delivery reports the event in the IDT-vectoring fields. */
  markIdtVectoring(): void {
    if (this.deliveringVector < 0) return
    const x = this.cpu.exit
    x.idtVectoringInformation =
      (this.deliveringVector & 0xff) | (this.deliveringType << 8) | (this.deliveringError >= 0 ? 1 << 11 : 0) | (1 << 31)
    x.idtVectoringErrorCode = this.deliveringError >= 0 ? this.deliveringError : 0
  }

  /** Translates `lin` for `access`, returning the TLB entry (throws on #PF / EPT exit). */
  translate(lin: number, access: number, size: number, dataLo: number, dataHi: number): number {
    const cpu = this.cpu
    if (cpu.memory.generation !== this.memoryGeneration) {
      this.memoryGeneration = cpu.memory.generation
      this.flushTlb()
    }
    const user = cpu.cpl === 3
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    let e = vpn & TLB_MASK
    const need =
      access === ACCESS_READ
        ? user
          ? P_READ_USER
          : 0
        : access === ACCESS_WRITE
          ? user
            ? P_WRITE_USER
            : P_WRITE_SUP
          : user
            ? P_EXEC_USER
            : P_EXEC_SUP
    if (tlb.tag[e] !== vpn || (tlb.perm[e]! & need) !== need) {
      e = this.walker.walk(lin, access, user)
      if (e === WALK_PAGE_FAULT) this.pageFault(lin, access)
      if (e === WALK_EPT_EXIT) this.eptExit(lin, access, size, dataLo, dataHi)
    }
    return e
  }

  /** Checks that `lin` is canonical (else #GP(0), or #SS(0) for stack references). */
  canonical(lin: number, stack: boolean): void {
    if (lin >= CANONICAL_LIMIT || lin < -CANONICAL_LIMIT) this.fault(stack ? 12 : 13, 0)
  }

  read8(lin: number): number {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const need = this.cpu.cpl === 3 ? P_READ_USER | P_MAPPED : P_MAPPED
    if (tlb.tag[e] === vpn && (tlb.perm[e]! & need) === need) return tlb.bytes[e]![tlb.off[e]! + (lin - vpn * 4096)]!
    return this.readSlow(lin, 1)
  }

  read16(lin: number): number {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const off = lin - vpn * 4096
    const need = this.cpu.cpl === 3 ? P_READ_USER | P_MAPPED : P_MAPPED
    if (tlb.tag[e] === vpn && off <= 4094 && (tlb.perm[e]! & need) === need) return tlb.view[e]!.getUint16(tlb.off[e]! + off, true)
    return this.readSlow(lin, 2)
  }

  read32(lin: number): number {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const off = lin - vpn * 4096
    const need = this.cpu.cpl === 3 ? P_READ_USER | P_MAPPED : P_MAPPED
    if (tlb.tag[e] === vpn && off <= 4092 && (tlb.perm[e]! & need) === need) return tlb.view[e]!.getInt32(tlb.off[e]! + off, true)
    return this.readSlow(lin, 4)
  }

  /** 64-bit read: returns the low half, high half in tHi. */
  read64(lin: number): number {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const off = lin - vpn * 4096
    const need = this.cpu.cpl === 3 ? P_READ_USER | P_MAPPED : P_MAPPED
    if (tlb.tag[e] === vpn && off <= 4088 && (tlb.perm[e]! & need) === need) {
      const v = tlb.view[e]!
      const o = tlb.off[e]! + off
      this.tHi = v.getInt32(o + 4, true)
      return v.getInt32(o, true)
    }
    return this.readSlow(lin, 8)
  }

  /** Sized read (1, 2, 4, 8): low half returned (zero-extended below 4), high half in tHi. */
  read(lin: number, size: number): number {
    switch (size) {
      case 1:
        this.tHi = 0
        return this.read8(lin)
      case 2:
        this.tHi = 0
        return this.read16(lin)
      case 4:
        this.tHi = 0
        return this.read32(lin)
      default:
        return this.read64(lin)
    }
  }

  private readSlow(lin: number, size: number): number {
    this.canonical(lin, false)
    let lo = 0
    let hi = 0
    // One translation per page touched, all before any data is returned (fault ordering).
    const first = this.translate(lin, ACCESS_READ, size, 0, 0)
    const lastLin = lin + size - 1
    const crosses = Math.floor(lastLin / 4096) !== Math.floor(lin / 4096)
    if (crosses) this.translate(lastLin, ACCESS_READ, size, 0, 0)
    const tlb = this.tlb
    if (!crosses && (tlb.perm[first]! & P_MAPPED) === 0) return this.readUnmapped(first, lin, size)
    for (let k = 0; k < size; k++) {
      const a = lin + k
      const vpn = Math.floor(a / 4096)
      const e = vpn & TLB_MASK
      let byte: number
      if (tlb.tag[e] !== vpn) {
        const ee = this.translate(a, ACCESS_READ, 1, 0, 0)
        byte = (tlb.perm[ee]! & P_MAPPED) === 0 ? this.readUnmapped(ee, a, 1) & 0xff : tlb.bytes[ee]![tlb.off[ee]! + (a - vpn * 4096)]!
      } else if ((tlb.perm[e]! & P_MAPPED) === 0) byte = this.readUnmapped(e, a, 1) & 0xff
      else byte = tlb.bytes[e]![tlb.off[e]! + (a - vpn * 4096)]!
      if (k < 4) lo |= byte << (8 * k)
      else hi |= byte << (8 * (k - 4))
    }
    this.tHi = hi
    if (size === 2) return lo & 0xffff
    if (size === 1) return lo & 0xff
    return lo
  }

  /** A read of guest-physical memory with no slot: MMIO exit under intercepts, else all-ones. */
  private readUnmapped(e: number, lin: number, size: number): number {
    const gpa = this.tlb.gpa[e]! + (lin - Math.floor(lin / 4096) * 4096)
    if (this.mmioReplayGpa === gpa) {
      this.mmioReplayGpa = -1
      this.tHi = size === 8 ? this.mmioReplayHi : 0
      const v = this.mmioReplayLo
      return size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v
    }
    if (this.cpu.intercepts !== null) {
      this.walker.eptGpa = gpa
      this.walker.eptCode = -1
      this.walker.eptDuringWalk = false
      this.eptExit(lin, ACCESS_READ, size, 0, 0)
    }
    this.tHi = size === 8 ? -1 : 0
    return size === 1 ? 0xff : size === 2 ? 0xffff : -1
  }

  write8(lin: number, v: number): void {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const need = this.cpu.cpl === 3 ? P_WRITE_USER | P_MAPPED : P_WRITE_SUP | P_MAPPED
    if (tlb.tag[e] === vpn && (tlb.perm[e]! & need) === need && tlb.codeMap[e]![tlb.codeIdx[e]!] === 0) {
      tlb.bytes[e]![tlb.off[e]! + (lin - vpn * 4096)] = v
      return
    }
    this.writeSlow(lin, 1, v, 0)
  }

  write16(lin: number, v: number): void {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const off = lin - vpn * 4096
    const need = this.cpu.cpl === 3 ? P_WRITE_USER | P_MAPPED : P_WRITE_SUP | P_MAPPED
    if (tlb.tag[e] === vpn && off <= 4094 && (tlb.perm[e]! & need) === need && tlb.codeMap[e]![tlb.codeIdx[e]!] === 0) {
      tlb.view[e]!.setUint16(tlb.off[e]! + off, v, true)
      return
    }
    this.writeSlow(lin, 2, v, 0)
  }

  write32(lin: number, v: number): void {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const off = lin - vpn * 4096
    const need = this.cpu.cpl === 3 ? P_WRITE_USER | P_MAPPED : P_WRITE_SUP | P_MAPPED
    if (tlb.tag[e] === vpn && off <= 4092 && (tlb.perm[e]! & need) === need && tlb.codeMap[e]![tlb.codeIdx[e]!] === 0) {
      tlb.view[e]!.setInt32(tlb.off[e]! + off, v, true)
      return
    }
    this.writeSlow(lin, 4, v, 0)
  }

  write64(lin: number, lo: number, hi: number): void {
    const vpn = Math.floor(lin / 4096)
    const tlb = this.tlb
    const e = vpn & TLB_MASK
    const off = lin - vpn * 4096
    const need = this.cpu.cpl === 3 ? P_WRITE_USER | P_MAPPED : P_WRITE_SUP | P_MAPPED
    if (tlb.tag[e] === vpn && off <= 4088 && (tlb.perm[e]! & need) === need && tlb.codeMap[e]![tlb.codeIdx[e]!] === 0) {
      const view = tlb.view[e]!
      const o = tlb.off[e]! + off
      view.setInt32(o, lo, true)
      view.setInt32(o + 4, hi, true)
      return
    }
    this.writeSlow(lin, 8, lo, hi)
  }

  write(lin: number, size: number, lo: number, hi: number): void {
    switch (size) {
      case 1:
        return this.write8(lin, lo)
      case 2:
        return this.write16(lin, lo)
      case 4:
        return this.write32(lin, lo)
      default:
        return this.write64(lin, lo, hi)
    }
  }

  /** Checks a write would succeed (translation + permission) without writing: for RMW ordering. */
  probeWrite(lin: number, size: number): void {
    this.canonical(lin, false)
    this.translate(lin, ACCESS_WRITE, size, 0, 0)
    if (Math.floor((lin + size - 1) / 4096) !== Math.floor(lin / 4096)) this.translate(lin + size - 1, ACCESS_WRITE, size, 0, 0)
  }

  private writeSlow(lin: number, size: number, lo: number, hi: number): void {
    this.canonical(lin, false)
    const first = this.translate(lin, ACCESS_WRITE, size, lo, hi)
    const crosses = Math.floor((lin + size - 1) / 4096) !== Math.floor(lin / 4096)
    const second = crosses ? this.translate(lin + size - 1, ACCESS_WRITE, size, lo, hi) : first
    const tlb = this.tlb
    if (!crosses && (tlb.perm[first]! & P_MAPPED) === 0) {
      const gpa = tlb.gpa[first]! + (lin - Math.floor(lin / 4096) * 4096)
      if (this.mmioReplayGpa === gpa) {
        this.mmioReplayGpa = -1
        return
      }
      if (this.cpu.intercepts !== null) {
        this.walker.eptGpa = gpa
        this.walker.eptCode = -1
        this.walker.eptDuringWalk = false
        this.eptExit(lin, ACCESS_WRITE, size, lo, hi)
      }
      return
    }
    const mem = this.cpu.memory
    for (let k = 0; k < size; k++) {
      const a = lin + k
      const vpn = Math.floor(a / 4096)
      const e = Math.floor(a / 4096) === Math.floor(lin / 4096) ? first : second
      if ((tlb.perm[e]! & P_MAPPED) === 0) continue
      const byte = k < 4 ? (lo >>> (8 * k)) & 0xff : (hi >>> (8 * (k - 4))) & 0xff
      tlb.bytes[e]![tlb.off[e]! + (a - vpn * 4096)] = byte
    }
    if (tlb.codeMap[first] !== null && tlb.codeMap[first]![tlb.codeIdx[first]!] !== 0) mem.noteWrite(tlb.phys[first]! + (lin - Math.floor(lin / 4096) * 4096), 1)
    if (crosses && tlb.codeMap[second] !== null && tlb.codeMap[second]![tlb.codeIdx[second]!] !== 0) {
      mem.noteWrite(tlb.phys[second]!, 1)
    }
  }

  /** Supervisor-privileged implicit accesses (IDT, GDT, TSS reads; stack pushes during delivery). */
  withCpl0<T>(f: () => T): T {
    const saved = this.cpu.cpl
    this.cpu.cpl = 0
    try {
      return f()
    } finally {
      this.cpu.cpl = saved
    }
  }

  // ---------------------------------------------------------------- registers

  /** Reads register `r` at `size` (byte registers 16..19 are AH CH DH BH); high half in tHi. */
  getReg(r: number, size: number): number {
    const cpu = this.cpu
    switch (size) {
      case 1:
        this.tHi = 0
        return r < 16 ? cpu.lo[r]! & 0xff : (cpu.lo[r - 16]! >> 8) & 0xff
      case 2:
        this.tHi = 0
        return cpu.lo[r]! & 0xffff
      case 4:
        this.tHi = 0
        return cpu.lo[r]!
      default:
        this.tHi = cpu.hi[r]!
        return cpu.lo[r]!
    }
  }

  setReg(r: number, size: number, lo: number, hi: number): void {
    const cpu = this.cpu
    switch (size) {
      case 1:
        if (r < 16) cpu.lo[r] = (cpu.lo[r]! & ~0xff) | (lo & 0xff)
        else cpu.lo[r - 16] = (cpu.lo[r - 16]! & ~0xff00) | ((lo & 0xff) << 8)
        return
      case 2:
        cpu.lo[r] = (cpu.lo[r]! & ~0xffff) | (lo & 0xffff)
        return
      case 4:
        cpu.lo[r] = lo
        cpu.hi[r] = 0
        return
      default:
        cpu.lo[r] = lo
        cpu.hi[r] = hi
    }
  }

  // ---------------------------------------------------------------- stack

  push64(lo: number, hi: number): void {
    const cpu = this.cpu
    const spLo = cpu.lo[4]!
    const spHi = cpu.hi[4]!
    let nlo = (spLo >>> 0) - 8
    let nhi = spHi
    if (nlo < 0) {
      nlo += TWO32
      nhi = (nhi - 1) | 0
    }
    const lin = nhi * TWO32 + nlo
    this.canonical(lin, true)
    this.write64(lin, lo, hi)
    cpu.lo[4] = nlo | 0
    cpu.hi[4] = nhi
  }

  push16(v: number): void {
    const cpu = this.cpu
    let nlo = (cpu.lo[4]! >>> 0) - 2
    let nhi = cpu.hi[4]!
    if (nlo < 0) {
      nlo += TWO32
      nhi = (nhi - 1) | 0
    }
    const lin = nhi * TWO32 + nlo
    this.canonical(lin, true)
    this.write16(lin, v)
    cpu.lo[4] = nlo | 0
    cpu.hi[4] = nhi
  }

  /** Linear address of the stack top. */
  stackTop(): number {
    const cpu = this.cpu
    return cpu.hi[4]! * TWO32 + (cpu.lo[4]! >>> 0)
  }

  /** Pops 64 bits (low half returned, high in tHi). */
  pop64(): number {
    const cpu = this.cpu
    const lin = this.stackTop()
    this.canonical(lin, true)
    const lo = this.read64(lin)
    const hi = this.tHi
    this.addRsp(8)
    this.tHi = hi
    return lo
  }

  pop16(): number {
    const lin = this.stackTop()
    this.canonical(lin, true)
    const v = this.read16(lin)
    this.addRsp(2)
    return v
  }

  addRsp(n: number): void {
    const cpu = this.cpu
    const s = (cpu.lo[4]! >>> 0) + n
    cpu.lo[4] = s | 0
    if (s >= TWO32) cpu.hi[4] = (cpu.hi[4]! + 1) | 0
    else if (s < 0) cpu.hi[4] = (cpu.hi[4]! - 1) | 0
  }

  // ---------------------------------------------------------------- descriptors

  /** Reads the 8-byte descriptor for `selector` from the GDT/LDT (low in return, high in tHi); #GP(sel) if outside the limit. */
  readDescriptor(selector: number, errorVector = 13): number {
    const cpu = this.cpu
    const index = selector & ~7
    const useLdt = (selector & 4) !== 0
    const baseLo = useLdt ? cpu.segBaseLo[Seg.LDTR]! : cpu.gdtrBaseLo
    const baseHi = useLdt ? cpu.segBaseHi[Seg.LDTR]! : cpu.gdtrBaseHi
    const limit = useLdt ? cpu.segLimit[Seg.LDTR]! : cpu.gdtrLimit
    if (index + 7 > limit) this.fault(errorVector, selector & 0xfffc)
    const lin = baseHi * TWO32 + (baseLo >>> 0) + index
    const saved = cpu.cpl
    cpu.cpl = 0
    try {
      return this.read64(lin)
    } finally {
      cpu.cpl = saved
    }
  }

  /** Converts a descriptor (lo, hi words) into VMCS access rights. */
  static accessRights(hi: number): number {
    return ((hi >> 8) & 0xff) | (((hi >> 20) & 0xf) << 12)
  }

  static limitOf(lo: number, hi: number): number {
    let limit = (lo & 0xffff) | (hi & 0xf0000)
    if ((hi & (1 << 23)) !== 0) limit = limit * 4096 + 0xfff
    return limit >>> 0
  }

  static baseOf(lo: number, hi: number): number {
    return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0
  }

  // ---------------------------------------------------------------- event delivery

  /**
   * Delivers an event through the IDT (64-bit mode). `type` is an InterruptionType; `errorCode`
   * -1 for none; `returnRip` is what the frame holds (the faulting instruction for faults, the
   * next one for traps and INT n). Handles exception-bitmap exits, #DF and triple faults.
   */
  deliver(vector: number, type: number, errorCode: number, returnRip: number, instrLen: number, faultRip = returnRip): void {
    const cpu = this.cpu
    // Double-fault escalation: an exception while delivering another.
    if (this.deliveringVector >= 0 && (type === InterruptionType.HARDWARE_EXCEPTION)) {
      const first = this.deliveringVector
      const firstIsHw = this.deliveringType === InterruptionType.HARDWARE_EXCEPTION
      if (firstIsHw && first === 8) {
        this.tripleFault()
      }
      const second = vector
      if (
        firstIsHw &&
        ((isContributory(first) && isContributory(second)) || (first === 14 && (isContributory(second) || second === 14)))
      ) {
        this.deliveringVector = -1
        return this.deliver(8, InterruptionType.HARDWARE_EXCEPTION, 0, returnRip, 0)
      }
    }
    const ic = cpu.intercepts
    // An event injected by VM entry is not subject to the exception bitmap; faults while
    // delivering it are (they come through here again with the flag already cleared).
    const injected = this.injecting
    this.injecting = false
    if (
      ic !== null &&
      !injected &&
      (type === InterruptionType.HARDWARE_EXCEPTION ||
        type === InterruptionType.SOFTWARE_EXCEPTION ||
        type === InterruptionType.PRIVILEGED_SOFTWARE_EXCEPTION) &&
      ic.exitsOnException(vector, errorCode)
    ) {
      const x = cpu.exit
      x.clear()
      x.reason = ExitReason.EXCEPTION_NMI
      x.interruptionInformation = vector | (type << 8) | (errorCode >= 0 ? 1 << 11 : 0) | (1 << 31)
      x.interruptionErrorCode = errorCode >= 0 ? errorCode : 0
      if (vector === 14) {
        x.qualificationLo = ((this.faultAddress % TWO32) + TWO32) % TWO32 | 0
        x.qualificationHi = Math.floor(this.faultAddress / TWO32) | 0
      }
      if (type !== InterruptionType.HARDWARE_EXCEPTION) x.instructionLength = instrLen
      this.markIdtVectoring()
      this.deliveringVector = -1
      throw EXIT
    }
    if (vector === 14 && type === InterruptionType.HARDWARE_EXCEPTION) {
      cpu.cr2Lo = ((this.faultAddress % TWO32) + TWO32) % TWO32 | 0
      cpu.cr2Hi = Math.floor(this.faultAddress / TWO32) | 0
    }
    const outerVector = this.deliveringVector
    const outerType = this.deliveringType
    const outerError = this.deliveringError
    this.deliveringVector = vector
    this.deliveringType = type
    this.deliveringError = errorCode
    const ext = type === InterruptionType.SOFTWARE_INTERRUPT ? 0 : 1
    try {
      this.deliverThroughIdt(vector, type, errorCode, returnRip, ext)
    } catch (e) {
      if (e !== FAULT) throw e
      // A fault while delivering: deliver it (with escalation) instead.
      const v2 = this.faultVector
      const err2 = this.faultError
      // A fault while delivering INT n / INT3 is reported at the INT instruction itself.
      this.deliver(v2, InterruptionType.HARDWARE_EXCEPTION, err2, faultRip, 0)
      return
    } finally {
      this.deliveringVector = outerVector
      this.deliveringType = outerType
      this.deliveringError = outerError
    }
  }

  tripleFault(): never {
    const cpu = this.cpu
    this.deliveringVector = -1
    if (cpu.intercepts !== null) {
      cpu.exit.clear()
      cpu.exit.reason = ExitReason.TRIPLE_FAULT
      throw EXIT
    }
    cpu.activityState = ActivityState.SHUTDOWN
    throw SHUTDOWN
  }

  private deliverThroughIdt(vector: number, type: number, errorCode: number, returnRip: number, ext: number): void {
    const cpu = this.cpu
    const gateOffset = vector * 16
    if (gateOffset + 15 > cpu.idtrLimit) this.fault(13, vector * 8 + 2 + ext)
    const gateLin = cpu.idtrBaseHi * TWO32 + (cpu.idtrBaseLo >>> 0) + gateOffset
    const savedCpl = cpu.cpl
    cpu.cpl = 0
    let w0: number, w1: number, w2: number
    try {
      w0 = this.read32(gateLin)
      w1 = this.read32(gateLin + 4)
      w2 = this.read32(gateLin + 8)
    } finally {
      cpu.cpl = savedCpl
    }
    const gateType = (w1 >> 8) & 0x1f
    const gateDpl = (w1 >> 13) & 3
    if (gateType !== 0x0e && gateType !== 0x0f) this.fault(13, vector * 8 + 2 + ext)
    if (type === InterruptionType.SOFTWARE_INTERRUPT || type === InterruptionType.SOFTWARE_EXCEPTION) {
      if (gateDpl < cpu.cpl) this.fault(13, vector * 8 + 2)
    }
    if ((w1 & 0x8000) === 0) this.fault(11, vector * 8 + 2 + ext)
    const selector = (w0 >>> 16) & 0xffff
    const istIndex = w1 & 7 // interrupt stack table slot (0: none)
    const offLo = ((w0 & 0xffff) | (w1 & 0xffff0000)) >>> 0
    const offHi = w2
    // Target code segment.
    if ((selector & 0xfffc) === 0) this.fault(13, ext)
    const dLo = this.readDescriptor(selector)
    const dHi = this.tHi
    const ar = Engine.accessRights(dHi)
    if ((ar & 0x18) !== 0x18 || (ar & 0x2000) === 0) this.fault(13, (selector & 0xfffc) + ext)
    if ((ar & 0x80) === 0) this.fault(11, (selector & 0xfffc) + ext)
    const newCpl = (ar >> 5) & 3
    if (newCpl > cpu.cpl) this.fault(13, (selector & 0xfffc) + ext)
    const target = offHi * TWO32 + offLo
    this.canonical(target, false)
    // New stack.
    const oldSsSel = cpu.segSel[Seg.SS]!
    const oldRspLo = cpu.lo[4]!
    const oldRspHi = cpu.hi[4]!
    let rspLo = oldRspLo
    let rspHi = oldRspHi
    if (istIndex !== 0 || newCpl < cpu.cpl) {
      const trBase = cpu.segBaseHi[Seg.TR]! * TWO32 + (cpu.segBaseLo[Seg.TR]! >>> 0)
      const slot = istIndex !== 0 ? 0x24 + 8 * (istIndex - 1) : 4 + 8 * newCpl
      if (slot + 7 > cpu.segLimit[Seg.TR]!) this.fault(10, (cpu.segSel[Seg.TR]! & 0xfffc) + ext)
      cpu.cpl = 0
      try {
        rspLo = this.read64(trBase + slot)
        rspHi = this.tHi
      } finally {
        cpu.cpl = savedCpl
      }
      const newLin = rspHi * TWO32 + (rspLo >>> 0)
      if (newLin >= 0x8000_0000_0000 || newLin < -0x8000_0000_0000) this.fault(12, ext)
    }
    // Align to 16 and push the frame with supervisor privilege (new CPL).
    rspLo = rspLo & ~15
    const rflags = cpu.getRflags32()
    cpu.lo[4] = rspLo
    cpu.hi[4] = rspHi
    cpu.cpl = newCpl
    try {
      this.push64(oldSsSel, 0)
      this.push64(oldRspLo, oldRspHi)
      this.push64(rflags, 0)
      this.push64(cpu.segSel[Seg.CS]!, 0)
      this.push64(((returnRip % TWO32) + TWO32) % TWO32 | 0, Math.floor(returnRip / TWO32) | 0)
      if (errorCode >= 0) this.push64(errorCode, 0)
    } catch (e) {
      cpu.lo[4] = oldRspLo
      cpu.hi[4] = oldRspHi
      cpu.cpl = savedCpl
      throw e
    }
    // Commit: CS, SS, RIP, RFLAGS.
    cpu.segSel[Seg.CS] = (selector & 0xfffc) | newCpl
    cpu.segBaseLo[Seg.CS] = 0
    cpu.segBaseHi[Seg.CS] = 0
    cpu.segLimit[Seg.CS] = Engine.limitOf(dLo, dHi)
    cpu.segAttr[Seg.CS] = ar | 1
    cpu.systemGeneration++
    if (newCpl !== savedCpl) {
      cpu.segSel[Seg.SS] = newCpl
      cpu.segBaseLo[Seg.SS] = 0
      cpu.segBaseHi[Seg.SS] = 0
      cpu.segLimit[Seg.SS] = 0xffffffff
      cpu.segAttr[Seg.SS] = 0x1c000 | (newCpl << 5) // unusable null SS with DPL = CPL
    }
    cpu.rip = target
    let fl = rflags & ~(Rflags.TF | Rflags.NT | Rflags.RF | Rflags.VM)
    if (gateType === 0x0e) fl &= ~Rflags.IF
    cpu.setRflags32(fl)
    if (vector === 2 && type === InterruptionType.NMI) cpu.interruptibility |= Interruptibility.NMI
    cpu.activityState = ActivityState.ACTIVE
    this.codeBase = NaN
  }
}
