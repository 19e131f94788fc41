// Simulated host physical memory: the 4 KiB pages the VMX hardware reads and writes on its own
// (VMXON region, VMCS regions, I/O and MSR bitmaps, MSR load/store areas, EPT tables). Pages are
// allocated on demand like the kernel's alloc_page(); unbacked addresses read as all-ones
// (nothing answers on the bus) and ignore writes.

export const PAGE_SIZE = 4096
const PAGE_SHIFT = 12

/** One backed page, with typed views over the same bytes (little-endian, like x86). */
export interface HostPage {
  readonly bytes: Uint8Array
  readonly halves: Uint16Array
  readonly words: Uint32Array
}

export interface HostMemoryOptions {
  /** MAXPHYADDR: physical-address width in bits (39 on a Core i7-6700K). */
  readonly physicalAddressWidth?: number
  /** Physical address of the first page the allocator hands out. */
  readonly firstPage?: bigint
}

export class HostPhysicalMemory {
  readonly physicalAddressWidth: number
  private readonly pages = new Map<number, HostPage>()
  private readonly freeFrames: Array<number> = []
  private nextFrame: number
  private readonly frameLimit: number

  constructor(options: HostMemoryOptions = {}) {
    this.physicalAddressWidth = options.physicalAddressWidth ?? 39
    this.nextFrame = Number((options.firstPage ?? 0x1000_0000n) >> 12n)
    this.frameLimit = 2 ** (this.physicalAddressWidth - PAGE_SHIFT)
  }

  /** Number of pages currently allocated (for leak checks). */
  get allocatedPages(): number {
    return this.pages.size
  }

  /** Allocates a zeroed page and returns its physical address, or undefined when memory is exhausted. */
  allocPage(): bigint | undefined {
    const frame = this.freeFrames.pop() ?? (this.nextFrame < this.frameLimit ? this.nextFrame++ : undefined)
    if (frame === undefined) return undefined
    const buffer = new ArrayBuffer(PAGE_SIZE)
    this.pages.set(frame, { bytes: new Uint8Array(buffer), halves: new Uint16Array(buffer), words: new Uint32Array(buffer) })
    return BigInt(frame) << 12n
  }

  /** Returns a page to the allocator. Freeing an address that is not an allocated page is a caller bug. */
  freePage(physicalAddress: bigint): void {
    const frame = Number(physicalAddress >> 12n)
    if ((physicalAddress & 0xfffn) !== 0n || !this.pages.delete(frame)) {
      throw new Error(`freePage(0x${physicalAddress.toString(16)}): not an allocated page`)
    }
    this.freeFrames.push(frame)
  }

  /** True when the address is within MAXPHYADDR (bits above it are zero). */
  isValidAddress(physicalAddress: bigint): boolean {
    return physicalAddress >= 0n && physicalAddress >> BigInt(this.physicalAddressWidth) === 0n
  }

  pageAt(physicalAddress: number): HostPage | undefined {
    return this.pages.get(Math.floor(physicalAddress / PAGE_SIZE))
  }

  read8(physicalAddress: number): number {
    const page = this.pageAt(physicalAddress)
    return page === undefined ? 0xff : page.bytes[physicalAddress & 0xfff]!
  }

  write8(physicalAddress: number, value: number): void {
    const page = this.pageAt(physicalAddress)
    if (page !== undefined) page.bytes[physicalAddress & 0xfff] = value
  }

  /** Reads a dword at a 4-byte-aligned address. */
  read32(physicalAddress: number): number {
    const page = this.pageAt(physicalAddress)
    return page === undefined ? 0xffff_ffff : page.words[(physicalAddress & 0xfff) >>> 2]!
  }

  write32(physicalAddress: number, value: number): void {
    const page = this.pageAt(physicalAddress)
    if (page !== undefined) page.words[(physicalAddress & 0xfff) >>> 2] = value
  }

  /** Reads a qword at an 8-byte-aligned address. */
  read64(physicalAddress: bigint): bigint {
    const address = Number(physicalAddress)
    return (BigInt(this.read32(address + 4)) << 32n) | BigInt(this.read32(address))
  }

  write64(physicalAddress: bigint, value: bigint): void {
    const address = Number(physicalAddress)
    this.write32(address, Number(value & 0xffff_ffffn))
    this.write32(address + 4, Number((value >> 32n) & 0xffff_ffffn))
  }

  /** Tests bit `bit` of the byte array starting at `physicalAddress` (for I/O and MSR bitmaps). */
  testBit(physicalAddress: number, bit: number): boolean {
    return (this.read8(physicalAddress + (bit >>> 3)) & (1 << (bit & 7))) !== 0
  }
}
