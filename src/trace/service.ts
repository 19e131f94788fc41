// The trace instance as an Effect service: the tracer (ring buffers, writers), the KVM
// tracepoint writers and the tracefs file logic, built together from one set of options.

import { Context, Layer } from "effect"
import { KvmTracepoints } from "./kvm-tracepoints.ts"
import { TraceFs } from "./tracefs.ts"
import { Tracer, type TracerOptions } from "./tracer.ts"

export interface TraceShape {
  readonly tracer: Tracer
  readonly kvm: KvmTracepoints
  readonly tracefs: TraceFs
}

export class Trace extends Context.Service<Trace, TraceShape>()("kvmsim/trace/Trace") {}

/** Builds a tracer with its KVM writers and tracefs logic. */
export const makeTrace = (options: TracerOptions): TraceShape => {
  const tracer = new Tracer(options)
  return { tracer, kvm: new KvmTracepoints(tracer), tracefs: new TraceFs(tracer) }
}

export const TraceLive = (options: TracerOptions): Layer.Layer<Trace> => Layer.sync(Trace, () => makeTrace(options))
