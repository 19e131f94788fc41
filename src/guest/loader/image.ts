/** ELF p_flags bits (PF_X, PF_W, PF_R); flat images are RWX. */
export const SegmentFlag = { X: 1, W: 2, R: 4 } as const

/** One piece of a program in guest memory. */
export interface LoadSegment {
  /** Guest address of data[0] (the virtual address; equal to the physical one when flat). */
  readonly address: bigint
  /** ELF p_paddr (the address in the file's physical view); equal to `address` for flat images. */
  readonly physicalAddress: bigint
  /** Bytes from the file. */
  readonly data: Uint8Array
  /** Size in memory; bytes past data.length up to here are zero (bss). */
  readonly memorySize: bigint
  /** SegmentFlag bits. */
  readonly flags: number
}

/** A program ready to be placed in guest memory. */
export interface ProgramImage {
  readonly format: "flat" | "elf64"
  readonly entry: bigint
  readonly segments: ReadonlyArray<LoadSegment>
}
