// EPT translation (SDM Vol. 3C 28.2 "The Extended Page Table Mechanism"): a 4-level walk of
// tables in host physical memory. The output address is an address in the guest core's slot
// space (kvmsim's stand-in for the host-physical page backing guest memory). The core caches
// results in its TLB; INVEPT and a changed EPTP flush it.
import type { GuestPhysicalTranslator } from "../../guest/intercept.ts"
import type { HostPhysicalMemory } from "./host-memory.ts"

const TWO32 = 4294967296
export const EPT_VIOLATION = -1
export const EPT_MISCONFIG = -2

export class EptWalker implements GuestPhysicalTranslator {
  private readonly memory: HostPhysicalMemory
  /** Root table address (EPTP bits N-1:12). */
  root = 0
  /** Execute-only translations are allowed (IA32_VMX_EPT_VPID_CAP bit 0). */
  executeOnly = true
  violationPermissions = 0
  /** For exits: the entry's walk reached a leaf (bit 8 of the qualification when linear-address valid). */
  private readonly reservedHighMask: number

  constructor(memory: HostPhysicalMemory) {
    this.memory = memory
    // Bits 51:MAXPHYADDR of an entry's high dword are reserved.
    this.reservedHighMask = (0x000f_ffff & ~((1 << (memory.physicalAddressWidth - 32)) - 1)) >>> 0
  }

  setEptp(eptpLo: number, eptpHi: number): void {
    this.root = (eptpHi >>> 0) * TWO32 + ((eptpLo & ~0xfff) >>> 0)
  }

  translate(gpa: number, access: number): number {
    let table = this.root
    let permissions = 7
    for (let level = 4; level >= 1; level--) {
      const shift = 12 + 9 * (level - 1)
      const index = Math.floor(gpa / 2 ** shift) % 512
      const entryAddress = table + index * 8
      const lo = this.memory.read32(entryAddress)
      const hi = this.memory.read32(entryAddress + 4)
      const rwx = lo & 7
      if (rwx === 0) {
        this.violationPermissions = 0
        return EPT_VIOLATION
      }
      // Misconfigurations: write without read, execute-only when unsupported, reserved bits.
      if ((rwx & 3) === 2 || (rwx === 4 && !this.executeOnly) || (hi & this.reservedHighMask) !== 0) return EPT_MISCONFIG
      const large = (lo & 0x80) !== 0
      const leaf = level === 1 || (large && (level === 2 || level === 3))
      if (level === 4 && (lo & 0xf8) !== 0) return EPT_MISCONFIG
      if (!leaf && (lo & 0x78) !== 0) return EPT_MISCONFIG
      permissions &= rwx
      if (leaf) {
        const memoryType = (lo >>> 3) & 7
        if (memoryType === 2 || memoryType === 3 || memoryType === 7) return EPT_MISCONFIG
        const pageBytes = 2 ** shift
        const frame = (hi & 0xf_ffff) * TWO32 + ((lo >>> 0) - ((lo >>> 0) % 4096))
        const base = frame - (frame % pageBytes)
        if (base !== frame) return EPT_MISCONFIG // reserved low bits of a large-page address
        if ((access & ~permissions & 7) !== 0) {
          this.violationPermissions = permissions
          return EPT_VIOLATION
        }
        return base + (gpa % pageBytes)
      }
      table = (hi & 0xf_ffff) * TWO32 + ((lo >>> 0) - ((lo >>> 0) % 4096))
    }
    return EPT_VIOLATION
  }
}
