import { Effect } from "effect"
import { elfImage, isElf } from "./elf.ts"
import { LoaderError } from "./errors.ts"
import { flatImage } from "./flat.ts"
import type { ProgramImage } from "./image.ts"

export { elfImage, elfImageEffect, isElf } from "./elf.ts"
export { LoaderError } from "./errors.ts"
export { flatImage, flatImageEffect, type FlatOptions } from "./flat.ts"
export { SegmentFlag, type LoadSegment, type ProgramImage } from "./image.ts"
export { placeIdentity } from "./place.ts"

export interface ProgramOptions {
  readonly fileName?: string
  /** Where a flat binary goes (ELF files carry their own addresses). */
  readonly flatAddress?: bigint
  readonly flatEntry?: bigint
}

/** An ELF64 executable (recognised by its magic) or else a flat binary at `flatAddress`. */
export const programImage = (bytes: Uint8Array, options: ProgramOptions = {}): ProgramImage => {
  if (isElf(bytes)) return elfImage(bytes, options.fileName)
  if (options.flatAddress === undefined) {
    throw new LoaderError({ file: options.fileName ?? "<program>", problem: "not an ELF file, and no load address was given for a flat binary", expected: "an ELF64 executable, or a flat binary with its load address (e.g. --org 0x400000)" })
  }
  return flatImage(bytes, { address: options.flatAddress, entry: options.flatEntry, fileName: options.fileName })
}

export const programImageEffect = (bytes: Uint8Array, options?: ProgramOptions): Effect.Effect<ProgramImage, LoaderError> =>
  Effect.try({
    try: () => programImage(bytes, options),
    catch: (e) => {
      if (e instanceof LoaderError) return e
      throw e
    },
  })
