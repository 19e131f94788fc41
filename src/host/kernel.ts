// The host kernel core as one service: profile, host CPUs and their clocks, tasks, the scheduler,
// the module registry and /dev. Built once per simulated machine; everything in it is released
// with the Layer's scope (thread fibers are interrupted when it closes).

import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { VirtualClock } from "./clock.ts"
import { DeviceRegistry } from "./devices.ts"
import { ModuleRegistry } from "./modules.ts"
import { kernelProfile } from "./profile.ts"
import type { KernelProfile, KernelProfileName } from "./profile.ts"
import { SeededRandom } from "./rng.ts"
import { Scheduler, defaultTuning } from "./scheduler.ts"
import type { SchedulerTuning } from "./scheduler.ts"
import { TaskTable } from "./task.ts"

export interface HostKernelOptions {
  readonly profile?: KernelProfileName
  /** Number of online host CPUs (default 4, as the homework's host). */
  readonly cpus?: number
  /** Seed of every scheduling choice (default 1). */
  readonly seed?: number
  /** Uptime when the simulation starts (default 100 s). */
  readonly startNs?: number
  /** Virtual nanoseconds per retired guest instruction (default 1). */
  readonly nsPerInstruction?: number
  /** The next pid the kernel hands out (default 12396, so a first QEMU's vCPU 0 thread is 12398). */
  readonly firstPid?: number
  readonly tuning?: SchedulerTuning
}

export interface HostKernelShape {
  readonly profile: KernelProfile
  readonly cpuCount: number
  readonly clock: VirtualClock
  readonly tasks: TaskTable
  readonly scheduler: Scheduler
  readonly modules: ModuleRegistry
  readonly devices: DeviceRegistry
}

export class HostKernel extends Context.Service<HostKernel, HostKernelShape>()("kvmsim/host/HostKernel") {}

export const makeHostKernel = (options: HostKernelOptions = {}): Effect.Effect<HostKernelShape, never, Scope.Scope> =>
  Effect.gen(function* () {
    const profile = kernelProfile(options.profile)
    const cpuCount = options.cpus ?? 4
    if (!Number.isInteger(cpuCount) || cpuCount < 1 || cpuCount > 256) {
      return yield* Effect.die(new RangeError(`host CPU count must be 1..256, got ${cpuCount}`))
    }
    const clock = new VirtualClock({
      cpuCount,
      startNs: options.startNs ?? 100_000_000_000,
      nsPerInstruction: options.nsPerInstruction ?? 1,
      hz: profile.hz,
    })
    const tasks = new TaskTable({ pidMax: profile.pidMax, firstPid: options.firstPid ?? 12396 })
    const scope = yield* Effect.scope
    const scheduler = new Scheduler(clock, tasks, new SeededRandom(options.seed ?? 1), scope, options.tuning ?? defaultTuning)
    return { profile, cpuCount, clock, tasks, scheduler, modules: new ModuleRegistry(), devices: new DeviceRegistry() }
  })

export const HostKernelLive = (options: HostKernelOptions = {}): Layer.Layer<HostKernel> =>
  Layer.effect(HostKernel, makeHostKernel(options))
