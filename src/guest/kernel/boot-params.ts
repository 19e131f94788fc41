// The boot-parameter block the VMM writes before the first KVM_RUN and the mini kernel reads
// (kernel.asm, "Boot-parameter block"). Offsets here and the `equ`s there are the same facts;
// test/guest/kernel/boot-params.test.ts compares them.

import { Data } from "effect"

/** Guest-physical address of the block (one page below the kernel image's low memory). */
export const BOOT_PARAMS_GPA = 0x7000n
/** "KSBP" as a little-endian u32. */
export const BOOT_MAGIC = 0x5042534b
export const BOOT_VERSION = 1
export const BOOT_PARAMS_SIZE = 0x40 + 8 * 0x28

/** Byte offsets inside the block. */
export const BootOffset = {
  MAGIC: 0x00,
  VERSION: 0x04,
  NR_CPUS: 0x08,
  HC_VCPU_INFO: 0x0c,
  MEM_SIZE: 0x10,
  ENTRY: 0x18,
  NR_SEGMENTS: 0x20,
  FLAGS: 0x24,
  COMM: 0x28,
  SEGMENTS: 0x40,
} as const

/** Byte offsets inside one segment descriptor. */
export const SegmentOffset = {
  VADDR: 0x00,
  PADDR: 0x08,
  FILESZ: 0x10,
  MEMSZ: 0x18,
  FLAGS: 0x20,
  SIZE: 0x28,
} as const

export const MAX_SEGMENTS = 8
export const MAX_CPUS = 64
/** TASK_COMM_LEN: 15 characters and the terminating NUL. */
export const COMM_LENGTH = 16

/** ELF p_flags bits, which the segment descriptors reuse. */
export const SegmentFlag = { X: 1, W: 2, R: 4 } as const

/** Guest-physical layout the kernel relies on (kernel.asm's equates). */
export const KernelLayout = {
  /** Where the VMM loads kernel.asm's image and where every vCPU starts. */
  KERNEL_BASE: 0x100000n,
  /** The BSP's page tables: 0x140000..0x146000. */
  TABLES_BASE: 0x140000n,
  /** Per-CPU kernel stacks, 8 KiB each: 0x180000..0x200000. */
  KERNEL_STACKS_BASE: 0x180000n,
  /** Page pool for user page tables and the user stack: 0x200000..0x400000. */
  PAGE_POOL_BASE: 0x200000n,
  PAGE_POOL_END: 0x400000n,
  /** Lowest user virtual address and lowest guest-physical address a segment may use. */
  USER_MIN: 0x400000n,
  /** Top of the user stack (8 pages below it are mapped). */
  USER_STACK_TOP: 0x7ffffffff000n,
  USER_STACK_PAGES: 8,
  /** The direct map covers this much guest-physical memory: segments must lie below it. */
  DIRECT_MAP_LIMIT: 0x40000000n,
} as const

/** Exit status the kernel reports through isa-debug-exit when it cannot go on. */
export const KERNEL_PANIC_STATUS = 255

/** One loadable piece of the user program: `memsz - filesz` bytes after the file bytes are bss. */
export interface UserSegment {
  readonly vaddr: bigint
  /** Guest-physical address where the VMM put the bytes (same offset within a page as vaddr). */
  readonly paddr: bigint
  readonly filesz: bigint
  readonly memsz: bigint
  /** SegmentFlag bits (ELF p_flags). */
  readonly flags: number
}

export interface BootParams {
  /** Online CPUs: vCPU ids 0..nrCpus-1. */
  readonly nrCpus: number
  /** The KVM_HC_VCPU_INFO number (11 in linux-5.0; configurable in linux-6.x). */
  readonly hypercallVcpuInfo: number
  /** Guest RAM size in bytes. */
  readonly memSize: bigint
  /** User entry point (virtual). */
  readonly entry: bigint
  readonly segments: ReadonlyArray<UserSegment>
  /** The program's name as the kernel prints it in fault lines (at most 15 characters used). */
  readonly comm: string
}

export class BootParamsError extends Data.TaggedError("BootParamsError")<{ readonly message: string }> {}

const USER_LIMIT = 0x800000000000n
const stackBottom = KernelLayout.USER_STACK_TOP - BigInt(KernelLayout.USER_STACK_PAGES) * 0x1000n

/**
 * The same checks the kernel makes at boot, so a VMM learns what is wrong before it runs the
 * guest. Returns undefined when the parameters are acceptable.
 */
export const checkBootParams = (params: BootParams): BootParamsError | undefined => {
  const fail = (message: string) => new BootParamsError({ message })
  if (!Number.isInteger(params.nrCpus) || params.nrCpus < 1 || params.nrCpus > MAX_CPUS) {
    return fail(`number of CPUs ${params.nrCpus} is outside 1..${MAX_CPUS}`)
  }
  if (!Number.isInteger(params.hypercallVcpuInfo) || params.hypercallVcpuInfo < 0 || params.hypercallVcpuInfo > 0xffffffff) {
    return fail(`hypercall number ${params.hypercallVcpuInfo} does not fit in 32 bits`)
  }
  if (params.memSize < KernelLayout.PAGE_POOL_END) {
    return fail(`guest memory of ${params.memSize} bytes is too small: the kernel needs at least 4 MiB plus the program`)
  }
  if (params.segments.length < 1 || params.segments.length > MAX_SEGMENTS) {
    return fail(`the program has ${params.segments.length} segments; the kernel takes 1..${MAX_SEGMENTS}`)
  }
  for (const [i, s] of params.segments.entries()) {
    const where = `segment ${i} (vaddr 0x${s.vaddr.toString(16)})`
    if (s.memsz === 0n) continue
    if (s.filesz > s.memsz) return fail(`${where}: filesz is larger than memsz`)
    if ((s.vaddr & 0xfffn) !== (s.paddr & 0xfffn)) {
      return fail(`${where}: vaddr and paddr must have the same offset within a 4 KiB page`)
    }
    if (s.vaddr < KernelLayout.USER_MIN || s.vaddr + s.memsz > stackBottom) {
      return fail(`${where}: must lie between 0x400000 and the user stack at 0x${stackBottom.toString(16)}`)
    }
    if (s.paddr < KernelLayout.PAGE_POOL_END) {
      return fail(`${where}: paddr 0x${s.paddr.toString(16)} is inside the kernel's memory (below 0x400000)`)
    }
    if (s.paddr + s.memsz > params.memSize || s.paddr + s.memsz > KernelLayout.DIRECT_MAP_LIMIT) {
      return fail(`${where}: paddr range ends beyond guest memory or the first GiB`)
    }
  }
  if (params.entry >= USER_LIMIT) return fail(`entry 0x${params.entry.toString(16)} is not a user address`)
  return undefined
}

const asciiComm = (comm: string): Uint8Array => {
  const out = new Uint8Array(COMM_LENGTH)
  const limit = Math.min(comm.length, COMM_LENGTH - 1)
  for (let i = 0; i < limit; i++) {
    const c = comm.charCodeAt(i)
    out[i] = c >= 0x20 && c < 0x7f ? c : 0x3f // '?' for what a console cannot show
  }
  return out
}

/** The block's bytes, little-endian, as the kernel reads them at BOOT_PARAMS_GPA. */
export const encodeBootParams = (params: BootParams): Uint8Array => {
  const error = checkBootParams(params)
  if (error !== undefined) throw error
  const bytes = new Uint8Array(BOOT_PARAMS_SIZE)
  const view = new DataView(bytes.buffer)
  view.setUint32(BootOffset.MAGIC, BOOT_MAGIC, true)
  view.setUint32(BootOffset.VERSION, BOOT_VERSION, true)
  view.setUint32(BootOffset.NR_CPUS, params.nrCpus, true)
  view.setUint32(BootOffset.HC_VCPU_INFO, params.hypercallVcpuInfo, true)
  view.setBigUint64(BootOffset.MEM_SIZE, params.memSize, true)
  view.setBigUint64(BootOffset.ENTRY, params.entry, true)
  view.setUint32(BootOffset.NR_SEGMENTS, params.segments.length, true)
  view.setUint32(BootOffset.FLAGS, 0, true)
  bytes.set(asciiComm(params.comm), BootOffset.COMM)
  params.segments.forEach((s, i) => {
    const at = BootOffset.SEGMENTS + i * SegmentOffset.SIZE
    view.setBigUint64(at + SegmentOffset.VADDR, s.vaddr, true)
    view.setBigUint64(at + SegmentOffset.PADDR, s.paddr, true)
    view.setBigUint64(at + SegmentOffset.FILESZ, s.filesz, true)
    view.setBigUint64(at + SegmentOffset.MEMSZ, s.memsz, true)
    view.setUint32(at + SegmentOffset.FLAGS, s.flags, true)
  })
  return bytes
}
