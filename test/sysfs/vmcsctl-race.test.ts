import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ModuleRegistry } from "../../src/host/modules.ts"
import { ENODEV, ENOENT } from "../../src/sysfs/errno.ts"
import { O_RDWR } from "../../src/sysfs/pseudo-fs.ts"
import { makeSysfs, type SysfsError } from "../../src/sysfs/service.ts"
import { type VmcsctlDirectory, vmcsctlModule } from "../../src/sysfs/vmcsctl/module.ts"
import { makeRig } from "./vmx-rig.ts"

// Reads and writes of a VMCS's files race its free: every show/store waits at a point the
// fast-check scheduler releases, so each run explores one interleaving of accesses and free.
const RUNS = 10_000

type Op = { kind: "read" | "write" | "cat"; field: "GUEST_RIP" | "GUEST_RSP" | "CR0_READ_SHADOW" }

describe("vmcsctl: accesses raced against the VMCS free", () => {
  it(`never return a value after the free; earlier handles then fail with ENODEV (${RUNS} schedules)`, async () => {
    // One machine and module for all runs: each run allocates a fresh VMCS and frees it.
    const rig = makeRig(1)
    rig.vmxon(0)
    const sysfs = makeSysfs()
    const modules = new ModuleRegistry()
    let state: VmcsctlDirectory | undefined
    await Effect.runPromise(modules.insmod(vmcsctlModule({ sysfs, cpus: rig.cpus, events: rig.events, dependsOn: [] }, (s) => (state = s)), {}))
    const fs = sysfs.fs
    let pid = 1000
    let valuesBeforeFree = 0
    let refusedAfterFree = 0

    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.record({ kind: fc.constantFrom("read" as const, "write" as const, "cat" as const), field: fc.constantFrom("GUEST_RIP" as const, "GUEST_RSP" as const, "CR0_READ_SHADOW" as const) }), { minLength: 1, maxLength: 5 }),
        async (s, ops: Array<Op>) => {
          let freed = false
          const observed: Array<{ freed: boolean; result: unknown }> = []
          state!.executor = <A,>(work: () => A) =>
            Effect.promise(() => s.schedule(Promise.resolve(), "on owning CPU")).pipe(
              Effect.map(() => {
                const result = work()
                observed.push({ freed, result })
                return result
              }),
            )
          const vmcs = rig.allocVmcs(++pid)
          const dir = `/sys/kernel/vmcsctl/vmcs${pid}`
          const fds = ops.map((op) => fs.open(`${dir}/${op.field}`, O_RDWR))
          const tasks = ops.map((op, i) => {
            const fd = fds[i]!
            const effect: Effect.Effect<string | number, SysfsError> =
              op.kind === "read"
                ? Effect.suspend(() => (fs.seek(fd, 0), sysfs.read(fd)))
                : op.kind === "write"
                  ? sysfs.write(fd, `${i + 1}\n`)
                  : sysfs.cat(`${dir}/${op.field}`)
            return Effect.runPromise(
              Effect.match(effect, {
                onFailure: (e) => ({ ok: false as const, errno: e.errno, freedAtEnd: freed }),
                onSuccess: (value) => ({ ok: true as const, value, freedAtEnd: freed }),
              }),
            )
          })
          const free = s.schedule(Promise.resolve(), "free").then(() => {
            rig.freeVmcs(vmcs)
            freed = true
          })
          const results = await s.waitFor(Promise.all([...tasks, free]))
          // No show/store ran on a freed VMCS, and whatever ran after the free was refused.
          for (const o of observed) if (o.freed) expect(o.result).toBe(-ENODEV)
          for (const r of results.slice(0, ops.length) as Array<{ ok: boolean; errno?: number }>) {
            if (!r.ok) expect([ENODEV, ENOENT]).toContain(r.errno)
          }
          // The successes are exactly the accesses that ran before the free.
          const successes = (results.slice(0, ops.length) as Array<{ ok: boolean }>).filter((r) => r.ok).length
          expect(successes).toBe(observed.filter((o) => !o.freed).length)
          valuesBeforeFree += successes
          refusedAfterFree += ops.length - successes
          // Handles opened before the free now fail with ENODEV; the directory is gone.
          for (const fd of fds) {
            expect(fs.pread(fd, 0)).toBe(-ENODEV)
            fs.close(fd)
          }
          expect(fs.ls(dir)).toBe(-ENOENT)
        },
      ),
      { numRuns: RUNS },
    )
    expect(rig.live.size).toBe(0)
    // Both sides of the race were explored.
    expect(valuesBeforeFree).toBeGreaterThan(RUNS / 10)
    expect(refusedAfterFree).toBeGreaterThan(RUNS / 10)
  }, 120_000)
})

describe("vmcsctl: accesses raced against rmmod", () => {
  it("rmmod waits for show/store in flight; later accesses and earlier handles get ENODEV (2,000 schedules)", async () => {
    const rig = makeRig(1)
    rig.vmxon(0)
    const vmcs = rig.allocVmcs(777)
    const sysfs = makeSysfs()
    const fs = sysfs.fs
    const modules = new ModuleRegistry()
    let state: VmcsctlDirectory | undefined
    const module = vmcsctlModule({ sysfs, cpus: rig.cpus, events: rig.events, dependsOn: [] }, (s) => (state = s))
    let completedBeforeRemoval = 0
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 5 }), async (s, count) => {
        await Effect.runPromise(modules.insmod(module))
        let unlinked = false
        const ranAfterUnlink: Array<boolean> = []
        state!.setExecutor(<A,>(work: () => A) =>
          Effect.promise(() => s.schedule(Promise.resolve(), "on owning CPU")).pipe(
            Effect.map(() => {
              ranAfterUnlink.push(unlinked)
              return work()
            }),
          ),
        )
        const path = "/sys/kernel/vmcsctl/vmcs777/GUEST_RSP"
        const fds = Array.from({ length: count }, () => fs.open(path))
        let order = 0
        const reads = fds.map((fd) =>
          Effect.runPromise(
            Effect.match(Effect.suspend(() => (fs.seek(fd, 0), sysfs.read(fd))), {
              onFailure: (e) => ({ value: undefined as string | undefined, errno: e.errno, at: order++ }),
              onSuccess: (value) => ({ value, errno: 0, at: order++ }),
            }),
          ),
        )
        const removal = s.schedule(Promise.resolve(), "rmmod").then(async () => {
          await Effect.runPromise(modules.rmmod("vmcsctl"))
          unlinked = true
          return order++
        })
        const [removedAt, ...results] = await s.waitFor(Promise.all([removal, ...reads]))
        expect(ranAfterUnlink.every((after) => !after)).toBe(true)
        for (const r of results) {
          if (r.value !== undefined) {
            expect(r.value).toBe("0\n")
            expect(r.at).toBeLessThan(removedAt!)
            completedBeforeRemoval++
          } else expect(r.errno).toBe(ENODEV)
        }
        for (const fd of fds) {
          expect(fs.pread(fd, 0)).toBe(-ENODEV)
          fs.close(fd)
        }
        expect(fs.ls("/sys/kernel/vmcsctl")).toBe(-ENOENT)
      }),
      { numRuns: 2000 },
    )
    expect(completedBeforeRemoval).toBeGreaterThan(100)
    rig.freeVmcs(vmcs)
  }, 120_000)
})
