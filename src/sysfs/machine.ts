// Mounting everything on one tree for a simulated host: /proc from its tasks, tracefs from its
// trace instance, /sys/kernel/debug/kvm from its KVM module. The composition root (the CLI)
// calls these; SysfsHostLive does the first two from the host's services.

import { Effect, Layer } from "effect"
import { HostKernel } from "../host/kernel.ts"
import type { KernelProfileName } from "../host/profile.ts"
import { Trace } from "../trace/service.ts"
import type { TraceFs } from "../trace/tracefs.ts"
import { type DebugfsKvm, mountKvmDebugfs } from "./debugfs-kvm.ts"
import { mountProc, type ProcTaskSource } from "./proc.ts"
import { makeSysfs, makeTree, Sysfs, type SysfsShape } from "./service.ts"
import { mountTracefs } from "./tracefs-mount.ts"

export interface MountSources {
  readonly tasks?: ProcTaskSource
  readonly tracefs?: TraceFs
  /** KVM and the profile whose statistics names debugfs uses. */
  readonly kvm?: { readonly instance: DebugfsKvm; readonly profile: KernelProfileName }
}

/** A Sysfs over a fresh tree with whichever of /proc, tracefs and debugfs-kvm the sources give. */
export const makeMachineSysfs = (sources: MountSources): SysfsShape => {
  const fs = makeTree()
  if (sources.tasks !== undefined) mountProc(fs, sources.tasks)
  if (sources.tracefs !== undefined) mountTracefs(fs, sources.tracefs)
  if (sources.kvm !== undefined) mountKvmDebugfs(fs, sources.kvm.instance, sources.kvm.profile)
  return makeSysfs(fs)
}

/** The Sysfs service for the host in context: /proc from its task table, tracefs from its trace. */
export const SysfsHostLive: Layer.Layer<Sysfs, never, HostKernel | Trace> = Layer.effect(
  Sysfs,
  Effect.gen(function* () {
    const host = yield* HostKernel
    const trace = yield* Trace
    return makeMachineSysfs({ tasks: host.tasks, tracefs: trace.tracefs })
  }),
)
