// kvm_stat's views of the per-exit-reason counters: the top-like table (Event, Total, %Total,
// CurAvg/s), batch mode `-1` ("%-42s%10d%10d": name, total, per second), log mode `-l` (a header
// of names, then one line of per-interval deltas), and a JSON form. Event names are kvm_stat's
// drill-down names for kvm_exit, "kvm_exit(HLT)"; rates are per second of virtual time.

import { exitReasonName } from "../../arch/exit-reasons.ts"

export interface StatRow {
  readonly event: string
  readonly total: number
  /** Share of all exits, in percent. */
  readonly percent: number
  /** Per second of virtual time. */
  readonly rate: number
}

/** Rows for every exit reason with a non-zero count, largest first (ties by name). */
export const statRows = (byReason: ReadonlyArray<number>, virtualNs: number): Array<StatRow> => {
  const total = byReason.reduce((s, n) => s + n, 0)
  const seconds = virtualNs / 1e9
  const rows: Array<StatRow> = []
  byReason.forEach((n, reason) => {
    if (n === 0) return
    rows.push({
      event: `kvm_exit(${exitReasonName(reason) ?? reason})`,
      total: n,
      percent: total === 0 ? 0 : (100 * n) / total,
      rate: seconds > 0 ? Math.round(n / seconds) : 0,
    })
  })
  rows.sort((a, b) => b.total - a.total || (a.event < b.event ? -1 : 1))
  return rows
}

/** Sum of per-vCPU per-reason counts. */
export const sumByReason = (perVcpu: ReadonlyArray<ReadonlyArray<number>>): Array<number> => {
  const out: Array<number> = []
  for (const v of perVcpu) v.forEach((n, i) => (out[i] = (out[i] ?? 0) + n))
  for (let i = 0; i < out.length; i++) out[i] ??= 0
  return out
}

/** The top-like table kvm_stat shows. */
export const formatStatTable = (rows: ReadonlyArray<StatRow>): string => {
  const lines = [` ${"Event".padEnd(40)} ${"Total".padStart(10)} ${"%Total".padStart(6)} ${"CurAvg/s".padStart(8)}`]
  for (const r of rows) lines.push(` ${r.event.padEnd(40)} ${String(r.total).padStart(10)} ${r.percent.toFixed(1).padStart(6)} ${String(r.rate).padStart(8)}`)
  const total = rows.reduce((s, r) => s + r.total, 0)
  const rate = rows.reduce((s, r) => s + r.rate, 0)
  lines.push(` ${"Total".padEnd(40)} ${String(total).padStart(10)} ${"".padStart(6)} ${String(rate).padStart(8)}`)
  return lines.join("\n") + "\n"
}

/** kvm_stat -1: one line per event, "%-42s%10d%10d". */
export const formatStatBatch = (rows: ReadonlyArray<StatRow>): string => rows.map((r) => `${r.event.padEnd(42)}${String(r.total).padStart(10)}${String(r.rate).padStart(10)}\n`).join("")

/** kvm_stat -l: the header of event names (as kvm_stat prints them, 10 wide), then one line per sample. */
export const formatStatLogHeader = (events: ReadonlyArray<string>): string => events.map((e) => ` ${e.padStart(Math.max(9, e.length))}`).join("") + "\n"

export const formatStatLogLine = (events: ReadonlyArray<string>, deltas: ReadonlyMap<string, number>): string =>
  events.map((e) => ` ${String(deltas.get(e) ?? 0).padStart(Math.max(9, e.length))}`).join("") + "\n"

export const statJson = (rows: ReadonlyArray<StatRow>): Record<string, { total: number; percent: number; rate: number }> => {
  const out: Record<string, { total: number; percent: number; rate: number }> = {}
  for (const r of rows) out[r.event] = { total: r.total, percent: Math.round(r.percent * 10) / 10, rate: r.rate }
  return out
}
