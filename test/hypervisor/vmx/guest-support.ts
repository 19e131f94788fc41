// Guests for VMX tests: guest-physical memory with identity-mapping page tables (PML4 at 0x1000,
// PDPT at 0x2000 mapping the first GiB with a 1 GiB page), an IDT at 0x3000 whose gate for
// vector v enters a stub at 0x180000 + 16v doing "mov eax, v; hlt", a GDT at 0x4000 (null,
// 64-bit code 0x8, data 0x10), code at 0x100000 and a stack below 0x200000.
import { assemble } from "../../../src/guest/asm/index.ts"
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import { enterVmx, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"

export const GUEST_CODE = 0x100000n
export const IDT_BASE = 0x3000n
export const GDT_BASE = 0x4000n
export const HANDLERS = 0x180000

export const newGuestMemory = (code: ReadonlyArray<number> | Uint8Array, bytes = 4 * 1024 * 1024): GuestMemory => {
  const ram = new Uint8Array(bytes)
  const view = new DataView(ram.buffer)
  view.setUint32(0x1000, 0x2003, true) // PML4[0] -> PDPT, present + writable
  view.setUint32(0x2000, 0x83, true) // PDPT[0]: 1 GiB page at 0, present + writable + PS
  for (let v = 0; v < 32; v++) {
    const handler = HANDLERS + v * 16
    const gate = Number(IDT_BASE) + v * 16
    view.setUint32(gate, (handler & 0xffff) | (0x8 << 16), true)
    view.setUint32(gate + 4, (handler & 0xffff0000) | 0x8e00, true) // present 64-bit interrupt gate
    ram.set([0xb8, v, 0, 0, 0, 0xf4], handler) // mov eax, v; hlt
  }
  view.setBigUint64(Number(GDT_BASE) + 8, 0x0020_9a00_0000_0000n, true)
  view.setBigUint64(Number(GDT_BASE) + 16, 0x0000_9200_0000_0000n, true)
  ram.set(code, Number(GUEST_CODE))
  const memory = new GuestMemory()
  const error = memory.setRegion(0, 0n, ram)
  if (error !== undefined) throw new Error(error)
  return memory
}

export const newGuestCore = (code: ReadonlyArray<number> | Uint8Array): CpuState => new CpuState(newGuestMemory(code))

/** Assembles NASM source placed at GUEST_CODE. */
export const guestCode = (source: string): Uint8Array => assemble(`BITS 64\nORG 0x100000\n${source}\n`).bytes

/** Points the current VMCS's GUEST_GDTR/GUEST_IDTR at this file's GDT and IDT. */
export const writeGuestDescriptorTables = (lp: LogicalProcessor): void => {
  lp.vmwrite(F.GUEST_GDTR_BASE, GDT_BASE)
  lp.vmwrite(F.GUEST_GDTR_LIMIT, 0x17n)
  lp.vmwrite(F.GUEST_IDTR_BASE, IDT_BASE)
  lp.vmwrite(F.GUEST_IDTR_LIMIT, 0x1ffn)
}

/**
 * A processor in VMX operation with a fresh VMCS current and valid (writeValidVmcs), this file's
 * GDT and IDT, and a guest core running `source` at GUEST_CODE loaded as its register file; not
 * yet launched.
 */
export const vmxGuest = (source: string): { lp: LogicalProcessor; core: CpuState } => {
  const { lp } = newHost()
  enterVmx(lp)
  loadNewVmcs(lp)
  writeValidVmcs(lp)
  writeGuestDescriptorTables(lp)
  const core = newGuestCore(guestCode(source))
  lp.core = core
  return { lp, core }
}
