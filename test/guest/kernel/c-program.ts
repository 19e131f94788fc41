// Builds examples/vcpu-info.c (or any freestanding C guest) with the machine's gcc and turns the
// static ELF64 into a UserProgram: one segment per PT_LOAD, as the kernel's loader expects.
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { UserProgram } from "../../../src/guest/kernel/index.ts"

/** The flags docs/guest-kernel.md documents for C user programs. */
export const gccFlags = [
  "-O2",
  "-ffreestanding",
  "-static",
  "-nostdlib",
  "-fno-pie",
  "-no-pie",
  "-mno-red-zone",
  "-mno-sse",
  "-mno-mmx",
  "-mno-80387",
  "-fno-stack-protector",
  "-fcf-protection=none",
  "-fno-asynchronous-unwind-tables",
]

export const buildC = (source: URL | string): Uint8Array => {
  const dir = mkdtempSync(join(tmpdir(), "kvmsim-c-"))
  const out = join(dir, "a.out")
  const path = typeof source === "string" ? source : fileURLToPath(source)
  execFileSync("gcc", [...gccFlags, "-o", out, path])
  return new Uint8Array(readFileSync(out))
}

const PT_LOAD = 1

/** PT_LOAD segments and entry of a little-endian x86-64 ET_EXEC file. */
export const elfProgram = (elf: Uint8Array): UserProgram => {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  if (view.getUint32(0, false) !== 0x7f454c46) throw new Error("not an ELF file")
  if (elf[4] !== 2 || elf[5] !== 1 || view.getUint16(18, true) !== 62 || view.getUint16(16, true) !== 2) {
    throw new Error("not an x86-64 little-endian ET_EXEC ELF64 file")
  }
  const entry = view.getBigUint64(24, true)
  const phoff = Number(view.getBigUint64(32, true))
  const phentsize = view.getUint16(54, true)
  const phnum = view.getUint16(56, true)
  const segments = []
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize
    if (view.getUint32(at, true) !== PT_LOAD) continue
    const flags = view.getUint32(at + 4, true)
    const offset = Number(view.getBigUint64(at + 8, true))
    const vaddr = view.getBigUint64(at + 16, true)
    const filesz = Number(view.getBigUint64(at + 32, true))
    const memsz = view.getBigUint64(at + 40, true)
    segments.push({ vaddr, memsz, flags, data: elf.subarray(offset, offset + filesz) })
  }
  return { entry, segments }
}
