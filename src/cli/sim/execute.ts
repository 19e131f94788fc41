// One whole run as `kvmsim run` and `kvmsim stat` do it: boot the host, insmod the user's
// modules, boot GUEST, run it to its end or a limit (with a progress line on a terminal),
// then collect everything the reports need before the VM is closed.

import { Effect } from "effect"
import { UsageError, loadUserModule } from "../commands/run-options.ts"
import { classify, type Outcome } from "./outcome.ts"
import { bootSimHost, type GuestOptions, type HostOptions, type InjectionResult, type SimHost, type VcpuSnapshot } from "./session.ts"

export interface RunResult {
  readonly outcome: Outcome
  readonly console: string
  readonly vcpus: ReadonlyArray<VcpuSnapshot>
  readonly steps: number
  readonly virtualTimeNs: number
  readonly injections: ReadonlyArray<InjectionResult>
  readonly trace: string
  /** Epoch ms of the first VM entry (with probeStartup). */
  readonly firstEntryEpochMs?: number
}

export interface ExecuteOptions {
  readonly host: HostOptions
  readonly guest: GuestOptions
  readonly modules: ReadonlyArray<string>
  /** Console bytes as they come (after each scheduling chunk). */
  readonly onConsole?: (text: string) => void
  /** Called every ~100 ms of wall time while the guest runs (for a progress line). */
  readonly onProgress?: (sim: SimHost) => void
  /** Called once the run ended, before the VM is closed (for samples, stat -l). */
  readonly onSample?: (sim: SimHost) => void
  /** Virtual nanoseconds between onSample calls while running (stat -l). */
  readonly sampleEveryNs?: number
  readonly wantTrace: boolean
  /** Record when the first guest instruction runs (the startup benchmark). */
  readonly probeStartup?: boolean
}

export const executeRun = (options: ExecuteOptions): Effect.Effect<RunResult, UsageError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const sim = yield* Effect.mapError(bootSimHost(options.host), (e) => new UsageError({ message: typeof e === "string" ? e : e.message }))
      for (const file of options.modules) yield* loadUserModule(sim, file)
      if (options.onConsole !== undefined) sim.onConsole(options.onConsole)
      if (options.probeStartup === true) sim.alwaysObserve = true
      yield* Effect.mapError(sim.boot(options.guest), (message) => new UsageError({ message }))
      let wallDeadline = Date.now() + 100
      let nextSample = sim.startNs + (options.sampleEveryNs ?? Infinity)
      const chunked = options.onProgress !== undefined || options.sampleEveryNs !== undefined
      while (!sim.finished) {
        yield* sim.advance(
          chunked
            ? () => Date.now() >= wallDeadline || (options.sampleEveryNs !== undefined && sim.host.clock.nowNs() >= nextSample)
            : undefined,
        )
        if (options.onProgress !== undefined && Date.now() >= wallDeadline) {
          options.onProgress(sim)
          wallDeadline = Date.now() + 100
        }
        if (options.sampleEveryNs !== undefined && sim.host.clock.nowNs() >= nextSample) {
          options.onSample?.(sim)
          nextSample = sim.host.clock.nowNs() + options.sampleEveryNs
        }
      }
      options.onSample?.(sim)
      const vcpus = sim.vcpuSnapshots()
      const steps = sim.steps()
      sim.close()
      return {
        outcome: classify(sim.end, sim.limitHit, options.guest.bare),
        console: sim.console,
        vcpus,
        steps,
        virtualTimeNs: sim.virtualTimeNs(),
        injections: [...sim.injected],
        trace: options.wantTrace ? sim.traceText() : "",
        ...(sim.firstEntryEpochMs === undefined ? {} : { firstEntryEpochMs: sim.firstEntryEpochMs }),
      }
    }),
  )
