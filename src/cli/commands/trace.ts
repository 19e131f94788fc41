// `kvmsim trace show|report [FILE]`: reads a trace file (from `run --trace-out`, or stdin) and
// prints the lines for one host CPU, vCPU or set of events, or a summary of them.

import { readFileSync } from "node:fs"
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { CliExit } from "../exit.ts"
import { stderr, stdout } from "../output.ts"
import { filterTrace, parseTraceText, traceReport, type TraceFilter } from "../report/trace-text.ts"
import { ExitStatus } from "../sim/outcome.ts"

const fileArg = Argument.String("FILE").pipe(Argument.withDescription("a trace file (kvmsim run --trace-out FILE); standard input when absent or -"), Argument.optional)
const filterFlags = {
  cpu: Flag.Int("cpu").pipe(Flag.withMetavar("N"), Flag.withDescription("only records from host CPU N"), Flag.optional),
  vcpu: Flag.Int("vcpu").pipe(Flag.withMetavar("N"), Flag.withDescription("only records from vCPU N's thread"), Flag.optional),
  event: Flag.String("event").pipe(Flag.withMetavar("LIST"), Flag.withDescription("only these events, comma-separated (kvm_exit, kvm_emulate_hypercall, …)"), Flag.optional),
}

const readInput = (file: Option.Option<string>): Effect.Effect<string, CliExit> =>
  Effect.suspend(() => {
    const path = Option.getOrElse(file, () => "-")
    try {
      return Effect.succeed(readFileSync(path === "-" ? 0 : path, "utf8"))
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      return Effect.flatMap(stderr(`kvmsim trace: ${path}: ${code === "ENOENT" ? "No such file or directory" : (e as Error).message}\n`), () => Effect.fail(new CliExit({ code: ExitStatus.Usage })))
    }
  })

const toFilter = (f: { cpu: Option.Option<number>; vcpu: Option.Option<number>; event: Option.Option<string> }): TraceFilter => ({
  ...(Option.isSome(f.cpu) ? { cpu: f.cpu.value } : {}),
  ...(Option.isSome(f.vcpu) ? { vcpu: f.vcpu.value } : {}),
  ...(Option.isSome(f.event) ? { events: f.event.value.split(",").map((e) => e.trim()).filter((e) => e !== "") } : {}),
})

const show = Command.make("show", { file: fileArg, ...filterFlags }, (f) =>
  Effect.gen(function* () {
    const { header, records } = parseTraceText(yield* readInput(f.file))
    const kept = filterTrace(records, toFilter(f))
    yield* stdout(header.map((l) => `${l}\n`).join("") + kept.map((r) => `${r.line}\n`).join(""))
  }),
).pipe(Command.withDescription("Print the trace's header and the records that pass the filters"))

const report = Command.make("report", { file: fileArg, ...filterFlags }, (f) =>
  Effect.gen(function* () {
    const { records } = parseTraceText(yield* readInput(f.file))
    yield* stdout(traceReport(filterTrace(records, toFilter(f))))
  }),
).pipe(Command.withDescription("Summarise the trace: records per event, host CPU, vCPU thread, exit reason and hypercall"))

export const traceCommand = Command.make("trace").pipe(
  Command.withDescription("Read a trace file: show filtered records, or report counts"),
  Command.withSubcommands([show, report]),
)
