// Shared helpers for the trace tests: reading the reference files beside the repository and
// building a tracer with a manual clock and a fixed task table.

import { readFileSync } from "node:fs"
import { ManualClock, StaticTaskNames } from "../../src/trace/context.ts"
import type { TraceEra } from "../../src/trace/events.ts"
import { makeTrace, type TraceShape } from "../../src/trace/service.ts"

export const reference = (name: string): string =>
  readFileSync(new URL(`../../../shared/reference/${name}`, import.meta.url), "utf8")

/** A sample file without its first line (the "[sample]" note, which is not kernel output). */
export const sample = (name: string): string => reference(`ftrace-samples/${name}`).split("\n").slice(1).join("\n")

export interface TestTrace extends TraceShape {
  readonly clock: ManualClock
  readonly tasks: StaticTaskNames
}

export const testTrace = (options: { era?: TraceEra; cpus?: number; expanded?: boolean; bufferBytes?: number } = {}): TestTrace => {
  const clock = new ManualClock(0)
  const tasks = new StaticTaskNames([
    [12398, "qemu-system-x86"],
    [12399, "qemu-system-x86"],
    [2211, "bash"],
  ])
  const shape = makeTrace({
    cpuCount: options.cpus ?? 4,
    clock,
    tasks,
    era: options.era ?? "A",
    expanded: options.expanded ?? true,
    ...(options.bufferBytes !== undefined ? { bufferBytes: options.bufferBytes } : {}),
  })
  return { ...shape, clock, tasks }
}

/** Seconds.microseconds as in the samples → nanoseconds. */
export const ns = (secondsDotMicros: string): number => {
  const [s, us] = secondsDotMicros.split(".") as [string, string]
  return Number(s) * 1e9 + Number(us) * 1e3
}

/** What Perfetto's systrace importer keys on: `-pid`, optional tgid, `[cpu]`, flags, `secs.usecs:`, `name:`. */
export const perfettoLine = (flagChars: number): RegExp =>
  new RegExp(String.raw`-(\d+)\s+\(?\s*(\d+|-+)?\)?\s?\[(\d+)\]\s*[a-zA-Z0-9.]{0,${flagChars}}\s+(\d+\.\d+):\s+(\S+):`)
