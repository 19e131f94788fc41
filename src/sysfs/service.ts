// The Effect face of the pseudo-filesystem: a Sysfs service holding the tree, tagged errors for
// callers outside the hot path, accesses that may suspend (tracked as in flight), and kobjects
// whose lifetime is a Scope: closing the scope refuses new accesses, waits for those in flight,
// then removes the paths.

import { Context, Data, Effect, Layer, type Scope } from "effect"
import { EAGAIN, EBADF, EISDIR, ENODEV, errnoName, strerror } from "./errno.ts"
import { type AttributeGroup, type KObject, kobjectAt } from "./kobject.ts"
import { type FileNode, PAGE_SIZE } from "./nodes.ts"
import { type Cred, O_NONBLOCK, O_RDONLY, O_TRUNC, O_WRONLY, type PseudoFs, PseudoFs as Fs, ROOT, type Stat } from "./pseudo-fs.ts"

/** A failed file operation: what was attempted, on which path, and the errno it got. */
export class SysfsError extends Data.TaggedError("SysfsError")<{
  readonly syscall: string
  readonly path: string
  readonly errno: number
  readonly code: string
  readonly message: string
}> {}

export const sysfsError = (syscall: string, path: string, negErrno: number): SysfsError => {
  const errno = Math.abs(negErrno)
  return new SysfsError({
    syscall,
    path,
    errno,
    code: errnoName(errno),
    message: `${syscall} ${path}: ${strerror(errno)} (${errnoName(errno)})`,
  })
}

const orFail = <A>(syscall: string, path: string, value: A | number): Effect.Effect<A, SysfsError> =>
  typeof value === "number" && value < 0 ? Effect.fail(sysfsError(syscall, path, value)) : Effect.succeed(value as A)

/**
 * Runs `work` as one access to `node`: takes an active reference (ENODEV once removal began),
 * runs through the object's executor (which may suspend), and releases the reference. If the
 * object was unlinked meanwhile the work is skipped and ENODEV returned: no value after a free.
 */
export const accessNode = <A>(node: FileNode, work: () => A | number): Effect.Effect<A | number> =>
  Effect.suspend(() => {
    const activity = node.activity
    if (!activity.tryGet()) return Effect.succeed(-ENODEV)
    const guarded = (): A | number => (activity.removed ? -ENODEV : work())
    const run = activity.executor === undefined ? Effect.sync(guarded) : activity.executor(guarded)
    return Effect.ensuring(run, Effect.sync(() => activity.put()))
  })

/**
 * Removes a kobject the way kobject_del does: new accesses fail with ENODEV at once, the
 * effect waits until the show/store calls in flight have returned, then the paths vanish.
 */
export const removeKObject = (kobject: KObject): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (kobject.activity.removed) return
    kobject.deactivate()
    yield* Effect.callback<void>((resume) => {
      kobject.whenIdle(() => resume(Effect.void))
    })
    kobject.unlink()
  })

export interface SysfsShape {
  readonly fs: PseudoFs
  /** /sys/kernel as a kobject (kernel_kobj): parent of vmcsctl and of users' kobjects. */
  readonly kernelKobj: KObject
  /** /sys as a kobject: parent of the legacy /sys/vmcs. */
  readonly sysKobj: KObject
  /** /sys/module: module parameters appear under <name>/parameters. */
  readonly moduleKobj: KObject
  readonly ls: (path: string, cred?: Cred) => Effect.Effect<Array<string>, SysfsError>
  readonly stat: (path: string, cred?: Cred) => Effect.Effect<Stat, SysfsError>
  /** `cat`: the whole text, through the object's executor (so it may suspend). */
  readonly cat: (path: string, cred?: Cred) => Effect.Effect<string, SysfsError>
  /** `echo -n text >`: store's byte count. */
  readonly echo: (path: string, text: string, cred?: Cred) => Effect.Effect<number, SysfsError>
  readonly open: (path: string, flags?: number, cred?: Cred) => Effect.Effect<number, SysfsError>
  /** read(2) at the descriptor's position (a new show at position 0). */
  readonly read: (fd: number, count?: number) => Effect.Effect<string, SysfsError>
  readonly write: (fd: number, text: string) => Effect.Effect<number, SysfsError>
  readonly close: (fd: number) => Effect.Effect<void, SysfsError>
  /** kobject_create_and_add under `parent` (a kobject or a path), removed when the scope closes. */
  readonly kobject: (
    parent: KObject | string,
    name: string,
    groups?: ReadonlyArray<AttributeGroup>,
  ) => Effect.Effect<KObject, SysfsError, Scope.Scope>
}

/** The Sysfs service: the whole pseudo-filesystem (/sys, /proc, tracefs and debugfs mounts). */
export class Sysfs extends Context.Service<Sysfs, SysfsShape>()("kvmsim/sysfs/Sysfs") {}

// The top-level directories a Linux /sys has, so `ls /sys` looks familiar.
const sysTopLevel = ["block", "bus", "class", "dev", "devices", "firmware", "fs", "hypervisor", "kernel", "module", "power"]

/** A fresh tree with /sys, /sys/kernel/{debug,tracing} mount points and /proc. */
export const makeTree = (): PseudoFs => {
  const fs = new Fs()
  fs.mkdirs("/sys")
  for (const name of sysTopLevel) fs.mkdirs(`/sys/${name}`)
  // debugfs and tracefs mount roots are root-only (mode 0700) on current kernels.
  fs.mkdirs("/sys/kernel/debug", 0o700)
  fs.mkdirs("/sys/kernel/tracing", 0o700)
  fs.mkdirs("/proc", 0o555)
  return fs
}

const readAll = (fs: PseudoFs, fd: number, path: string): Effect.Effect<string, SysfsError> =>
  Effect.gen(function* () {
    const file = fs.file(fd)
    if (file === undefined) return yield* Effect.fail(sysfsError("read", path, -EBADF))
    const node = file.node
    if (node.kind === "dir") return yield* Effect.fail(sysfsError("read", path, -EISDIR))
    if (node.ops?.read !== undefined) {
      let out = ""
      for (;;) {
        const chunk = fs.read(fd, PAGE_SIZE)
        if (typeof chunk === "number") return yield* Effect.fail(sysfsError("read", path, chunk))
        if (chunk === "") return out
        out += chunk
      }
    }
    const shown = yield* accessNode(node, () => fs.runShow(node))
    if (typeof shown === "number") return yield* Effect.fail(sysfsError("read", path, shown))
    file.text = shown
    file.offset = shown.length
    return shown
  })

export const makeSysfs = (fs: PseudoFs = makeTree()): SysfsShape => {
  const kernelKobj = kobjectAt(fs, "/sys/kernel")
  const sysKobj = kobjectAt(fs, "/sys")
  const moduleKobj = kobjectAt(fs, "/sys/module")
  const open = (path: string, flags = O_RDONLY, cred: Cred = ROOT) => orFail("open", path, fs.open(path, flags, cred))
  const close = (fd: number) => orFail("close", `fd ${fd}`, fs.close(fd)).pipe(Effect.asVoid)
  const write = (fd: number, text: string): Effect.Effect<number, SysfsError> =>
    Effect.gen(function* () {
      const file = fs.file(fd)
      const path = file?.path ?? `fd ${fd}`
      if (file === undefined || !file.writable) return yield* Effect.fail(sysfsError("write", path, -EBADF))
      const node = file.node
      if (node.kind === "dir") return yield* Effect.fail(sysfsError("write", path, -EISDIR))
      const written = yield* accessNode(node, () => fs.runStore(node, text))
      if (written < 0) return yield* Effect.fail(sysfsError("write", path, written))
      file.offset += written
      return written
    })
  const read = (fd: number, count = PAGE_SIZE): Effect.Effect<string, SysfsError> =>
    Effect.gen(function* () {
      const file = fs.file(fd)
      const path = file?.path ?? `fd ${fd}`
      if (file === undefined || !file.readable) return yield* Effect.fail(sysfsError("read", path, -EBADF))
      const node = file.node
      if (node.kind === "dir") return yield* Effect.fail(sysfsError("read", path, -EISDIR))
      const ownRead = node.ops?.read
      if (ownRead !== undefined) {
        const chunk = fs.read(fd, count)
        // A blocking read (no O_NONBLOCK) of an empty trace_pipe waits for data.
        if (chunk === -EAGAIN && node.ops?.readWait !== undefined && (file.flags & O_NONBLOCK) === 0) {
          const text = yield* node.ops.readWait(file, count)
          file.offset += text.length
          return text
        }
        return yield* orFail("read", path, chunk)
      }
      if (file.offset === 0) {
        const shown = yield* accessNode(node, () => fs.runShow(node))
        if (typeof shown === "number") return yield* Effect.fail(sysfsError("read", path, shown))
        file.text = shown
      }
      return yield* orFail("read", path, fs.read(fd, count))
    })
  return {
    fs,
    kernelKobj,
    sysKobj,
    moduleKobj,
    ls: (path, cred = ROOT) => orFail("ls", path, fs.ls(path, cred)),
    stat: (path, cred = ROOT) => orFail("stat", path, fs.stat(path, cred)),
    open,
    read,
    write,
    close,
    cat: (path, cred = ROOT) =>
      Effect.acquireUseRelease(open(path, O_RDONLY, cred), (fd) => readAll(fs, fd, path), (fd) => Effect.sync(() => fs.close(fd))),
    echo: (path, text, cred = ROOT) =>
      Effect.acquireUseRelease(open(path, O_WRONLY | O_TRUNC, cred), (fd) => write(fd, text), (fd) => Effect.sync(() => fs.close(fd))),
    kobject: (parent, name, groups = []) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          // A path parent must be an existing directory (a kobject needs a live parent).
          if (typeof parent === "string") {
            const dir = fs.directory(parent)
            if (typeof dir === "number") return Effect.fail(sysfsError("kobject_add", `${parent}/${name}`, dir))
          }
          const parentKobj = typeof parent === "string" ? kobjectAt(fs, parent) : parent
          const created = parentKobj.addChild(name)
          if (typeof created === "number") return Effect.fail(sysfsError("kobject_add", `${parentKobj.path}/${name}`, created))
          for (const group of groups) {
            const result = created.createGroup(group)
            if (result < 0) {
              created.removeNow()
              return Effect.fail(sysfsError("sysfs_create_group", created.path, result))
            }
          }
          return Effect.succeed(created)
        }),
        removeKObject,
      ),
  }
}

/** The Sysfs service over a fresh tree. */
export const SysfsLive: Layer.Layer<Sysfs> = Layer.sync(Sysfs, () => makeSysfs())
