import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Console, Data, Effect } from "effect"
import type { BenchResult } from "./harness.ts"
import { benchFiles, loadBenchmarks } from "./registry.ts"

class BenchUsageError extends Data.TaggedError("BenchUsageError")<{ readonly message: string }> {}
class BenchChildFailed extends Data.TaggedError("BenchChildFailed")<{ readonly message: string }> {}

interface BenchOptions {
  readonly json: boolean
  readonly only: string | undefined
  /** Internal: run just this file's benchmarks in this process and print their JSON. */
  readonly file: string | undefined
}

const usage = "usage: npm run bench -- [--json] [--only NAME]"

const parseArgs = (argv: ReadonlyArray<string>): Effect.Effect<BenchOptions, BenchUsageError> =>
  Effect.gen(function* () {
    let json = false
    let only: string | undefined
    let file: string | undefined
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]
      if (arg === "--json") json = true
      else if (arg === "--only") {
        only = argv[++i]
        if (only === undefined) return yield* new BenchUsageError({ message: `--only needs a benchmark name\n${usage}` })
      } else if (arg?.startsWith("--only=")) only = arg.slice("--only=".length)
      else if (arg === "--file") {
        file = argv[++i]
        if (file === undefined) return yield* new BenchUsageError({ message: `--file needs a bench/*.bench.ts file name\n${usage}` })
      } else return yield* new BenchUsageError({ message: `unknown argument ${JSON.stringify(arg)}\n${usage}` })
    }
    return { json, only, file }
  })

const formatRow = (r: BenchResult): string =>
  `${r.name.padEnd(18)} ${r.value.toPrecision(4).padStart(12)} ${r.unit.padEnd(12)}` +
  ` calibration ${r.calibration.name} ${r.calibration.value.toPrecision(4)} ${r.calibration.unit}` +
  `  ratio ${r.ratio.toPrecision(3)}`

/** Runs benchmarks in this process, one after another. */
const runHere = (benchmarks: ReadonlyArray<{ readonly benchmark: { readonly run: () => BenchResult | Promise<BenchResult> } }>, print: boolean) =>
  Effect.gen(function* () {
    const results: Array<BenchResult> = []
    for (const { benchmark } of benchmarks) {
      const outcome = yield* Effect.promise(async () => benchmark.run())
      results.push(outcome)
      if (print) yield* Console.log(formatRow(outcome))
    }
    return results
  })

/**
 * Runs one bench file's benchmarks in a fresh Node process (same loader flags) and returns their
 * results. Each file gets its own process so that one benchmark's heap, JIT feedback and
 * background compilation do not bleed into the next one's figures (a short calibration run after
 * the exit benchmarks measured 40% slower than the same run alone).
 */
const runInChild = (file: string): Effect.Effect<ReadonlyArray<BenchResult>, BenchChildFailed> =>
  Effect.callback<ReadonlyArray<BenchResult>, BenchChildFailed>((resume) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--file", file], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => (out += chunk))
    child.on("error", (e) => resume(Effect.fail(new BenchChildFailed({ message: `${file}: could not start node: ${e.message}` }))))
    child.on("close", (code) => {
      if (code !== 0) return resume(Effect.fail(new BenchChildFailed({ message: `${file} failed (exit status ${code}); its error is above` })))
      const line = out.split("\n").find((l) => l.startsWith("{"))
      if (line === undefined) return resume(Effect.fail(new BenchChildFailed({ message: `${file} printed no results` })))
      resume(Effect.succeed((JSON.parse(line) as { results: ReadonlyArray<BenchResult> }).results))
    })
    return Effect.sync(() => void child.kill())
  })

const program = Effect.gen(function* () {
  const options = yield* parseArgs(process.argv.slice(2))
  if (options.file !== undefined) {
    // Child mode: one file, results as JSON for the parent.
    const loaded = yield* Effect.promise(() => loadBenchmarks([options.file!]))
    const results = yield* runHere(loaded, false)
    yield* Console.log(JSON.stringify({ schemaVersion: 1, results }))
    return
  }
  let results: ReadonlyArray<BenchResult>
  if (options.only !== undefined) {
    const benchmarks = yield* Effect.promise(() => loadBenchmarks())
    const selected = benchmarks.filter((b) => b.benchmark.name === options.only)
    if (selected.length === 0) {
      const known = benchmarks.map((b) => b.benchmark.name).join(", ") || "(none)"
      return yield* new BenchUsageError({ message: `no benchmark named ${options.only}; known: ${known}` })
    }
    results = yield* runHere(selected, !options.json)
  } else {
    const all: Array<BenchResult> = []
    for (const file of benchFiles()) {
      const fileResults = yield* runInChild(file)
      all.push(...fileResults)
      if (!options.json) for (const r of fileResults) yield* Console.log(formatRow(r))
    }
    results = all
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
    Effect.catchTag("BenchChildFailed", (e) =>
      Effect.sync(() => {
        process.stderr.write(`bench: ${e.message}\n`)
        process.exitCode = 1
      }),
    ),
  ),
).catch((defect: unknown) => {
  process.stderr.write(`bench: ${defect instanceof Error ? defect.message : String(defect)}\n`)
  process.exitCode = 1
})
