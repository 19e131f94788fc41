import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { makeHostKernel } from "../../src/host/kernel.ts"
import type { Thread } from "../../src/host/scheduler.ts"

interface Step {
  readonly pid: number
  readonly cpu: number
  readonly atNs: number
}

/**
 * N threads each doing `slices` pieces of work of `workNs`, yielding when their slice expires;
 * thread i blocks after its first piece until thread (i+1) % N wakes it. Returns who ran where, when.
 */
const scenario = (seed: number, cpus: number, threads: number, workNs: number, pieces: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const kernel = yield* makeHostKernel({ seed, cpus })
      const leader = kernel.tasks.spawnProcess("qemu-system-x86_64")
      const log: Array<Step> = []
      const all: Array<Thread> = []
      for (let i = 0; i < threads; i++) {
        const task = kernel.tasks.spawnThread(leader, `CPU ${i}/KVM`)
        all.push(
          yield* kernel.scheduler.spawn(task, (thread) =>
            Effect.gen(function* () {
              for (let p = 0; p < pieces; p++) {
                log.push({ pid: thread.task.pid, cpu: thread.cpu, atNs: thread.nowNs() })
                thread.charge(workNs)
                if (p === 0 && i % 2 === 1) {
                  kernel.scheduler.wake(all[(i + 1) % threads]!)
                  yield* thread.block
                } else if (p === 0 && i % 2 === 0) {
                  yield* thread.block
                } else if (thread.sliceExpired()) {
                  yield* thread.yieldCpu
                }
              }
              // Whoever finishes wakes everyone so no thread stays blocked forever.
              for (const other of all) kernel.scheduler.wake(other)
            }),
          ),
        )
      }
      yield* kernel.scheduler.run()
      return { log, threadsLeft: kernel.scheduler.threadCount, tasksLeft: kernel.tasks.size, migrations: kernel.scheduler.migrations }
    }),
  )

describe("host scheduler", () => {
  it("runs every thread to completion and frees its task", async () => {
    const r = await Effect.runPromise(scenario(7, 4, 6, 400_000, 20))
    expect(r.log.length).toBe(6 * 20)
    expect(r.threadsLeft).toBe(0)
    expect(r.tasksLeft).toBe(3) // systemd, kthreadd, and the process leader that never ran
  })

  it("is a pure function of the seed (fast-check: same seed, same interleaving)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), async (seed, cpus, threads) => {
        const a = await Effect.runPromise(scenario(seed, cpus, threads, 300_000, 12))
        const b = await Effect.runPromise(scenario(seed, cpus, threads, 300_000, 12))
        expect(a).toEqual(b)
      }),
      { numRuns: 40 },
    )
  })

  it("keeps each CPU's clock and each thread's timeline monotonic", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 }), async (seed) => {
        const { log } = await Effect.runPromise(scenario(seed, 3, 5, 250_000, 10))
        const lastByCpu = new Map<number, number>()
        const lastByPid = new Map<number, number>()
        for (const step of log) {
          expect(step.atNs).toBeGreaterThanOrEqual(lastByPid.get(step.pid) ?? 0)
          lastByPid.set(step.pid, step.atNs + 250_000)
          expect(step.atNs).toBeGreaterThanOrEqual(lastByCpu.get(step.cpu) ?? 0)
          lastByCpu.set(step.cpu, step.atNs + 250_000)
        }
      }),
      { numRuns: 30 },
    )
  })

  it("spreads runnable threads over idle CPUs and migrates work to them", async () => {
    const r = await Effect.runPromise(scenario(3, 4, 8, 1_000_000, 10))
    expect(new Set(r.log.map((s) => s.cpu)).size).toBe(4)
  })

  it("keeps threads spread over the CPUs when they set up in no virtual time, block, and are woken together (QEMU -S, then cont)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 2, max: 16 }), async (seed, cpus, perCpu) => {
        const threads = cpus * perCpu
        const r = await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function* () {
              const kernel = yield* makeHostKernel({ seed, cpus })
              const leader = kernel.tasks.spawnProcess("qemu-system-x86_64")
              const firstCpuAfterWake: Array<number> = []
              const all: Array<Thread> = []
              let paused = true
              for (let i = 0; i < threads; i++) {
                all.push(
                  yield* kernel.scheduler.spawn(kernel.tasks.spawnThread(leader), (thread) =>
                    Effect.gen(function* () {
                      while (paused) yield* thread.block
                      firstCpuAfterWake.push(thread.cpu)
                      for (let p = 0; p < 8; p++) {
                        thread.charge(250_000)
                        if (thread.sliceExpired()) yield* thread.yieldCpu
                      }
                    }),
                  ),
                )
              }
              yield* kernel.scheduler.run()
              paused = false
              for (const t of all) kernel.scheduler.wake(t)
              yield* kernel.scheduler.run()
              const perCpuCount = Array.from({ length: cpus }, (_, c) => firstCpuAfterWake.filter((x) => x === c).length)
              return { perCpuCount, clocks: [...kernel.clock.cpuNs] }
            }),
          ),
        )
        // Fork balancing spread them evenly; setting up and blocking must not gather them on one CPU.
        for (const n of r.perCpuCount) expect(n).toBe(perCpu)
        // Equal work on every CPU: every CPU ends at the same time.
        expect(Math.max(...r.clocks) - Math.min(...r.clocks)).toBe(0)
      }),
      { numRuns: 25 },
    )
  })

  it("gives slices as CFS does: latency / nr_running, at least the minimum granularity", async () => {
    const slices = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const kernel = yield* makeHostKernel({ cpus: 1 })
          const p = kernel.tasks.spawnProcess("qemu-system-x86_64")
          const lengths: Array<number> = []
          for (let i = 0; i < 3; i++) {
            yield* kernel.scheduler.spawn(kernel.tasks.spawnThread(p), (thread) =>
              Effect.sync(() => lengths.push(thread.sliceEndNs - thread.nowNs())),
            )
          }
          yield* kernel.scheduler.run()
          return lengths
        }),
      ),
    )
    expect(slices).toEqual([2_000_000, 3_000_000, 6_000_000])
  })

  it("calls preempt notifiers with the CPU a thread is scheduled in and out on", async () => {
    const events = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const kernel = yield* makeHostKernel({ cpus: 2, seed: 5 })
          const p = kernel.tasks.spawnProcess("qemu-system-x86_64")
          const log: Array<string> = []
          const t = yield* kernel.scheduler.spawn(kernel.tasks.spawnThread(p), (thread) =>
            Effect.gen(function* () {
              thread.charge(10_000_000)
              yield* thread.yieldCpu
              thread.charge(10)
            }),
          )
          t.addNotifier({ schedIn: (c) => log.push(`in ${c}`), schedOut: (c) => log.push(`out ${c}`) })
          yield* kernel.scheduler.run()
          return log
        }),
      ),
    )
    expect(events).toHaveLength(4)
    expect(events[0]!.startsWith("in ")).toBe(true)
    expect(events[1]).toBe(events[0]!.replace("in", "out"))
  })

  it("ends the run with the defect when a thread hits a simulator bug", async () => {
    const exit = await Effect.runPromiseExit(
      Effect.scoped(
        Effect.gen(function* () {
          const kernel = yield* makeHostKernel({ cpus: 1 })
          const p = kernel.tasks.spawnProcess("x")
          yield* kernel.scheduler.spawn(kernel.tasks.spawnThread(p), () => Effect.die(new Error("boom")))
          yield* kernel.scheduler.run()
        }),
      ),
    )
    expect(exit._tag).toBe("Failure")
  })
})
