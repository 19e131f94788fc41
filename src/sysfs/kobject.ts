// kobjects, attributes, attribute groups and symlinks: the API kernel modules (vmcsctl, /sys/vmcs,
// users' own TypeScript modules) use to put directories and files into the pseudo-filesystem.
// A kobject is a directory whose files share one Activity, so removing the kobject can refuse
// new accesses, wait for those in flight, and then unlink everything.

import { EEXIST, EINVAL, ENOENT } from "./errno.ts"
import { Activity, attach, DirNode, FileNode, LinkNode, type Show, type Store } from "./nodes.ts"
import type { PseudoFs } from "./pseudo-fs.ts"

/** One attribute file: name, permission bits, and its show/store callbacks. */
export interface Attribute {
  readonly name: string
  /** Permission bits, e.g. 0o644 or 0o444. Others-writable modes are refused (EINVAL), as the kernel does. */
  readonly mode: number
  readonly show?: Show
  readonly store?: Store
}

/** attribute_group: optionally a named subdirectory; `isVisible` may change or hide (0) a mode. */
export interface AttributeGroup {
  readonly name?: string
  readonly attrs: ReadonlyArray<Attribute>
  readonly isVisible?: (attr: Attribute) => number
}

const validName = (name: string): boolean => name.length > 0 && name.length <= 255 && !name.includes("/") && name !== "." && name !== ".."

export class KObject {
  private readonly kids = new Set<KObject>()
  private detached = false

  constructor(
    readonly fs: PseudoFs,
    readonly dir: DirNode,
    readonly parent: KObject | undefined,
    readonly path: string,
  ) {}

  /** Accesses in flight on this kobject's files (shared by all of them). */
  get activity(): Activity {
    return this.dir.activity
  }

  get name(): string {
    return this.dir.name
  }

  /** True once removal has begun (accesses now fail with ENODEV). */
  get isRemoved(): boolean {
    return this.activity.deactivated
  }

  /** kobject_create_and_add(name, this): a child directory, or -EEXIST / -EINVAL / -ENOENT. */
  addChild(name: string, mode = 0o755): KObject | number {
    if (this.detached) return -ENOENT
    if (!validName(name)) return -EINVAL
    const dir = new DirNode(name, mode, new Activity())
    if (!attach(this.dir, dir)) return -EEXIST
    const child = new KObject(this.fs, dir, this, `${this.path}/${name}`)
    this.kids.add(child)
    return child
  }

  /** sysfs_create_file: 0, or -EEXIST if the name is taken, -EINVAL for a bad name or mode. */
  createFile(attr: Attribute, into: DirNode = this.dir): number {
    if (this.detached) return -ENOENT
    if (!validName(attr.name)) return -EINVAL
    // VERIFY_OCTAL_PERMISSIONS: no others-write, and user must have at least group's rights.
    if ((attr.mode & 0o002) !== 0 || (attr.mode & ~0o777) !== 0) return -EINVAL
    const node = new FileNode(attr.name, attr.mode, this.activity, attr.show, attr.store)
    return attach(into, node) ? 0 : -EEXIST
  }

  /** sysfs_create_group: all files or none (on a clash the ones added are removed again). */
  createGroup(group: AttributeGroup): number {
    if (this.detached) return -ENOENT
    let into = this.dir
    if (group.name !== undefined) {
      if (!validName(group.name)) return -EINVAL
      if (this.dir.children.has(group.name)) return -EEXIST
      into = new DirNode(group.name, 0o755, this.activity)
      attach(this.dir, into)
    }
    const added: Array<string> = []
    for (const attr of group.attrs) {
      const mode = group.isVisible === undefined ? attr.mode : group.isVisible(attr)
      if (mode === 0) continue
      const result = this.createFile(mode === attr.mode ? attr : { ...attr, mode }, into)
      if (result < 0) {
        if (group.name !== undefined) this.dir.children.delete(group.name)
        else for (const name of added) into.children.delete(name)
        return result
      }
      added.push(attr.name)
    }
    return 0
  }

  /** sysfs_remove_group. */
  removeGroup(group: AttributeGroup): void {
    if (group.name !== undefined) {
      this.dir.children.delete(group.name)
      return
    }
    for (const attr of group.attrs) this.dir.children.delete(attr.name)
  }

  /** sysfs_remove_file. */
  removeFile(name: string): void {
    const node = this.dir.children.get(name)
    if (node?.kind === "file") this.dir.children.delete(name)
  }

  /** sysfs_create_link: a symlink named `name` to another kobject (or an absolute path). */
  createLink(name: string, target: KObject | string): number {
    if (this.detached) return -ENOENT
    if (!validName(name)) return -EINVAL
    const path = typeof target === "string" ? target : target.path
    return attach(this.dir, new LinkNode(name, path, this.activity)) ? 0 : -EEXIST
  }

  /** Begins removal of this kobject and its children: from now on accesses fail with ENODEV. */
  deactivate(): void {
    if (this.parent === undefined) throw new Error(`kobject ${this.path} is a permanent root and cannot be removed`)
    this.activity.deactivated = true
    for (const kid of this.kids) kid.deactivate()
  }

  /** Calls `idle` once no show/store is in flight on this kobject or any child. */
  whenIdle(idle: () => void): void {
    const pending = [this as KObject]
    const all: Array<KObject> = []
    while (pending.length > 0) {
      const next = pending.pop()!
      all.push(next)
      for (const kid of next.kids) pending.push(kid)
    }
    let waiting = all.length
    for (const k of all) k.activity.whenDrained(() => {
      if (--waiting === 0) idle()
    })
  }

  /** Unlinks the directory: its paths vanish. Call after deactivate() and whenIdle(). */
  unlink(): void {
    if (this.detached) return
    this.detached = true
    this.activity.removed = true
    for (const kid of this.kids) kid.unlink()
    const parentDir = this.dir.parent
    if (parentDir !== undefined && parentDir.children.get(this.dir.name) === this.dir) parentDir.children.delete(this.dir.name)
    this.parent?.kids.delete(this)
  }

  /**
   * kobject_del for callers that cannot wait (a synchronous hook): deactivates and unlinks at
   * once. An access still in flight finds the object removed and returns ENODEV instead of
   * touching it.
   */
  removeNow(): void {
    this.deactivate()
    this.unlink()
  }

  /** Child kobjects currently present. */
  children(): ReadonlyArray<KObject> {
    return [...this.kids]
  }
}

/** Wraps an existing directory (e.g. /sys/kernel) as a kobject that is never removed. */
export const kobjectAt = (fs: PseudoFs, path: string): KObject => {
  const dir = fs.mkdirs(path)
  return new KObject(fs, dir, undefined, path === "/" ? "" : path.replace(/\/+$/, ""))
}
