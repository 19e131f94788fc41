// Reading the text of /sys/kernel/debug/tracing/trace back: lines as ftrace prints them
// ("TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: MESSAGE"), filters by host CPU, vCPU and event for
// `kvmsim trace show`, and the per-event / per-exit-reason summary of `kvmsim trace report`.

export interface TraceRecord {
  readonly line: string
  readonly comm: string
  readonly pid: number
  readonly cpu: number
  readonly timestamp: number
  /** The tracepoint (kvm_exit, …) or, for trace_printk, the function that printed. */
  readonly event: string
  readonly message: string
}

const linePattern = /^\s*(.+)-(\d+)\s+\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+):\s+([A-Za-z0-9_]+):\s?(.*)$/

export const parseTraceText = (text: string): { header: Array<string>; records: Array<TraceRecord> } => {
  const header: Array<string> = []
  const records: Array<TraceRecord> = []
  for (const line of text.split("\n")) {
    if (line === "") continue
    if (line.startsWith("#")) {
      header.push(line)
      continue
    }
    const m = linePattern.exec(line)
    if (m === null) continue
    records.push({ line, comm: m[1]!.trim(), pid: Number(m[2]), cpu: Number(m[3]), timestamp: Number(m[4]), event: m[5]!, message: m[6]! })
  }
  return { header, records }
}

/**
 * vCPU id of each vCPU thread (trace show --vcpu needs one of these in the file): from kvm_entry's "vcpu N", from 6.x thread names "CPU N/KVM", and
 * from the homework's "vcpu id: N" followed by "pid: P" blocks.
 */
export const vcpuThreads = (records: ReadonlyArray<TraceRecord>): Map<number, number> => {
  const byPid = new Map<number, number>()
  let lastVcpuId: number | undefined
  for (const r of records) {
    // kvm_entry prints "vcpu N" in every era, kvm_exit from 5.x on ("vcpu N reason …").
    const entry = r.event === "kvm_entry" || r.event === "kvm_exit" ? /^vcpu (\d+)/.exec(r.message) : null
    if (entry !== null) byPid.set(r.pid, Number(entry[1]))
    const named = /^CPU (\d+)\/KVM$/.exec(r.comm)
    if (named !== null) byPid.set(r.pid, Number(named[1]))
    const id = /^vcpu id: (\d+)$/.exec(r.message)
    if (id !== null) lastVcpuId = Number(id[1])
    const pid = /^pid: (\d+)$/.exec(r.message)
    if (pid !== null && lastVcpuId !== undefined && !byPid.has(Number(pid[1]))) byPid.set(Number(pid[1]), lastVcpuId)
  }
  return byPid
}

export interface TraceFilter {
  readonly cpu?: number
  readonly vcpu?: number
  /** Event names (kvm_exit, kvm_emulate_hypercall, …); a record matches any of them. */
  readonly events?: ReadonlyArray<string>
}

export const filterTrace = (records: ReadonlyArray<TraceRecord>, filter: TraceFilter): Array<TraceRecord> => {
  const threads = filter.vcpu === undefined ? undefined : vcpuThreads(records)
  return records.filter(
    (r) =>
      (filter.cpu === undefined || r.cpu === filter.cpu) &&
      (threads === undefined || threads.get(r.pid) === filter.vcpu) &&
      (filter.events === undefined || filter.events.length === 0 || filter.events.includes(r.event)),
  )
}

/** Counts per event, per host CPU, per vCPU thread and per exit reason, as a text report. */
export const traceReport = (records: ReadonlyArray<TraceRecord>): string => {
  const count = <K>(key: (r: TraceRecord) => K | undefined): Map<K, number> => {
    const m = new Map<K, number>()
    for (const r of records) {
      const k = key(r)
      if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1)
    }
    return m
  }
  const threads = vcpuThreads(records)
  const table = <K>(title: string, label: string, m: Map<K, number>, name: (k: K) => string): string => {
    if (m.size === 0) return ""
    const rows = [...m].sort((a, b) => b[1] - a[1] || (String(a[0]) < String(b[0]) ? -1 : 1))
    const total = rows.reduce((s, [, n]) => s + n, 0)
    return (
      `# ${title}\n${label.padEnd(40)} ${"count".padStart(10)} ${"%".padStart(6)}\n` +
      rows.map(([k, n]) => `${name(k).padEnd(40)} ${String(n).padStart(10)} ${((100 * n) / total).toFixed(1).padStart(6)}\n`).join("") +
      "\n"
    )
  }
  const first = records[0]
  const last = records.at(-1)
  const span = first === undefined || last === undefined ? 0 : last.timestamp - first.timestamp
  return (
    `# ${records.length} records, ${span.toFixed(6)} s from the first to the last\n\n` +
    table("events", "event", count((r) => r.event), String) +
    table("host CPUs", "cpu", count((r) => r.cpu), (c) => `CPU ${c}`) +
    table("vCPU threads", "vcpu (thread)", count((r) => r.pid), (pid) => `${threads.has(pid) ? `vcpu ${threads.get(pid)}` : "-"} (${records.find((r) => r.pid === pid)?.comm ?? "?"}-${pid})`) +
    table("VM exits by reason", "reason", count((r) => (r.event === "kvm_exit" ? (/^reason (\S+)/.exec(r.message)?.[1] ?? "?") : undefined)), String) +
    table("hypercalls", "nr", count((r) => (r.event === "kvm_hypercall" ? (/^nr 0x([0-9a-f]+)/.exec(r.message)?.[1] ?? "?") : undefined)), (k) => `0x${k}`)
  ).replace(/\n+$/, "\n")
}
