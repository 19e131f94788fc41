import type { GuestMemory } from "../mmu/memory.ts"
import { LoaderError } from "./errors.ts"
import type { ProgramImage } from "./image.ts"

/**
 * Copies a program into guest-physical memory at its segments' addresses (identity placement:
 * what a bare-metal guest without paging, or with identity paging, sees) and zeroes each
 * segment's bss. Every byte must land in a memory slot.
 */
export const placeIdentity = (memory: GuestMemory, image: ProgramImage, fileName = "<program>"): void => {
  for (const s of image.segments) {
    const end = s.address + s.memorySize
    const zeros = new Uint8Array(Number(s.memorySize) - s.data.length)
    const ok = memory.write(s.address, s.data) && (zeros.length === 0 || memory.write(s.address + BigInt(s.data.length), zeros))
    if (!ok) {
      throw new LoaderError({
        file: fileName,
        problem: `segment 0x${s.address.toString(16)}..0x${end.toString(16)} is not inside guest memory`,
        expected: "guest RAM covering the program's addresses (give the VM more memory, or link/assemble it at a lower address)",
      })
    }
  }
}
