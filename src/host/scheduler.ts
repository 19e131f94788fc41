// The host scheduler. Each task that runs code is a Thread backed by an Effect fiber; the
// scheduler lets exactly one of them hold a host CPU at a time (lockstep), which makes the
// interleaving a pure function of the seed. Host CPUs run in parallel in *virtual* time: the
// next CPU to run is the one whose local clock is earliest, and a slice runs until the thread
// reaches a scheduling point (slice expired, blocked, exited). Slices follow CFS's rule
// (sched_latency / nr_running, at least the minimum granularity); idle CPUs steal work from
// busy ones (migration), and preempt notifiers tell a module (KVM) when its thread is
// scheduled in or out on which CPU — what kvm_sched_in / kvm_sched_out use to move a VMCS.

import { Cause, Deferred, Effect } from "effect"
import type { Fiber, Scope } from "effect"
import type { VirtualClock } from "./clock.ts"
import type { SeededRandom } from "./rng.ts"
import type { Task, TaskTable } from "./task.ts"

export interface PreemptNotifier {
  /** The thread got `cpu` (kvm_sched_in: vcpu_load). */
  readonly schedIn: (cpu: number) => void
  /** The thread is leaving `cpu` (kvm_sched_out: vcpu_put). */
  readonly schedOut: (cpu: number) => void
}

export interface SchedulerTuning {
  /** sysctl_sched_latency: the period in which every runnable task runs once. */
  readonly latencyNs: number
  /** sysctl_sched_min_granularity: the shortest slice. */
  readonly minGranularityNs: number
}

export const defaultTuning: SchedulerTuning = { latencyNs: 6_000_000, minGranularityNs: 750_000 }

export class Thread {
  /** Host CPU while the thread holds one; -1 otherwise. */
  cpu = -1
  /** Virtual time at which the current slice ends. */
  sliceEndNs = 0
  /** The thread's own timeline: it never runs earlier than where it stopped. */
  lastRunNs: number
  /** A wake-up that arrived while the thread was not blocked; the next block returns at once. */
  wakePending = false
  /** Set when the thread must leave KVM_RUN and return to its caller (a signal, in Linux terms). */
  signalPending = false
  notifiers: Array<PreemptNotifier> = []
  grant: Deferred.Deferred<void> = Deferred.makeUnsafe<void>()
  fiber: Fiber.Fiber<void> | undefined

  /** The clock's per-CPU local times (the scheduler's clock, fixed for its life): one load on the charging paths. */
  private readonly cpuNs: Float64Array

  constructor(
    readonly task: Task,
    private readonly scheduler: Scheduler,
    startNs: number,
  ) {
    this.lastRunNs = startNs
    this.cpuNs = scheduler.clock.cpuNs
  }

  /** Whether the slice is used up (the check the tick and the preemption timer make). */
  sliceExpired(): boolean {
    return this.cpuNs[this.cpu]! >= this.sliceEndNs
  }

  /** Local time of the CPU the thread runs on. */
  nowNs(): number {
    return this.cpuNs[this.cpu]!
  }

  /** Charges `ns` of virtual time to the CPU the thread runs on. */
  charge(ns: number): void {
    this.cpuNs[this.cpu]! += ns
  }

  /** Scheduling point: give up the CPU and queue again (slice end, sched_yield). */
  get yieldCpu(): Effect.Effect<void> {
    return this.scheduler.handBack(this, "runnable")
  }

  /** Sleeps until `Scheduler.wake` (HLT waiting for an interrupt or a kick). */
  get block(): Effect.Effect<void> {
    if (this.wakePending) {
      this.wakePending = false
      return Effect.void
    }
    return this.scheduler.handBack(this, "blocked")
  }

  addNotifier(notifier: PreemptNotifier): () => void {
    this.notifiers.push(notifier)
    return () => {
      this.notifiers = this.notifiers.filter((n) => n !== notifier)
    }
  }
}

export type ThreadBody = (thread: Thread) => Effect.Effect<void>

export interface RunOptions {
  /** Stop once every CPU that still has work has reached this time. */
  readonly untilNs?: number
  /** Checked after every slice; the run stops when it returns true. */
  readonly until?: () => boolean
}

export class Scheduler {
  private readonly queues: Array<Array<Thread>>
  private readonly threads = new Set<Thread>()
  private back: Deferred.Deferred<void> = Deferred.makeUnsafe<void>()
  private running: Thread | undefined
  private failure: Cause.Cause<never> | undefined
  /** Slices dispatched so far (a cheap progress measure for tests and statistics). */
  dispatches = 0
  migrations = 0
  /** Where pickCpu starts looking: CPUs whose next start times are equal take turns. */
  private firstCandidate = 0

  constructor(
    readonly clock: VirtualClock,
    private readonly tasks: TaskTable,
    private readonly random: SeededRandom,
    private readonly scope: Scope.Scope,
    private readonly tuning: SchedulerTuning = defaultTuning,
  ) {
    this.queues = Array.from({ length: clock.cpuNs.length }, () => [])
  }

  get cpuCount(): number {
    return this.queues.length
  }

  /** Live threads (spawned, not yet exited). */
  get threadCount(): number {
    return this.threads.size
  }

  /** The thread holding a CPU right now, if any. */
  get current(): Thread | undefined {
    return this.running
  }

  /**
   * Starts `body` as the thread of `task`: its fiber waits for its first slice. The task is placed
   * on one of the least loaded CPUs (the seed decides among equals), like fork balancing.
   */
  spawn(task: Task, body: ThreadBody): Effect.Effect<Thread> {
    return Effect.gen({ self: this }, function* () {
      const thread = new Thread(task, this, this.clock.nowNs())
      this.threads.add(thread)
      const program = Effect.gen({ self: this }, function* () {
        yield* Deferred.await(thread.grant)
        yield* body(thread)
      }).pipe(
        Effect.catchCause((cause) =>
          Effect.sync(() => {
            if (!Cause.hasInterruptsOnly(cause)) this.failure ??= cause
          }),
        ),
        Effect.ensuring(Effect.sync(() => this.retire(thread))),
      )
      thread.fiber = yield* Effect.forkIn(program, this.scope)
      this.enqueue(thread, this.placeNew())
      return thread
    })
  }

  /** Makes a blocked thread runnable (or remembers the wake-up if it is not blocked). */
  wake(thread: Thread): void {
    const task = thread.task
    if (task.state === "exited") return
    if (task.state !== "blocked") {
      thread.wakePending = true
      return
    }
    const wakerNs = this.clock.nowNs()
    if (thread.lastRunNs < wakerNs) thread.lastRunNs = wakerNs
    let cpu = task.cpu < 0 ? this.placeNew() : task.cpu
    // Wake-up balancing: prefer the previous CPU, else an idle one (the seed picks which).
    if (this.queues[cpu]!.length > 0 || this.running?.cpu === cpu) {
      const idle = this.idleCount()
      if (idle > 0) cpu = this.nthWithLoad(0, this.random.below(idle))
    }
    this.enqueue(thread, cpu)
  }

  /**
   * Runs threads until none is runnable (all exited or blocked), or a stop condition holds.
   * A simulator bug inside a thread ends the run with that defect.
   */
  run(options: RunOptions = {}): Effect.Effect<void> {
    return Effect.gen({ self: this }, function* () {
      for (;;) {
        if (this.failure !== undefined) {
          const failure = this.failure
          this.failure = undefined
          return yield* Effect.failCause(failure)
        }
        if (options.until?.() === true) return
        this.balance()
        const cpu = this.pickCpu(options.untilNs)
        if (cpu < 0) return
        const back = Deferred.makeUnsafe<void>()
        this.back = back
        this.dispatch(cpu)
        yield* Deferred.await(back)
      }
    })
  }

  /** Called by a thread (through yieldCpu/block) at a scheduling point. */
  handBack(thread: Thread, next: "runnable" | "blocked"): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.running !== thread) throw new Error(`thread ${thread.task.pid} yielded a CPU it does not hold`)
      this.release(thread)
      thread.task.state = next
      thread.grant = Deferred.makeUnsafe<void>()
      if (next === "runnable") this.queues[thread.task.cpu]!.push(thread)
      const grant = thread.grant
      Deferred.doneUnsafe(this.back, Effect.void)
      return Deferred.await(grant)
    })
  }

  private dispatch(cpu: number): void {
    const queue = this.queues[cpu]!
    const thread = queue.shift()!
    const nrRunning = queue.length + 1
    this.clock.raiseTo(cpu, thread.lastRunNs)
    const start = this.clock.cpuNs[cpu]!
    thread.sliceEndNs = start + Math.max(this.tuning.minGranularityNs, Math.floor(this.tuning.latencyNs / nrRunning))
    thread.cpu = cpu
    thread.task.cpu = cpu
    thread.task.state = "running"
    this.running = thread
    this.clock.current = cpu
    this.dispatches++
    this.tasks.recordCmdline(thread.task)
    for (const n of thread.notifiers) n.schedIn(cpu)
    Deferred.doneUnsafe(thread.grant, Effect.void)
  }

  private release(thread: Thread): void {
    const cpu = thread.cpu
    for (const n of thread.notifiers) n.schedOut(cpu)
    thread.lastRunNs = this.clock.cpuNs[cpu]!
    thread.cpu = -1
    this.running = undefined
    this.clock.current = -1
  }

  private retire(thread: Thread): void {
    const held = this.running === thread
    if (held) this.release(thread)
    else {
      for (const queue of this.queues) {
        const i = queue.indexOf(thread)
        if (i >= 0) queue.splice(i, 1)
      }
    }
    this.threads.delete(thread)
    this.tasks.exit(thread.task) // sets the state to "exited"
    // Last: completing `back` may resume the driver synchronously.
    if (held) Deferred.doneUnsafe(this.back, Effect.void)
  }

  private enqueue(thread: Thread, cpu: number): void {
    const idle = this.queues[cpu]!.length === 0 && this.running?.cpu !== cpu
    if (idle) this.clock.raiseTo(cpu, thread.lastRunNs)
    thread.task.cpu = cpu
    thread.task.state = "runnable"
    this.queues[cpu]!.push(thread)
  }

  private placeNew(): number {
    let least = Infinity
    for (let c = 0; c < this.queues.length; c++) least = Math.min(least, this.load(c))
    let candidates = 0
    for (let c = 0; c < this.queues.length; c++) if (this.load(c) === least) candidates++
    return this.nthWithLoad(least, this.random.below(candidates))
  }

  private load(cpu: number): number {
    return this.queues[cpu]!.length + (this.running?.cpu === cpu ? 1 : 0)
  }

  // Counting and indexing instead of collecting candidate lists: these run at every scheduling
  // decision, which must not allocate (the seed draws are the same either way).

  private idleCount(): number {
    let idle = 0
    for (let c = 0; c < this.queues.length; c++) if (this.load(c) === 0) idle++
    return idle
  }

  /** The `n`-th CPU (in CPU order, from 0) whose load is `load`. */
  private nthWithLoad(load: number, n: number): number {
    for (let c = 0; c < this.queues.length; c++) {
      if (this.load(c) === load && n-- === 0) return c
    }
    throw new Error(`scheduler: no CPU #${n} with load ${load}`)
  }

  /** Idle balancing: an idle CPU pulls the most recently queued thread of the busiest CPU. */
  private balance(): void {
    for (;;) {
      const idle = this.idleCount()
      if (idle === 0) return
      let busiest = -1
      for (let c = 0; c < this.queues.length; c++) {
        if (this.queues[c]!.length >= 2 && (busiest < 0 || this.queues[c]!.length > this.queues[busiest]!.length)) busiest = c
      }
      if (busiest < 0) return
      const target = this.nthWithLoad(0, this.random.below(idle))
      const thread = this.queues[busiest]!.pop()!
      this.migrations++
      this.enqueue(thread, target)
    }
  }

  /**
   * The CPU that runs next: the earliest start time among CPUs with queued threads. CPUs whose
   * start times are equal run at the same moment on real hardware; the lockstep simulation takes
   * them in turn (round robin from the CPU after the last one picked). Taking the lowest-numbered
   * one every time would let CPU 0 run all its threads first whenever they take no virtual time
   * (vCPU threads setting up, then blocking), go idle while the others still have a full queue at
   * that same instant, and pull their threads one by one: all of a VM's vCPU threads would end up
   * having last run on CPU 0, and land there again when woken.
   */
  private pickCpu(untilNs: number | undefined): number {
    const n = this.queues.length
    let best = -1
    let bestStart = Infinity
    for (let i = 0; i < n; i++) {
      let c = this.firstCandidate + i
      if (c >= n) c -= n
      const head = this.queues[c]![0]
      if (head === undefined) continue
      const start = Math.max(this.clock.cpuNs[c]!, head.lastRunNs)
      if (start < bestStart) {
        best = c
        bestStart = start
      }
    }
    if (untilNs !== undefined && bestStart >= untilNs) return -1
    if (best >= 0) this.firstCandidate = best + 1 === n ? 0 : best + 1
    return best
  }
}
