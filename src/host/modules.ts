// The module registry: insmod / rmmod / lsmod with the kernel's rules. A module may depend on
// others (it uses their symbols): loading it without them fails like an unresolved symbol
// (ENOENT), and each dependency's reference count goes up while it is loaded. rmmod of a module
// that others depend on, or that someone holds a reference to (try_module_get, e.g. an open
// /dev/kvm or a VM), fails with EWOULDBLOCK as delete_module() does. A module's init runs in its
// own Scope, closed after its exit function at rmmod: hook subscriptions and files made by the
// module go away with it.

import { Cause, Data, Effect, Exit, Option, Scope } from "effect"
import { EWOULDBLOCK, Errno, errnoName } from "./errno.ts"

export type ModuleParams = Readonly<Record<string, string>>

export interface KernelModule {
  readonly name: string
  /** Modules whose symbols this one uses (the "depends:" line of modinfo). */
  readonly dependsOn?: ReadonlyArray<string>
  /** module_init: runs at insmod in the module's scope; a failure is returned as insmod's errno. */
  readonly init?: (params: ModuleParams) => Effect.Effect<void, ModuleInitError, Scope.Scope>
  /** module_exit: runs at rmmod, before the module's scope is closed. */
  readonly exit?: () => Effect.Effect<void>
}

/** What a module's init may fail with: an errno and a message for the kernel log. */
export class ModuleInitError extends Data.TaggedError("ModuleInitError")<{
  readonly errno: number
  readonly message: string
}> {}

/** insmod / rmmod failed; `errno` is what init_module / delete_module returned. */
export class ModuleError extends Data.TaggedError("ModuleError")<{
  readonly call: "init_module" | "delete_module"
  readonly module: string
  readonly errno: number
  readonly message: string
}> {}

interface LoadedModule {
  readonly module: KernelModule
  readonly params: ModuleParams
  readonly scope: Scope.Closeable
  /** Modules that depend on this one (the "Used by" list). */
  readonly holders: Set<string>
  /** References taken with tryModuleGet. */
  references: number
}

export interface LsmodLine {
  readonly name: string
  /** refcnt: holders plus references, as /sys/module/<name>/refcnt shows. */
  readonly used: number
  readonly usedBy: ReadonlyArray<string>
}

export class ModuleRegistry {
  private readonly loaded = new Map<string, LoadedModule>()
  /** Load order, newest last (lsmod prints newest first). */
  private readonly order: Array<string> = []

  insmod(module: KernelModule, params: ModuleParams = {}): Effect.Effect<void, ModuleError> {
    return Effect.gen({ self: this }, function* () {
      const fail = (errno: number, message: string) =>
        Effect.fail(new ModuleError({ call: "init_module", module: module.name, errno, message }))
      if (this.loaded.has(module.name)) {
        return yield* fail(Errno.EEXIST, `insmod: ERROR: could not insert module ${module.name}: File exists`)
      }
      const missing = (module.dependsOn ?? []).filter((d) => !this.loaded.has(d))
      if (missing.length > 0) {
        return yield* fail(
          Errno.ENOENT,
          `insmod: ERROR: could not insert module ${module.name}: Unknown symbol in module (load ${missing.join(", ")} first)`,
        )
      }
      const scope = yield* Scope.make()
      if (module.init !== undefined) {
        const exit = yield* Effect.exit(Scope.provide(module.init(params), scope))
        if (Exit.isFailure(exit)) {
          // A failed init leaves nothing behind: whatever it acquired is released.
          yield* Scope.close(scope, exit)
          const error = Cause.findErrorOption(exit.cause)
          if (Option.isNone(error)) return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
          return yield* fail(
            error.value.errno,
            `insmod: ERROR: could not insert module ${module.name}: ${error.value.message} (${errnoName(error.value.errno)})`,
          )
        }
      }
      for (const d of module.dependsOn ?? []) this.loaded.get(d)!.holders.add(module.name)
      this.loaded.set(module.name, { module, params, scope, holders: new Set(), references: 0 })
      this.order.push(module.name)
    })
  }

  rmmod(name: string): Effect.Effect<void, ModuleError> {
    return Effect.gen({ self: this }, function* () {
      const fail = (errno: number, message: string) =>
        Effect.fail(new ModuleError({ call: "delete_module", module: name, errno, message }))
      const entry = this.loaded.get(name)
      if (entry === undefined) {
        return yield* fail(Errno.ENOENT, `rmmod: ERROR: Module ${name} is not currently loaded`)
      }
      if (entry.holders.size > 0) {
        return yield* fail(EWOULDBLOCK, `rmmod: ERROR: Module ${name} is in use by: ${[...entry.holders].join(" ")}`)
      }
      if (entry.references > 0) {
        return yield* fail(EWOULDBLOCK, `rmmod: ERROR: Module ${name} is in use`)
      }
      if (entry.module.exit !== undefined) yield* entry.module.exit()
      yield* Scope.close(entry.scope, Exit.void)
      for (const d of entry.module.dependsOn ?? []) this.loaded.get(d)?.holders.delete(name)
      this.loaded.delete(name)
      this.order.splice(this.order.indexOf(name), 1)
    })
  }

  isLoaded(name: string): boolean {
    return this.loaded.has(name)
  }

  params(name: string): ModuleParams | undefined {
    return this.loaded.get(name)?.params
  }

  /** try_module_get: takes a reference if the module is loaded. */
  tryModuleGet(name: string): boolean {
    const entry = this.loaded.get(name)
    if (entry === undefined) return false
    entry.references++
    return true
  }

  /** module_put: drops a reference taken with tryModuleGet. */
  modulePut(name: string): void {
    const entry = this.loaded.get(name)
    if (entry === undefined || entry.references === 0) throw new Error(`module_put(${name}) without a reference`)
    entry.references--
  }

  refcount(name: string): number {
    const entry = this.loaded.get(name)
    return entry === undefined ? 0 : entry.holders.size + entry.references
  }

  /** lsmod: newest module first. */
  lsmod(): Array<LsmodLine> {
    return [...this.order].reverse().map((name) => {
      const entry = this.loaded.get(name)!
      return { name, used: entry.holders.size + entry.references, usedBy: [...entry.holders] }
    })
  }
}
