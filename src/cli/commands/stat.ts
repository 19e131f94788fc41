// `kvmsim stat GUEST`: runs GUEST like `run` and shows kvm_stat's view of its VM exits: the
// top-like table by default, `-1` batch lines, `-l` one log line per interval of virtual time,
// or `--json`. The guest console is not shown (use `run --stat` for both).

import { Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { CliExit } from "../exit.ts"
import { stderr, stdout, writeStdout } from "../output.ts"
import { formatStatBatch, formatStatLogHeader, formatStatLogLine, formatStatTable, statJson, statRows, sumByReason } from "../report/stat-table.ts"
import { executeRun } from "../sim/execute.ts"
import { ExitStatus } from "../sim/outcome.ts"
import type { SimHost } from "../sim/session.ts"
import { guestFlags, guestOptions, hostFlags, hostOptions, type UsageError } from "./run-options.ts"

const currentByReason = (sim: SimHost): Array<number> => sumByReason(sim.vcpuSnapshots().map((v) => v.exitsByReason))

export const statCommand = Command.make(
  "stat",
  {
    guest: Argument.String("GUEST").pipe(Argument.withDescription("the guest to run (as for kvmsim run)")),
    ...hostFlags,
    ...guestFlags,
    once: Flag.Boolean("once").pipe(Flag.withAlias("1"), Flag.withDescription("batch mode: one line per event (name, total, per second)"), Flag.withDefault(false)),
    log: Flag.Boolean("log").pipe(Flag.withAlias("l"), Flag.withDescription("log mode: a header of events, then one line of counts per interval"), Flag.withDefault(false)),
    interval: Flag.Int("interval").pipe(Flag.withMetavar("NS"), Flag.withDescription("log mode: virtual nanoseconds per line (default 1000000)"), Flag.withDefault(1_000_000)),
    json: Flag.Boolean("json").pipe(Flag.withDescription("print {event: {total, percent, rate}} as JSON"), Flag.withDefault(false)),
  },
  (flags) =>
    Effect.gen(function* () {
      const host = yield* hostOptions(flags)
      const guest = yield* guestOptions(flags.guest, flags)
      if (flags.interval < 1) return yield* Effect.fail(new CliExit({ code: ExitStatus.Usage }))
      let previous: Array<number> = []
      let headerShown: Array<string> | undefined
      const logSample = (sim: SimHost): void => {
        const now = currentByReason(sim)
        const rows = statRows(now, sim.virtualTimeNs())
        const events = rows.map((r) => r.event)
        const deltas = new Map<string, number>()
        const prevRows = statRows(previous, 1)
        for (const r of rows) deltas.set(r.event, r.total - (prevRows.find((p) => p.event === r.event)?.total ?? 0))
        if (headerShown === undefined || events.some((e) => !headerShown!.includes(e))) {
          headerShown = events
          writeStdout(formatStatLogHeader(events))
        }
        writeStdout(formatStatLogLine(headerShown, deltas))
        previous = now
      }
      const result = yield* executeRun({
        host,
        guest,
        modules: flags.module,
        wantTrace: false,
        ...(flags.log ? { onSample: logSample, sampleEveryNs: flags.interval } : {}),
      })
      if (!flags.log) {
        const rows = statRows(sumByReason(result.vcpus.map((v) => v.exitsByReason)), result.virtualTimeNs)
        if (flags.json) yield* stdout(JSON.stringify(statJson(rows), null, 2) + "\n")
        else if (flags.once) yield* stdout(formatStatBatch(rows))
        else yield* stdout(formatStatTable(rows))
      }
      if (result.outcome.code !== ExitStatus.Ok) {
        yield* stderr(`kvmsim: ${result.outcome.detail}\n`)
        return yield* Effect.fail(new CliExit({ code: result.outcome.code }))
      }
    }).pipe(Effect.catchTag("UsageError", (e: UsageError) => Effect.flatMap(stderr(`kvmsim stat: ${e.message}\n`), () => Effect.fail(new CliExit({ code: ExitStatus.Usage }))))),
).pipe(Command.withDescription("Run GUEST and print kvm_stat's per-exit-reason table (Event, Total, %Total, CurAvg/s per virtual second); exit status as for run"))
