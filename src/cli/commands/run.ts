// `kvmsim run GUEST`: the guest console on stdout as it is written, kvmsim's messages on
// stderr, then (as asked) the trace file, the kvm_stat table, or one JSON document instead of
// all of that. The exit status says how the guest ended (see --help).

import { writeFileSync } from "node:fs"
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { CliExit } from "../exit.ts"
import { stderr, stdout, writeStderr, writeStdout } from "../output.ts"
import { runDocument } from "../report/run-document.ts"
import { formatStatTable, statRows, sumByReason } from "../report/stat-table.ts"
import { executeRun } from "../sim/execute.ts"
import { ExitStatus, exitStatusHelp } from "../sim/outcome.ts"
import { guestFlags, guestOptions, hostFlags, hostOptions, UsageError } from "./run-options.ts"

export const runFlags = {
  ...hostFlags,
  ...guestFlags,
  trace: Flag.Boolean("trace").pipe(Flag.withDescription("print /sys/kernel/debug/tracing/trace after the run"), Flag.withDefault(false)),
  traceOut: Flag.String("trace-out").pipe(Flag.withMetavar("FILE"), Flag.withDescription("write the trace file to FILE"), Flag.optional),
  stat: Flag.Boolean("stat").pipe(Flag.withDescription("print kvm_stat's per-exit-reason table after the run"), Flag.withDefault(false)),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print one JSON document (exit, console, vcpus, steps, virtualTimeNs, trace) instead of text"), Flag.withDefault(false)),
}

const usage = (e: UsageError) => Effect.flatMap(stderr(`kvmsim run: ${e.message}\n`), () => Effect.fail(new CliExit({ code: ExitStatus.Usage })))

export const runCommand = Command.make(
  "run",
  { guest: Argument.String("GUEST").pipe(Argument.withDescription(".asm/.s source (assembled), .c (built by gcc), ELF64 executable, or flat binary")), ...runFlags },
  (flags) =>
    Effect.gen(function* () {
      const host = yield* hostOptions(flags)
      const guest = yield* guestOptions(flags.guest, flags)
      const tty = process.stderr.isTTY === true && !flags.json
      let progressShown = false
      const result = yield* executeRun({
        host,
        guest,
        modules: flags.module,
        wantTrace: flags.trace || flags.json || Option.isSome(flags.traceOut),
        // bench/startup.bench.ts: when the first guest instruction ran, on stderr.
        probeStartup: process.env["KVMSIM_STARTUP_PROBE"] === "1",
        ...(flags.json ? {} : { onConsole: writeStdout }),
        ...(tty
          ? {
              onProgress: (sim) => {
                progressShown = true
                const steps = sim.steps()
                const max = guest.maxSteps
                const bar = max === undefined ? "" : progressBar(steps / max)
                writeStderr(`\r\x1b[2K${bar}${steps.toLocaleString("en-US")} instructions, ${sim.exitCount > 0 ? `${sim.exitCount} exits, ` : ""}${(sim.virtualTimeNs() / 1e6).toFixed(1)} ms virtual`)
              },
            }
          : {}),
      })
      if (progressShown) writeStderr("\r\x1b[2K")
      if (process.env["KVMSIM_STARTUP_PROBE"] === "1" && result.firstEntryEpochMs !== undefined) writeStderr(`kvmsim-startup first-vm-entry-epoch-ms ${result.firstEntryEpochMs.toFixed(3)}\n`)
      if (Option.isSome(flags.traceOut)) {
        const file = flags.traceOut.value
        yield* Effect.try({ try: () => writeFileSync(file, result.trace), catch: (e) => new UsageError({ message: `--trace-out ${file}: ${(e as Error).message}` }) })
      }
      if (flags.json) {
        const { trace, ...rest } = result
        const doc = runDocument({ ...rest, ...(flags.trace ? { trace } : {}) })
        yield* stdout(JSON.stringify(doc, null, 2) + "\n")
      } else {
        if (result.console !== "" && !result.console.endsWith("\n") && (flags.trace || flags.stat)) yield* stdout("\n")
        if (flags.trace) yield* stdout(result.trace)
        if (flags.stat) {
          const byReason = sumByReason(result.vcpus.map((v) => v.exitsByReason))
          yield* stdout(formatStatTable(statRows(byReason, result.virtualTimeNs)))
        }
        for (const i of result.injections) {
          if (i.error !== 0) yield* stderr(`kvmsim: --inject ${i.field}: VMWRITE failed with VM-instruction error ${i.error}\n`)
        }
        if (result.outcome.code !== ExitStatus.Ok) yield* stderr(`kvmsim: ${result.outcome.detail}\n`)
      }
      if (result.outcome.code !== ExitStatus.Ok) return yield* Effect.fail(new CliExit({ code: result.outcome.code }))
    }).pipe(Effect.catchTag("UsageError", usage)),
).pipe(
  Command.withShortDescription("Run GUEST (.asm, .c, ELF or flat binary) as a user program of the mini kernel, or --bare"),
  Command.withDescription(
    [
      "Run GUEST on a simulated Linux host with KVM: by default as a user program of the mini guest kernel on every vCPU, with --bare as the whole guest.",
      "The guest console goes to stdout, kvmsim's messages to stderr.",
      "",
      "Exit status:",
      ...exitStatusHelp.map((l) => `  ${l}`),
    ].join("\n"),
  ),
)

const progressBar = (fraction: number): string => {
  const width = 24
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)))
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.min(100, Math.floor(fraction * 100))}% `
}
