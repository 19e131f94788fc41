// GUEST as `kvmsim run` takes it: `.asm`/`.s` is assembled (NASM dialect, with -D defines and
// %include relative to the file), an ELF64 file is recognised by its magic, anything else is a
// flat binary. The result is either a user program for the mini kernel or a bare image.

import { readFileSync } from "node:fs"
import { basename, dirname, resolve } from "node:path"
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

/** The guest as a user program of the mini kernel (one segment per loadable piece). */
export const asUserProgram = (guest: LoadedGuest): UserProgram => ({
  entry: guest.entry,
  segments: guest.segments.map((s) => ({ vaddr: s.address, memsz: s.memorySize, flags: s.flags, data: s.data })),
})

export const defaultUserAddress = KernelLayout.USER_MIN
export const defaultBareAddress = 0x100000n
