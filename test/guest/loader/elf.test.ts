import { execFileSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { Effect, Exit } from "effect"
import { elfImage, elfImageEffect, flatImage, LoaderError, placeIdentity, programImage } from "../../../src/guest/loader/index.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { gcc } from "../c/gcc.ts"

const program = `
#include "kvmsim.h"
static const char greeting[] = "hello";
unsigned long counter = 7;
unsigned long scratch[512];
void _start(void) { for (;;) { outb(KVMSIM_DEBUG_PORT, greeting[counter % 5] + scratch[3]); hlt(); } }
`

/** readelf's view of the PT_LOAD headers: the oracle for what the loader must find. */
const readelfLoads = (path: string): Array<{ offset: bigint; vaddr: bigint; paddr: bigint; filesz: bigint; memsz: bigint; flags: string }> =>
  execFileSync("readelf", ["-lW", path], { encoding: "utf8" })
    .split("\n")
    .filter((l) => /^\s+LOAD\s/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/)
      return { offset: BigInt(f[1]!), vaddr: BigInt(f[2]!), paddr: BigInt(f[3]!), filesz: BigInt(f[4]!), memsz: BigInt(f[5]!), flags: f.slice(6, -1).join("") }
    })

const readelfEntry = (path: string): bigint => BigInt(/Entry point address:\s+(0x[0-9a-f]+)/.exec(execFileSync("readelf", ["-h", path], { encoding: "utf8" }))![1]!)

const flagText = (flags: number): string => `${flags & 4 ? "R" : ""}${flags & 2 ? "W" : ""}${flags & 1 ? "E" : ""}`

const loaderError = (f: () => unknown): LoaderError => {
  try {
    f()
  } catch (e) {
    if (e instanceof LoaderError) return e
    throw e
  }
  throw new Error("expected a LoaderError")
}

describe("ELF64 loader", () => {
  const built = gcc(program)

  it("finds the PT_LOAD segments and entry point readelf reports for a gcc-built guest", () => {
    const image = elfImage(built.bytes, "prog")
    expect(image.format).toBe("elf64")
    expect(image.entry).toBe(readelfEntry(built.path))
    const loads = readelfLoads(built.path).filter((l) => l.memsz > 0n)
    expect(image.segments.map((s) => ({ vaddr: s.address, paddr: s.physicalAddress, filesz: BigInt(s.data.length), memsz: s.memorySize, flags: flagText(s.flags) }))).toEqual(
      loads.map((l) => ({ vaddr: l.vaddr, paddr: l.paddr, filesz: l.filesz, memsz: l.memsz, flags: l.flags })),
    )
    for (const [i, l] of loads.entries()) expect(Buffer.from(image.segments[i]!.data)).toEqual(Buffer.from(built.bytes.subarray(Number(l.offset), Number(l.offset + l.filesz))))
    // The linker script puts the program at 0x400000 with the entry first.
    expect(image.segments[0]!.address).toBe(0x400000n)
  })

  it("places segments in guest memory and zeroes bss", () => {
    const image = programImage(built.bytes, { fileName: "prog" })
    const memory = new GuestMemory()
    const ram = new Uint8Array(0x800000).fill(0xcc)
    expect(memory.setRegion(0, 0n, ram)).toBeUndefined()
    placeIdentity(memory, image, "prog")
    for (const s of image.segments) {
      expect(Buffer.from(memory.read(s.address, s.data.length))).toEqual(Buffer.from(s.data))
      const bss = memory.read(s.address + BigInt(s.data.length), Number(s.memorySize) - s.data.length)
      expect(bss.every((b) => b === 0)).toBe(true)
    }
    const data = image.segments.find((s) => s.memorySize > BigInt(s.data.length))
    expect(data).toBeDefined()
  })

  it("reports a segment outside guest memory", () => {
    const image = elfImage(built.bytes, "prog")
    const memory = new GuestMemory()
    memory.setRegion(0, 0n, new Uint8Array(0x1000))
    const e = loaderError(() => placeIdentity(memory, image, "prog"))
    expect(e.message).toMatch(/^prog: cannot load: segment 0x400000\.\.0x[0-9a-f]+ is not inside guest memory\nexpected guest RAM covering/)
  })

  it("rejects a relocatable object (gcc -c) and says how to link it", () => {
    const object = gcc(program, { compileOnly: true, linkerScript: false })
    const e = loaderError(() => elfImage(object.bytes, "prog.o"))
    expect(e.message).toBe("prog.o: cannot load: relocatable object file (ET_REL), not an executable\nexpected a linked executable: gcc -static -nostdlib -no-pie -T kvmsim.ld …, or ld -T kvmsim.ld file.o")
  })

  it("rejects a position-independent executable (gcc -pie)", () => {
    const pie = gcc(program, { flags: ["-O2", "-ffreestanding", "-nostdlib", "-fpie", "-pie", "-Wl,--no-dynamic-linker"], linkerScript: false })
    const e = loaderError(() => elfImage(pie.bytes, "pie"))
    expect(e.message).toBe("pie: cannot load: position-independent executable or shared object (ET_DYN)\nexpected a fixed-address executable (ET_EXEC): build with -fno-pie -no-pie -static")
  })

  it("rejects a dynamically linked executable (PT_INTERP)", () => {
    const dynamic = gcc("int main(void) { return 0; }", { flags: ["-O2", "-fno-pie", "-no-pie"], linkerScript: false })
    const e = loaderError(() => elfImage(dynamic.bytes, "a.out"))
    expect(e.message).toBe("a.out: cannot load: dynamically linked executable (it has a PT_INTERP program interpreter)\nexpected a static executable: link with -static -nostdlib")
  })

  // Header fields patched in a valid executable: each unsupported variant has its own message.
  const patched = (edit: (b: Uint8Array, v: DataView) => void): Uint8Array => {
    const b = Uint8Array.from(built.bytes)
    edit(b, new DataView(b.buffer))
    return b
  }
  const phdr = (i: number): number => Number(new DataView(built.bytes.buffer, built.bytes.byteOffset).getBigUint64(32, true)) + i * 56
  const cases: Array<[string, Uint8Array, string]> = [
    ["not ELF", Uint8Array.from([0x7f, 0x45, 0x4c, 0x47, 0, 0]), "not an ELF file (no \\x7fELF magic)\nexpected an ELF64 executable built with gcc/ld, or a flat binary loaded with an address"],
    ["truncated header", built.bytes.subarray(0, 40), "the file is 40 bytes, too short for an ELF64 header (64 bytes)\nexpected a complete ELF64 file"],
    ["32-bit", patched((b) => (b[4] = 1)), "32-bit ELF (ELFCLASS32)\nexpected a 64-bit ELF (ELFCLASS64): build with gcc -m64"],
    ["big-endian", patched((b) => (b[5] = 2)), "big-endian ELF (ELFDATA2MSB)\nexpected a little-endian ELF (ELFDATA2LSB), as x86-64 uses"],
    ["bad version", patched((b) => (b[6] = 0)), "ELF version 0\nexpected ELF version 1 (EV_CURRENT)"],
    ["aarch64", patched((_, v) => v.setUint16(18, 183, true)), "machine 183 (EM_AARCH64) is not x86-64\nexpected an x86-64 executable (e_machine EM_X86_64 = 62)"],
    ["i386", patched((_, v) => v.setUint16(18, 3, true)), "machine 3 (EM_386 (32-bit x86)) is not x86-64\nexpected an x86-64 executable (e_machine EM_X86_64 = 62)"],
    ["core", patched((_, v) => v.setUint16(16, 4, true)), "core dump (ET_CORE)\nexpected an executable (ET_EXEC)"],
    ["unknown type", patched((_, v) => v.setUint16(16, 0xfe00, true)), "ELF type 65024 is not an executable\nexpected an executable (ET_EXEC)"],
    ["no program headers", patched((_, v) => v.setUint16(56, 0, true)), "the executable has no program headers\nexpected PT_LOAD program headers (a normally linked executable has them)"],
    ["odd phentsize", patched((_, v) => v.setUint16(54, 32, true)), "program header size 32\nexpected ELF64 program headers of 56 bytes"],
    ["phdrs past end", patched((_, v) => v.setBigUint64(32, BigInt(built.bytes.length - 10), true)), `program headers (offset 0x${(built.bytes.length - 10).toString(16)}, 3 entries) run past the end of the ${built.bytes.length}-byte file\nexpected a complete file (was it truncated?)`],
    ["PT_DYNAMIC", patched((_, v) => v.setUint32(phdr(1), 2, true)), "dynamically linked executable (it has a PT_DYNAMIC segment)\nexpected a static executable: link with -static -nostdlib"],
    ["PT_TLS", patched((_, v) => v.setUint32(phdr(1), 7, true)), "thread-local storage (PT_TLS) is not supported\nexpected a program without __thread / _Thread_local variables"],
    ["filesz > memsz", patched((_, v) => v.setBigUint64(phdr(0) + 40, 1n, true)), "segment 0 has p_filesz 0x%FILESZ% larger than p_memsz 0x1\nexpected p_filesz <= p_memsz"],
    ["segment past end", patched((_, v) => v.setBigUint64(phdr(0) + 8, BigInt(built.bytes.length), true)), "segment 0 (file offset 0x%LEN%, 0x%FILESZ% bytes) runs past the end of the %LENDEC%-byte file\nexpected a complete file (was it truncated?)"],
    ["non-canonical", patched((_, v) => v.setBigUint64(phdr(0) + 16, 0xffff800000000000n, true)), "segment 0 at 0xffff800000000000 (0x%MEMSZ% bytes) is not in the lower canonical half\nexpected addresses below 0x800000000000 (the linker script places programs at 0x400000)"],
    ["overlap", patched((_, v) => v.setBigUint64(phdr(1) + 16, 0x400000n, true)), "segment 1 (0x400000..0x%END1%) overlaps the segment at 0x400000\nexpected non-overlapping PT_LOAD segments"],
    ["no PT_LOAD", patched((_, v) => [0, 1, 2].forEach((i) => v.setUint32(phdr(i), 4, true))), "the executable has no PT_LOAD segments\nexpected at least one loadable segment"],
    ["entry outside", patched((_, v) => v.setBigUint64(24, 0x10n, true)), "entry point 0x10 is not inside any loaded segment\nexpected an entry point (ENTRY(_start) in the linker script) inside the program's code"],
    ["entry not executable", patched((_, v) => v.setUint32(phdr(0) + 4, 4, true)), "entry point 0x400000 is in a segment that is not executable\nexpected the entry point in the executable (PF_X) text segment"],
  ]
  const view = new DataView(built.bytes.buffer, built.bytes.byteOffset)
  const filesz0 = view.getBigUint64(phdr(0) + 32, true).toString(16)
  const memsz0 = view.getBigUint64(phdr(0) + 40, true).toString(16)
  const end1 = (0x400000n + view.getBigUint64(phdr(1) + 40, true)).toString(16)
  for (const [name, bytes, message] of cases) {
    it(`explains what is wrong: ${name}`, () => {
      const expected = message
        .replace("%FILESZ%", filesz0)
        .replace("%MEMSZ%", memsz0)
        .replace("%END1%", end1)
        .replace("%LEN%", built.bytes.length.toString(16))
        .replace("%LENDEC%", String(built.bytes.length))
      expect(loaderError(() => elfImage(bytes, "prog")).message).toBe(`prog: cannot load: ${expected}`)
    })
  }

  it("offers the failure as a value through Effect", async () => {
    const exit = await Effect.runPromiseExit(elfImageEffect(Uint8Array.of(1, 2, 3), "x"))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("not an ELF file")
  })
})

describe("flat loader", () => {
  it("places the bytes at the address and enters at the first byte by default", () => {
    const image = flatImage(Uint8Array.of(0x90, 0xf4), { address: 0x7c00n })
    expect(image).toMatchObject({ format: "flat", entry: 0x7c00n })
    expect(image.segments).toHaveLength(1)
    expect(image.segments[0]).toMatchObject({ address: 0x7c00n, memorySize: 2n, flags: 7 })
    expect(flatImage(Uint8Array.of(0x90, 0xf4), { address: 0x1000n, entry: 0x1001n }).entry).toBe(0x1001n)
  })

  it("explains every error", () => {
    expect(loaderError(() => flatImage(new Uint8Array(0), { address: 0n, fileName: "e.bin" })).message).toBe("e.bin: cannot load: the file is empty\nexpected a flat binary with at least one instruction")
    expect(loaderError(() => flatImage(Uint8Array.of(1), { address: 0x10n, entry: 0x20n, fileName: "x.bin" })).message).toBe(
      "x.bin: cannot load: entry point 0x20 is outside the image (0x10..0x11)\nexpected an entry point inside the loaded bytes",
    )
    expect(loaderError(() => flatImage(Uint8Array.of(1), { address: 1n << 52n, fileName: "x.bin" })).message).toBe(
      "x.bin: cannot load: load address 0x10000000000000 puts the image outside the guest-physical address space\nexpected an address below 2^52 minus the image size",
    )
    expect(loaderError(() => programImage(Uint8Array.of(0x90), { fileName: "x.bin" })).message).toBe(
      "x.bin: cannot load: not an ELF file, and no load address was given for a flat binary\nexpected an ELF64 executable, or a flat binary with its load address (e.g. --org 0x400000)",
    )
  })
})
