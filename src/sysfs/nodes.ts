import type { Effect } from "effect"

// The pseudo-filesystem's nodes: directories, attribute files and symlinks, plus the
// "active reference" bookkeeping kernfs uses so that removing an object can wait for the
// show/store calls that are still running on it.

export const PAGE_SIZE = 4096

/** Runs a synchronous access somewhere (another CPU, a scheduled point) and yields its result. */
export type Executor = <A>(work: () => A) => Effect.Effect<A>

/** A show callback: the attribute's text (ASCII, one value, < PAGE_SIZE), or a negative errno. */
export type Show = () => string | number
/** A store callback: receives the written text; returns the bytes consumed or a negative errno. */
export type Store = (text: string) => number

export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000

export const O_RDONLY = 0
export const O_WRONLY = 1
export const O_RDWR = 2
export const O_ACCMODE = 3
export const O_TRUNC = 0o1000
export const O_APPEND = 0o2000
export const O_NONBLOCK = 0o4000
export const O_DIRECTORY = 0o200000

/** Who is asking: root (uid 0) bypasses permission bits, as CAP_DAC_OVERRIDE does. */
export interface Cred {
  readonly uid: number
  readonly gid: number
  /** The calling task's pid and CPU, where a file records them (trace_marker); default 0. */
  readonly pid?: number
  readonly cpu?: number
}
export const ROOT: Cred = { uid: 0, gid: 0 }
export const userCred = (uid = 1000, gid = uid): Cred => ({ uid, gid })

export interface Stat {
  readonly kind: "dir" | "file" | "link"
  readonly ino: number
  /** File type and permission bits, as st_mode. */
  readonly mode: number
  readonly nlink: number
  readonly uid: number
  readonly gid: number
  readonly size: number
}

/** One open file description. */
export class OpenFile {
  offset = 0
  /** The text show() produced for the read session that started at offset 0. */
  text: string | undefined = undefined
  closed = false
  /** Per-open state of files with their own operations (the kernel's file->private_data). */
  private: unknown = undefined
  constructor(
    readonly node: FileNode | DirNode,
    readonly flags: number,
    readonly cred: Cred,
    readonly path: string,
  ) {}
  get readable(): boolean {
    return (this.flags & O_ACCMODE) !== O_WRONLY
  }
  get writable(): boolean {
    return (this.flags & O_ACCMODE) !== O_RDONLY
  }
}

/**
 * Per-file operations for files that are not plain show/store attributes (tracefs's trace,
 * trace_pipe, trace_marker): they keep per-open state in `file.private`.
 */
export interface FileOps {
  /** Called when the file is opened; a negative errno refuses the open (e.g. EBUSY). */
  readonly open?: (file: OpenFile) => number
  /** Called when the description is closed. */
  readonly release?: (file: OpenFile) => void
  /** A read at the file's position: the next text ("" at EOF) or -errno. */
  readonly read?: (file: OpenFile, offset: number, count: number) => string | number
  /** A write: bytes accepted or -errno. */
  readonly write?: (file: OpenFile, text: string) => number
  /** A read that waits for data instead of returning -EAGAIN (trace_pipe without O_NONBLOCK). */
  readonly readWait?: (file: OpenFile, count: number) => Effect.Effect<string>
}

let nextIno = 1
const allocIno = (): number => nextIno++

/**
 * Accesses in flight on one object (kernfs's active count) and whether new ones are refused.
 * Removal first deactivates (new opens/reads/writes fail), then waits until `active` drains.
 */
export class Activity {
  /**
   * Where the Effect path runs this object's show/store: by default right away; vmcsctl-like
   * objects may run them on another processor (and tests insert scheduling points here).
   */
  executor: Executor | undefined = undefined
  active = 0
  deactivated = false
  /** The object's nodes have been unlinked from the tree. */
  removed = false
  private waiters: Array<() => void> = []

  /** kernfs_get_active: false once removal has begun. */
  tryGet(): boolean {
    if (this.deactivated) return false
    this.active++
    return true
  }

  /** kernfs_put_active: wakes a waiting removal when the last access leaves. */
  put(): void {
    this.active--
    if (this.active === 0 && this.waiters.length > 0) {
      const waiters = this.waiters
      this.waiters = []
      for (const wake of waiters) wake()
    }
  }

  /** Calls `drained` once no access is in flight (immediately if none is). */
  whenDrained(drained: () => void): void {
    if (this.active === 0) drained()
    else this.waiters.push(drained)
  }
}

/** Liveness shared by nodes that never go away (the mount roots). */
export const permanent = new Activity()

interface NodeCommon {
  readonly name: string
  readonly ino: number
  mode: number
  uid: number
  gid: number
  parent: DirNode | undefined
  readonly activity: Activity
}

/** Generates a directory's entries on demand (/proc/<pid>, debugfs statistics, …). */
export interface DynamicEntries {
  /** Names currently present, in any order (ls sorts). */
  readonly list: () => Iterable<string>
  /** The node for `name`, or undefined if it does not exist now. */
  readonly lookup: (name: string, parent: DirNode) => Node | undefined
}

export class DirNode implements NodeCommon {
  readonly kind = "dir" as const
  readonly ino = allocIno()
  uid = 0
  gid = 0
  parent: DirNode | undefined = undefined
  readonly children = new Map<string, Node>()
  dynamic: DynamicEntries | undefined = undefined
  constructor(
    readonly name: string,
    public mode: number,
    readonly activity: Activity,
  ) {}
}

export class FileNode implements NodeCommon {
  readonly kind = "file" as const
  readonly ino = allocIno()
  uid = 0
  gid = 0
  parent: DirNode | undefined = undefined
  /** What stat reports: sysfs attributes report PAGE_SIZE. */
  size = PAGE_SIZE
  ops: FileOps | undefined = undefined
  /**
   * kernfs (sysfs) refuses to open for writing a file without write bits, even for root; other
   * filesystems (tracefs, debugfs, proc) only apply the permission check root bypasses.
   */
  kernfsModeChecks = true
  constructor(
    readonly name: string,
    public mode: number,
    readonly activity: Activity,
    readonly show: Show | undefined,
    readonly store: Store | undefined,
  ) {}
}

export class LinkNode implements NodeCommon {
  readonly kind = "link" as const
  readonly ino = allocIno()
  uid = 0
  gid = 0
  mode = 0o777
  parent: DirNode | undefined = undefined
  constructor(
    readonly name: string,
    readonly target: string,
    readonly activity: Activity,
  ) {}
}

export type Node = DirNode | FileNode | LinkNode

/** Adds `child` under `dir`; false if the name is taken (the caller reports EEXIST). */
export const attach = (dir: DirNode, child: Node): boolean => {
  if (dir.children.has(child.name)) return false
  child.parent = dir
  dir.children.set(child.name, child)
  return true
}
