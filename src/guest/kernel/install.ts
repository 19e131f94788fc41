// Puts the mini kernel, a user program and the boot-parameter block into guest RAM: what a VMM
// does before the first KVM_RUN (docs/guest-kernel.md, "Boot protocol"). The VMM then starts
// every vCPU in bare mode's long-mode state with the registers `vcpuEntry(id)` gives.

import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { assemble } from "../asm/index.ts"
import { BOOT_PARAMS_GPA, BootParamsError, checkBootParams, encodeBootParams, KernelLayout } from "./boot-params.ts"
import { placeUserProgram, type UserProgram } from "./user-program.ts"

const kernelSourceUrl = new URL("./kernel.asm", import.meta.url)

/** kernel.asm as shipped. */
export const kernelSource = (): string => readFileSync(kernelSourceUrl, "utf8")

let kernelImage: Uint8Array | undefined
/** The kernel image, assembled by kvmsim's assembler on first use. */
export const kernelImageBytes = (): Uint8Array => (kernelImage ??= assemble(kernelSource(), { fileName: "kernel.asm" }).bytes)

export interface InstallOptions {
  readonly program: UserProgram
  /** Online CPUs (vCPU ids 0..nrCpus-1). */
  readonly nrCpus: number
  /** KVM_HC_VCPU_INFO's number for the profile: 11 in linux-5.0. */
  readonly hypercallVcpuInfo: number
  /** Program name for fault messages. */
  readonly comm: string
}

/** Registers every vCPU starts with (on top of bare mode's long-mode state, GPRs otherwise zero). */
export interface VcpuEntry {
  readonly rip: bigint
  readonly rflags: bigint
  /** RDI: the vCPU id, which tells the kernel which CPU it is (0 = bootstrap processor). */
  readonly rdi: bigint
}

export const vcpuEntry = (vcpuId: number): VcpuEntry => ({ rip: KernelLayout.KERNEL_BASE, rflags: 2n, rdi: BigInt(vcpuId) })

/**
 * Writes kernel image, program bytes and boot parameters into `ram` (guest-physical 0 at
 * index 0). Fails with BootParamsError when the program or the parameters do not fit.
 */
export const installKernel = (ram: Uint8Array, options: InstallOptions): BootParamsError | undefined => {
  const memSize = BigInt(ram.length)
  const placed = placeUserProgram(options.program, memSize)
  if (typeof placed === "string") return new BootParamsError({ message: placed })
  const params = {
    nrCpus: options.nrCpus,
    hypercallVcpuInfo: options.hypercallVcpuInfo,
    memSize,
    entry: placed.entry,
    segments: placed.segments,
    comm: options.comm,
  }
  const invalid = checkBootParams(params)
  if (invalid !== undefined) return invalid
  const image = kernelImageBytes()
  ram.set(image, Number(KernelLayout.KERNEL_BASE))
  for (const w of placed.writes) ram.set(w.bytes, Number(w.gpa))
  ram.set(encodeBootParams(params), Number(BOOT_PARAMS_GPA))
  return undefined
}

/** installKernel as an Effect. */
export const installKernelEffect = (ram: Uint8Array, options: InstallOptions): Effect.Effect<void, BootParamsError> =>
  Effect.suspend(() => {
    const error = installKernel(ram, options)
    return error === undefined ? Effect.void : Effect.fail(error)
  })
