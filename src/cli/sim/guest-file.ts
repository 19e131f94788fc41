// GUEST as `kvmsim run` takes it: `.asm`/`.s` is assembled (NASM dialect, with -D defines and
// %include relative to the file), `.c` is built by gcc (docs/toolchain.md's flags), an ELF64 file is recognised by its magic, anything else is a
// flat binary. The result is either a user program for the mini kernel or a bare image.

import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Data, Effect } from "effect"
import { assemble } from "../../guest/asm/index.ts"
import { AsmError } from "../../guest/asm/index.ts"
import { KernelLayout, type UserProgram } from "../../guest/kernel/index.ts"
import { elfImage, isElf, LoaderError } from "../../guest/loader/index.ts"
import type { LoadSegment } from "../../guest/loader/index.ts"

/** The guest file could not be read, assembled or loaded (a usage problem: exit status 2). */
export class GuestFileError extends Data.TaggedError("GuestFileError")<{ readonly message: string }> {}

export interface LoadedGuest {
  readonly file: string
  /** The program name the kernel gives the process (file name without directory and extension, 15 chars). */
  readonly comm: string
  readonly format: "asm" | "elf64" | "flat"
  readonly entry: bigint
  /** Loadable pieces at their guest addresses (bss past data up to memorySize). */
  readonly segments: ReadonlyArray<LoadSegment>
}

export interface GuestFileOptions {
  readonly defines?: Readonly<Record<string, string>>
  /** Where a flat binary (or assembled source without ORG) goes: 0x400000 for a user program, 0x100000 bare. */
  readonly flatAddress: bigint
}

const RWX = 7

const flat = (bytes: Uint8Array, address: bigint): ReadonlyArray<LoadSegment> => [
  { address, physicalAddress: address, data: bytes, memorySize: BigInt(bytes.length), flags: RWX },
]

/** Reads and prepares GUEST; assembly and loader errors carry the tool's own message. */
export const loadGuestFile = (file: string, options: GuestFileOptions): Effect.Effect<LoadedGuest, GuestFileError> =>
  Effect.try({
    try: (): LoadedGuest => {
      let bytes: Uint8Array
      try {
        bytes = new Uint8Array(readFileSync(file))
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        throw new GuestFileError({ message: `${file}: ${code === "ENOENT" ? "No such file or directory" : code === "EISDIR" ? "Is a directory" : (e as Error).message}` })
      }
      const comm = basename(file).replace(/\.[^.]*$/, "").slice(0, 15) || "guest"
      if (/\.(asm|s|S|nasm)$/.test(file)) {
        const source = Buffer.from(bytes).toString("utf8")
        // A source without ORG starts at 0; the user mode convention is ORG 0x400000 and bare 0x100000.
        const result = assemble(source, {
          fileName: file,
          defines: { ...options.defines },
          includeResolver: (path, from) => {
            const full = resolve(dirname(from), path)
            try {
              return { fileName: full, source: readFileSync(full, "utf8") }
            } catch {
              return undefined
            }
          },
        })
        const hasOrg = /^\s*(?:\[\s*)?org\s/im.test(source)
        const address = hasOrg ? result.origin : options.flatAddress
        return { file, comm, format: "asm", entry: address, segments: flat(result.bytes, address) }
      }
      if (/\.c$/.test(file)) bytes = compileC(file)
      if (isElf(bytes)) {
        const image = elfImage(bytes, file)
        return { file, comm, format: "elf64", entry: image.entry, segments: image.segments }
      }
      return { file, comm, format: "flat", entry: options.flatAddress, segments: flat(bytes, options.flatAddress) }
    },
    catch: (e) => {
      if (e instanceof GuestFileError) return e
      if (e instanceof AsmError || e instanceof LoaderError) return new GuestFileError({ message: e.message })
      throw e
    },
  })

const includeDir = fileURLToPath(new URL("../../guest/kernel/include/", import.meta.url))

/** The flags and linker script of docs/toolchain.md for a freestanding guest program. */
export const guestCFlags = [
  "-O2", "-ffreestanding", "-fno-builtin", "-nostdlib", "-static", "-fno-pie", "-no-pie",
  "-mno-red-zone", "-mno-sse", "-mno-mmx", "-mno-80387", "-fno-stack-protector",
  "-fcf-protection=none", "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none",
  "-I", includeDir, "-T", join(includeDir, "kvmsim.ld"),
]

/** A `.c` GUEST is built with the machine's gcc into a static ELF64 (gcc's messages are the error). */
const compileC = (file: string): Uint8Array => {
  const dir = mkdtempSync(join(tmpdir(), "kvmsim-cc-"))
  const out = join(dir, "guest")
  try {
    execFileSync("gcc", [...guestCFlags, "-o", out, file], { stdio: ["ignore", "ignore", "pipe"] })
    return new Uint8Array(readFileSync(out))
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer }
    if (err.code === "ENOENT") throw new GuestFileError({ message: `${file}: building a C guest needs gcc, which was not found` })
    throw new GuestFileError({ message: `${file}: gcc failed:\n${err.stderr?.toString("utf8").trimEnd() ?? String(e)}` })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The guest as a user program of the mini kernel (one segment per loadable piece). */
export const asUserProgram = (guest: LoadedGuest): UserProgram => ({
  entry: guest.entry,
  segments: guest.segments.map((s) => ({ vaddr: s.address, memsz: s.memorySize, flags: s.flags, data: s.data })),
})

export const defaultUserAddress = KernelLayout.USER_MIN
export const defaultBareAddress = 0x100000n
