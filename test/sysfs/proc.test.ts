import { describe, expect, it } from "vitest"
import { TaskTable } from "../../src/host/task.ts"
import { EINVAL, ENOENT, ESRCH } from "../../src/sysfs/errno.ts"
import { mountProc } from "../../src/sysfs/proc.ts"
import { makeTree } from "../../src/sysfs/service.ts"

describe("/proc backed by the host task table", () => {
  const setup = () => {
    const tasks = new TaskTable({ pidMax: 32768, firstPid: 12396 })
    const qemu = tasks.spawnProcess("qemu-system-x86")
    const vcpu0 = tasks.spawnThread(qemu)
    const vcpu1 = tasks.spawnThread(qemu, "CPU 1/KVM")
    const fs = makeTree()
    mountProc(fs, tasks)
    return { fs, tasks, qemu, vcpu0, vcpu1 }
  }

  it("lists thread-group leaders and their threads; comm ends with a newline", () => {
    const { fs, qemu, vcpu0, vcpu1 } = setup()
    expect(fs.ls("/proc")).toEqual(["1", String(qemu.pid), "2"])
    expect(fs.ls(`/proc/${qemu.pid}/task`)).toEqual([qemu.pid, vcpu0.pid, vcpu1.pid].map(String).sort())
    expect(fs.readFile(`/proc/${qemu.pid}/task/${vcpu0.pid}/comm`)).toBe("qemu-system-x86\n")
    expect(fs.readFile(`/proc/${qemu.pid}/task/${vcpu1.pid}/comm`)).toBe("CPU 1/KVM\n")
    // a thread's own /proc/<tid> resolves though /proc does not list it
    expect(fs.readFile(`/proc/${vcpu1.pid}/comm`)).toBe("CPU 1/KVM\n")
    expect(fs.readFile(`/proc/1/task/${vcpu1.pid}/comm`)).toBe(-ENOENT)
    expect(fs.readFile("/proc/31999/comm")).toBe(-ENOENT)
    expect(fs.writeFile(`/proc/${vcpu1.pid}/comm`, "x\n")).toBe(-EINVAL)
  })

  it("comm follows renames; a handle on an exited task reads ESRCH; its directory disappears", () => {
    const { fs, tasks, qemu, vcpu1 } = setup()
    const path = `/proc/${qemu.pid}/task/${vcpu1.pid}/comm`
    const fd = fs.open(path)
    vcpu1.setComm("renamed-thread-with-long-name")
    expect(fs.pread(fd, 0)).toBe("renamed-thread-\n")
    tasks.exit(vcpu1)
    expect(fs.pread(fd, 0)).toBe(-ESRCH)
    expect(fs.ls(`/proc/${qemu.pid}/task`)).not.toContain(String(vcpu1.pid))
    expect(fs.readFile(path)).toBe(-ENOENT)
  })
})
