// Linear-address translation: the 4-level page walk (present, R/W, U/S, NX, accessed and dirty
// bits, 2 MiB and 1 GiB pages, reserved-bit checks) and a direct-mapped software TLB caching
// the result down to the backing bytes. The TLB keeps global entries across CR3 writes when
// CR4.PGE=1; INVLPG drops one page; flushAll drops everything.

import { Cr0, Cr4, Efer, PfError } from "../../arch/x86.ts"
import { AccessKind } from "../intercept.ts"
import type { CpuState } from "../cpu/state.ts"
import type { GuestMemory } from "./memory.ts"

export const TLB_SIZE = 1024
export const TLB_MASK = TLB_SIZE - 1

/** Permission bits of a TLB entry. Supervisor reads need only MAPPED. */
export const P_MAPPED = 1
export const P_READ_USER = 2
export const P_WRITE_SUP = 4
export const P_WRITE_USER = 8
export const P_EXEC_SUP = 16
export const P_EXEC_USER = 32
export const P_GLOBAL = 64

/** Access kinds of translate(). */
export const ACCESS_READ = 0
export const ACCESS_WRITE = 1
export const ACCESS_FETCH = 2

/** Physical address width the simulated CPU reports (CPUID 0x80000008). */
export const MAXPHYADDR = 46

const TWO32 = 4294967296

export class Tlb {
  readonly tag = new Float64Array(TLB_SIZE).fill(NaN)
  readonly perm = new Int32Array(TLB_SIZE)
  /** Backing DataView of the slot, or null when the guest-physical page has no slot. */
  readonly view: Array<DataView | null> = new Array<DataView | null>(TLB_SIZE).fill(null)
  readonly bytes: Array<Uint8Array | null> = new Array<Uint8Array | null>(TLB_SIZE).fill(null)
  /** Offset of the page within the slot's bytes. */
  readonly off = new Float64Array(TLB_SIZE)
  /** Code map of the slot and the page's index in it (a write to a page holding code must invalidate). */
  readonly codeMap: Array<Uint8Array | null> = new Array<Uint8Array | null>(TLB_SIZE).fill(null)
  readonly codeIdx = new Int32Array(TLB_SIZE)
  /** Guest-physical address of the page (after EPT: the slot-space address). */
  readonly phys = new Float64Array(TLB_SIZE)
  /** The guest-physical address before EPT (what an EPT/MMIO exit reports). */
  readonly gpa = new Float64Array(TLB_SIZE)

  flushAll(): void {
    this.tag.fill(NaN)
  }

  flushNonGlobal(): void {
    for (let i = 0; i < TLB_SIZE; i++) if ((this.perm[i]! & P_GLOBAL) === 0) this.tag[i] = NaN
  }

  flushPage(vpn: number): void {
    const e = vpn & TLB_MASK
    if (this.tag[e] === vpn) this.tag[e] = NaN
  }
}

/** Outcome codes of `walk` besides success (>= 0, the TLB entry index). */
export const WALK_PAGE_FAULT = -1
export const WALK_EPT_EXIT = -2

/**
 * The page walker. `walk` fills the TLB entry for `lin` or reports a page fault (error code in
 * `faultError`) or an EPT exit (in `eptGpa`, `eptAccess`, `eptCode`).
 */
export class PageWalker {
  faultError = 0
  eptGpa = 0
  eptAccess = 0
  /** -1 violation, -2 misconfiguration (from the translator). */
  eptCode = 0
  /** true when the EPT exit happened while reading paging structures. */
  eptDuringWalk = false

  constructor(
    readonly cpu: CpuState,
    readonly tlb: Tlb,
  ) {}

  /** Translates a guest-physical address to a slot-space address, or records an EPT exit (-1). */
  private guestPhysical(gpa: number, access: number, duringWalk: boolean): number {
    const ic = this.cpu.intercepts
    const t = ic === null ? null : ic.guestPhysical
    if (t === null) return gpa
    const r = t.translate(gpa, access)
    if (r >= 0) return r
    this.eptGpa = gpa
    this.eptAccess = access
    this.eptCode = r
    this.eptDuringWalk = duringWalk
    return -1
  }

  /** Reads a paging-structure entry (halves into entryLo/entryHi); false on an EPT exit. */
  private entryLo = 0
  private entryHi = 0
  private readEntry(mem: GuestMemory, gpa: number): boolean {
    const a = this.guestPhysical(gpa, AccessKind.READ, true)
    if (a < 0) return false
    const i = mem.slotIndexOf(a)
    if (i < 0) {
      // No memory behind the paging structure: reads as all-ones (reserved bits set → #PF RSVD).
      this.entryLo = -1
      this.entryHi = -1
      return true
    }
    const v = mem.views[i]!
    const o = a - mem.bases[i]!
    this.entryLo = v.getInt32(o, true)
    this.entryHi = v.getInt32(o + 4, true)
    return true
  }

  private setEntryBits(mem: GuestMemory, gpa: number, bits: number): void {
    const a = this.guestPhysical(gpa, AccessKind.WRITE, true)
    if (a < 0) return
    const i = mem.slotIndexOf(a)
    if (i < 0 || mem.readOnly[i]) return
    const v = mem.views[i]!
    const o = a - mem.bases[i]!
    const old = v.getInt32(o, true)
    if ((old & bits) === bits) return
    v.setInt32(o, old | bits, true)
    mem.noteWrite(a, 1)
  }

  /**
   * Walks the page tables for linear address `lin` (an exact double) and fills TLB entry
   * `vpn & TLB_MASK`. Returns the entry index, WALK_PAGE_FAULT or WALK_EPT_EXIT.
   */
  walk(lin: number, access: number, user: boolean): number {
    const cpu = this.cpu
    const mem = cpu.memory
    const tlb = this.tlb
    const vpn = Math.floor(lin / 4096)
    const e = vpn & TLB_MASK
    let perm = P_MAPPED | P_READ_USER | P_WRITE_SUP | P_WRITE_USER | P_EXEC_SUP | P_EXEC_USER
    let pageGpa: number
    if ((cpu.cr0 & Cr0.PG) === 0) {
      // Paging off: linear = physical (the simulator allows this in 64-bit mode for bare tests).
      pageGpa = (vpn * 4096) % 2 ** 52
      if (pageGpa < 0) pageGpa += 2 ** 52
    } else {
      const nxe = (cpu.efer & Efer.NXE) !== 0
      const wp = (cpu.cr0 & Cr0.WP) !== 0
      const write = access === ACCESS_WRITE
      const fetch = access === ACCESS_FETCH
      // Reserved physical-address bits 51:MAXPHYADDR (in the high half: bits 19:14).
      const rsvdHi = (0xfffff << (MAXPHYADDR - 32)) & 0xfffff
      let tableGpa = (cpu.cr3Hi & ((1 << (MAXPHYADDR - 32)) - 1)) * TWO32 + ((cpu.cr3Lo & ~0xfff) >>> 0)
      let userOk = true
      let writeOk = true
      let execOk = true
      let level = 4
      const linLo = ((lin % TWO32) + TWO32) % TWO32
      const linHi = Math.floor(lin / TWO32)
      let pageSize = 4096
      let leafLo = 0
      let leafHi = 0
      let leafGpa = 0
      for (;;) {
        let index: number
        switch (level) {
          case 4:
            index = (linHi >> 7) & 0x1ff
            break
          case 3:
            index = ((linHi & 0x7f) << 2) | (linLo >>> 30)
            break
          case 2:
            index = (linLo >>> 21) & 0x1ff
            break
          default:
            index = (linLo >>> 12) & 0x1ff
            break
        }
        const entryGpa = tableGpa + index * 8
        if (!this.readEntry(mem, entryGpa)) return WALK_EPT_EXIT
        const lo = this.entryLo
        const hi = this.entryHi
        if ((lo & 1) === 0) {
          this.faultError = (write ? PfError.W : 0) | (user ? PfError.U : 0) | (fetch && nxe ? PfError.I : 0)
          return WALK_PAGE_FAULT
        }
        const isLeaf = level === 1 || ((lo & 0x80) !== 0 && level <= 3)
        let rsvd = (hi & rsvdHi) !== 0 || (!nxe && hi < 0)
        if (level === 4 && (lo & 0x80) !== 0) rsvd = true
        if (isLeaf && level === 3 && (lo & 0x3fffe000) !== 0) rsvd = true
        if (isLeaf && level === 2 && (lo & 0x1fe000) !== 0) rsvd = true
        if (rsvd) {
          this.faultError =
            PfError.P | PfError.RSVD | (write ? PfError.W : 0) | (user ? PfError.U : 0) | (fetch && nxe ? PfError.I : 0)
          return WALK_PAGE_FAULT
        }
        if ((lo & 2) === 0) writeOk = false
        if ((lo & 4) === 0) userOk = false
        if (nxe && hi < 0) execOk = false
        if (isLeaf) {
          pageSize = level === 3 ? 1 << 30 : level === 2 ? 1 << 21 : 4096
          leafLo = lo
          leafHi = hi
          leafGpa = entryGpa
          break
        }
        tableGpa = (hi & ((1 << (MAXPHYADDR - 32)) - 1)) * TWO32 + ((lo & ~0xfff) >>> 0)
        level--
      }
      // Permission check for this access.
      let denied = false
      if (user && !userOk) denied = true
      else if (write && !writeOk && (user || wp)) denied = true
      else if (fetch && !execOk) denied = true
      else if (fetch && !user && userOk && (cpu.cr4 & Cr4.SMEP) !== 0) denied = true
      if (denied) {
        this.faultError = PfError.P | (write ? PfError.W : 0) | (user ? PfError.U : 0) | (fetch && nxe ? PfError.I : 0)
        return WALK_PAGE_FAULT
      }
      // Accessed bits on every level were set as we went (Intel sets them during the walk);
      // done here in one pass for the leaf, with D on writes.
      this.setAccessedPath(mem, cpu, lin)
      const dirty = (leafLo & 0x40) !== 0 || write
      if (write && (leafLo & 0x40) === 0) this.setEntryBits(mem, leafGpa, 0x60)
      else if ((leafLo & 0x20) === 0) this.setEntryBits(mem, leafGpa, 0x20)
      const baseMask = pageSize === 4096 ? ~0xfff : pageSize === 1 << 21 ? ~0x1fffff : ~0x3fffffff
      const frame = (leafHi & ((1 << (MAXPHYADDR - 32)) - 1)) * TWO32 + ((leafLo & baseMask) >>> 0)
      pageGpa = frame + (((linLo >>> 0) & (pageSize - 1)) & ~0xfff)
      perm = P_MAPPED
      if (userOk) perm |= P_READ_USER
      if (dirty) {
        if (writeOk || !wp) perm |= P_WRITE_SUP
        if (writeOk && userOk) perm |= P_WRITE_USER
      }
      if (execOk) {
        if (!(userOk && (cpu.cr4 & Cr4.SMEP) !== 0)) perm |= P_EXEC_SUP
        if (userOk) perm |= P_EXEC_USER
      }
      if ((leafLo & 0x100) !== 0 && (cpu.cr4 & Cr4.PGE) !== 0) perm |= P_GLOBAL
    }
    // Guest-physical → slot space (EPT), then the slot.
    const kind = access === ACCESS_WRITE ? AccessKind.WRITE : access === ACCESS_FETCH ? AccessKind.FETCH : AccessKind.READ
    const a = this.guestPhysical(pageGpa, kind, false)
    if (a < 0) return WALK_EPT_EXIT
    const i = mem.slotIndexOf(a)
    tlb.tag[e] = vpn
    tlb.phys[e] = a
    tlb.gpa[e] = pageGpa
    if (i < 0) {
      tlb.perm[e] = perm & ~P_MAPPED
      tlb.view[e] = null
      tlb.bytes[e] = null
      tlb.codeMap[e] = null
    } else {
      if (mem.readOnly[i]) perm &= ~(P_WRITE_SUP | P_WRITE_USER)
      tlb.perm[e] = perm
      tlb.view[e] = mem.views[i]!
      tlb.bytes[e] = mem.bytes[i]!
      tlb.off[e] = a - mem.bases[i]!
      tlb.codeMap[e] = mem.codeMaps[i]!
      tlb.codeIdx[e] = Math.floor((a - mem.bases[i]!) / 4096)
    }
    return e
  }

  /** Sets the accessed bit in the PML4E, PDPTE and PDE used for `lin` (walk already validated them). */
  private setAccessedPath(mem: GuestMemory, cpu: CpuState, lin: number): void {
    const linLo = (lin % TWO32 + TWO32) % TWO32
    const linHi = Math.floor(lin / TWO32)
    let tableGpa = (cpu.cr3Hi & ((1 << (MAXPHYADDR - 32)) - 1)) * TWO32 + ((cpu.cr3Lo & ~0xfff) >>> 0)
    for (let level = 4; level >= 2; level--) {
      const index =
        level === 4 ? (linHi >> 7) & 0x1ff : level === 3 ? (((linHi & 0x7f) << 2) | (linLo >>> 30)) & 0x1ff : (linLo >>> 21) & 0x1ff
      const entryGpa = tableGpa + index * 8
      if (!this.readEntry(mem, entryGpa)) return
      const lo = this.entryLo
      if ((lo & 0x80) !== 0 && level <= 3) return // leaf: handled by the caller
      if ((lo & 0x20) === 0) this.setEntryBits(mem, entryGpa, 0x20)
      tableGpa = (this.entryHi & ((1 << (MAXPHYADDR - 32)) - 1)) * TWO32 + ((lo & ~0xfff) >>> 0)
    }
  }
}
