import { Console, Effect, FileSystem, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { disassemble, formatDisassembly } from "../../guest/asm/index.ts"
import { elfImageEffect, isElf, SegmentFlag } from "../../guest/loader/index.ts"
import { parseAddress } from "./address.ts"

export const disasmCommand = Command.make(
  "disasm",
  {
    file: Argument.String("FILE").pipe(Argument.withDescription("a flat binary, or a static ELF64 executable (its executable segments are shown)")),
    syntax: Flag.Literals("syntax", ["intel", "att"] as const).pipe(Flag.withDescription("intel (NASM, reassemblable) or att (GNU objdump)"), Flag.withDefault("intel" as const)),
    org: Flag.String("org").pipe(
      Flag.withMetavar("ADDR"),
      Flag.withDescription("address of the first byte of a flat binary (default 0)"),
      Flag.mapTryCatch(parseAddress, (e) => (e as Error).message),
      Flag.optional,
    ),
  },
  ({ file, syntax, org }) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const bytes = yield* fs.readFile(file)
      if (isElf(bytes)) {
        const image = yield* elfImageEffect(bytes, file)
        const code = image.segments.filter((s) => (s.flags & SegmentFlag.X) !== 0)
        for (const [i, s] of code.entries()) {
          if (code.length > 1 || i > 0) yield* Console.log(`; segment at 0x${s.address.toString(16)}`)
          yield* Console.log(formatDisassembly(disassemble(s.data, { origin: s.address, syntax })).replace(/\n$/, ""))
        }
        return
      }
      const origin = Option.getOrElse(org, () => 0n)
      yield* Console.log(formatDisassembly(disassemble(bytes, { origin, syntax })).replace(/\n$/, ""))
    }),
).pipe(Command.withDescription("Disassemble x86-64 machine code with the guest core's decoder"))
