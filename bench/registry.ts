import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { Benchmark } from "./harness.ts"

// Every file bench/<name>.bench.ts default-exports one Benchmark (or an array of them).
// Discovery by file name lets each feature add its benchmark without editing a shared list.
const benchDir = fileURLToPath(new URL(".", import.meta.url))

export const loadBenchmarks = async (): Promise<ReadonlyArray<Benchmark>> => {
  const files = readdirSync(benchDir)
    .filter((f) => f.endsWith(".bench.ts"))
    .sort()
  const loaded: Array<Benchmark> = []
  for (const file of files) {
    const module = (await import(new URL(file, import.meta.url).href)) as { default: Benchmark | ReadonlyArray<Benchmark> }
    const exported = module.default
    if (Array.isArray(exported)) loaded.push(...exported)
    else loaded.push(exported as Benchmark)
  }
  return loaded
}
