import { Console, Data, Effect } from "effect"
import type { BenchResult } from "./harness.ts"
import { loadBenchmarks } from "./registry.ts"

class BenchUsageError extends Data.TaggedError("BenchUsageError")<{ readonly message: string }> {}

interface BenchOptions {
  readonly json: boolean
  readonly only: string | undefined
}

const usage = "usage: npm run bench -- [--json] [--only NAME]"

const parseArgs = (argv: ReadonlyArray<string>): Effect.Effect<BenchOptions, BenchUsageError> =>
  Effect.gen(function* () {
    let json = false
    let only: string | undefined
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]
      if (arg === "--json") json = true
      else if (arg === "--only") {
        only = argv[++i]
        if (only === undefined) return yield* new BenchUsageError({ message: `--only needs a benchmark name\n${usage}` })
      } else if (arg?.startsWith("--only=")) only = arg.slice("--only=".length)
      else return yield* new BenchUsageError({ message: `unknown argument ${JSON.stringify(arg)}\n${usage}` })
    }
    return { json, only }
  })

const formatRow = (r: BenchResult): string =>
  `${r.name.padEnd(18)} ${r.value.toPrecision(4).padStart(12)} ${r.unit.padEnd(12)}` +
  ` calibration ${r.calibration.name} ${r.calibration.value.toPrecision(4)} ${r.calibration.unit}` +
  `  ratio ${r.ratio.toPrecision(3)}`

const program = Effect.gen(function* () {
  const options = yield* parseArgs(process.argv.slice(2))
  const benchmarks = yield* Effect.promise(loadBenchmarks)
  const selected = options.only === undefined ? benchmarks : benchmarks.filter((b) => b.name === options.only)
  if (selected.length === 0 && options.only !== undefined) {
    const known = benchmarks.map((b) => b.name).join(", ") || "(none)"
    return yield* new BenchUsageError({ message: `no benchmark named ${options.only}; known: ${known}` })
  }
  const results: Array<BenchResult> = []
  for (const benchmark of selected) {
    const outcome = yield* Effect.promise(async () => benchmark.run())
    results.push(outcome)
    if (!options.json) yield* Console.log(formatRow(outcome))
  }
  if (options.json) yield* Console.log(JSON.stringify({ schemaVersion: 1, results }))
})

Effect.runPromise(
  program.pipe(
    Effect.catchTag("BenchUsageError", (e) =>
      Effect.sync(() => {
        process.stderr.write(`bench: ${e.message}\n`)
        process.exitCode = 2
      }),
    ),
  ),
).catch((defect: unknown) => {
  process.stderr.write(`bench: ${defect instanceof Error ? defect.message : String(defect)}\n`)
  process.exitCode = 1
})
