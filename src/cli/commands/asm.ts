import { readFileSync } from "node:fs"
import { dirname, resolve } from "node:path"
import { Console, Effect, FileSystem, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { assembleEffect } from "../../guest/asm/index.ts"

/** `-D NAME[=VALUE]` values → the assembler's defines (a bare NAME is defined as empty, like nasm). */
export const parseDefines = (values: ReadonlyArray<string>): Record<string, string> => {
  const defines: Record<string, string> = {}
  for (const v of values) {
    const eq = v.indexOf("=")
    if (eq < 0) defines[v] = ""
    else defines[v.slice(0, eq)] = v.slice(eq + 1)
  }
  return defines
}

/** nasm's default output name for -f bin: the input without its extension. */
export const defaultOutput = (file: string): string => {
  const stripped = file.replace(/\.[^./\\]*$/, "")
  return stripped === file ? `${file}.bin` : stripped
}

export const asmCommand = Command.make(
  "asm",
  {
    file: Argument.String("FILE").pipe(Argument.withDescription("NASM-dialect source file")),
    define: Flag.String("define").pipe(
      Flag.withAlias("D"),
      Flag.withMetavar("NAME[=VALUE]"),
      Flag.withDescription("define a macro, like nasm -D (repeatable)"),
      Flag.atLeast(0),
    ),
    output: Flag.String("output").pipe(Flag.withAlias("o"), Flag.withMetavar("OUT"), Flag.withDescription("output file (default: FILE without its extension)"), Flag.optional),
    listing: Flag.Boolean("listing").pipe(Flag.withDescription("print a nasm -l style listing to standard output"), Flag.withDefault(false)),
  },
  ({ file, define, output, listing }) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const source = yield* fs.readFileString(file)
      // %include files: relative to the including file (as nasm does), read synchronously
      // because the preprocessor runs inside the assembler's synchronous core.
      const includes = new Map<string, string>()
      const result = yield* assembleEffect(source, {
        fileName: file,
        defines: parseDefines(define),
        includeResolver: (path, from) => {
          const full = resolve(dirname(from), path)
          const cached = includes.get(full)
          if (cached !== undefined) return { fileName: full, source: cached }
          try {
            const text = readFileSync(full, "utf8")
            includes.set(full, text)
            return { fileName: full, source: text }
          } catch {
            return undefined
          }
        },
      })
      const out = Option.getOrElse(output, () => defaultOutput(file))
      yield* fs.writeFile(out, result.bytes)
      if (listing) yield* Console.log(result.listing.replace(/\n$/, ""))
    }),
).pipe(Command.withDescription("Assemble a NASM-dialect x86-64 program into a flat binary (the bytes NASM 2.16 produces)"))
