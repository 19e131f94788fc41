// The decoded-instruction cache, shared by every CPU on one GuestMemory. Each decoded
// instruction is a 16-int record in one Int32Array (fields at fixed offsets, below), found
// through a per-physical-page Int32Array(4096) mapping the byte offset to record index + 1.
// A write to a page with cached code zeroes that page's map (GuestMemory.noteWrite), so the
// next fetch re-decodes: self-modifying code works, and records in use stay readable.

import type { CodeWriteListener, GuestMemory } from "../mmu/memory.ts"
import type { DecodedInstruction } from "./decoder.ts"

export const F_OP = 0
export const F_SUB = 1
export const F_LEN = 2
export const F_OSZ = 3
export const F_ASZ = 4
export const F_SEG = 5
export const F_REG = 6
export const F_RM = 7
export const F_BASE = 8
export const F_INDEX = 9
export const F_SCALE = 10
export const F_DISPLO = 11
export const F_DISPHI = 12
export const F_IMMLO = 13
export const F_IMMHI = 14
export const F_FLAGS = 15
export const STRIDE = 16

/** F_FLAGS bits. */
export const FL_MEM = 1
export const FL_REP = 2 // F3
export const FL_REPNE = 4 // F2
export const FL_LOCK = 8
export const FL_OPSIZE = 16
export const FL_REXW = 32
export const FL_TRUNC = 64
export const FL_TOOLONG = 128
export const IMM2_SHIFT = 8 // bits 15:8: ENTER's nesting level
export const MODRM_SHIFT = 16 // bits 23:16: the ModRM byte

const CAPACITY = 1 << 15
/**
 * Records allocated at first. Small: a VM whose vCPUs sit idle has decoded a handful, and the
 * array doubles (a copy) as a real guest's few hundred or thousand instructions arrive.
 */
const INITIAL_RECORDS = 64

export class DecodeCache implements CodeWriteListener {
  /**
   * Records; record 0 is scratch space for instructions that are not cached (page-crossing),
   * records 1..CAPACITY hold cached ones. The array starts small and doubles as records are
   * allocated (existing indices stay valid, so the old array's contents are copied), because
   * 64 VMs each zeroing a full 2 MiB array at their first instruction dominated their start.
   * Callers holding `records` in a local must re-read it after anything that allocates.
   */
  records = new Int32Array(INITIAL_RECORDS * STRIDE)
  readonly scratch = 0
  private next = 1
  private readonly pages = new Map<number, Int32Array>()
  /** Increments when everything is dropped, so CPUs forget their current-page pointer. */
  generation = 0

  constructor(memory: GuestMemory) {
    memory.addCodeListener(this)
  }

  /** The offset map of physical page `page`, created on first use. */
  pageMap(page: number): Int32Array {
    let map = this.pages.get(page)
    if (map === undefined) {
      map = new Int32Array(4096)
      this.pages.set(page, map)
    }
    return map
  }

  invalidatePhysicalPage(page: number): void {
    if (page < 0) {
      for (const map of this.pages.values()) map.fill(0)
      this.generation++
      return
    }
    this.pages.get(page)?.fill(0)
  }

  /** Allocates a record (growing the array, or dropping the whole cache when full) and returns its base index. */
  allocate(): number {
    if (this.next > CAPACITY) {
      for (const map of this.pages.values()) map.fill(0)
      this.next = 1
      this.generation++
    }
    const at = this.next++ * STRIDE
    if (at >= this.records.length) {
      const grown = new Int32Array(Math.min(this.records.length * 2, (CAPACITY + 1) * STRIDE))
      grown.set(this.records)
      this.records = grown
    }
    return at
  }

  /** Stores a decoded instruction into record `at`. */
  store(at: number, d: DecodedInstruction): void {
    const r = this.records
    r[at + F_OP] = d.op
    r[at + F_SUB] = d.sub
    r[at + F_LEN] = d.length
    r[at + F_OSZ] = d.osz
    r[at + F_ASZ] = d.asz
    r[at + F_SEG] = d.seg
    r[at + F_REG] = d.reg
    r[at + F_RM] = d.rm
    r[at + F_BASE] = d.base
    r[at + F_INDEX] = d.index
    r[at + F_SCALE] = d.scale === 1 ? 0 : d.scale === 2 ? 1 : d.scale === 4 ? 2 : 3
    r[at + F_DISPLO] = d.dispLo
    r[at + F_DISPHI] = d.dispHi
    r[at + F_IMMLO] = d.immLo
    r[at + F_IMMHI] = d.immHi
    r[at + F_FLAGS] =
      (d.hasMem ? FL_MEM : 0) |
      (d.rep === 1 ? FL_REP : d.rep === 2 ? FL_REPNE : 0) |
      (d.lock ? FL_LOCK : 0) |
      (d.opsizePrefix ? FL_OPSIZE : 0) |
      ((d.rex & 8) !== 0 ? FL_REXW : 0) |
      (d.truncated ? FL_TRUNC : 0) |
      (d.tooLong ? FL_TOOLONG : 0) |
      ((d.imm2 & 0xff) << IMM2_SHIFT) |
      ((d.modrm & 0xff) << MODRM_SHIFT)
  }
}

const caches = new WeakMap<GuestMemory, DecodeCache>()

/** The decode cache of a memory (one per address space, shared by its CPUs). */
export const decodeCacheOf = (memory: GuestMemory): DecodeCache => {
  let c = caches.get(memory)
  if (c === undefined) {
    c = new DecodeCache(memory)
    caches.set(memory, c)
  }
  return c
}
