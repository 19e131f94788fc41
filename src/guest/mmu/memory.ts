// Guest-physical memory as a set of slots, shaped like KVM_SET_USER_MEMORY_REGION: each slot maps
// [guestPhysicalBase, guestPhysicalBase + size) onto a Uint8Array the caller owns. Addresses
// with no slot are "unmapped": the core turns data accesses there into an exit (MMIO) when it
// runs under intercepts, and otherwise reads all-ones and drops writes, like an empty bus.
//
// Guest-physical addresses inside the core are plain numbers (exact below 2^53, far beyond any
// MAXPHYADDR). Decoded instructions are cached per physical page; every write that reaches a
// page holding cached code goes through `noteWrite`, which drops that page's decoded
// instructions, so self-modifying code works for the guest and for writes from the host side.

export const PAGE_SIZE = 4096
export const PAGE_SHIFT = 12

export interface SlotRegion {
  readonly slot: number
  readonly guestPhysicalAddress: bigint
  readonly size: number
  readonly bytes: Uint8Array
  readonly readOnly: boolean
}

/** Invalidation target for decoded code (the decode cache registers itself). */
export interface CodeWriteListener {
  invalidatePhysicalPage(pageNumber: number): void
}

export class GuestMemory {
  // Parallel arrays, sorted by base address; lookups are a short linear scan (VMs have few slots).
  slotIds: Array<number> = []
  bases: Array<number> = []
  sizes: Array<number> = []
  bytes: Array<Uint8Array> = []
  views: Array<DataView> = []
  readOnly: Array<boolean> = []
  /** Per slot, one byte per 4 KiB page: 1 when decoded instructions from that page are cached. */
  codeMaps: Array<Uint8Array> = []
  /** Increments whenever the slot layout changes; CPUs flush their TLBs when it moves. */
  generation = 0
  private listeners: Array<CodeWriteListener> = []

  /**
   * Adds, replaces or (with size 0) removes slot `slot`, like KVM_SET_USER_MEMORY_REGION.
   * Returns an error message when the region is invalid (overlap, misalignment), else undefined.
   */
  setRegion(slot: number, guestPhysicalAddress: bigint, bytes: Uint8Array | null, readOnly = false): string | undefined {
    const existing = this.slotIds.indexOf(slot)
    if (bytes === null || bytes.length === 0) {
      if (existing >= 0) this.removeAt(existing)
      return undefined
    }
    if ((guestPhysicalAddress & 0xfffn) !== 0n || bytes.length % PAGE_SIZE !== 0) {
      return `slot ${slot}: guest-physical address and size must be multiples of 4096`
    }
    const base = Number(guestPhysicalAddress)
    for (let i = 0; i < this.slotIds.length; i++) {
      if (i === existing) continue
      const b = this.bases[i]!
      if (base < b + this.sizes[i]! && b < base + bytes.length) {
        return `slot ${slot}: [0x${base.toString(16)}, 0x${(base + bytes.length).toString(16)}) overlaps slot ${this.slotIds[i]}`
      }
    }
    if (existing >= 0) this.removeAt(existing)
    let at = 0
    while (at < this.bases.length && this.bases[at]! < base) at++
    this.slotIds.splice(at, 0, slot)
    this.bases.splice(at, 0, base)
    this.sizes.splice(at, 0, bytes.length)
    this.bytes.splice(at, 0, bytes)
    this.views.splice(at, 0, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    this.readOnly.splice(at, 0, readOnly)
    this.codeMaps.splice(at, 0, new Uint8Array(bytes.length / PAGE_SIZE))
    this.generation++
    this.invalidateAllCode()
    return undefined
  }

  regions(): Array<SlotRegion> {
    return this.slotIds.map((slot, i) => ({
      slot,
      guestPhysicalAddress: BigInt(this.bases[i]!),
      size: this.sizes[i]!,
      bytes: this.bytes[i]!,
      readOnly: this.readOnly[i]!,
    }))
  }

  private removeAt(i: number): void {
    this.slotIds.splice(i, 1)
    this.bases.splice(i, 1)
    this.sizes.splice(i, 1)
    this.bytes.splice(i, 1)
    this.views.splice(i, 1)
    this.readOnly.splice(i, 1)
    this.codeMaps.splice(i, 1)
    this.generation++
    this.invalidateAllCode()
  }

  /** Index of the slot holding `gpa`, or -1. */
  slotIndexOf(gpa: number): number {
    const bases = this.bases
    for (let i = 0; i < bases.length; i++) {
      const off = gpa - bases[i]!
      if (off >= 0 && off < this.sizes[i]!) return i
    }
    return -1
  }

  addCodeListener(listener: CodeWriteListener): void {
    if (!this.listeners.includes(listener)) this.listeners.push(listener)
  }

  /** Marks the page of `gpa` (in slot index `i`) as holding cached code. */
  markCode(i: number, gpa: number): void {
    this.codeMaps[i]![Math.floor((gpa - this.bases[i]!) / PAGE_SIZE)] = 1
  }

  /** Called for every write that may hit cached code: drops the decoded instructions of the pages touched. */
  noteWrite(gpa: number, length: number): void {
    const first = Math.floor(gpa / PAGE_SIZE)
    const last = Math.floor((gpa + length - 1) / PAGE_SIZE)
    for (let page = first; page <= last; page++) {
      const i = this.slotIndexOf(page * PAGE_SIZE)
      if (i < 0) continue
      const local = page - this.bases[i]! / PAGE_SIZE
      const map = this.codeMaps[i]!
      if (map[local] === 0) continue
      map[local] = 0
      for (const l of this.listeners) l.invalidatePhysicalPage(page)
    }
  }

  private invalidateAllCode(): void {
    for (const map of this.codeMaps) map.fill(0)
    for (const l of this.listeners) l.invalidatePhysicalPage(-1)
  }

  // ---- boundary helpers (bigint addresses; used by loaders, KVM, tests — not the hot path) ----

  /** Reads `length` bytes at `gpa`; unmapped bytes read as 0xff. */
  read(gpa: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length)
    const start = Number(gpa)
    for (let k = 0; k < length; k++) {
      const a = start + k
      const i = this.slotIndexOf(a)
      out[k] = i < 0 ? 0xff : this.bytes[i]![a - this.bases[i]!]!
    }
    return out
  }

  /** Writes bytes at `gpa` (ignoring read-only flags: this is the host's view). Returns false if any byte was unmapped. */
  write(gpa: bigint, data: Uint8Array): boolean {
    const start = Number(gpa)
    let ok = true
    for (let k = 0; k < data.length; k++) {
      const a = start + k
      const i = this.slotIndexOf(a)
      if (i < 0) {
        ok = false
        continue
      }
      this.bytes[i]![a - this.bases[i]!] = data[k]!
    }
    if (data.length > 0) this.noteWrite(start, data.length)
    return ok
  }

  readU64(gpa: bigint): bigint {
    const b = this.read(gpa, 8)
    return new DataView(b.buffer).getBigUint64(0, true)
  }

  writeU64(gpa: bigint, value: bigint): boolean {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), true)
    return this.write(gpa, b)
  }

  readU32(gpa: bigint): number {
    const b = this.read(gpa, 4)
    return new DataView(b.buffer).getUint32(0, true)
  }

  writeU32(gpa: bigint, value: number): boolean {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, value >>> 0, true)
    return this.write(gpa, b)
  }
}
