// Puts a CPU straight into 64-bit long mode the way minimal KVM VMMs do: a flat GDT (null,
// 64-bit code DPL0, data DPL0, user data DPL3, user code DPL3 — the SYSCALL/SYSRET layout),
// 4-level page tables identity-mapping the first `identityGiB` GiB with 2 MiB pages (writable,
// executable; optionally user-accessible), CR0.PE|PG, CR4.PAE, EFER.LME|LMA|SCE|NXE.

import { Cr0, Cr4, Efer } from "../arch/x86.ts"
import { Seg, type CpuState } from "./cpu/state.ts"

export interface LongModeLayout {
  /** Guest-physical address of the 4 KiB-aligned area for the GDT and page tables (needs 8 KiB + 4 KiB per GiB). */
  readonly tablesAt: bigint
  /** GiB identity-mapped from 0 (default 1). */
  readonly identityGiB?: number
  /** Make the mapping user-accessible (U/S=1) so CPL3 code can run in it (default false). */
  readonly user?: boolean
}

/** Selectors of the flat GDT written by setupLongMode. */
export const FlatSelectors = {
  KERNEL_CODE: 0x08,
  KERNEL_DATA: 0x10,
  USER_DATA: 0x1b,
  USER_CODE: 0x23,
  TSS: 0x28,
} as const

/** Bytes setupLongMode writes at `tablesAt`. */
export const longModeTablesSize = (identityGiB = 1): number => 0x3000 + identityGiB * 0x1000

/** Writes the GDT, a TSS and the page tables into guest memory and loads the CPU state. */
export const setupLongMode = (cpu: CpuState, layout: LongModeLayout): void => {
  const mem = cpu.memory
  const base = layout.tablesAt
  const gib = layout.identityGiB ?? 1
  const user = layout.user ?? false
  const gdt = base
  const tss = base + 0x100n
  const pml4 = base + 0x1000n
  const pdpt = base + 0x2000n
  const pdBase = base + 0x3000n
  // GDT: null, kernel code, kernel data, user data, user code, TSS (16 bytes).
  mem.writeU64(gdt + 0x00n, 0n)
  mem.writeU64(gdt + 0x08n, 0x00af9b000000ffffn)
  mem.writeU64(gdt + 0x10n, 0x00cf93000000ffffn)
  mem.writeU64(gdt + 0x18n, 0x00cff3000000ffffn)
  mem.writeU64(gdt + 0x20n, 0x00affb000000ffffn)
  const tssLimit = 0x67n
  const tssLow =
    tssLimit | ((tss & 0xffffffn) << 16n) | (0x89n << 40n) | (((tss >> 24n) & 0xffn) << 56n)
  mem.writeU64(gdt + 0x28n, tssLow)
  mem.writeU64(gdt + 0x30n, tss >> 32n)
  const flags = user ? 0x7n : 0x3n
  mem.writeU64(pml4, pdpt | flags)
  for (let g = 0; g < gib; g++) {
    const pd = pdBase + BigInt(g) * 0x1000n
    mem.writeU64(pdpt + BigInt(g) * 8n, pd | flags)
    for (let e = 0; e < 512; e++) {
      const frame = (BigInt(g) << 30n) + (BigInt(e) << 21n)
      mem.writeU64(pd + BigInt(e) * 8n, frame | flags | 0x80n)
    }
  }
  cpu.setGdtr(gdt, 0x37)
  cpu.setIdtr(0n, 0)
  cpu.cr3 = pml4
  cpu.cr4 = Cr4.PAE
  cpu.efer = Efer.LME | Efer.LMA | Efer.SCE | Efer.NXE
  cpu.cr0 = Cr0.PE | Cr0.MP | Cr0.ET | Cr0.NE | Cr0.WP | Cr0.PG
  cpu.systemGeneration++
  cpu.setSegment(Seg.CS, { selector: FlatSelectors.KERNEL_CODE, base: 0n, limit: 0xffffffff, accessRights: 0xa09b })
  for (const s of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) {
    cpu.setSegment(s, { selector: FlatSelectors.KERNEL_DATA, base: 0n, limit: 0xffffffff, accessRights: 0xc093 })
  }
  cpu.setSegment(Seg.TR, { selector: FlatSelectors.TSS, base: tss, limit: 0x67, accessRights: 0x8b })
  cpu.setSegment(Seg.LDTR, { selector: 0, base: 0n, limit: 0, accessRights: 0x10082 })
  cpu.setRflags(0x2n)
  cpu.flushTlb()
}
