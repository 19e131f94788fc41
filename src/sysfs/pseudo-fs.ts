// The pseudo-filesystem's system calls: path resolution, ls, stat, open, read, write, close,
// with Linux's errno for every failure. Synchronous and allocation-light: a read of an open
// attribute is one show() call. Failures are returned as negative errno numbers.

import {
  EACCES,
  EBADF,
  EEXIST,
  EINVAL,
  EIO,
  EISDIR,
  ELOOP,
  ENAMETOOLONG,
  ENODEV,
  ENOENT,
  ENOTDIR,
} from "./errno.ts"
import {
  type Activity,
  attach,
  DirNode,
  FileNode,
  LinkNode,
  type Node,
  PAGE_SIZE,
  permanent,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  type Cred,
  O_ACCMODE,
  O_APPEND,
  O_DIRECTORY,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  OpenFile,
  ROOT,
  type Stat,
  userCred,
} from "./nodes.ts"

export { O_ACCMODE, O_APPEND, O_DIRECTORY, O_NONBLOCK, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, ROOT, userCred }
export type { Cred, Stat }

const MAX_SYMLINKS = 40
const NAME_MAX = 255
const PATH_MAX = 4096

const permits = (node: Node, cred: Cred, want: number): boolean => {
  if (cred.uid === 0) return true
  const bits = cred.uid === node.uid ? node.mode >> 6 : cred.gid === node.gid ? node.mode >> 3 : node.mode
  return (bits & want) === want
}

const typeBits = (node: Node): number =>
  node.kind === "dir" ? S_IFDIR : node.kind === "file" ? S_IFREG : S_IFLNK

export class PseudoFs {
  readonly root = new DirNode("", 0o755, permanent)
  /** Kernel log lines (what dmesg would show): warnings about misbehaving attributes. */
  readonly kernelLog: Array<string> = []
  private readonly files: Array<OpenFile | undefined> = []

  // ---- path resolution -------------------------------------------------------------------

  /** Finds a child, static or generated; undefined if absent. */
  child(dir: DirNode, name: string): Node | undefined {
    const found = dir.children.get(name)
    if (found !== undefined) return found
    return dir.dynamic?.lookup(name, dir)
  }

  /**
   * Resolves an absolute path (relative paths are taken from "/"). Symlinks in the middle are
   * always followed; the last one only if `followLast`. Returns the node or -errno.
   */
  resolve(path: string, cred: Cred = ROOT, followLast = true): Node | number {
    if (path.length === 0) return -ENOENT
    if (path.length >= PATH_MAX) return -ENAMETOOLONG
    let queue = path.split("/")
    const mustBeDir = path.endsWith("/")
    let index = 0
    let links = 0
    const stack: Array<Node> = [this.root]
    while (index < queue.length) {
      const component = queue[index++]!
      if (component === "" || component === ".") continue
      const current = stack[stack.length - 1]!
      if (current.kind !== "dir") return -ENOTDIR
      if (!permits(current, cred, 1)) return -EACCES
      if (component === "..") {
        if (stack.length > 1) stack.pop()
        continue
      }
      if (component.length > NAME_MAX) return -ENAMETOOLONG
      const next = this.child(current, component)
      if (next === undefined) return -ENOENT
      if (next.kind === "link" && (followLast || mustBeDir || !this.onlyDotsFrom(queue, index))) {
        if (++links > MAX_SYMLINKS) return -ELOOP
        if (next.target.startsWith("/")) stack.length = 1
        queue = [...next.target.split("/"), ...queue.slice(index)]
        index = 0
        continue
      }
      stack.push(next)
    }
    const found = stack[stack.length - 1]!
    if (mustBeDir && found.kind !== "dir") return -ENOTDIR
    return found
  }

  private onlyDotsFrom(components: ReadonlyArray<string>, start: number): boolean {
    for (let i = start; i < components.length; i++) {
      const c = components[i]
      if (c !== "" && c !== ".") return false
    }
    return true
  }

  /** The directory at `path`, or -errno (ENOTDIR if it is something else). */
  directory(path: string, cred: Cred = ROOT): DirNode | number {
    const node = this.resolve(path, cred)
    if (typeof node === "number") return node
    return node.kind === "dir" ? node : -ENOTDIR
  }

  // ---- building the tree (used by kobjects and mounts) -----------------------------------

  /** Creates (or returns the existing) directory chain for an absolute path. */
  mkdirs(path: string, mode = 0o755, activity: Activity = permanent): DirNode {
    let dir = this.root
    for (const component of path.split("/")) {
      if (component === "") continue
      const existing = dir.children.get(component)
      if (existing !== undefined) {
        if (existing.kind !== "dir") throw new Error(`mkdirs(${path}): ${component} is not a directory`)
        dir = existing
        continue
      }
      const created = new DirNode(component, mode, activity)
      attach(dir, created)
      dir = created
    }
    return dir
  }

  /** Puts a ready-made node (e.g. another filesystem's root) at `parent/name`; -EEXIST if taken. */
  mount(parentPath: string, node: DirNode): number {
    const parent = this.mkdirs(parentPath)
    if (parent.children.has(node.name)) return -EEXIST
    attach(parent, node)
    return 0
  }

  // ---- listing and stat -------------------------------------------------------------------

  /** Sorted entry names of a directory (what `ls` prints), or -errno. */
  ls(path: string, cred: Cred = ROOT): Array<string> | number {
    const node = this.resolve(path, cred)
    if (typeof node === "number") return node
    if (node.kind !== "dir") return [node.name]
    if (!permits(node, cred, 4)) return -EACCES
    return this.entries(node)
  }

  /** Sorted names in a directory node (static and generated). */
  entries(dir: DirNode): Array<string> {
    const names = [...dir.children.keys()]
    if (dir.dynamic !== undefined) {
      for (const name of dir.dynamic.list()) if (!dir.children.has(name)) names.push(name)
    }
    return names.sort()
  }

  stat(path: string, cred: Cred = ROOT): Stat | number {
    const node = this.resolve(path, cred, true)
    return typeof node === "number" ? node : this.statOf(node)
  }

  lstat(path: string, cred: Cred = ROOT): Stat | number {
    const node = this.resolve(path, cred, false)
    return typeof node === "number" ? node : this.statOf(node)
  }

  readlink(path: string, cred: Cred = ROOT): string | number {
    const node = this.resolve(path, cred, false)
    if (typeof node === "number") return node
    return node.kind === "link" ? node.target : -EINVAL
  }

  statOf(node: Node): Stat {
    return {
      kind: node.kind,
      ino: node.ino,
      mode: typeBits(node) | (node.mode & 0o7777),
      nlink: node.kind === "dir" ? 2 + [...node.children.values()].filter((c) => c.kind === "dir").length : 1,
      uid: node.uid,
      gid: node.gid,
      size: node.kind === "file" ? node.size : node.kind === "link" ? node.target.length : 0,
    }
  }

  // ---- open / read / write / close --------------------------------------------------------

  /** open(2): a file descriptor (>= 3), or -errno. */
  open(path: string, flags: number = O_RDONLY, cred: Cred = ROOT): number {
    const node = this.resolve(path, cred)
    if (typeof node === "number") return node
    if (node.kind === "link") return -ELOOP
    const accessMode = flags & O_ACCMODE
    const wantRead = accessMode !== O_WRONLY
    const wantWrite = accessMode !== O_RDONLY
    if (node.kind === "dir") {
      if (wantWrite) return -EISDIR
      if (!permits(node, cred, 4)) return -EACCES
    } else {
      if ((flags & O_DIRECTORY) !== 0) return -ENOTDIR
      // generic_permission first (root passes), then kernfs_fop_open's mode checks. A kobj
      // attribute without show/store opens fine and fails the read/write with EIO, as in Linux.
      if (!permits(node, cred, (wantRead ? 4 : 0) | (wantWrite ? 2 : 0))) return -EACCES
      if (node.kernfsModeChecks) {
        if (wantWrite && (node.mode & 0o222) === 0) return -EACCES
        if (wantRead && (node.mode & 0o444) === 0) return -EACCES
      }
    }
    const file = new OpenFile(node, flags, cred, path)
    if (node.kind === "file") {
      if (!node.activity.tryGet()) return -ENODEV
      try {
        const opened = node.ops?.open?.(file)
        if (opened !== undefined && opened < 0) return opened
      } finally {
        node.activity.put()
      }
    }
    let fd = 3
    while (this.files[fd] !== undefined) fd++
    this.files[fd] = file
    return fd
  }

  /** The open file behind a descriptor, or undefined. */
  file(fd: number): OpenFile | undefined {
    return this.files[fd]
  }

  /** read(2): up to `count` bytes from the file position, "" at end of file, or -errno. */
  read(fd: number, count = PAGE_SIZE): string | number {
    const file = this.files[fd]
    if (file === undefined) return -EBADF
    const result = this.pread(fd, file.offset, count)
    if (typeof result === "string") file.offset += result.length
    return result
  }

  /**
   * pread(2). A read at offset 0 calls show() afresh (as seq_file does for a new read session);
   * later offsets continue the text of that session.
   */
  pread(fd: number, offset: number, count = PAGE_SIZE): string | number {
    const file = this.files[fd]
    if (file === undefined || !file.readable) return -EBADF
    const node = file.node
    if (node.kind === "dir") return -EISDIR
    if (!node.activity.tryGet()) return -ENODEV
    try {
      const streamRead = node.ops?.read
      if (streamRead !== undefined) return streamRead(file, offset, count)
      if (offset === 0 || file.text === undefined) {
        const shown = this.runShow(node)
        if (typeof shown === "number") return shown
        file.text = shown
      }
      const text = file.text
      if (offset >= text.length) return ""
      return offset === 0 && count >= text.length ? text : text.slice(offset, offset + count)
    } finally {
      node.activity.put()
    }
  }

  /** Calls show() with the kernel's checks (no show: EIO; a page or more: truncated + warning). */
  runShow(node: FileNode): string | number {
    const show = node.show
    if (show === undefined) return -EIO
    const shown = show()
    if (typeof shown === "number") return shown < 0 ? shown : -EIO
    if (shown.length >= PAGE_SIZE) {
      this.kernelLog.push(`fill_read_buffer: ${node.name} show returned bad count`)
      return shown.slice(0, PAGE_SIZE - 1)
    }
    return shown
  }

  /**
   * write(2): the text goes to store() in one call (at most one page of it, like kernfs); the
   * result is store's byte count or -errno. An empty write returns 0 without calling store.
   */
  write(fd: number, text: string): number {
    const file = this.files[fd]
    if (file === undefined || !file.writable) return -EBADF
    const node = file.node
    if (node.kind === "dir") return -EISDIR
    if (!node.activity.tryGet()) return -ENODEV
    try {
      const ownWrite = node.ops?.write
      const result = ownWrite !== undefined ? ownWrite(file, text) : this.runStore(node, text)
      if (result > 0) file.offset += result
      return result
    } finally {
      node.activity.put()
    }
  }

  runStore(node: FileNode, text: string): number {
    const store = node.store
    if (store === undefined) return -EIO
    const count = Math.min(text.length, PAGE_SIZE)
    if (count === 0) return 0
    const result = store(count === text.length ? text : text.slice(0, count))
    return result > count ? count : result
  }

  /** lseek(fd, offset, SEEK_SET). */
  seek(fd: number, offset: number): number {
    const file = this.files[fd]
    if (file === undefined) return -EBADF
    if (offset < 0) return -EINVAL
    file.offset = offset
    return offset
  }

  close(fd: number): number {
    const file = this.files[fd]
    if (file === undefined) return -EBADF
    this.files[fd] = undefined
    file.closed = true
    if (file.node.kind === "file") file.node.ops?.release?.(file)
    return 0
  }

  /** Directory entries of an open directory descriptor (getdents), or -errno. */
  readdir(fd: number): Array<string> | number {
    const file = this.files[fd]
    if (file === undefined) return -EBADF
    if (file.node.kind !== "dir") return -ENOTDIR
    if (file.node.activity.removed) return -ENOENT
    return this.entries(file.node)
  }

  // ---- shell-style conveniences -----------------------------------------------------------

  /** `cat path`: open, read to end of file, close. The text or -errno. */
  readFile(path: string, cred: Cred = ROOT): string | number {
    const fd = this.open(path, O_RDONLY, cred)
    if (fd < 0) return fd
    try {
      let out = ""
      for (;;) {
        const chunk = this.read(fd)
        if (typeof chunk === "number") return chunk
        if (chunk === "") return out
        out += chunk
      }
    } finally {
      this.close(fd)
    }
  }

  /** `echo -n text > path` (add "\n" yourself for plain echo): bytes written or -errno. */
  writeFile(path: string, text: string, cred: Cred = ROOT, flags: number = O_WRONLY | O_TRUNC): number {
    const fd = this.open(path, flags, cred)
    if (fd < 0) return fd
    try {
      return this.write(fd, text)
    } finally {
      this.close(fd)
    }
  }

  /** Number of open descriptors (leak checks in tests and diagnostics). */
  openCount(): number {
    return this.files.filter((f) => f !== undefined).length
  }
}

export { DirNode, FileNode, LinkNode, OpenFile }
