// The text layout of `trace` and `trace_pipe` per era (ftrace.md §1): the header, and the
// `comm-pid [cpu] flags timestamp: ` prefix of every event line (trace_print_context,
// trace_print_lat_fmt).

import { TraceFlag } from "./context.ts"
import type { TraceEra } from "./events.ts"

const LEGEND_A = [
  "#                              _-----=> irqs-off",
  "#                             / _----=> need-resched",
  "#                            | / _---=> hardirq/softirq",
  "#                            || / _--=> preempt-depth",
  "#                            ||| /     delay",
  "#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION",
  "#              | |       |   ||||       |         |",
]

const LEGEND_D = [
  "#                                _-----=> irqs-off/BH-disabled",
  "#                               / _----=> need-resched",
  "#                              | / _---=> hardirq/softirq",
  "#                              || / _--=> preempt-depth",
  "#                              ||| / _-=> migrate-disable",
  "#                              |||| /     delay",
  "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
  "#              | |         |   |||||     |         |",
]

/** The header of `trace` with the nop tracer and default options. */
export const traceHeader = (era: TraceEra, entriesInBuffer: number, entriesWritten: number, onlineCpus: number): string =>
  "# tracer: nop\n#\n" +
  `# entries-in-buffer/entries-written: ${entriesInBuffer}/${entriesWritten}   #P:${onlineCpus}\n#\n` +
  (era === "A" ? LEGEND_A : LEGEND_D).join("\n") +
  "\n"

/** The irq-info flag characters of one record (4 in era A, 5 in era D). */
export const flagChars = (era: TraceEra, flags: number, preemptCount: number): string => {
  const irqsOff = (flags & TraceFlag.IRQS_OFF) !== 0
  let irq: string
  if (era === "D") {
    const bhOff = (flags & TraceFlag.BH_OFF) !== 0
    irq = irqsOff && bhOff ? "D" : irqsOff ? "d" : bhOff ? "b" : (flags & TraceFlag.IRQS_NOSUPPORT) !== 0 ? "X" : "."
  } else {
    irq = irqsOff ? "d" : (flags & TraceFlag.IRQS_NOSUPPORT) !== 0 ? "X" : "."
  }
  const resched = flags & (TraceFlag.NEED_RESCHED | TraceFlag.PREEMPT_RESCHED)
  const need = resched === (TraceFlag.NEED_RESCHED | TraceFlag.PREEMPT_RESCHED) ? "N" : resched === TraceFlag.NEED_RESCHED ? "n" : resched !== 0 ? "p" : "."
  const nmi = (flags & TraceFlag.NMI) !== 0
  const hard = (flags & TraceFlag.HARDIRQ) !== 0
  const soft = (flags & TraceFlag.SOFTIRQ) !== 0
  const context = nmi && hard ? "Z" : nmi ? "z" : hard && soft ? "H" : hard ? "h" : soft ? "s" : "."
  if (era === "A") return irq + need + context + (preemptCount !== 0 ? preemptCount.toString(16) : ".")
  const depth = preemptCount & 0xf
  const migrate = preemptCount >> 4
  return irq + need + context + (depth !== 0 ? depth.toString(16) : ".") + (migrate !== 0 ? migrate.toString(16) : ".")
}

// Consecutive events usually share their second: its text is kept between calls.
let cachedSecs = -1
let cachedSecsText = ""

/** `%5lu.%06lu` of a nanosecond time, microseconds rounded to nearest (ns2usecs). */
export const formatSecondsUs = (ns: number): string => {
  const us = Math.floor((ns + 500) / 1000)
  const secs = Math.floor(us / 1_000_000)
  const rem = us - secs * 1_000_000
  if (secs !== cachedSecs) {
    const s = String(secs)
    cachedSecs = secs
    cachedSecsText = (s.length < 5 ? "     ".slice(s.length) + s : s) + "."
  }
  const r = String(rem)
  return cachedSecsText + (r.length < 6 ? "000000".slice(r.length) + r : r)
}

/** The timestamp column of an event line with its `: ` separator. */
export const formatStampColumn = (ns: number): string => formatSecondsUs(ns) + ": "

/** comm as trace_find_cmdline prints it: `<idle>` for pid 0, `<...>` when unknown, at most 15 characters. */
export const commForDisplay = (pid: number, comm: string | undefined): string => {
  if (pid === 0) return "<idle>"
  if (comm === undefined) return "<...>"
  return comm.length > 15 ? comm.slice(0, 15) : comm
}

/** The `comm-pid [cpu] ` part (before the flags). */
export const taskColumns = (era: TraceEra, comm: string, pid: number, cpu: number): string => {
  const c = comm.length < 16 ? " ".repeat(16 - comm.length) + comm : comm
  const p = String(pid)
  const width = era === "A" ? 5 : 7
  const cpuText = cpu < 10 ? "00" + cpu : cpu < 100 ? "0" + cpu : String(cpu)
  return c + "-" + (p.length < width ? p + " ".repeat(width - p.length) : p) + " [" + cpuText + "] "
}
