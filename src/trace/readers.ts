// The two ways of reading the trace. `trace` (and per_cpu/cpuN/trace) is a snapshot iterator:
// each open walks everything readable, merged across CPUs by time stamp, and changes no
// counter. `trace_pipe` consumes: each line printed is removed from the buffer, and lost
// events are announced. Both produce text in chunks, a read at a time, like seq_file.

import { Effect, Stream } from "effect"
import { LineBytes } from "./line-bytes.ts"
import { traceHeader } from "./output.ts"
import { EventCursor, RingIterator } from "./ring-buffer.ts"
import { LinePrefixes, type Tracer } from "./tracer.ts"

/** Makes a string built by many concatenations flat, so that later operations on it are cheap (V8 flattens on indexing). */
const flatten = (s: string): string => {
  if (s.length > 0 && s.charCodeAt(s.length >> 1) < 0) return ""
  return s
}

/**
 * The buffer every reader formats into. Sharing it is safe because a fill runs to its end
 * synchronously and turns the bytes into a string before returning; it keeps its size between
 * reads so that large reads do not grow a fresh buffer each time.
 */
const sharedLineBytes = new LineBytes()
/** Largest buffer kept after a whole-file read (bigger ones are let go). */
const RETAINED_BYTES = 32 << 20

/** A trace_pipe read returns at most PAGE_SIZE − 1 bytes (tracing_read_pipe). */
export const PIPE_READ_MAX = 4095
export const EAGAIN = 11

/** An open `trace` or `per_cpu/cpuN/trace`: a fresh iterator over what is readable at open. */
export class TraceSnapshotReader {
  private readonly cpus: ReadonlyArray<number>
  private readonly iterators: Array<RingIterator>
  private readonly cursors: Array<EventCursor>
  private readonly valid: Uint8Array
  private readonly started: Uint8Array
  private readonly annotate: boolean
  /** Text made but not yet returned (the header, or a line that did not fit the last read). */
  private pending: string
  private printed = 0
  private finished = false
  private closed = false
  private readonly comms = new Map<number, string>()
  private readonly prefixes = new LinePrefixes()
  private readonly out = sharedLineBytes

  constructor(
    private readonly tracer: Tracer,
    cpu?: number,
  ) {
    this.cpus = cpu === undefined ? Array.from({ length: tracer.cpuCount }, (_, i) => i) : [cpu]
    // 5.0 era: an open `trace` stops recording until it is closed (tracing_stop_tr).
    if (tracer.era === "A") tracer.pauseRecording()
    this.iterators = this.cpus.map((c) => new RingIterator(tracer.rings[c]!))
    this.cursors = this.cpus.map(() => new EventCursor())
    this.valid = new Uint8Array(this.cpus.length)
    this.started = new Uint8Array(tracer.cpuCount)
    this.annotate = tracer.rings.some((r) => r.overrun > 0)
    this.iterators.forEach((it) => it.ring.iterReset(it))
    const { inBuffer, written } = tracer.totals()
    this.pending = traceHeader(tracer.era, inBuffer, written, tracer.cpuCount)
  }

  /** Up to `maxBytes` characters of the file (whole lines when they fit); "" at the end. */
  read(maxBytes: number): string {
    if (this.closed) return ""
    let out = this.pending
    if (out.length > maxBytes) {
      this.pending = out.slice(maxBytes)
      return out.slice(0, maxBytes)
    }
    this.pending = ""
    if (!this.finished) out = this.fill(out, maxBytes)
    return flatten(out)
  }

  /** The whole remaining text. */
  readAll(): string {
    if (this.closed) return ""
    // The concatenation of every read(): formatted in one pass, made into one string at the end.
    let text = this.pending
    this.pending = ""
    if (!this.finished) text = this.fill(text, Number.POSITIVE_INFINITY)
    this.out.release(RETAINED_BYTES)
    return text
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.tracer.era === "A") this.tracer.resumeRecording()
  }

  /**
   * Appends lines to `text` while they fit in `maxBytes`; the first that does not waits in
   * `pending`. Lines are formatted as bytes into `out` (which follows `text`); a line that
   * cannot be (a character beyond Latin-1) is made as a string and appended to `text`.
   */
  private fill(text: string, maxBytes: number): string {
    const tracer = this.tracer
    const out = this.out
    out.length = 0
    const n = this.cpus.length
    this.valid.fill(0)
    for (;;) {
      let best = -1
      let bestTs = 0
      for (let i = 0; i < n; i++) {
        if (this.valid[i] === 0) {
          const it = this.iterators[i]!
          if (!it.ring.iterPeek(it, this.cursors[i]!)) continue
          this.valid[i] = 1
        }
        const ts = this.cursors[i]!.ts
        if (best < 0 || ts < bestTs) {
          best = i
          bestTs = ts
        }
      }
      if (best < 0) {
        this.finished = true
        return text + out.text(0, out.length)
      }
      const cpu = this.cpus[best]!
      const it = this.iterators[best]!
      const cursor = this.cursors[best]!
      // The annotations print before the line: lost events first, then buffer started.
      let annotation = ""
      if (it.lostEvents && tracer.era === "D") annotation = `CPU:${cpu} [LOST EVENTS]\n`
      it.lostEvents = false
      if (this.annotate && this.started[cpu] === 0) {
        this.started[cpu] = 1
        // The first two lines of the listing never get the annotation (iter->idx > 1).
        if (this.printed > 1) annotation += `##### CPU ${cpu} buffer started ####\n`
      }
      this.printed++
      const lineStart = out.length
      if (annotation !== "") out.latin1(annotation)
      const fast = tracer.appendLine(out, cpu, cursor, this.prefixes)
      it.ring.iterAdvance(it)
      this.valid[best] = 0
      if (fast) {
        if (text.length + out.length > maxBytes) {
          if (text.length + lineStart === 0) {
            const line = out.text(0, out.length)
            this.pending = line.slice(maxBytes)
            return line.slice(0, maxBytes)
          }
          this.pending = out.text(lineStart, out.length)
          return text + out.text(0, lineStart)
        }
        continue
      }
      const line = annotation + tracer.formatLine(cpu, cursor, this.comms)
      text += out.text(0, lineStart)
      out.length = 0
      if (text.length + line.length > maxBytes) {
        if (text === "") {
          this.pending = line.slice(maxBytes)
          return line.slice(0, maxBytes)
        }
        this.pending = line
        return text
      }
      text += line
    }
  }
}

/** An open `trace_pipe` or `per_cpu/cpuN/trace_pipe`: consumes what it prints. */
export class TracePipeReader {
  private readonly cpus: ReadonlyArray<number>
  private readonly cursor = new EventCursor()
  private pending = ""
  /** Whether a read has returned data (after which an empty buffer with tracing off is EOF). */
  private returnedData = false
  private readonly comms = new Map<number, string>()
  private readonly prefixes = new LinePrefixes()
  private readonly out = sharedLineBytes

  constructor(
    private readonly tracer: Tracer,
    cpu?: number,
  ) {
    this.cpus = cpu === undefined ? Array.from({ length: tracer.cpuCount }, (_, i) => i) : [cpu]
  }

  /** Whether a read now would find nothing. */
  get empty(): boolean {
    if (this.pending !== "") return false
    for (const c of this.cpus) if (this.tracer.rings[c]!.peek(this.cursor)) return false
    return true
  }

  /**
   * A non-blocking read of at most `maxBytes` (and at most 4095) characters of whole lines:
   * the text, "" for end of file (empty after data was returned, and tracing_on is 0), or
   * -EAGAIN when the buffer is empty and a blocking reader would wait.
   */
  read(maxBytes: number): string | number {
    const limit = Math.max(1, Math.min(maxBytes, PIPE_READ_MAX))
    if (this.pending !== "") return this.takePending(limit)
    const text = this.consumeLines(limit)
    if (text !== "") {
      this.returnedData = true
      return text
    }
    if (this.returnedData && !this.tracer.tracingOn) return ""
    return -EAGAIN
  }

  /** A blocking read: waits until there is data (or end of file). */
  readWait(maxBytes: number = PIPE_READ_MAX): Effect.Effect<string> {
    return Effect.suspend(() => {
      const r = this.read(maxBytes)
      if (typeof r === "string") return Effect.succeed(r)
      return Effect.flatMap(
        Effect.callback<void>((resume) => {
          const cancel = this.tracer.onNextCommit(() => resume(Effect.void))
          return Effect.sync(cancel)
        }),
        () => this.readWait(maxBytes),
      )
    })
  }

  /** Everything the pipe will ever yield, chunk by chunk; blocks while empty, ends at end of file. */
  stream(maxBytes: number = PIPE_READ_MAX): Stream.Stream<string> {
    return Stream.unfold(undefined, () =>
      Effect.map(this.readWait(maxBytes), (chunk) => (chunk === "" ? undefined : ([chunk, undefined] as const))),
    )
  }

  private takePending(limit: number): string {
    const out = this.pending.slice(0, limit)
    this.pending = this.pending.slice(limit)
    return out
  }

  /** Consumes whole lines while they fit in `limit` (formatted as bytes, as in TraceSnapshotReader.fill). */
  private consumeLines(limit: number): string {
    const tracer = this.tracer
    const cursor = this.cursor
    const out = this.out
    out.length = 0
    let text = ""
    for (;;) {
      let best = -1
      let bestTs = 0
      for (let i = 0; i < this.cpus.length; i++) {
        const ring = tracer.rings[this.cpus[i]!]!
        if (!ring.peek(cursor)) continue
        if (best < 0 || cursor.ts < bestTs) {
          best = i
          bestTs = cursor.ts
        }
      }
      if (best < 0) break
      const cpu = this.cpus[best]!
      const ring = tracer.rings[cpu]!
      ring.peek(cursor)
      const lineStart = out.length
      if (cursor.lost > 0) out.latin1(`CPU:${cpu} [LOST ${cursor.lost} EVENTS]\n`)
      if (tracer.appendLine(out, cpu, cursor, this.prefixes)) {
        if (text.length + out.length > limit) {
          if (text.length + lineStart !== 0) {
            out.length = lineStart
            break
          }
          // A single line longer than the read: hand it out in pieces.
          ring.consume()
          const line = out.text(0, out.length)
          this.pending = line.slice(limit)
          return line.slice(0, limit)
        }
        ring.consume()
        continue
      }
      out.length = lineStart
      let line = tracer.formatLine(cpu, cursor, this.comms)
      if (cursor.lost > 0) line = `CPU:${cpu} [LOST ${cursor.lost} EVENTS]\n` + line
      text += out.text(0, lineStart)
      out.length = 0
      if (text.length + line.length > limit) {
        if (text !== "") break
        ring.consume()
        this.pending = line.slice(limit)
        return line.slice(0, limit)
      }
      ring.consume()
      text += line
    }
    return text + out.text(0, out.length)
  }
}
