import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { Effect, Exit } from "effect"
import { assemble } from "../../../src/guest/asm/index.ts"
import { describe, expect, it } from "vitest"
import {
  BOOT_MAGIC,
  BOOT_PARAMS_GPA,
  BootParamsError,
  flatProgram,
  installKernel,
  installKernelEffect,
  kernelImageBytes,
  KernelLayout,
  vcpuEntry,
} from "../../../src/guest/kernel/index.ts"

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

describe("the shipped sources assemble to NASM 2.16's bytes", () => {
  // Recorded with `nasm -f bin` (2.16.01) on this revision of the files; nasm is not needed at
  // test time. Changing kernel.asm or the example means recording the new digest here.
  it("kernel.asm", () => {
    const image = kernelImageBytes()
    expect(image.length).toBe(8972)
    expect(sha256(image)).toBe("509a33a5147e6b332f27e9a1982274dc8d554108152f6a702963a5ae09b4414e")
  })

  it("examples/vcpu-info.asm", () => {
    const source = readFileSync(new URL("../../../examples/vcpu-info.asm", import.meta.url), "utf8")
    const bytes = assemble(source, { fileName: "vcpu-info.asm" }).bytes
    expect(bytes.length).toBe(191)
    expect(sha256(bytes)).toBe("4e667746a1c91fa708d84312fa059e21c36c51201f5c9ca6dd3acd570ea29355")
  })
})

describe("installKernel", () => {
  const program = flatProgram(new Uint8Array([0x0f, 0x0b]))

  it("writes the kernel image at 0x100000, the program at its frames and the block at 0x7000", () => {
    const ram = new Uint8Array(8 << 20)
    expect(installKernel(ram, { program, nrCpus: 4, hypercallVcpuInfo: 11, comm: "ud" })).toBeUndefined()
    const image = kernelImageBytes()
    // cli; cld; mov r15, rdi: the first instructions of kernel_entry, bytes as nasm 2.16 emits them.
    expect([...image.subarray(0, 5)]).toEqual([0xfa, 0xfc, 0x49, 0x89, 0xff])
    expect(ram.subarray(0x100000, 0x100000 + image.length)).toEqual(image)
    expect([...ram.subarray(0x400000, 0x400002)]).toEqual([0x0f, 0x0b])
    const view = new DataView(ram.buffer)
    expect(view.getUint32(Number(BOOT_PARAMS_GPA), true)).toBe(BOOT_MAGIC)
    expect(view.getUint32(Number(BOOT_PARAMS_GPA) + 8, true)).toBe(4)
    // The image must fit below the kernel's page tables.
    expect(0x100000 + image.length).toBeLessThanOrEqual(Number(KernelLayout.TABLES_BASE))
  })

  it("gives each vCPU the kernel entry with its id in RDI", () => {
    expect(vcpuEntry(0)).toEqual({ rip: 0x100000n, rflags: 2n, rdi: 0n })
    expect(vcpuEntry(3).rdi).toBe(3n)
  })

  it("reports what does not fit as a BootParamsError, leaving RAM untouched", () => {
    const small = new Uint8Array(2 << 20)
    const error = installKernel(small, { program, nrCpus: 1, hypercallVcpuInfo: 11, comm: "x" })
    expect(error).toBeInstanceOf(BootParamsError)
    expect(small.every((b) => b === 0)).toBe(true)
    const exit = Effect.runSyncExit(installKernelEffect(new Uint8Array(8 << 20), { program, nrCpus: 65, hypercallVcpuInfo: 11, comm: "x" }))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(exit)).toContain("number of CPUs 65 is outside 1..64")
  })
})
