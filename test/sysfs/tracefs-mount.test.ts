import { Effect, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { ManualClock, StaticTaskNames } from "../../src/trace/context.ts"
import { makeTrace } from "../../src/trace/service.ts"
import { EACCES, EAGAIN, EBUSY, EINVAL, ENOENT } from "../../src/sysfs/errno.ts"
import { O_NONBLOCK, O_RDONLY, userCred } from "../../src/sysfs/pseudo-fs.ts"
import { makeSysfs } from "../../src/sysfs/service.ts"
import { mountTracefs } from "../../src/sysfs/tracefs-mount.ts"

const setup = (era: "A" | "D" = "A") => {
  const trace = makeTrace({ cpuCount: 2, clock: new ManualClock(5_000_000_000), tasks: new StaticTaskNames([[2211, "bash"]]), era, expanded: true })
  const sysfs = makeSysfs()
  mountTracefs(sysfs.fs, trace.tracefs)
  return { trace, sysfs, fs: sysfs.fs }
}

const root = { uid: 0, gid: 0, pid: 2211, cpu: 1 }

describe("tracefs mounted at /sys/kernel/tracing and /sys/kernel/debug/tracing", () => {
  it("lists the trace subsystem's files at both paths, root only", () => {
    const { fs, trace } = setup()
    const top = trace.tracefs.readdir("") as ReadonlyArray<string>
    expect(fs.ls("/sys/kernel/tracing")).toEqual([...top].sort())
    expect(fs.ls("/sys/kernel/debug/tracing")).toEqual(fs.ls("/sys/kernel/tracing"))
    expect(fs.ls("/sys/kernel/tracing/per_cpu")).toEqual(["cpu0", "cpu1"])
    expect(fs.ls("/sys/kernel/tracing", userCred())).toBe(-EACCES)
    expect(fs.readFile("/sys/kernel/debug/tracing/trace", userCred())).toBe(-EACCES)
    expect(fs.readFile("/sys/kernel/tracing/nope")).toBe(-ENOENT)
    expect((fs.stat("/sys/kernel/tracing/trace_marker") as { mode: number }).mode & 0o777).toBe(0o220)
  })

  it("echo to trace_marker shows in trace through either path, with the writer's pid and CPU", () => {
    const { fs } = setup()
    expect(fs.readFile("/sys/kernel/tracing/tracing_on")).toBe("1\n")
    expect(fs.writeFile("/sys/kernel/debug/tracing/trace_marker", "hello\n", root)).toBe(6)
    const text = fs.readFile("/sys/kernel/tracing/trace") as string
    expect(text).toContain("# tracer: nop")
    expect(text).toMatch(/bash-2211 +\[001\] .* tracing_mark_write: hello/)
    expect(fs.readFile("/sys/kernel/debug/tracing/trace")).toBe(text)
    // echo > trace (O_TRUNC) clears
    expect(fs.writeFile("/sys/kernel/tracing/trace", "")).toBe(0)
    expect(fs.readFile("/sys/kernel/tracing/trace")).not.toContain("hello")
    // a rejected write changes nothing
    expect(fs.writeFile("/sys/kernel/tracing/tracing_on", "x\n")).toBe(-EINVAL)
    expect(fs.readFile("/sys/kernel/tracing/tracing_on")).toBe("1\n")
    // root may open the write-only marker for reading; the read itself is refused
    const fd = fs.open("/sys/kernel/tracing/trace_marker", O_RDONLY)
    expect(fs.read(fd)).toBe(-EINVAL)
    fs.close(fd)
  })

  it("trace_pipe consumes; O_NONBLOCK gives EAGAIN when empty; a blocking read waits for data", async () => {
    const { fs, sysfs } = setup()
    const fd = fs.open("/sys/kernel/tracing/trace_pipe", O_RDONLY | O_NONBLOCK)
    expect(fs.read(fd)).toBe(-EAGAIN)
    fs.writeFile("/sys/kernel/tracing/trace_marker", "one\n", root)
    expect(fs.read(fd)).toMatch(/tracing_mark_write: one/)
    expect(fs.read(fd)).toBe(-EAGAIN)
    fs.close(fd)
    const text = await Effect.runPromise(
      Effect.gen(function* () {
        const pipe = yield* sysfs.open("/sys/kernel/tracing/trace_pipe")
        const reader = yield* Effect.forkChild(sysfs.read(pipe))
        yield* Effect.yieldNow
        fs.writeFile("/sys/kernel/tracing/trace_marker", "two\n", root)
        return yield* Fiber.join(reader)
      }),
    )
    expect(text).toMatch(/tracing_mark_write: two/)
  })

  it("6.x: a second trace_pipe reader is refused with EBUSY", () => {
    const { fs } = setup("D")
    const first = fs.open("/sys/kernel/tracing/trace_pipe")
    expect(first).toBeGreaterThan(0)
    expect(fs.open("/sys/kernel/debug/tracing/trace_pipe")).toBe(-EBUSY)
    fs.close(first)
    expect(fs.open("/sys/kernel/debug/tracing/trace_pipe")).toBeGreaterThan(0)
  })
})
