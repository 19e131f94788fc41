// The vmcsctl module (document 002), fixed: /sys/kernel/vmcsctl/vmcs<PID>/ with one file per VMCS
// field plus revision_id and abort, made by KVM's alloc hook, removed by its free hook, and made
// at load time for VMCSs that already exist. Every access is a VMREAD/VMWRITE on the logical
// processor that owns the VMCS (see onOwningProcessor); EIO when VMX is off there.
//
// Naming: the first VMCS a thread allocates is vmcs<PID>; further ones of the same thread,
// while it is taken, are vmcs<PID>-2, vmcs<PID>-3, … (the lowest free suffix).

import { Effect } from "effect"
import { type KernelModule, ModuleInitError, type ModuleParams } from "../../host/modules.ts"
import { EIO } from "../errno.ts"
import { type Attribute, type AttributeGroup, KObject } from "../kobject.ts"
import { kstrtouWidth } from "../kstrtox.ts"
import type { Executor } from "../nodes.ts"
import { removeKObject, type SysfsShape } from "../service.ts"
import { fieldMode, type VmcsctlField, vmcsctlFields } from "./fields.ts"
import { parseBoolParam, showBoolParam } from "./params.ts"
import { onOwningProcessor, type VmcsEvents, type VmcsInfo, type VmxProcessors } from "./port.ts"

export interface VmcsctlDeps {
  readonly sysfs: Pick<SysfsShape, "kernelKobj" | "moduleKobj">
  readonly cpus: VmxProcessors
  readonly events: VmcsEvents
  /** Modules vmcsctl uses symbols of (default: kvm_intel, as the patch's hooks live there). */
  readonly dependsOn?: ReadonlyArray<string>
}

/** The files of one VMCS directory. */
export const vmcsAttributes = (cpus: VmxProcessors, vmcs: VmcsInfo, unsafeWrites: boolean): Array<Attribute> => {
  const fieldAttribute = (field: VmcsctlField): Attribute => {
    const mode = fieldMode(field, unsafeWrites)
    const show = (): string | number => {
      const value = onOwningProcessor(cpus, vmcs, (cpu) => cpus.vmread(cpu, field.encoding))
      return typeof value === "bigint" ? `${value}\n` : -EIO
    }
    if ((mode & 0o200) === 0) return { name: field.name, mode, show }
    const store = (text: string): number => {
      const value = kstrtouWidth(text, field.bits)
      if (typeof value === "number") return value
      const result = onOwningProcessor(cpus, vmcs, (cpu) => cpus.vmwrite(cpu, field.encoding, value))
      return result === 0 ? text.length : -EIO
    }
    return { name: field.name, mode, show, store }
  }
  return [
    { name: "revision_id", mode: 0o444, show: () => `${cpus.regionHeader(vmcs.address).revisionId >>> 0}\n` },
    { name: "abort", mode: 0o444, show: () => `${cpus.regionHeader(vmcs.address).abort >>> 0}\n` },
    ...vmcsctlFields.map(fieldAttribute),
  ]
}

/** The live state of a loaded vmcsctl: the kset and one kobject per VMCS. */
export class VmcsctlDirectory {
  private readonly byAddress = new Map<bigint, KObject>()
  /**
   * Where the Effect-based file API runs this module's show/store (set on each new VMCS
   * directory): by default in place; tests insert scheduling points here to race accesses
   * against the free hook.
   */
  executor: Executor | undefined = undefined
  constructor(
    readonly kset: KObject,
    private readonly cpus: VmxProcessors,
    readonly unsafeWrites: boolean,
  ) {}

  private nameFor(pid: number): string {
    const base = `vmcs${pid}`
    if (!this.kset.dir.children.has(base)) return base
    for (let n = 2; ; n++) if (!this.kset.dir.children.has(`${base}-${n}`)) return `${base}-${n}`
  }

  /** Sets where show/store run for existing and future VMCS directories. */
  setExecutor(executor: Executor | undefined): void {
    this.executor = executor
    for (const kobject of this.byAddress.values()) kobject.activity.executor = executor
  }

  /** The alloc hook: makes the VMCS's directory (once per VMCS). */
  add(vmcs: VmcsInfo): void {
    if (this.byAddress.has(vmcs.address)) return
    const kobject = this.kset.addChild(this.nameFor(vmcs.creatorPid))
    if (typeof kobject === "number") throw new Error(`vmcsctl: kobject_add failed with ${kobject}`)
    const group: AttributeGroup = { attrs: vmcsAttributes(this.cpus, vmcs, this.unsafeWrites) }
    kobject.activity.executor = this.executor
    const created = kobject.createGroup(group)
    if (created < 0) throw new Error(`vmcsctl: sysfs_create_group failed with ${created}`)
    this.byAddress.set(vmcs.address, kobject)
  }

  /** The free hook: the directory goes before the VMCS does; open handles then fail with ENODEV. */
  remove(vmcs: VmcsInfo): void {
    const kobject = this.byAddress.get(vmcs.address)
    if (kobject === undefined) return
    this.byAddress.delete(vmcs.address)
    kobject.removeNow()
  }

  /** Directory name of the VMCS at `address`, if it has one. */
  nameOf(address: bigint): string | undefined {
    return this.byAddress.get(address)?.name
  }

  get size(): number {
    return this.byAddress.size
  }
}

/**
 * The vmcsctl kernel module. Parameter `unsafe_writes` (bool, default N): when Y, host-state and
 * physical-address fields are writable too. `onLoad` receives the directory state (for tests and
 * the CLI).
 */
export const vmcsctlModule = (deps: VmcsctlDeps, onLoad?: (state: VmcsctlDirectory) => void): KernelModule => ({
  name: "vmcsctl",
  dependsOn: deps.dependsOn ?? ["kvm_intel"],
  init: (params: ModuleParams) =>
    Effect.gen(function* () {
      const unsafeWrites = parseBoolParam(params["unsafe_writes"])
      if (typeof unsafeWrites === "number") {
        return yield* Effect.fail(
          new ModuleInitError({ errno: -unsafeWrites, message: `vmcsctl: bad value '${params["unsafe_writes"]}' for unsafe_writes (use Y or N)` }),
        )
      }
      const moduleDir = yield* scopedChild(deps.sysfs.moduleKobj, "vmcsctl")
      const paramDir = moduleDir.addChild("parameters")
      if (typeof paramDir !== "number") paramDir.createFile({ name: "unsafe_writes", mode: 0o444, show: () => showBoolParam(unsafeWrites) })
      const kset = yield* scopedChild(deps.sysfs.kernelKobj, "vmcsctl")
      const state = new VmcsctlDirectory(kset, deps.cpus, unsafeWrites)
      // Subscribe first, then enumerate: a VMCS made in between is seen once (add is idempotent).
      yield* Effect.acquireRelease(
        Effect.sync(() => [deps.events.onAlloc((v) => state.add(v)), deps.events.onFree((v) => state.remove(v))]),
        (unsubscribe) => Effect.sync(() => unsubscribe.forEach((u) => u())),
      )
      for (const vmcs of deps.events.existing()) state.add(vmcs)
      onLoad?.(state)
    }),
})

/** A child kobject removed (waiting for accesses in flight) when the module's scope closes. */
const scopedChild = (parent: KObject, name: string) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const child = parent.addChild(name)
      return typeof child === "number"
        ? Effect.fail(new ModuleInitError({ errno: -child, message: `cannot create ${parent.path}/${name}` }))
        : Effect.succeed(child)
    }),
    removeKObject,
  )
