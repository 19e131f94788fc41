// Shared measurement helpers for benchmarks. Absolute times on shared machines are noise, so
// every benchmark reports its figure next to a calibration kernel measured in the same run.

export interface Figure {
  readonly name: string
  readonly unit: string
  readonly value: number
}

export interface BenchResult extends Figure {
  readonly calibration: Figure
  /** value / calibration.value, in the benchmark's own unit. */
  readonly ratio: number
  /** The benchmark verified its own output (checksum or count). */
  readonly checked: true
}

export interface Benchmark {
  readonly name: string
  readonly description: string
  /** Runs the measured work and its calibration; throws BenchCheckFailed if a result is wrong. */
  readonly run: () => BenchResult | Promise<BenchResult>
}

export class BenchCheckFailed extends Error {
  constructor(benchmark: string, what: string, expected: unknown, actual: unknown) {
    super(`${benchmark}: ${what} was ${String(actual)}, expected ${String(expected)}`)
    this.name = "BenchCheckFailed"
  }
}

/** Throws unless actual === expected: a broken implementation must not look fast. */
export const verify = (benchmark: string, what: string, expected: unknown, actual: unknown): void => {
  if (expected !== actual) throw new BenchCheckFailed(benchmark, what, expected, actual)
}

/**
 * Times `work` (which performs `operations` units of work per call) repeatedly for about
 * `budgetMs`, and returns the best observed rate in operations per second. Best-of-N filters
 * out interference from other processes on the machine.
 */
export const bestRate = (work: () => void, operations: number, budgetMs = 400, minRounds = 3): number => {
  work() // warm-up: let the JIT settle before timing
  let best = 0
  const deadline = performance.now() + budgetMs
  for (let round = 0; round < minRounds || performance.now() < deadline; round++) {
    const start = process.hrtime.bigint()
    work()
    const elapsedNs = Number(process.hrtime.bigint() - start)
    const rate = (operations * 1e9) / Math.max(elapsedNs, 1)
    if (rate > best) best = rate
    if (round > 1000) break
  }
  return best
}

/** A unit of timed work: `work()` performs `operations` operations. */
export interface TimedWork {
  readonly work: () => void
  readonly operations: number
}

/**
 * Best rate (operations per second) of each work, measured in alternation: `rounds` times, each
 * work in turn for about `budgetMs`. A figure and its calibration timed this way see the same
 * moments of machine load; timed one after the other on a shared machine, one of them can land
 * in a busy stretch and the ratio swings 2x.
 */
export const alternatingBestRates = (works: ReadonlyArray<TimedWork>, rounds = 8, budgetMs = 80): Array<number> => {
  const best = works.map(() => 0)
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < works.length; i++) {
      const { work, operations } = works[i]!
      best[i] = Math.max(best[i]!, bestRate(work, operations, budgetMs, 1))
    }
  }
  return best
}

export const result = (name: string, unit: string, value: number, calibration: Figure): BenchResult => ({
  name,
  unit,
  value,
  calibration,
  ratio: value / calibration.value,
  checked: true,
})
