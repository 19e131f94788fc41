import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Benchmark } from "./harness.ts"

// Every file bench/<name>.bench.ts default-exports one Benchmark (or an array of them).
// Discovery by file name lets each feature add its benchmark without editing a shared list.
const benchDir = fileURLToPath(new URL(".", import.meta.url))

/** The benchmark files, sorted by name. */
export const benchFiles = (): ReadonlyArray<string> =>
  readdirSync(benchDir)
    .filter((f) => f.endsWith(".bench.ts"))
    .sort()

/** A benchmark and the file that defines it. */
export interface LoadedBenchmark {
  readonly file: string
  readonly benchmark: Benchmark
}

/** Imports the given benchmark files (all of them by default). */
export const loadBenchmarks = async (files: ReadonlyArray<string> = benchFiles()): Promise<ReadonlyArray<LoadedBenchmark>> => {
  const loaded: Array<LoadedBenchmark> = []
  for (const file of files) {
    const module = (await import(new URL(file, import.meta.url).href)) as { default: Benchmark | ReadonlyArray<Benchmark> }
    const exported = module.default
    const list: ReadonlyArray<Benchmark> = Array.isArray(exported) ? exported : [exported as Benchmark]
    for (const benchmark of list) loaded.push({ file, benchmark })
  }
  return loaded
}
