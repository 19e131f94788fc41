// The kvmsim command tree and its runner (exit statuses); main.ts calls it with the process's arguments.
import { Cause, Effect, Exit, Option } from "effect"
import { Command } from "effect/cli"
import { asmCommand } from "./commands/asm.ts"
import { disasmCommand } from "./commands/disasm.ts"
import { checkCommand } from "./commands/check.ts"
import { examplesCommand } from "./commands/examples.ts"
import { runCommand } from "./commands/run.ts"
import { shellCommand } from "./commands/shell.ts"
import { statCommand } from "./commands/stat.ts"
import { traceCommand } from "./commands/trace.ts"
import { nodeEnvironment } from "./platform/index.ts"
import { exitStatusHelp } from "./sim/outcome.ts"

export const kvmsim = Command.make("kvmsim").pipe(
  Command.withDescription(
    [
      "kvmsim: a simulated Linux host running KVM on an Intel CPU with VT-x",
      "",
      "Exit status (run, stat, shell, check):",
      ...exitStatusHelp.map((l) => `  ${l}`),
    ].join("\n"),
  ),
  Command.withSubcommands([runCommand, shellCommand, statCommand, traceCommand, checkCommand, examplesCommand, asmCommand, disasmCommand]),
)

/** nasm-style `-DNAME=VALUE` (no space) becomes `-D NAME=VALUE`. */
export const normalizeArgs = (args: ReadonlyArray<string>): Array<string> =>
  args.flatMap((a) => (/^-D.+/.test(a) ? ["-D", a.slice(2)] : a === "-1" ? ["--once"] : [a]))

/** Exit statuses: 0 success, 1 the input was bad (assembly/loader/file errors) or the guest failed, 2 usage error, 3 guest fault, 4 limit (see `kvmsim run --help`). */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const args = normalizeArgs(argv)
  const program = Command.run(kvmsim, { version: "0.1.0" }).pipe(Effect.provide(nodeEnvironment(args)))
  const exit = await Effect.runPromiseExit(program)
  if (Exit.isSuccess(exit)) return 0
  const failure = Cause.findErrorOption(exit.cause)
  if (Option.isNone(failure)) {
    process.stderr.write(`kvmsim: internal error (a bug in kvmsim, please report it):\n${Cause.pretty(exit.cause)}\n`)
    return 70
  }
  const error = failure.value as { _tag?: string; message?: string }
  switch (error._tag) {
    case "CliExit":
      return (error as unknown as { code: number }).code
    case "ShowHelp":
      // --help (or a bare command) prints help and succeeds; parse errors were printed with it.
      return (error as { errors?: ReadonlyArray<unknown> }).errors?.length ? 2 : 0
    case "UnrecognizedOption":
    case "DuplicateOption":
    case "MissingOption":
    case "MissingArgument":
    case "UnexpectedArgument":
    case "InvalidValue":
    case "UnknownSubcommand":
    case "ValidationError":
      return 2
    case "AsmError":
    case "LoaderError":
      process.stderr.write(`${error.message}\n`)
      return 1
    case "PlatformError": {
      // File errors read like the shell's: `kvmsim: prog.asm: no such file or directory`.
      const reason = (error as { reason?: { _tag?: string; pathOrDescriptor?: unknown; description?: string } }).reason
      const what = reason?._tag === "NotFound" ? "no such file or directory" : reason?._tag === "PermissionDenied" ? "permission denied" : (reason?.description ?? error.message)
      process.stderr.write(`kvmsim: ${reason?.pathOrDescriptor !== undefined ? `${String(reason.pathOrDescriptor)}: ` : ""}${what}\n`)
      return 1
    }
    default:
      process.stderr.write(`kvmsim: ${error.message ?? String(error)}\n`)
      return 1
  }
}

