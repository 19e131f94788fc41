// The logic of the tracefs files, ready to be mounted at /sys/kernel/tracing and
// /sys/kernel/debug/tracing by the sysfs layer: a listing of every directory and file with
// its mode, and open/read/write/close with Linux's errno numbers and the per-open state the
// kernel keeps (`trace` is a snapshot per open, `trace_pipe` consumes and blocks).

import type { Effect, Stream } from "effect"
import type { TraceEra } from "./events.ts"
import { formatFileText } from "./events.ts"
import { EINVAL, parseDecimalWrite, strip } from "./kstrtox.ts"
import { TracePipeReader, TraceSnapshotReader } from "./readers.ts"
import { PAGE_DATA_BYTES } from "./ring-buffer.ts"
import type { Tracer } from "./tracer.ts"

export const ENOENT = 2
export const EBADF = 9
export const EAGAIN = 11
export const EBUSY = 16
export const EISDIR = 21

export const O_RDONLY = 0
export const O_WRONLY = 1
export const O_RDWR = 2
export const O_TRUNC = 0o1000
export const O_APPEND = 0o2000
export const O_NONBLOCK = 0o4000

export interface TraceFsEntry {
  /** Path below the tracefs root, e.g. "per_cpu/cpu0/stats"; "" is the root. */
  readonly path: string
  readonly kind: "dir" | "file"
  /** Permission bits (0o644, 0o444, 0o220, ...; 0o755 for directories). */
  readonly mode: number
}

/** Who opens a file: trace_marker records carry the writer's pid and the CPU it runs on. */
export interface TraceFsCaller {
  readonly pid: number
  readonly cpu: number
}

/** One open file description. */
export interface TraceFsHandle {
  /** Up to `maxBytes` characters; "" at end of file; or a negative errno (-EINVAL: file not readable, -EAGAIN: trace_pipe empty). */
  read(maxBytes: number): string | number
  /** The bytes accepted, or a negative errno; a rejected write changes nothing. */
  write(data: string): number
  close(): void
  /** trace_pipe only: a read that waits for data (undefined for other files). */
  readonly readWait?: (maxBytes?: number) => Effect.Effect<string>
}

/** The kernel's "header_page" and "header_event" texts for a 64-bit kernel (ftrace.md §5.3). */
export const HEADER_PAGE_TEXT =
  "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n" +
  "\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n" +
  "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n" +
  `\tfield: char data;\toffset:16;\tsize:${PAGE_DATA_BYTES};\tsigned:1;\n`
export const HEADER_EVENT_TEXT =
  "# compressed entry header\n" +
  "\ttype_len    :    5 bits\n" +
  "\ttime_delta  :   27 bits\n" +
  "\tarray       :   32 bits\n" +
  "\n" +
  "\tpadding     : type == 29\n" +
  "\ttime_extend : type == 30\n" +
  "\ttime_stamp : type == 31\n" +
  "\tdata max type_len  == 28\n"

interface FileOps {
  /** Text of a simple attribute, generated when the read starts. */
  readonly show?: () => string
  readonly store?: (text: string, caller: TraceFsCaller) => number
  /** Files with their own open logic (trace, trace_pipe); undefined falls back to show/store. */
  readonly open?: (flags: number, caller: TraceFsCaller) => TraceFsHandle | number | undefined
}

/** Mode bits of tracefs files: 0644/0444 up to 5.16, 0640/0440 from 5.17 (TRACE_MODE_WRITE/READ). */
const modes = (era: TraceEra): { readonly rw: number; readonly ro: number } =>
  era === "A" ? { rw: 0o644, ro: 0o444 } : { rw: 0o640, ro: 0o440 }

export class TraceFs {
  private readonly files = new Map<string, FileOps & { readonly mode: number }>()
  private readonly entries: Array<TraceFsEntry> = []
  /** Open trace_pipe readers per CPU (-1 = all CPUs), for the one-reader rule of 6.x. */
  private readonly pipeOpen = new Set<number>()

  constructor(readonly tracer: Tracer) {
    const { rw, ro } = modes(tracer.era)
    this.dir("")
    this.file("trace", rw, { open: (flags) => this.openTrace(flags, undefined) })
    this.file("trace_pipe", ro, { open: (flags) => this.openPipe(flags, undefined) })
    this.file("tracing_on", rw, { show: () => (tracer.tracingOn ? "1\n" : "0\n"), store: (t) => this.storeTracingOn(t) })
    this.file("trace_marker", 0o220, { store: (t, caller) => this.storeMarker(t, caller) })
    this.file("buffer_size_kb", rw, { show: () => this.bufferSizeText(), store: (t) => this.storeBufferSize(t, undefined) })
    this.file("buffer_total_size_kb", ro, { show: () => this.bufferTotalText() })
    this.file("trace_clock", rw, { show: () => this.clockText(), store: (t) => this.storeClock(t) })
    this.file("current_tracer", rw, { show: () => "nop\n", store: (t) => this.storeTracer(t) })
    this.file("available_tracers", ro, { show: () => "nop\n" })
    this.file("set_event", rw, {
      show: () => this.setEventText(),
      store: (t) => this.storeSetEvent(t),
      open: (flags) => this.openSetEvent(flags),
    })
    this.file("available_events", ro, { show: () => tracer.events.map((e) => `${e.system}:${e.name}\n`).join("") })
    this.dir("options")
    this.file("options/overwrite", rw, { show: () => (tracer.overwrite ? "1\n" : "0\n"), store: (t) => this.storeOverwrite(t) })
    this.dir("per_cpu")
    for (let cpu = 0; cpu < tracer.cpuCount; cpu++) {
      const base = `per_cpu/cpu${cpu}`
      this.dir(base)
      this.file(`${base}/trace`, rw, { open: (flags) => this.openTrace(flags, cpu) })
      this.file(`${base}/trace_pipe`, ro, { open: (flags) => this.openPipe(flags, cpu) })
      this.file(`${base}/stats`, ro, { show: () => tracer.statsText(cpu) })
      this.file(`${base}/buffer_size_kb`, rw, { show: () => `${tracer.sizeKb(cpu)}\n`, store: (t) => this.storeBufferSize(t, cpu) })
    }
    this.dir("events")
    this.file("events/enable", rw, { show: () => this.enableText(tracer.events.map((_, i) => i)), store: (t) => this.storeEnable(t, tracer.events.map((_, i) => i)) })
    this.file("events/header_page", ro, { show: () => HEADER_PAGE_TEXT })
    this.file("events/header_event", ro, { show: () => HEADER_EVENT_TEXT })
    const systems = [...new Set(tracer.events.map((e) => e.system))]
    for (const system of systems) {
      const members = tracer.events.flatMap((e, i) => (e.system === system ? [i] : []))
      this.dir(`events/${system}`)
      this.file(`events/${system}/enable`, rw, { show: () => this.enableText(members), store: (t) => this.storeEnable(t, members) })
      for (const index of members) {
        const event = tracer.events[index]!
        const base = `events/${system}/${event.name}`
        this.dir(base)
        this.file(`${base}/enable`, rw, { show: () => this.enableText([index]), store: (t) => this.storeEnable(t, [index]) })
        this.file(`${base}/format`, ro, { show: () => formatFileText(event) })
        this.file(`${base}/id`, ro, { show: () => `${event.id}\n` })
      }
    }
  }

  /** Every directory and file, parents before children. */
  list(): ReadonlyArray<TraceFsEntry> {
    return this.entries
  }

  /** One entry, or undefined if the path does not exist. */
  stat(path: string): TraceFsEntry | undefined {
    return this.entries.find((e) => e.path === normalize(path))
  }

  /** Names directly inside a directory (like readdir without . and ..), or -ENOENT. */
  readdir(path: string): ReadonlyArray<string> | number {
    const dir = normalize(path)
    const entry = this.stat(dir)
    if (entry === undefined) return -ENOENT
    if (entry.kind !== "dir") return -20 // ENOTDIR
    const prefix = dir === "" ? "" : dir + "/"
    return this.entries
      .filter((e) => e.path !== dir && e.path.startsWith(prefix) && !e.path.slice(prefix.length).includes("/"))
      .map((e) => e.path.slice(prefix.length))
  }

  /**
   * Opens a file with open(2) flags (O_RDONLY/O_WRONLY/O_RDWR, O_TRUNC, O_NONBLOCK). Permission
   * bits are the mounting layer's business; here a read of a file without a read method or a
   * write of one without a write method fails with EINVAL, as in the kernel.
   */
  open(path: string, flags: number, caller: TraceFsCaller = { pid: 0, cpu: 0 }): TraceFsHandle | number {
    const p = normalize(path)
    const ops = this.files.get(p)
    if (ops === undefined) return this.stat(p)?.kind === "dir" ? -EISDIR : -ENOENT
    if (ops.open !== undefined) {
      const opened = ops.open(flags, caller)
      if (opened !== undefined) return opened
    }
    return attributeHandle(ops, flags, caller)
  }

  /** `cat trace_pipe` as a Stream: blocks while empty, ends when tracing is off and the buffer drained. */
  tracePipe(cpu?: number): Stream.Stream<string> {
    return new TracePipeReader(this.tracer, cpu).stream()
  }

  // ---- registration ----

  private dir(path: string): void {
    this.entries.push({ path, kind: "dir", mode: 0o755 })
  }

  private file(path: string, mode: number, ops: FileOps): void {
    this.entries.push({ path, kind: "file", mode })
    this.files.set(path, { ...ops, mode })
  }

  // ---- trace and trace_pipe ----

  private openTrace(flags: number, cpu: number | undefined): TraceFsHandle {
    const access = flags & 3
    if (access !== O_RDONLY && (flags & O_TRUNC) !== 0) this.tracer.clear(cpu)
    const reader = access !== O_WRONLY ? new TraceSnapshotReader(this.tracer, cpu) : undefined
    return {
      read: (max) => (reader === undefined ? -EBADF : reader.read(max)),
      // Writing `trace` does nothing; only O_TRUNC at open clears it.
      write: (data) => (access === O_RDONLY ? -EBADF : data.length),
      close: () => reader?.close(),
    }
  }

  private openPipe(flags: number, cpu: number | undefined): TraceFsHandle | number {
    const key = cpu ?? -1
    if (this.tracer.era === "D") {
      // 6.x allows one trace_pipe reader per CPU; the all-CPU pipe conflicts with every CPU.
      const busy = key === -1 ? this.pipeOpen.size > 0 : this.pipeOpen.has(key) || this.pipeOpen.has(-1)
      if (busy) return -EBUSY
      this.pipeOpen.add(key)
    }
    const reader = new TracePipeReader(this.tracer, cpu)
    const nonblock = (flags & O_NONBLOCK) !== 0
    let closed = false
    return {
      read: (max) => {
        const r = reader.read(max)
        return typeof r === "number" && !nonblock ? -EAGAIN : r
      },
      write: () => -EINVAL,
      close: () => {
        if (closed) return
        closed = true
        this.pipeOpen.delete(key)
      },
      readWait: (max) => reader.readWait(max),
    }
  }

  // ---- attribute stores ----

  private storeTracingOn(text: string): number {
    const v = parseDecimalWrite(text)
    if (v < 0) return v
    this.tracer.tracingOn = v !== 0
    return text.length
  }

  private storeOverwrite(text: string): number {
    const v = parseDecimalWrite(text)
    if (v < 0) return v
    if (v !== 0 && v !== 1) return -EINVAL
    this.tracer.setOverwrite(v === 1)
    return text.length
  }

  private storeMarker(text: string, caller: TraceFsCaller): number {
    const bytes = new TextEncoder().encode(text)
    const r = this.tracer.writeMarker(caller.cpu, caller.pid, bytes)
    if (r < 0) return r
    // The count is in bytes; for ASCII text it equals the characters accepted.
    return r === bytes.length ? text.length : new TextDecoder().decode(bytes.subarray(0, r)).length
  }

  private bufferSizeText(): string {
    const t = this.tracer
    const first = t.sizeKb(0)
    for (let cpu = 1; cpu < t.cpuCount; cpu++) if (t.rings[cpu]!.pageCount !== t.rings[0]!.pageCount) return "X\n"
    return t.expanded ? `${first}\n` : `${first} (expanded: ${Math.floor(t.defaultBufferBytes / 1024)})\n`
  }

  private bufferTotalText(): string {
    const t = this.tracer
    let total = 0
    for (let cpu = 0; cpu < t.cpuCount; cpu++) total += t.sizeKb(cpu)
    return t.expanded ? `${total}\n` : `${total} (expanded: ${Math.floor(t.defaultBufferBytes / 1024) * t.cpuCount})\n`
  }

  private storeBufferSize(text: string, cpu: number | undefined): number {
    const kb = parseDecimalWrite(text)
    if (kb < 0) return kb
    if (kb === 0) return -EINVAL
    if (!Number.isFinite(kb)) return -12 // ENOMEM
    const r = this.tracer.resizeBytes(kb * 1024, cpu)
    return r < 0 ? r : text.length
  }

  private clockText(): string {
    const t = this.tracer
    return t.availableClocks.map((c) => (c === t.clockName ? `[${c}]` : c)).join(" ") + "\n"
  }

  private storeClock(text: string): number {
    if (text.length >= 64) return -EINVAL
    return this.tracer.setClock(strip(text)) ? text.length : -EINVAL
  }

  private storeTracer(text: string): number {
    if (strip(text) !== "nop") return -EINVAL
    this.tracer.expand()
    return text.length
  }

  private enableText(indices: ReadonlyArray<number>): string {
    const on = indices.filter((i) => this.tracer.eventEnabled[i] === 1).length
    return on === 0 ? "0\n" : on === indices.length ? "1\n" : "X\n"
  }

  private storeEnable(text: string, indices: ReadonlyArray<number>): number {
    const v = parseDecimalWrite(text)
    if (v < 0) return v
    if (v !== 0 && v !== 1) return -EINVAL
    this.tracer.expand()
    for (const i of indices) this.tracer.setEventEnabled(i, v === 1)
    return text.length
  }

  private setEventText(): string {
    const t = this.tracer
    return t.events.flatMap((e, i) => (t.eventEnabled[i] === 1 ? [`${e.system}:${e.name}\n`] : [])).join("")
  }

  private openSetEvent(flags: number): undefined {
    // Opening set_event for writing with O_TRUNC (`echo x > set_event`) disables every event first.
    if ((flags & 3) !== O_RDONLY && (flags & O_TRUNC) !== 0 && (flags & O_APPEND) === 0) {
      for (let i = 0; i < this.tracer.events.length; i++) this.tracer.setEventEnabled(i, false)
    }
    return undefined
  }

  /** `[!][system:]event` tokens; `*` matches anything. Every token is checked before any is applied. */
  private storeSetEvent(text: string): number {
    const t = this.tracer
    const plan: Array<[index: number, on: boolean]> = []
    for (const token of text.split(/\s+/).filter((s) => s !== "")) {
      const on = !token.startsWith("!")
      const spec = on ? token : token.slice(1)
      const [system, event] = spec.includes(":") ? (spec.split(":", 2) as [string, string]) : ["*", spec]
      const matches = t.events.flatMap((e, i) =>
        (system === "*" || system === e.system) && (event === "*" || event === "" || event === e.name) ? [i] : [],
      )
      if (matches.length === 0) return -EINVAL
      for (const i of matches) plan.push([i, on])
    }
    t.expand()
    for (const [i, on] of plan) t.setEventEnabled(i, on)
    return text.length
  }
}

const normalize = (path: string): string => path.replace(/^\/+|\/+$/g, "").replace(/\/+/g, "/")

/** A seq_file-like handle over show/store: the text is made when reading starts at offset 0. */
const attributeHandle = (ops: FileOps, flags: number, caller: TraceFsCaller): TraceFsHandle => {
  const access = flags & 3
  let text: string | undefined
  let offset = 0
  return {
    read: (max) => {
      if (access === O_WRONLY) return -EBADF
      if (ops.show === undefined) return -EINVAL
      if (text === undefined) text = ops.show()
      const chunk = text.slice(offset, offset + max)
      offset += chunk.length
      return chunk
    },
    write: (data) => {
      if (access === O_RDONLY) return -EBADF
      if (ops.store === undefined) return -EINVAL
      return ops.store(data, caller)
    },
    close: () => undefined,
  }
}
