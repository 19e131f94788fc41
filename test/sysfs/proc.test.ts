import { describe, expect, it } from "vitest"
import { EINVAL, ENOENT, ESRCH } from "../../src/sysfs/errno.ts"
import { mountProc, type ProcTask, type ProcTaskSource } from "../../src/sysfs/proc.ts"
import { makeTree } from "../../src/sysfs/service.ts"

// A minimal task table with the host's shape: a QEMU process with two vCPU threads.
class Tasks implements ProcTaskSource {
  readonly all = new Map<number, { pid: number; tgid: number; comm: string; state: string }>()
  add(pid: number, tgid: number, comm: string) {
    const t = { pid, tgid, comm, state: "running" }
    this.all.set(pid, t)
    return t
  }
  get(pid: number): ProcTask | undefined {
    return this.all.get(pid)
  }
  threadsOf(tgid: number) {
    return [...this.all.values()].filter((t) => t.tgid === tgid)
  }
  list() {
    return [...this.all.values()].sort((a, b) => a.pid - b.pid)
  }
}

describe("/proc", () => {
  const setup = () => {
    const tasks = new Tasks()
    tasks.add(1, 1, "systemd")
    tasks.add(12396, 12396, "qemu-system-x86")
    tasks.add(12398, 12396, "qemu-system-x86")
    tasks.add(12399, 12396, "CPU 1/KVM")
    const fs = makeTree()
    mountProc(fs, tasks)
    return { fs, tasks }
  }

  it("lists thread-group leaders and their threads; comm ends with a newline", () => {
    const { fs } = setup()
    expect(fs.ls("/proc")).toEqual(["1", "12396"])
    expect(fs.ls("/proc/12396/task")).toEqual(["12396", "12398", "12399"])
    expect(fs.readFile("/proc/12396/task/12399/comm")).toBe("CPU 1/KVM\n")
    expect(fs.readFile("/proc/12399/comm")).toBe("CPU 1/KVM\n")
    expect(fs.readFile("/proc/1/task/12399/comm")).toBe(-ENOENT)
    expect(fs.readFile("/proc/77/comm")).toBe(-ENOENT)
    expect(fs.writeFile("/proc/12399/comm", "x\n")).toBe(-EINVAL)
  })

  it("a handle on an exited task reads ESRCH; its directory disappears", () => {
    const { fs, tasks } = setup()
    const fd = fs.open("/proc/12396/task/12399/comm")
    const t = tasks.all.get(12399)!
    t.state = "exited"
    tasks.all.delete(12399)
    expect(fs.pread(fd, 0)).toBe(-ESRCH)
    expect(fs.ls("/proc/12396/task")).toEqual(["12396", "12398"])
    tasks.add(12399, 12399, "reused")
    expect(fs.pread(fd, 0)).toBe(-ESRCH)
    expect(fs.readFile("/proc/12399/comm")).toBe("reused\n")
  })
})
