// Guests for VMX tests: guest-physical memory with identity-mapping page tables (PML4 at 0x1000,
// PDPT at 0x2000 mapping the first GiB with a 1 GiB page), code at 0x100000, a stack below
// 0x200000, and a CpuState to run it on.
import { CpuState } from "../../../src/guest/cpu/state.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"

export const GUEST_CODE = 0x100000n

export const newGuestMemory = (code: ReadonlyArray<number> | Uint8Array): GuestMemory => {
  const ram = new Uint8Array(4 * 1024 * 1024)
  const view = new DataView(ram.buffer)
  view.setUint32(0x1000, 0x2003, true) // PML4[0] -> PDPT, present + writable
  view.setUint32(0x2000, 0x83, true) // PDPT[0]: 1 GiB page at 0, present + writable + PS
  ram.set(code, Number(GUEST_CODE))
  const memory = new GuestMemory()
  const error = memory.setRegion(0, 0n, ram)
  if (error !== undefined) throw new Error(error)
  return memory
}

export const newGuestCore = (code: ReadonlyArray<number> | Uint8Array): CpuState => new CpuState(newGuestMemory(code))
