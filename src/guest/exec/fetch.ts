// Instruction fetch through the decoded-instruction cache: switching the current code page
// (translation with execute permission, marking the physical page as holding code) and
// decoding misses. Instructions that cross a page boundary are decoded into a scratch record
// every time instead of being cached (their bytes belong to two pages).

import { MAX_INSTRUCTION_LENGTH, DecodedInstruction, decodeInstruction } from "../decode/decoder.ts"

import { ExitReason } from "../../arch/exit-reasons.ts"
import { ACCESS_FETCH, P_MAPPED } from "../mmu/tlb.ts"
import { type Engine, EXIT, TWO32 } from "./engine.ts"

const window = new Uint8Array(MAX_INSTRUCTION_LENGTH)
const decoded = new DecodedInstruction()

/** Returns the record index of the instruction at `rip` (throws FAULT/EXIT on fetch failures). */
export const fetchDecode = (k: Engine, rip: number): number => {
  k.canonical(rip, false)
  const tlb = k.tlb
  const e = k.translate(rip, ACCESS_FETCH, 0, 0, 0)
  if ((tlb.perm[e]! & P_MAPPED) === 0) unmappedFetch(k, e, rip)
  const vpn = Math.floor(rip / 4096)
  const pageBase = vpn * 4096
  const phys = tlb.phys[e]!
  const cache = k.cache
  const map = cache.pageMap(Math.floor(phys / 4096))
  const mem = k.cpu.memory
  const slot = mem.slotIndexOf(phys)
  mem.markCode(slot, phys)
  k.codeBase = pageBase
  k.codeMap = map
  const off = rip - pageBase
  const cached = map[off]!
  if (cached !== 0) return cached - 1
  // Copy the bytes available in this page, then (if needed) from the next page.
  const bytes = tlb.bytes[e]!
  const base = tlb.off[e]!
  const inPage = Math.min(MAX_INSTRUCTION_LENGTH, 4096 - off)
  for (let j = 0; j < inPage; j++) window[j] = bytes[base + off + j]!
  decodeInstruction(window, 0, inPage, decoded)
  if (!decoded.truncated) {
    const at = cache.allocate()
    cache.store(at, decoded)
    map[off] = at + 1
    return at
  }
  // Crosses into the next page: fetch it (may #PF / exit at that address), decode uncached.
  const nextLin = pageBase + 4096
  k.canonical(nextLin, false)
  const e2 = k.translate(nextLin, ACCESS_FETCH, 0, 0, 0)
  if ((tlb.perm[e2]! & P_MAPPED) === 0) unmappedFetch(k, e2, nextLin)
  const bytes2 = tlb.bytes[e2]!
  const base2 = tlb.off[e2]!
  for (let j = inPage; j < MAX_INSTRUCTION_LENGTH; j++) window[j] = bytes2[base2 + (j - inPage)]!
  decodeInstruction(window, 0, MAX_INSTRUCTION_LENGTH, decoded)
  const at = cache.scratch
  cache.store(at, decoded)
  k.codeBase = NaN // the scratch record must not be found through the page map
  return at
}

/** Fetching from guest-physical memory with no slot: an EPT violation under intercepts, else #UD. */
const unmappedFetch = (k: Engine, e: number, lin: number): never => {
  const cpu = k.cpu
  if (cpu.intercepts !== null) {
    const gpa = k.tlb.gpa[e]! + (lin - Math.floor(lin / 4096) * 4096)
    const x = cpu.exit
    x.clear()
    x.reason = ExitReason.EPT_VIOLATION
    x.qualificationLo = 4 | (1 << 7) | (1 << 8)
    x.guestPhysicalLo = gpa % TWO32 | 0
    x.guestPhysicalHi = Math.floor(gpa / TWO32)
    x.guestLinearLo = ((lin % TWO32) + TWO32) % TWO32 | 0
    x.guestLinearHi = Math.floor(lin / TWO32) | 0
    throw EXIT
  }
  return k.ud()
}


