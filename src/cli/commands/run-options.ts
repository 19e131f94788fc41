// The options `run`, `stat` and `shell` share: the host (profile, seed, events, modules), the
// guest machine (vCPUs, memory, bare mode, load address), limits and VMCS injections.

import { pathToFileURL } from "node:url"
import { resolve } from "node:path"
import { Data, Effect, Option } from "effect"
import { Flag } from "effect/cli"
import { VmcsField } from "../../arch/vmx/vmcs-fields.ts"
import type { KernelProfileName } from "../../host/profile.ts"
import type { KernelModule } from "../../host/modules.ts"
import { parseDefines } from "./asm.ts"
import { defaultBareAddress, defaultUserAddress, type LoadedGuest, loadGuestFile } from "../sim/guest-file.ts"
import type { GuestOptions, HostOptions, Injection, SimHost } from "../sim/session.ts"
import { isUserModule, type ModuleContext } from "../module-api.ts"

/** A problem with the command line or its files (exit status 2). */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

export const hostFlags = {
  profile: Flag.Literals("profile", ["linux-5.0", "linux-6.x"]).pipe(
    Flag.withDescription("kernel profile of the simulated host: linux-5.0 (the homework era, KVM_HC_VCPU_INFO = 11) or linux-6.x"),
    Flag.withDefault("linux-5.0" as const),
  ),
  seed: Flag.Int("seed").pipe(Flag.withMetavar("S"), Flag.withDescription("seed of every scheduling choice (same seed, same trace bytes)"), Flag.withDefault(1)),
  hostCpus: Flag.Int("host-cpus").pipe(Flag.withMetavar("N"), Flag.withDescription("online CPUs of the simulated host (default 4, the homework's host)"), Flag.withDefault(4)),
  events: Flag.String("events").pipe(
    Flag.withMetavar("LIST"),
    Flag.withDescription("KVM tracepoints to enable, comma-separated (kvm_exit,kvm_entry,kvm_hypercall,kvm_pio,…) or 'all'"),
    Flag.optional,
  ),
  module: Flag.String("module").pipe(
    Flag.withMetavar("FILE.ts"),
    Flag.withDescription("insmod a kernel module written in TypeScript (hypercalls, sysfs groups); repeatable"),
    Flag.atLeast(0),
  ),
}

export const guestFlags = {
  vcpus: Flag.Int("vcpus").pipe(Flag.withMetavar("N"), Flag.withDescription("number of vCPUs (1-64)"), Flag.withDefault(1)),
  mem: Flag.String("mem").pipe(Flag.withMetavar("SIZE"), Flag.withDescription("guest RAM, e.g. 16M, 64MiB, 1G (default 16M)"), Flag.withDefault("16M")),
  define: Flag.String("define").pipe(
    Flag.withAlias("D"),
    Flag.withMetavar("NAME=VALUE"),
    Flag.withDescription("define a macro when GUEST is assembly, like nasm -D (repeatable)"),
    Flag.atLeast(0),
  ),
  bare: Flag.Boolean("bare").pipe(Flag.withDescription("run GUEST as the whole guest, without the mini kernel (64-bit, CPL0, identity-mapped)"), Flag.withDefault(false)),
  loadAddr: Flag.String("load-addr").pipe(Flag.withMetavar("ADDR"), Flag.withDescription("where a flat bare GUEST is loaded and starts (default 0x100000)"), Flag.optional),
  maxSteps: Flag.Int("max-steps").pipe(Flag.withMetavar("N"), Flag.withDescription("stop after N guest instructions (exit status 4)"), Flag.optional),
  maxExits: Flag.Int("max-exits").pipe(Flag.withMetavar("N"), Flag.withDescription("stop at the Nth VM exit (exit status 4)"), Flag.optional),
  inject: Flag.String("inject").pipe(
    Flag.withMetavar("FIELD=VALUE@exit:N"),
    Flag.withDescription("VMWRITE FIELD (a vmcsctl file name, e.g. GUEST_CR0) before the entry that follows the Nth VM exit; repeatable"),
    Flag.atLeast(0),
  ),
}

export interface HostFlagValues {
  readonly profile: KernelProfileName
  readonly seed: number
  readonly hostCpus: number
  readonly events: Option.Option<string>
  readonly module: ReadonlyArray<string>
}

export interface GuestFlagValues {
  readonly vcpus: number
  readonly mem: string
  readonly define: ReadonlyArray<string>
  readonly bare: boolean
  readonly loadAddr: Option.Option<string>
  readonly maxSteps: Option.Option<number>
  readonly maxExits: Option.Option<number>
  readonly inject: ReadonlyArray<string>
}

const ALL_EVENTS = ["kvm_entry", "kvm_exit", "kvm_hypercall", "kvm_pio", "kvm_cpuid", "kvm_msr", "kvm_cr", "kvm_inj_exception", "kvm_inj_virq", "kvm_userspace_exit", "kvm_vcpu_wakeup"]

export const hostOptions = (v: HostFlagValues): Effect.Effect<HostOptions, UsageError> =>
  Effect.gen(function* () {
    const events = Option.match(v.events, {
      onNone: () => [] as Array<string>,
      onSome: (list) => (list.trim() === "all" ? ALL_EVENTS : list.split(",").map((e) => e.trim()).filter((e) => e !== "").map((e) => (e.startsWith("kvm:") ? e.slice(4) : e))),
    })
    for (const e of events) {
      if (!ALL_EVENTS.includes(e)) return yield* new UsageError({ message: `--events: unknown event '${e}' (known: ${ALL_EVENTS.join(", ")})` })
    }
    if (!Number.isInteger(v.hostCpus) || v.hostCpus < 1 || v.hostCpus > 64) return yield* new UsageError({ message: `--host-cpus: ${v.hostCpus} is outside 1..64` })
    return { profile: v.profile, seed: v.seed, hostCpus: v.hostCpus, events }
  })

/** "16M", "64MiB", "1G", "4096", "0x100000" → bytes (a multiple of 4096, 1 MiB … 4 GiB). */
export const parseSize = (text: string): number | string => {
  const m = /^\s*(0x[0-9a-f]+|\d+)\s*([kmg])?(?:i?b)?\s*$/i.exec(text)
  if (m === null) return `--mem: '${text}' is not a size (examples: 16M, 64MiB, 1G)`
  const unit = (m[2] ?? "").toLowerCase()
  const bytes = Number(m[1]!) * (unit === "k" ? 1024 : unit === "m" ? 1 << 20 : unit === "g" ? 1 << 30 : 1)
  if (bytes % 4096 !== 0) return `--mem: ${text} is not a multiple of 4 KiB`
  if (bytes < 1 << 20 || bytes > 4 * 2 ** 30) return `--mem: ${text} is outside 1M..4G`
  return bytes
}

const parseNumber = (text: string): bigint | undefined => {
  const t = text.trim().replace(/_/g, "")
  try {
    if (/^-?0x[0-9a-f]+$/i.test(t) || /^-?\d+$/.test(t)) return BigInt.asUintN(64, BigInt(t))
  } catch {
    return undefined
  }
  return undefined
}

/** VMCS field by vmcsctl/sysfs name (guest_cr0) or the SDM/kernel constant (GUEST_CR0). */
export const vmcsFieldByName = (name: string): number | undefined => {
  const key = name.trim().toUpperCase() as keyof typeof VmcsField
  return Object.hasOwn(VmcsField, key) ? VmcsField[key] : undefined
}

export const parseInjection = (text: string): Injection | string => {
  const m = /^([A-Za-z0-9_]+)=([^@]+)@exit:(\d+)$/.exec(text.trim())
  if (m === null) return `--inject: '${text}' is not FIELD=VALUE@exit:N (example: GUEST_RIP=0x100000@exit:3)`
  const encoding = vmcsFieldByName(m[1]!)
  if (encoding === undefined) return `--inject: unknown VMCS field '${m[1]}' (use the file names of /sys/kernel/vmcsctl/vmcsPID/, e.g. GUEST_RIP)`
  const value = parseNumber(m[2]!)
  if (value === undefined) return `--inject: '${m[2]}' is not a number`
  const atExit = Number(m[3]!)
  if (atExit < 1) return `--inject: exits are counted from 1`
  return { field: m[1]!.toUpperCase(), encoding, value, atExit }
}

/** Reads GUEST and checks every guest option. */
export const guestOptions = (file: string, v: GuestFlagValues): Effect.Effect<GuestOptions, UsageError> =>
  Effect.gen(function* () {
    if (!Number.isInteger(v.vcpus) || v.vcpus < 1 || v.vcpus > 64) return yield* new UsageError({ message: `--vcpus: ${v.vcpus} is outside 1..64` })
    const memBytes = parseSize(v.mem)
    if (typeof memBytes === "string") return yield* new UsageError({ message: memBytes })
    let loadAddress: bigint | undefined
    if (Option.isSome(v.loadAddr)) {
      loadAddress = parseNumber(v.loadAddr.value)
      if (loadAddress === undefined) return yield* new UsageError({ message: `--load-addr: '${v.loadAddr.value}' is not an address` })
      if (!v.bare) return yield* new UsageError({ message: "--load-addr only applies with --bare (a user program's address comes from its ORG or ELF headers)" })
    }
    const injections: Array<Injection> = []
    for (const text of v.inject) {
      const parsed = parseInjection(text)
      if (typeof parsed === "string") return yield* new UsageError({ message: parsed })
      injections.push(parsed)
    }
    for (const [name, limit] of [["--max-steps", v.maxSteps], ["--max-exits", v.maxExits]] as const) {
      if (Option.isSome(limit) && limit.value < 1) return yield* new UsageError({ message: `${name}: must be at least 1` })
    }
    const flatAddress = loadAddress ?? (v.bare ? defaultBareAddress : defaultUserAddress)
    const guest: LoadedGuest = yield* Effect.mapError(loadGuestFile(file, { defines: parseDefines(v.define), flatAddress }), (e) => new UsageError({ message: e.message }))
    return {
      guest: loadAddress !== undefined && guest.format !== "elf64" ? relocate(guest, loadAddress) : guest,
      vcpus: v.vcpus,
      memBytes,
      bare: v.bare,
      injections,
      ...(Option.isSome(v.maxSteps) ? { maxSteps: v.maxSteps.value } : {}),
      ...(Option.isSome(v.maxExits) ? { maxExits: v.maxExits.value } : {}),
    }
  })

/** --load-addr moves a flat image (assembled with its own ORG or none) and its entry. */
const relocate = (guest: LoadedGuest, address: bigint): LoadedGuest => ({
  ...guest,
  entry: address,
  segments: guest.segments.map((s) => ({ ...s, address, physicalAddress: address })),
})

/** `--module FILE.ts`: imports the file and insmods the module its default export describes. */
export const loadUserModule = (sim: SimHost, file: string, params: Readonly<Record<string, string>> = {}): Effect.Effect<string, UsageError> =>
  Effect.gen(function* () {
    const url = pathToFileURL(resolve(file)).href
    const imported = yield* Effect.tryPromise({
      try: () => import(url) as Promise<{ default?: unknown }>,
      catch: (e) => new UsageError({ message: `${file}: cannot load the module: ${(e as Error).message}` }),
    })
    const factory = imported.default
    if (!isUserModule(factory)) {
      return yield* new UsageError({ message: `${file}: the default export must be defineModule(...) (see docs/api.md, "Kernel modules")` })
    }
    const context: ModuleContext = { kvm: sim.kvm, host: sim.host, sysfs: sim.sysfs, trace: sim.trace }
    const module: KernelModule = factory.build(context)
    yield* Effect.mapError(sim.host.modules.insmod(module, params), (e) => new UsageError({ message: `insmod ${file}: ${e.message}` }))
    return module.name
  })
