// Where the VMM puts a user program in guest-physical memory before the mini kernel maps it.
// Each distinct virtual page the program touches gets one physical frame; identity placement
// (paddr = vaddr) when the program fits there, else frames packed upward from 4 MiB. Pages
// shared by two segments (an ELF's text end and data start) thus share one frame, which the
// kernel maps with the union of the two segments' permissions.

import type { ProgramImage } from "../loader/index.ts"
import { KernelLayout, SegmentFlag, type UserSegment } from "./boot-params.ts"

/** A loadable segment: `data` holds the file bytes (filesz = data.length), memsz covers bss. */
export interface ProgramSegment {
  readonly vaddr: bigint
  readonly memsz: bigint
  /** SegmentFlag bits (ELF p_flags). */
  readonly flags: number
  readonly data: Uint8Array
}

export interface UserProgram {
  readonly entry: bigint
  readonly segments: ReadonlyArray<ProgramSegment>
}

/** A flat binary: one readable, writable, executable segment; execution starts at its first byte. */
export const flatProgram = (bytes: Uint8Array, loadAddress: bigint = KernelLayout.USER_MIN): UserProgram => ({
  entry: loadAddress,
  segments: [{ vaddr: loadAddress, memsz: BigInt(bytes.length), flags: SegmentFlag.R | SegmentFlag.W | SegmentFlag.X, data: bytes }],
})

/** A program the toolchain's loaders produced (flat image or static ELF64). */
export const userProgramFromImage = (image: ProgramImage): UserProgram => ({
  entry: image.entry,
  segments: image.segments.map((s) => ({ vaddr: s.address, memsz: s.memorySize, flags: s.flags, data: s.data })),
})

export interface PlacedProgram {
  readonly entry: bigint
  /** Descriptors for the boot-parameter block. */
  readonly segments: ReadonlyArray<UserSegment>
  /** The bytes to copy into guest-physical memory (bss is zeroed by the kernel). */
  readonly writes: ReadonlyArray<{ readonly gpa: bigint; readonly bytes: Uint8Array }>
}

const PAGE = 0x1000n

/** Returns the placement, or a message saying why the program cannot fit in `memSize` bytes. */
export const placeUserProgram = (program: UserProgram, memSize: bigint): PlacedProgram | string => {
  const limit = memSize < KernelLayout.DIRECT_MAP_LIMIT ? memSize : KernelLayout.DIRECT_MAP_LIMIT
  const pages = new Set<bigint>()
  for (const s of program.segments) {
    if (BigInt(s.data.length) > s.memsz) return `segment at 0x${s.vaddr.toString(16)}: file bytes exceed memsz`
    if (s.memsz === 0n) continue
    const last = (s.vaddr + s.memsz - 1n) / PAGE
    const count = last - s.vaddr / PAGE + 1n
    if (count > limit / PAGE) return `segment at 0x${s.vaddr.toString(16)} is larger than guest memory`
    for (let p = s.vaddr / PAGE; p <= last; p++) pages.add(p)
  }
  const sorted = [...pages].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  if (BigInt(sorted.length) * PAGE > limit - KernelLayout.PAGE_POOL_END) {
    return `the program needs ${sorted.length} pages; guest memory above 4 MiB has ${(limit - KernelLayout.PAGE_POOL_END) / PAGE}`
  }
  const identity = sorted.every((p) => p * PAGE >= KernelLayout.USER_MIN && (p + 1n) * PAGE <= limit)
  const frameOf = new Map<bigint, bigint>()
  sorted.forEach((p, i) => frameOf.set(p, identity ? p * PAGE : KernelLayout.PAGE_POOL_END + BigInt(i) * PAGE))
  const segments: Array<UserSegment> = []
  const writes: Array<{ gpa: bigint; bytes: Uint8Array }> = []
  for (const s of program.segments) {
    const paddr = s.memsz === 0n ? KernelLayout.PAGE_POOL_END + (s.vaddr & 0xfffn) : frameOf.get(s.vaddr / PAGE)! + (s.vaddr & 0xfffn)
    segments.push({ vaddr: s.vaddr, paddr, filesz: BigInt(s.data.length), memsz: s.memsz, flags: s.flags })
    if (s.data.length > 0) writes.push({ gpa: paddr, bytes: s.data })
  }
  return { entry: program.entry, segments, writes }
}
