// A whole simulated host as the VMM sees it: the host kernel core, its ftrace instance (era and
// clock from the kernel profile, comms from the task table), and kvm + kvm_intel loaded with
// their tracepoints going to that ftrace. Everything is released with the scope.

import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { makeHostKernel } from "../../host/kernel.ts"
import type { HostKernelOptions, HostKernelShape } from "../../host/kernel.ts"
import type { ModuleError } from "../../host/modules.ts"
import { makeTrace } from "../../trace/service.ts"
import type { TraceShape } from "../../trace/service.ts"
import { TraceSnapshotReader } from "../../trace/readers.ts"
import { FtraceSink } from "../kvm/ftrace-sink.ts"
import type { Kvm } from "../kvm/kvm.ts"
import { loadKvm } from "../kvm/module.ts"

export interface SimulatedHost {
  readonly host: HostKernelShape
  readonly trace: TraceShape
  readonly kvm: Kvm
}

export interface SimulatedHostOptions extends HostKernelOptions {
  /** Number of KVM_HC_VCPU_INFO (linux-6.x: any free number; default 13 there, 11 in linux-5.0). */
  readonly vcpuInfoHypercall?: number
  /** Enable these KVM tracepoints (events/kvm/<name>/enable = 1), e.g. ["kvm_exit", "kvm_hypercall"]. */
  readonly events?: ReadonlyArray<string>
}

export const bootHost = (options: SimulatedHostOptions = {}): Effect.Effect<SimulatedHost, ModuleError, Scope.Scope> =>
  Effect.gen(function* () {
    const host = yield* makeHostKernel(options)
    const trace = makeTrace({ cpuCount: host.cpuCount, clock: host.clock, tasks: host.tasks, era: host.profile.traceEra, hz: host.profile.hz })
    for (const name of options.events ?? []) {
      const index = trace.tracer.eventIndex(name)
      if (index < 0) throw new Error(`unknown KVM tracepoint ${name}`)
      trace.tracer.setEventEnabled(index, true)
    }
    const kvm = yield* loadKvm(host, {
      trace: new FtraceSink(trace),
      ...(options.vcpuInfoHypercall === undefined ? {} : { vcpuInfoHypercall: options.vcpuInfoHypercall }),
    })
    return { host, trace, kvm }
  })

/** `cat /sys/kernel/debug/tracing/trace`: the whole file, read once. */
export const catTrace = (trace: TraceShape): string => {
  const reader = new TraceSnapshotReader(trace.tracer)
  try {
    return reader.readAll()
  } finally {
    reader.close()
  }
}

/** The simulated host as an Effect service. */
export class Host extends Context.Service<Host, SimulatedHost>()("kvmsim/vmm/Host") {}

/** A Layer booting a simulated host (released with the layer's scope). */
export const HostLive = (options: SimulatedHostOptions = {}): Layer.Layer<Host, ModuleError> => Layer.effect(Host, bootHost(options))
