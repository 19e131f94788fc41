import { Effect, Exit } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Errno } from "../../src/host/errno.ts"
import { Hook } from "../../src/host/hooks.ts"
import { ModuleInitError, ModuleRegistry } from "../../src/host/modules.ts"
import type { KernelModule } from "../../src/host/modules.ts"

const kvm: KernelModule = { name: "kvm" }
const kvmIntel: KernelModule = { name: "kvm_intel", dependsOn: ["kvm"] }

const errnoOf = (exit: Exit.Exit<unknown, { errno: number }>): number | undefined =>
  Exit.isFailure(exit) ? (exit.cause.reasons[0] as { error?: { errno: number } } | undefined)?.error?.errno : undefined

describe("module registry", () => {
  it("loads kvm then kvm_intel, refuses the wrong order and double loads", async () => {
    const r = new ModuleRegistry()
    expect(errnoOf(await Effect.runPromiseExit(r.insmod(kvmIntel)))).toBe(Errno.ENOENT)
    await Effect.runPromise(r.insmod(kvm))
    await Effect.runPromise(r.insmod(kvmIntel))
    expect(errnoOf(await Effect.runPromiseExit(r.insmod(kvm)))).toBe(Errno.EEXIST)
    expect(r.lsmod()).toEqual([
      { name: "kvm_intel", used: 0, usedBy: [] },
      { name: "kvm", used: 1, usedBy: ["kvm_intel"] },
    ])
  })

  it("refuses rmmod of a module in use (EWOULDBLOCK) and of one not loaded (ENOENT)", async () => {
    const r = new ModuleRegistry()
    await Effect.runPromise(Effect.all([r.insmod(kvm), r.insmod(kvmIntel)]))
    const busy = await Effect.runPromiseExit(r.rmmod("kvm"))
    expect(errnoOf(busy)).toBe(Errno.EAGAIN)
    expect(String(Exit.isFailure(busy) && (busy.cause.reasons[0] as { error: Error }).error.message)).toContain("in use by: kvm_intel")
    expect(r.tryModuleGet("kvm_intel")).toBe(true)
    expect(errnoOf(await Effect.runPromiseExit(r.rmmod("kvm_intel")))).toBe(Errno.EAGAIN)
    r.modulePut("kvm_intel")
    await Effect.runPromise(r.rmmod("kvm_intel"))
    await Effect.runPromise(r.rmmod("kvm"))
    expect(errnoOf(await Effect.runPromiseExit(r.rmmod("kvm")))).toBe(Errno.ENOENT)
    expect(r.lsmod()).toEqual([])
  })

  it("returns init's errno and releases what a failed init acquired", async () => {
    const r = new ModuleRegistry()
    const hook = new Hook<number>("test")
    const failing: KernelModule = {
      name: "vmcsctl",
      init: () =>
        Effect.gen(function* () {
          yield* hook.subscribeScoped(() => {})
          return yield* Effect.fail(new ModuleInitError({ errno: Errno.ENODEV, message: "no VMX" }))
        }),
    }
    expect(errnoOf(await Effect.runPromiseExit(r.insmod(failing)))).toBe(Errno.ENODEV)
    expect(hook.listenerCount).toBe(0)
    expect(r.isLoaded("vmcsctl")).toBe(false)
  })

  it("closes a module's scope at rmmod: its hook subscriptions end, after its exit function", async () => {
    const r = new ModuleRegistry()
    const hook = new Hook<number>("vmcs_alloc")
    const seen: Array<string> = []
    const listener: KernelModule = {
      name: "vmcsctl",
      init: () => hook.subscribeScoped((n) => seen.push(`event ${n}`)),
      exit: () => Effect.sync(() => seen.push(`exit with ${hook.listenerCount} listener`)),
    }
    await Effect.runPromise(r.insmod(listener))
    hook.emit(1)
    await Effect.runPromise(r.rmmod("vmcsctl"))
    hook.emit(2)
    expect(seen).toEqual(["event 1", "exit with 1 listener"])
    expect(hook.listenerCount).toBe(0)
  })

  it("dependency and refcount rules hold over random operation sequences (fast-check model)", async () => {
    const names = ["kvm", "kvm_intel", "vmcsctl", "vmcs_sysfs"] as const
    const deps: Record<string, ReadonlyArray<string>> = { kvm: [], kvm_intel: ["kvm"], vmcsctl: ["kvm_intel"], vmcs_sysfs: ["kvm_intel"] }
    const op = fc.oneof(
      fc.record({ kind: fc.constant("insmod" as const), name: fc.constantFrom(...names) }),
      fc.record({ kind: fc.constant("rmmod" as const), name: fc.constantFrom(...names) }),
      fc.record({ kind: fc.constant("get" as const), name: fc.constantFrom(...names) }),
      fc.record({ kind: fc.constant("put" as const), name: fc.constantFrom(...names) }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        const r = new ModuleRegistry()
        const loaded = new Set<string>()
        const refs = new Map<string, number>()
        for (const o of ops) {
          if (o.kind === "insmod") {
            const expectOk = !loaded.has(o.name) && deps[o.name]!.every((d) => loaded.has(d))
            const exit = await Effect.runPromiseExit(r.insmod({ name: o.name, dependsOn: deps[o.name]! }))
            expect(Exit.isSuccess(exit)).toBe(expectOk)
            if (expectOk) loaded.add(o.name)
          } else if (o.kind === "rmmod") {
            const holders = [...loaded].filter((m) => deps[m]!.includes(o.name))
            const expectOk = loaded.has(o.name) && holders.length === 0 && (refs.get(o.name) ?? 0) === 0
            const exit = await Effect.runPromiseExit(r.rmmod(o.name))
            expect(Exit.isSuccess(exit)).toBe(expectOk)
            if (expectOk) loaded.delete(o.name)
          } else if (o.kind === "get") {
            expect(r.tryModuleGet(o.name)).toBe(loaded.has(o.name))
            if (loaded.has(o.name)) refs.set(o.name, (refs.get(o.name) ?? 0) + 1)
          } else if ((refs.get(o.name) ?? 0) > 0) {
            r.modulePut(o.name)
            refs.set(o.name, refs.get(o.name)! - 1)
          }
          for (const m of names) {
            const holders = [...loaded].filter((x) => deps[x]!.includes(m)).length
            expect(r.refcount(m)).toBe(loaded.has(m) ? holders + (refs.get(m) ?? 0) : 0)
          }
        }
      }),
      { numRuns: 200 },
    )
  })
})
