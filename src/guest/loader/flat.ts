import { Effect } from "effect"
import { LoaderError } from "./errors.ts"
import { SegmentFlag, type ProgramImage } from "./image.ts"

export interface FlatOptions {
  /** Guest address of the first byte. */
  readonly address: bigint
  /** Entry point; defaults to the first byte. */
  readonly entry?: bigint
  readonly fileName?: string
}

const ADDRESS_LIMIT = 1n << 52n // MAXPHYADDR of the simulated CPU's largest configuration

/** A flat binary (nasm -f bin) placed at one address, entered at its first byte by default. */
export const flatImage = (bytes: Uint8Array, options: FlatOptions): ProgramImage => {
  const file = options.fileName ?? "<flat binary>"
  if (bytes.length === 0) throw new LoaderError({ file, problem: "the file is empty", expected: "a flat binary with at least one instruction" })
  if (options.address < 0n || options.address + BigInt(bytes.length) > ADDRESS_LIMIT) {
    throw new LoaderError({ file, problem: `load address 0x${options.address.toString(16)} puts the image outside the guest-physical address space`, expected: "an address below 2^52 minus the image size" })
  }
  const entry = options.entry ?? options.address
  if (entry < options.address || entry >= options.address + BigInt(bytes.length)) {
    throw new LoaderError({ file, problem: `entry point 0x${entry.toString(16)} is outside the image (0x${options.address.toString(16)}..0x${(options.address + BigInt(bytes.length)).toString(16)})`, expected: "an entry point inside the loaded bytes" })
  }
  return {
    format: "flat",
    entry,
    segments: [{ address: options.address, physicalAddress: options.address, data: bytes, memorySize: BigInt(bytes.length), flags: SegmentFlag.R | SegmentFlag.W | SegmentFlag.X }],
  }
}

export const flatImageEffect = (bytes: Uint8Array, options: FlatOptions): Effect.Effect<ProgramImage, LoaderError> =>
  Effect.try({
    try: () => flatImage(bytes, options),
    catch: (e) => {
      if (e instanceof LoaderError) return e
      throw e
    },
  })
