import { Effect, Layer } from "effect"
import { expect } from "vitest"
import { HostKernel, HostKernelLive } from "../../src/host/kernel.ts"
import { ManualClock, StaticTaskNames } from "../../src/trace/context.ts"
import { TraceLive } from "../../src/trace/service.ts"
import { SysfsHostLive } from "../../src/sysfs/machine.ts"
import { Sysfs } from "../../src/sysfs/service.ts"
import { itEffect } from "../support/effect.ts"

itEffect("SysfsHostLive mounts /proc from the host's tasks and tracefs from its trace", () =>
  Effect.gen(function* () {
    const host = yield* HostKernel
    const sysfs = yield* Sysfs
    const qemu = host.tasks.spawnProcess("qemu-system-x86")
    expect(yield* sysfs.cat(`/proc/${qemu.pid}/comm`)).toBe("qemu-system-x86\n")
    expect(yield* sysfs.cat("/sys/kernel/debug/tracing/tracing_on")).toBe("1\n")
    expect(yield* sysfs.ls("/sys/kernel")).toEqual(["debug", "tracing"])
  }).pipe(
    Effect.provide(
      SysfsHostLive.pipe(
        Layer.provideMerge(HostKernelLive()),
        Layer.provideMerge(TraceLive({ cpuCount: 4, clock: new ManualClock(0), tasks: new StaticTaskNames() })),
      ),
    ),
  ),
)
