import { Effect, Exit, Fiber } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { EACCES, EBADF, EEXIST, EINVAL, EIO, EISDIR, ELOOP, ENODEV, ENOENT, ENOTDIR } from "../../src/sysfs/errno.ts"
import { type KObject, kobjectAt } from "../../src/sysfs/kobject.ts"
import { O_RDONLY, O_RDWR, O_WRONLY, ROOT, userCred } from "../../src/sysfs/pseudo-fs.ts"
import { makeSysfs, makeTree, removeKObject, Sysfs, SysfsLive } from "../../src/sysfs/service.ts"
import { runWith } from "../support/effect.ts"

const user = userCred(1000)

const setup = () => {
  const fs = makeTree()
  const kernel = kobjectAt(fs, "/sys/kernel")
  let value = 7n
  const demo = kernel.addChild("demo") as KObject
  demo.createGroup({
    attrs: [
      { name: "value", mode: 0o644, show: () => `${value}\n`, store: (t) => (/^\d+\n?$/.test(t) ? ((value = BigInt(t.trim())), t.length) : -EINVAL) },
      { name: "ro", mode: 0o444, show: () => "1\n" },
      { name: "secret", mode: 0o400, show: () => "s\n" },
      { name: "noshow", mode: 0o644, store: (t) => t.length },
      { name: "failing", mode: 0o444, show: () => -EIO },
    ],
  })
  demo.createLink("self", demo)
  return { fs, kernel, demo, get value() { return value } }
}

describe("pseudo-filesystem core", () => {
  it("resolves paths, lists sorted entries and reports Linux errno", () => {
    const { fs } = setup()
    expect(fs.ls("/sys/kernel/demo")).toEqual(["failing", "noshow", "ro", "secret", "self", "value"])
    expect(fs.ls("/sys")).toContain("kernel")
    expect(fs.ls("/sys/kernel/nothing")).toBe(-ENOENT)
    expect(fs.ls("/sys/kernel/demo/value/x")).toBe(-ENOTDIR)
    expect(fs.readFile("/sys/kernel/demo/self/self/./value")).toBe("7\n")
    expect(fs.readFile("/sys/kernel/demo/../demo/ro")).toBe("1\n")
    expect(fs.readFile("/sys/kernel/demo/value/")).toBe(-ENOTDIR)
    expect(fs.open("/sys/kernel/demo", O_WRONLY)).toBe(-EISDIR)
    const dirFd = fs.open("/sys/kernel/demo")
    expect(fs.read(dirFd)).toBe(-EISDIR)
    expect(fs.readdir(dirFd)).toEqual(fs.ls("/sys/kernel/demo"))
    expect(fs.read(99)).toBe(-EBADF)
  })

  it("stat: attribute files are regular, 4096 bytes, owned by root; symlinks are 0777", () => {
    const { fs } = setup()
    const st = fs.stat("/sys/kernel/demo/value")
    expect(st).toMatchObject({ kind: "file", mode: 0o100644, size: 4096, uid: 0, gid: 0 })
    expect(fs.lstat("/sys/kernel/demo/self")).toMatchObject({ kind: "link", mode: 0o120777 })
    expect(fs.stat("/sys/kernel/demo/self")).toMatchObject({ kind: "dir", mode: 0o040755 })
    expect(fs.readlink("/sys/kernel/demo/self")).toBe("/sys/kernel/demo")
    expect(fs.readlink("/sys/kernel/demo/value")).toBe(-EINVAL)
  })

  it("symlink loops end in ELOOP", () => {
    const { fs, demo } = setup()
    demo.createLink("a", "/sys/kernel/demo/b")
    demo.createLink("b", "/sys/kernel/demo/a")
    expect(fs.readFile("/sys/kernel/demo/a")).toBe(-ELOOP)
  })

  it("permissions: EACCES for writes to 0444 (even root), and for non-root writes or 0400 reads", () => {
    const { fs } = setup()
    expect(fs.writeFile("/sys/kernel/demo/ro", "1\n")).toBe(-EACCES)
    expect(fs.writeFile("/sys/kernel/demo/value", "1\n", user)).toBe(-EACCES)
    expect(fs.readFile("/sys/kernel/demo/value", user)).toBe("7\n")
    expect(fs.readFile("/sys/kernel/demo/secret", user)).toBe(-EACCES)
    expect(fs.readFile("/sys/kernel/demo/secret", ROOT)).toBe("s\n")
    // debugfs and tracefs roots are 0700
    expect(fs.ls("/sys/kernel/debug", user)).toBe(-EACCES)
    expect(fs.ls("/sys/kernel/debug", ROOT)).toEqual([])
  })

  it("store: returns the byte count, -errno on rejection, and a rejected write changes nothing", () => {
    const s = setup()
    expect(s.fs.writeFile("/sys/kernel/demo/value", "42\n")).toBe(3)
    expect(s.value).toBe(42n)
    expect(s.fs.writeFile("/sys/kernel/demo/value", "nope\n")).toBe(-EINVAL)
    expect(s.value).toBe(42n)
    expect(s.fs.readFile("/sys/kernel/demo/value")).toBe("42\n")
    expect(s.fs.writeFile("/sys/kernel/demo/value", "")).toBe(0)
    expect(s.fs.readFile("/sys/kernel/demo/failing")).toBe(-EIO)
    expect(s.fs.readFile("/sys/kernel/demo/noshow")).toBe(-EIO)
  })

  it("a write longer than a page reaches store cut to 4096 bytes", () => {
    const { fs, demo } = setup()
    let seen = -1
    demo.createFile({ name: "sink", mode: 0o200, store: (t) => ((seen = t.length), t.length) })
    expect(fs.writeFile("/sys/kernel/demo/sink", "x".repeat(5000))).toBe(4096)
    expect(seen).toBe(4096)
  })

  it("a show of a page or more is cut to 4095 bytes with a kernel warning", () => {
    const { fs, demo } = setup()
    demo.createFile({ name: "big", mode: 0o444, show: () => "y".repeat(5000) })
    expect((fs.readFile("/sys/kernel/demo/big") as string).length).toBe(4095)
    expect(fs.kernelLog.some((l) => l.includes("bad count"))).toBe(true)
  })

  it("reads continue a show session; offset 0 calls show again", () => {
    const { fs } = setup()
    const fd = fs.open("/sys/kernel/demo/value", O_RDWR)
    expect(fs.read(fd, 1)).toBe("7")
    fs.write(fd, "9\n")
    expect(fs.read(fd)).toBe("")
    expect(fs.pread(fd, 0)).toBe("9\n")
    fs.close(fd)
    expect(fs.close(fd)).toBe(-EBADF)
  })

  it("EEXIST for duplicate names; groups are all-or-nothing; others-writable modes are refused", () => {
    const { fs, kernel, demo } = setup()
    expect(kernel.addChild("demo")).toBe(-EEXIST)
    expect(demo.createGroup({ attrs: [{ name: "fresh", mode: 0o444, show: () => "" }, { name: "ro", mode: 0o444 }] })).toBe(-EEXIST)
    expect(fs.ls("/sys/kernel/demo")).not.toContain("fresh")
    expect(demo.createFile({ name: "bad", mode: 0o666 })).toBe(-EINVAL)
    expect(demo.createGroup({ name: "grp", attrs: [{ name: "a", mode: 0o444, show: () => "a\n" }] })).toBe(0)
    expect(fs.readFile("/sys/kernel/demo/grp/a")).toBe("a\n")
  })

  it("after removal the paths are gone and open handles fail with ENODEV", () => {
    const { fs, demo } = setup()
    const fd = fs.open("/sys/kernel/demo/value", O_RDWR)
    const dirFd = fs.open("/sys/kernel/demo", O_RDONLY)
    demo.removeNow()
    expect(fs.ls("/sys/kernel/demo")).toBe(-ENOENT)
    expect(fs.pread(fd, 0)).toBe(-ENODEV)
    expect(fs.write(fd, "1")).toBe(-ENODEV)
    expect(fs.readdir(dirFd)).toBe(-ENOENT)
    expect(fs.close(fd)).toBe(0)
  })

  it("removal waits for accesses in flight (Effect path)", async () => {
    const sysfs = makeSysfs()
    const log: Array<string> = []
    const demo = sysfs.kernelKobj.addChild("slow") as KObject
    demo.createFile({ name: "v", mode: 0o444, show: () => (log.push("show"), "1\n") })
    let release: (() => void) | undefined
    // The executor suspends the show until the test releases it: an access in flight.
    demo.activity.executor = <A,>(work: () => A) =>
      Effect.callback<A>((resume) => {
        release = () => resume(Effect.sync(work))
      })
    const program = Effect.gen(function* () {
      const reader = yield* Effect.forkChild(sysfs.cat("/sys/kernel/slow/v"))
      yield* Effect.yieldNow
      const remover = yield* Effect.forkChild(Effect.tap(removeKObject(demo), () => Effect.sync(() => log.push("removed"))))
      yield* Effect.yieldNow
      log.push("before release")
      expect(sysfs.fs.readFile("/sys/kernel/slow/v")).toBe(-ENODEV)
      release!()
      const text = yield* Fiber.join(reader)
      yield* Fiber.join(remover)
      return text
    })
    const text = await Effect.runPromise(program)
    expect(text).toBe("1\n")
    expect(log).toEqual(["before release", "show", "removed"])
    expect(sysfs.fs.ls("/sys/kernel/slow")).toBe(-ENOENT)
  })

  it("Effect API: scoped kobjects vanish when the scope closes; errors are tagged with errno", async () => {
    const exit = await runWith(
      SysfsLive,
      Effect.gen(function* () {
        const sysfs = yield* Sysfs
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* sysfs.kobject("/sys/kernel", "mine", [{ attrs: [{ name: "x", mode: 0o444, show: () => "3\n" }] }])
            expect(yield* sysfs.cat("/sys/kernel/mine/x")).toBe("3\n")
          }),
        )
        const error = yield* Effect.flip(sysfs.cat("/sys/kernel/mine/x"))
        return error
      }),
    )
    expect(Exit.isSuccess(exit)).toBe(true)
    if (Exit.isSuccess(exit)) expect(exit.value).toMatchObject({ _tag: "SysfsError", errno: ENOENT, code: "ENOENT" })
  })

  it("property: random creation/removal keeps ls equal to a model", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 7 })), { maxLength: 60 }), (ops) => {
        const fs = makeTree()
        const kernel = kobjectAt(fs, "/sys/kernel")
        const live = new Map<number, KObject>()
        for (const [add, n] of ops) {
          if (add && !live.has(n)) live.set(n, kernel.addChild(`k${n}`) as KObject)
          else if (!add && live.has(n)) {
            live.get(n)!.removeNow()
            live.delete(n)
          }
          expect(fs.ls("/sys/kernel")).toEqual(["debug", "tracing", ...[...live.keys()].map((k) => `k${k}`)].sort())
        }
      }),
    )
  })
})
