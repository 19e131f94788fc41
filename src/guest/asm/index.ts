import { Effect } from "effect"
import { assembleSync, type AssembleOptions, type AssembleResult } from "./assembler.ts"
import { AsmError } from "./errors.ts"

export { AsmError } from "./errors.ts"
export type { AssembleOptions, AssembleResult } from "./assembler.ts"
export type { IncludeResolver } from "./preprocessor.ts"

/**
 * Assembles NASM-dialect x86-64 source into a flat binary, a symbol map and a listing, with
 * the bytes NASM 2.16 produces. Throws AsmError (file:line:column, the line, what was expected).
 */
export const assemble = (source: string, options?: AssembleOptions): AssembleResult => assembleSync(source, options)

/** The same as `assemble`, failing with AsmError in the error channel instead of throwing. */
export const assembleEffect = (source: string, options?: AssembleOptions): Effect.Effect<AssembleResult, AsmError> =>
  Effect.try({
    try: () => assembleSync(source, options),
    catch: (e) => {
      if (e instanceof AsmError) return e
      throw e
    },
  })

export { disassemble, disassembleOne, formatDisassembly, type DisassembledLine, type DisassembleOptions, type Syntax } from "./disassembler.ts"
