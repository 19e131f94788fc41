// `kvmsim examples list|copy`: what examples/ holds and how to run each; copy puts the files
// into a directory (./examples by default) so the listed commands work from there. Copied
// modules import "kvmsim" (the installed package) where the repository's import "../src/index.ts".

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { exampleCatalog, examplesDirectory } from "../examples-catalog.ts"
import { CliExit } from "../exit.ts"
import { stderr, stdout } from "../output.ts"
import { ExitStatus } from "../sim/outcome.ts"

const list = Command.make("list", {}, () =>
  stdout(exampleCatalog.map((e) => `${e.name.padEnd(18)} ${e.summary}\n${"".padEnd(18)} $ ${e.command}\n`).join("")),
).pipe(Command.withDescription("List the examples with the command that runs each"))

const copy = Command.make(
  "copy",
  {
    names: Argument.String("NAME").pipe(Argument.withDescription("examples to copy (default: all)"), Argument.atLeast(0)),
    to: Flag.String("to").pipe(Flag.withMetavar("DIR"), Flag.withDescription("destination directory (default ./examples)"), Flag.optional),
    force: Flag.Boolean("force").pipe(Flag.withDescription("overwrite existing files"), Flag.withDefault(false)),
  },
  ({ names, to, force }) =>
    Effect.gen(function* () {
      const unknown = names.filter((n) => !exampleCatalog.some((e) => e.name === n))
      if (unknown.length > 0) {
        yield* stderr(`kvmsim examples copy: unknown example ${unknown.join(", ")} (see kvmsim examples list)\n`)
        return yield* Effect.fail(new CliExit({ code: ExitStatus.Usage }))
      }
      const chosen = names.length === 0 ? exampleCatalog : exampleCatalog.filter((e) => names.includes(e.name))
      const dir = Option.getOrElse(to, () => "examples")
      mkdirSync(dir, { recursive: true })
      const files = [...new Set(chosen.flatMap((e) => e.files))]
      for (const f of files) {
        const target = join(dir, f)
        if (existsSync(target) && !force) {
          yield* stderr(`kvmsim examples copy: ${target} exists (use --force to overwrite)\n`)
          return yield* Effect.fail(new CliExit({ code: ExitStatus.Failed }))
        }
        // Module examples import the repository's API by path; a copy imports the package instead.
        const text = readFileSync(fileURLToPath(new URL(f, examplesDirectory)))
        writeFileSync(target, f.endsWith(".ts") ? text.toString("utf8").replace(/from "\.\.\/src\/index\.ts"/g, 'from "kvmsim"') : text)
        yield* stdout(`${target}\n`)
      }
    }),
).pipe(Command.withDescription("Copy example files into a directory (./examples by default)"))

export const examplesCommand = Command.make("examples").pipe(
  Command.withDescription("The examples: every seed scenario, runnable"),
  Command.withSubcommands([list, copy]),
)
