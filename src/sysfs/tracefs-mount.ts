// Mounts the trace subsystem's tracefs (src/trace TraceFs) at /sys/kernel/tracing, with the
// same tree reachable at /sys/kernel/debug/tracing (the automount inside debugfs): one
// instance, two paths. Each file keeps its TraceFs handle per open description, so `trace`
// is a snapshot per open, `trace_pipe` consumes, and `echo > trace` (O_TRUNC) clears.

import { Effect } from "effect"
import type { TraceFs, TraceFsCaller, TraceFsHandle } from "../trace/tracefs.ts"
import { EBADF } from "./errno.ts"
import { attach, DirNode, type FileOps, FileNode, type OpenFile, permanent } from "./nodes.ts"
import type { PseudoFs } from "./pseudo-fs.ts"

const handleOf = (file: OpenFile): TraceFsHandle | undefined => file.private as TraceFsHandle | undefined

const opsFor = (traceFs: TraceFs, path: string): FileOps => ({
  open: (file) => {
    const caller: TraceFsCaller = { pid: file.cred.pid ?? 0, cpu: file.cred.cpu ?? 0 }
    const opened = traceFs.open(path, file.flags, caller)
    if (typeof opened === "number") return opened
    file.private = opened
    return 0
  },
  read: (file, _offset, count) => handleOf(file)?.read(count) ?? -EBADF,
  write: (file, text) => handleOf(file)?.write(text) ?? -EBADF,
  release: (file) => handleOf(file)?.close(),
  readWait: (file, count) => {
    const handle = handleOf(file)
    if (handle?.readWait !== undefined) return handle.readWait(count)
    return Effect.sync(() => {
      const r = handle?.read(count) ?? -EBADF
      return typeof r === "string" ? r : ""
    })
  },
})

/**
 * Fills the tracefs mount point (/sys/kernel/tracing, mode 0700) from `traceFs`'s listing and
 * makes /sys/kernel/debug/tracing the same directory.
 */
export const mountTracefs = (fs: PseudoFs, traceFs: TraceFs): DirNode => {
  const root = fs.mkdirs("/sys/kernel/tracing", 0o700)
  const dirs = new Map<string, DirNode>([["", root]])
  for (const entry of traceFs.list()) {
    if (entry.path === "") continue
    const slash = entry.path.lastIndexOf("/")
    const parent = dirs.get(slash < 0 ? "" : entry.path.slice(0, slash))
    if (parent === undefined) throw new Error(`tracefs listing: ${entry.path} comes before its directory`)
    const name = entry.path.slice(slash + 1)
    if (entry.kind === "dir") {
      const dir = new DirNode(name, entry.mode, permanent)
      attach(parent, dir)
      dirs.set(entry.path, dir)
    } else {
      // show/store stay undefined: every access goes through the file's own operations.
      const file = new FileNode(name, entry.mode, permanent, undefined, undefined)
      file.size = 0
      file.kernfsModeChecks = false
      file.ops = opsFor(traceFs, entry.path)
      attach(parent, file)
    }
  }
  const debug = fs.mkdirs("/sys/kernel/debug", 0o700)
  debug.children.set("tracing", root)
  return root
}
