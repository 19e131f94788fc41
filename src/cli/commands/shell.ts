// `kvmsim shell`: a live simulated host. With a terminal: prompt, history, completion, colour
// (unless NO_COLOR). Without one (a script on stdin, or -c 'CMDS'): no prompt and no colour, each
// line runs in order and the shell stops at the first failing line with that line's status.

import { readFileSync } from "node:fs"
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { CliExit } from "../exit.ts"
import { stderr, writeStderr, writeStdout } from "../output.ts"
import { ExitStatus } from "../sim/outcome.ts"
import { bootSimHost } from "../sim/session.ts"
import { interactiveShell } from "../shell/interactive.ts"
import { ShellSession } from "../shell/session.ts"
import { guestFlags, hostFlags, hostOptions, loadUserModule, UsageError } from "./run-options.ts"

/** Runs script lines in order; the first line that fails ends the script with its status. */
export const runScript = (session: ShellSession, script: string): Effect.Effect<number> =>
  Effect.gen(function* () {
    let status = 0
    for (const line of script.split("\n")) {
      if (line.trim() === "") continue
      status = yield* session.executeLine(line, true)
      if (session.quitRequested) return session.quitStatus
      if (status !== 0) return status
    }
    return status
  })

export const shellCommand = Command.make(
  "shell",
  {
    guest: Argument.String("GUEST").pipe(Argument.withDescription("a guest to boot before the first command (as `boot GUEST`)"), Argument.optional),
    command: Flag.String("command").pipe(Flag.withAlias("c"), Flag.withMetavar("CMDS"), Flag.withDescription("run these commands (lines or ';'-separated) instead of reading a script or a terminal"), Flag.optional),
    ...hostFlags,
    ...guestFlags,
  },
  (flags) =>
    Effect.scoped(
      Effect.gen(function* () {
        const host = yield* hostOptions(flags)
        const sim = yield* Effect.mapError(bootSimHost(host), (e) => new UsageError({ message: typeof e === "string" ? e : e.message }))
        for (const file of flags.module) yield* loadUserModule(sim, file)
        const session = new ShellSession(sim, flags, { out: writeStdout, err: writeStderr })
        if (Option.isSome(flags.guest)) {
          const status = yield* session.executeLine(`boot '${flags.guest.value.replace(/'/g, "'\\''")}'`)
          if (status !== 0) return yield* Effect.fail(new CliExit({ code: status }))
        }
        let status: number
        if (Option.isSome(flags.command)) status = yield* runScript(session, flags.command.value)
        else if (process.stdin.isTTY === true && process.stdout.isTTY === true) status = yield* interactiveShell(session)
        else status = yield* runScript(session, readFileSync(0, "utf8"))
        if (status !== 0) return yield* Effect.fail(new CliExit({ code: status }))
      }),
    ).pipe(Effect.catchTag("UsageError", (e: UsageError) => Effect.flatMap(stderr(`kvmsim shell: ${e.message}\n`), () => Effect.fail(new CliExit({ code: ExitStatus.Usage }))))),
).pipe(
  Command.withShortDescription("A live simulated host: ls/cat/echo over /sys and /proc, boot/run/info/stat/insmod"),
  Command.withDescription(
    "A live simulated host. Bash-like verbs over the filesystem (ls cat echo V > F cd pwd tree head tail grep, pipes, > and >>) and monitor verbs (boot GUEST [opts], run N | run until EVENT, info registers|cpus|vmcs, ps, stat, insmod, rmmod, lsmod, trace on|off, quit). Type `help` inside. Without a terminal there is no prompt or colour, and the shell stops at the first failing command with its exit status. The run options given here are the defaults of `boot`.",
  ),
)
