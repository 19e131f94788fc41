// Long-mode setup as the well-known minimal KVM VMMs do it (LWN's "Using the KVM API",
// kvm-hello-world): a GDT with a 64-bit code and a data descriptor, 4-level page tables that
// identity-map the first 1 GiB with 2 MiB pages (present, writable, executable, supervisor), and
// the special registers KVM_SET_SREGS takes: CR0.PE|PG, CR4.PAE, EFER.LME|LMA, CR3, CS.L.

import type { KvmSegment, KvmSregs } from "../kvm/uapi.ts"

/** Guest-physical layout of the boot structures (below the image at 0x100000). */
export const BootLayout = {
  gdt: 0x500,
  tss: 0x600,
  pml4: 0x1000,
  pdpt: 0x2000,
  pd: 0x3000,
} as const

export const CR0_PE = 1n << 0n
export const CR0_MP = 1n << 1n
export const CR0_ET = 1n << 4n
export const CR0_NE = 1n << 5n
export const CR0_WP = 1n << 16n
export const CR0_PG = 1n << 31n
export const CR4_PAE = 1n << 5n
export const EFER_SCE = 1n << 0n
export const EFER_LME = 1n << 8n
export const EFER_LMA = 1n << 10n
export const EFER_NXE = 1n << 11n

const PTE_PRESENT = 1n
const PTE_WRITABLE = 2n
const PTE_PAGE_SIZE = 0x80n
const TWO_MIB = 0x200000n

const GDT_CODE64 = 0x00af9b000000ffffn
const GDT_DATA = 0x00cf93000000ffffn
/** Selectors: null 0x00, code 0x08, data 0x10, TSS 0x18 (a 16-byte system descriptor). */
export const Selector = { code: 0x08, data: 0x10, tss: 0x18 } as const

const writeU64 = (mem: Uint8Array, at: number, v: bigint): void => {
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength)
  view.setBigUint64(at, BigInt.asUintN(64, v), true)
}

/** Writes the GDT, an empty TSS and the identity-mapping page tables into guest memory at 0. */
export const writeBootStructures = (mem: Uint8Array): void => {
  if (mem.length < BootLayout.pd + 0x1000) throw new RangeError("guest memory too small for the boot page tables")
  writeU64(mem, BootLayout.gdt, 0n)
  writeU64(mem, BootLayout.gdt + 8, GDT_CODE64)
  writeU64(mem, BootLayout.gdt + 16, GDT_DATA)
  // 64-bit available TSS (type 9) of 0x68 bytes at BootLayout.tss: base split over the descriptor.
  const base = BigInt(BootLayout.tss)
  const tssLow = 0x67n | ((base & 0xffffffn) << 16n) | (0x89n << 40n) | (((base >> 24n) & 0xffn) << 56n)
  writeU64(mem, BootLayout.gdt + 24, tssLow)
  writeU64(mem, BootLayout.gdt + 32, base >> 32n)
  writeU64(mem, BootLayout.pml4, BigInt(BootLayout.pdpt) | PTE_PRESENT | PTE_WRITABLE)
  writeU64(mem, BootLayout.pdpt, BigInt(BootLayout.pd) | PTE_PRESENT | PTE_WRITABLE)
  // 512 PDEs: 2 MiB frames below 1 GiB fit in the low dword, the high dword stays 0.
  const view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength)
  const flags = Number(PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE)
  for (let i = 0; i < 512; i++) {
    view.setUint32(BootLayout.pd + i * 8, i * Number(TWO_MIB) + flags, true)
    view.setUint32(BootLayout.pd + i * 8 + 4, 0, true)
  }
}

const segment = (selector: number, type: number, code: boolean): KvmSegment => ({
  base: 0n,
  limit: 0xffffffff,
  selector,
  type,
  present: 1,
  dpl: 0,
  db: code ? 0 : 1,
  s: 1,
  l: code ? 1 : 0,
  g: 1,
  avl: 0,
  unusable: 0,
})

/** Turns the special registers KVM_GET_SREGS returned into 64-bit mode at CPL0 on the boot tables. */
export const longModeSregs = (sregs: KvmSregs): KvmSregs => {
  const code = segment(Selector.code, 11, true)
  const data = segment(Selector.data, 3, false)
  return {
    ...sregs,
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: { base: BigInt(BootLayout.tss), limit: 0x67, selector: Selector.tss, type: 11, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 },
    gdt: { base: BigInt(BootLayout.gdt), limit: 8 * 5 - 1 },
    idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
    cr3: BigInt(BootLayout.pml4),
    cr4: CR4_PAE,
    efer: EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE,
  }
}
