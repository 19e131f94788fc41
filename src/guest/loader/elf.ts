import { Effect } from "effect"
import { LoaderError } from "./errors.ts"
import type { LoadSegment, ProgramImage } from "./image.ts"

// ELF64 constants (System V gABI, x86-64 psABI).
const ELFCLASS64 = 2
const ELFDATA2LSB = 1
const EV_CURRENT = 1
const ET_REL = 1
const ET_EXEC = 2
const ET_DYN = 3
const ET_CORE = 4
const EM_X86_64 = 62
const PT_LOAD = 1
const PT_DYNAMIC = 2
const PT_INTERP = 3
const PT_TLS = 7
const EHDR_SIZE = 64
const PHDR_SIZE = 56

const machineNames: Readonly<Record<number, string>> = { 3: "EM_386 (32-bit x86)", 40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64" }

const hex = (v: bigint): string => `0x${v.toString(16)}`

export const isElf = (bytes: Uint8Array): boolean => bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46

/** Parses a static x86-64 ELF executable (ET_EXEC) into its PT_LOAD segments and entry point. */
export const elfImage = (bytes: Uint8Array, fileName = "<elf>"): ProgramImage => {
  const error = (problem: string, expected: string): LoaderError => new LoaderError({ file: fileName, problem, expected })
  if (!isElf(bytes)) throw error("not an ELF file (no \\x7fELF magic)", "an ELF64 executable built with gcc/ld, or a flat binary loaded with an address")
  if (bytes.length < EHDR_SIZE) throw error(`the file is ${bytes.length} bytes, too short for an ELF64 header (64 bytes)`, "a complete ELF64 file")
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const cls = bytes[4]!
  if (cls !== ELFCLASS64) throw error(cls === 1 ? "32-bit ELF (ELFCLASS32)" : `unknown ELF class ${cls}`, "a 64-bit ELF (ELFCLASS64): build with gcc -m64")
  if (bytes[5] !== ELFDATA2LSB) throw error(bytes[5] === 2 ? "big-endian ELF (ELFDATA2MSB)" : `unknown ELF data encoding ${bytes[5]}`, "a little-endian ELF (ELFDATA2LSB), as x86-64 uses")
  if (bytes[6] !== EV_CURRENT) throw error(`ELF version ${bytes[6]}`, "ELF version 1 (EV_CURRENT)")
  const type = view.getUint16(16, true)
  const machine = view.getUint16(18, true)
  if (machine !== EM_X86_64) throw error(`machine ${machine} (${machineNames[machine] ?? "unknown"}) is not x86-64`, "an x86-64 executable (e_machine EM_X86_64 = 62)")
  if (type === ET_REL) throw error("relocatable object file (ET_REL), not an executable", "a linked executable: gcc -static -nostdlib -no-pie -T kvmsim.ld …, or ld -T kvmsim.ld file.o")
  if (type === ET_DYN) throw error("position-independent executable or shared object (ET_DYN)", "a fixed-address executable (ET_EXEC): build with -fno-pie -no-pie -static")
  if (type === ET_CORE) throw error("core dump (ET_CORE)", "an executable (ET_EXEC)")
  if (type !== ET_EXEC) throw error(`ELF type ${type} is not an executable`, "an executable (ET_EXEC)")
  const entry = view.getBigUint64(24, true)
  const phoff = view.getBigUint64(32, true)
  const phentsize = view.getUint16(54, true)
  const phnum = view.getUint16(56, true)
  if (phnum === 0) throw error("the executable has no program headers", "PT_LOAD program headers (a normally linked executable has them)")
  if (phentsize !== PHDR_SIZE) throw error(`program header size ${phentsize}`, `ELF64 program headers of ${PHDR_SIZE} bytes`)
  if (phoff + BigInt(phnum * PHDR_SIZE) > BigInt(bytes.length)) throw error(`program headers (offset ${hex(phoff)}, ${phnum} entries) run past the end of the ${bytes.length}-byte file`, "a complete file (was it truncated?)")
  const segments: Array<LoadSegment> = []
  for (let i = 0; i < phnum; i++) {
    const at = Number(phoff) + i * PHDR_SIZE
    const ptype = view.getUint32(at, true)
    const flags = view.getUint32(at + 4, true)
    const offset = view.getBigUint64(at + 8, true)
    const vaddr = view.getBigUint64(at + 16, true)
    const paddr = view.getBigUint64(at + 24, true)
    const filesz = view.getBigUint64(at + 32, true)
    const memsz = view.getBigUint64(at + 40, true)
    if (ptype === PT_INTERP) throw error("dynamically linked executable (it has a PT_INTERP program interpreter)", "a static executable: link with -static -nostdlib")
    if (ptype === PT_DYNAMIC) throw error("dynamically linked executable (it has a PT_DYNAMIC segment)", "a static executable: link with -static -nostdlib")
    if (ptype === PT_TLS) throw error("thread-local storage (PT_TLS) is not supported", "a program without __thread / _Thread_local variables")
    if (ptype !== PT_LOAD) continue // PT_NOTE, PT_PHDR, PT_GNU_STACK, PT_GNU_PROPERTY …: nothing to load
    if (filesz > memsz) throw error(`segment ${i} has p_filesz ${hex(filesz)} larger than p_memsz ${hex(memsz)}`, "p_filesz <= p_memsz")
    if (offset + filesz > BigInt(bytes.length)) throw error(`segment ${i} (file offset ${hex(offset)}, ${hex(filesz)} bytes) runs past the end of the ${bytes.length}-byte file`, "a complete file (was it truncated?)")
    if (vaddr + memsz > 1n << 47n) throw error(`segment ${i} at ${hex(vaddr)} (${hex(memsz)} bytes) is not in the lower canonical half`, "addresses below 0x800000000000 (the linker script places programs at 0x400000)")
    if (memsz === 0n) continue
    const data = bytes.subarray(Number(offset), Number(offset + filesz))
    const overlap = segments.find((s) => vaddr < s.address + s.memorySize && s.address < vaddr + memsz)
    if (overlap !== undefined) throw error(`segment ${i} (${hex(vaddr)}..${hex(vaddr + memsz)}) overlaps the segment at ${hex(overlap.address)}`, "non-overlapping PT_LOAD segments")
    segments.push({ address: vaddr, physicalAddress: paddr, data, memorySize: memsz, flags })
  }
  if (segments.length === 0) throw error("the executable has no PT_LOAD segments", "at least one loadable segment")
  const entrySegment = segments.find((s) => entry >= s.address && entry < s.address + s.memorySize)
  if (entrySegment === undefined) throw error(`entry point ${hex(entry)} is not inside any loaded segment`, "an entry point (ENTRY(_start) in the linker script) inside the program's code")
  if ((entrySegment.flags & 1) === 0) throw error(`entry point ${hex(entry)} is in a segment that is not executable`, "the entry point in the executable (PF_X) text segment")
  segments.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
  return { format: "elf64", entry, segments }
}

export const elfImageEffect = (bytes: Uint8Array, fileName?: string): Effect.Effect<ProgramImage, LoaderError> =>
  Effect.try({
    try: () => elfImage(bytes, fileName),
    catch: (e) => {
      if (e instanceof LoaderError) return e
      throw e
    },
  })
