import { describe, expect, it } from "vitest"
import { VirtualClock } from "../../src/host/clock.ts"
import { Hook } from "../../src/host/hooks.ts"
import { kernelProfile } from "../../src/host/profile.ts"
import { RESERVED_PIDS, TaskTable } from "../../src/host/task.ts"

describe("tasks", () => {
  it("names QEMU's threads as each kernel profile's QEMU does", () => {
    const p50 = kernelProfile("linux-5.0")
    const p6 = kernelProfile("linux-6.x")
    expect(p50.vmmComm).toBe("qemu-system-x86") // qemu-system-x86_64 cut to 15 characters
    expect(p50.vcpuThreadComm(3)).toBe("qemu-system-x86")
    expect(p6.vcpuThreadComm(0)).toBe("CPU 0/KVM")
    expect(p6.vcpuThreadComm(12)).toBe("CPU 12/KVM")
  })

  it("gives threads their own pids and the leader's tgid", () => {
    const t = new TaskTable({ pidMax: 32768, firstPid: 12396 })
    const qemu = t.spawnProcess("qemu-system-x86_64")
    const rcu = t.spawnThread(qemu)
    const vcpu0 = t.spawnThread(qemu, "CPU 0/KVM")
    expect([qemu.pid, rcu.pid, vcpu0.pid]).toEqual([12396, 12397, 12398])
    expect(vcpu0.tgid).toBe(12396)
    expect(t.threadsOf(12396).map((x) => x.pid)).toEqual([12396, 12397, 12398])
    expect(t.commOf(12397)).toBe("qemu-system-x86")
    t.exit(vcpu0)
    expect(t.get(12398)).toBeUndefined()
    expect(t.threadsOf(12396)).toHaveLength(2)
  })

  it("allocates pids cyclically, wraps to RESERVED_PIDS at pid_max and skips pids in use", () => {
    const t = new TaskTable({ pidMax: 400, firstPid: 398 })
    const a = t.spawnProcess("a")
    const b = t.spawnProcess("b")
    const c = t.spawnProcess("c")
    expect([a.pid, b.pid, c.pid]).toEqual([398, 399, RESERVED_PIDS])
    t.exit(a)
    const more = Array.from({ length: 98 }, () => t.spawnProcess("x").pid)
    expect(more.at(-1)).toBe(398) // 301..397 then the freed 398; 399 is still in use
  })
})

describe("virtual clock", () => {
  it("counts retired instructions and ticks at HZ", () => {
    const c = new VirtualClock({ cpuCount: 2, startNs: 1_000, nsPerInstruction: 2, hz: 250 })
    c.retire(1, 500)
    expect(c.nowOn(1)).toBe(2_000)
    expect(c.nowOn(0)).toBe(1_000)
    expect(c.nowNs()).toBe(2_000) // no CPU running: the latest time
    c.current = 0
    expect(c.nowNs()).toBe(1_000)
    expect(c.tickPeriodNs).toBe(4_000_000)
    expect(c.nextTickNs(1)).toBe(4_000_000)
    c.advance(1, 4_000_000)
    expect(c.jiffies(1)).toBe(1)
  })
})

describe("hooks", () => {
  it("delivers to listeners in order and stops after unsubscribe", () => {
    const h = new Hook<string>("vmcs_free")
    const seen: Array<string> = []
    const off1 = h.subscribe((e) => seen.push(`1:${e}`))
    h.subscribe((e) => seen.push(`2:${e}`))
    h.emit("a")
    off1()
    off1()
    h.emit("b")
    expect(seen).toEqual(["1:a", "2:a", "2:b"])
  })
})
