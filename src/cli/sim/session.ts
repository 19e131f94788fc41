// One simulated host with one guest machine on it, as `kvmsim run` and the shell's `boot` use it:
// the host kernel, ftrace, kvm + kvm_intel, the pseudo-filesystem (/sys, /proc, tracefs,
// debugfs), and a QEMU-like machine running GUEST either under the mini guest kernel (one user
// program, every vCPU online) or bare. The run advances in steps so the shell can stop at
// events and limits; the outcome is classified into kvmsim's exit statuses.

import { Effect } from "effect"
import type { Scope } from "effect"
import { VmcsField } from "../../arch/vmx/vmcs-fields.ts"
import { installKernel, kernelImageBytes, vcpuEntry } from "../../guest/kernel/index.ts"
import { makeHostKernel } from "../../host/kernel.ts"
import type { HostKernelShape } from "../../host/kernel.ts"
import type { ModuleError } from "../../host/modules.ts"
import type { KernelProfileName } from "../../host/profile.ts"
import { ExitVerdict } from "../../hypervisor/kvm/exit-hook.ts"
import { FtraceSink } from "../../hypervisor/kvm/ftrace-sink.ts"
import type { Kvm } from "../../hypervisor/kvm/kvm.ts"
import { loadKvm } from "../../hypervisor/kvm/module.ts"
import type { KvmRegs } from "../../hypervisor/kvm/uapi.ts"
import type { Vcpu } from "../../hypervisor/kvm/vcpu.ts"
import { longModeSregs } from "../../hypervisor/vmm/long-mode.ts"
import { VmxStatus } from "../../hypervisor/vmx/outcome.ts"
import { Machine } from "../../hypervisor/vmm/machine.ts"
import type { MachineEnd } from "../../hypervisor/vmm/machine.ts"
import { catTrace } from "../../hypervisor/vmm/system.ts"
import { makeMachineSysfs } from "../../sysfs/machine.ts"
import type { SysfsShape } from "../../sysfs/service.ts"
import { KVM_EVENT_NAMES } from "../../trace/kvm-events.ts"
import { makeTrace } from "../../trace/service.ts"
import type { TraceShape } from "../../trace/service.ts"
import { asUserProgram, type LoadedGuest } from "./guest-file.ts"

export interface HostOptions {
  readonly profile: KernelProfileName
  readonly seed: number
  /** Host CPUs (default 4, the homework's host). */
  readonly hostCpus?: number
  /** KVM tracepoints to enable before the guest starts (names from events/kvm). */
  readonly events?: ReadonlyArray<string>
  /** KVM_HC_VCPU_INFO's number in linux-6.x (default 13: 11 is KVM_HC_SCHED_YIELD there). */
  readonly vcpuInfoHypercall?: number
}

/** A VMCS write applied before the VM entry that follows the Nth VM exit (counted over all vCPUs). */
export interface Injection {
  readonly field: string
  readonly encoding: number
  readonly value: bigint
  readonly atExit: number
}

export interface InjectionResult extends Injection {
  /** vCPU whose VMCS was written, or -1 if the run ended before. */
  readonly vcpu: number
  /** VM-instruction error of the VMWRITE (0 = success), -1 if not applied. */
  readonly error: number
}

export interface GuestOptions {
  readonly guest: LoadedGuest
  readonly vcpus: number
  readonly memBytes: number
  /** Run GUEST as the whole guest (no mini kernel). */
  readonly bare: boolean
  readonly injections?: ReadonlyArray<Injection>
  readonly maxSteps?: number
  readonly maxExits?: number
}

/** KVM_HC_VCPU_INFO per profile: the homework's 11 in linux-5.0, a free number (13) in linux-6.x. */
export const vcpuInfoNumber = (profile: KernelProfileName, requested?: number): number => requested ?? (profile === "linux-5.0" ? 11 : 13)

export type Limit = "steps" | "exits"

export class SimHost {
  machine: Machine | undefined
  guest: GuestOptions | undefined
  /** Exits of the machine's VM seen by the exit observer since the machine started. */
  exitCount = 0
  limitHit: Limit | undefined
  readonly injected: Array<InjectionResult> = []
  /**
   * The shell's `run until`: called at every exit while set; returning true makes that vCPU
   * leave its run loop before the next entry, so the run stops right after the exit.
   */
  exitWatcher: ((reason: number, vcpuId: number) => boolean) | undefined
  /** The exit that satisfied exitWatcher. */
  watchedExit: { readonly reason: number; readonly vcpuId: number } | undefined
  /** Keep the exit observer subscribed (the shell watches exits even without limits). */
  alwaysObserve = false
  /** Wall-clock time (epoch ms, performance.timeOrigin + now) of the first VM entry, when observed. */
  firstEntryEpochMs: number | undefined
  private pendingInjections: Array<Injection> = []
  private dueInjections: Array<{ readonly injection: Injection; readonly vcpu: Vcpu }> = []
  private unsubscribeObserver: (() => void) | undefined
  private consoleListener: ((text: string) => void) | undefined
  private consolePending: Array<number> = []
  /** Everything the guest wrote to its consoles (serial and 0xE9), in order. */
  private consoleAll: Array<number> = []
  readonly startNs: number

  constructor(
    readonly options: HostOptions,
    readonly host: HostKernelShape,
    readonly trace: TraceShape,
    readonly kvm: Kvm,
    readonly sysfs: SysfsShape,
  ) {
    this.startNs = host.clock.nowNs()
  }

  /** Every console byte the guest writes (serial and port 0xE9), delivered in chunks after each step. */
  onConsole(listener: (text: string) => void): void {
    this.consoleListener = listener
  }

  private flushConsole(): void {
    if (this.consolePending.length === 0) return
    const text = Buffer.from(this.consolePending).toString("latin1")
    this.consolePending = []
    this.consoleListener?.(text)
  }

  /** Creates the QEMU process and its vCPU threads (nothing runs until `advance`). */
  boot(options: GuestOptions): Effect.Effect<void, string> {
    const self = this
    return Effect.gen(function* () {
      if (self.machine !== undefined && !self.machine.closed) return yield* Effect.fail("a guest is already running (quit or wait for it to finish)")
      self.guest = options
      self.exitCount = 0
      self.limitHit = undefined
      self.injected.length = 0
      self.consoleAll = []
      self.pendingInjections = [...(options.injections ?? [])].sort((a, b) => a.atExit - b.atExit)
      self.dueInjections = []
      const guest = options.guest
      const zero: KvmRegs = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n, r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0n, rflags: 2n }
      const hc = vcpuInfoNumber(self.options.profile, self.options.vcpuInfoHypercall)
      let setupError: string | undefined | "pending" = "pending"
      const longMode = (vcpu: Vcpu, regs: Partial<KvmRegs>): string | undefined => {
        const sregs = vcpu.getSregs()
        if (!sregs.ok) return sregs.error.message
        const set = vcpu.setSregs(longModeSregs(sregs.value))
        if (!set.ok) return set.error.message
        const r = vcpu.setRegs({ ...zero, ...regs })
        return r.ok ? undefined : r.error.message
      }
      const created = Machine.create(self.kvm, self.host, {
        memoryBytes: options.memBytes,
        vcpus: options.vcpus,
        // Bare mode: an empty image still writes the identity map and GDT the bare protocol needs.
        image: options.bare ? new Uint8Array(0) : kernelImageBytes(),
        onConsole: (b) => {
          self.consolePending.push(b)
          self.consoleAll.push(b)
        },
        configureVcpu: (vcpu, index, m) => {
          // The first vCPU thread to get here writes memory, before any guest code runs.
          if (setupError === "pending") {
            if (options.bare) {
              setupError = undefined
              for (const s of guest.segments) {
                const end = s.address + s.memorySize
                if (end > BigInt(m.memory.length)) {
                  setupError = `${guest.file}: the segment at 0x${s.address.toString(16)} (${s.memorySize} bytes) does not fit in ${m.memory.length} bytes of guest RAM (use --mem or --load-addr)`
                  break
                }
                m.memory.set(s.data, Number(s.address))
              }
            } else {
              setupError = installKernel(m.memory, { program: asUserProgram(guest), nrCpus: options.vcpus, hypercallVcpuInfo: hc, comm: guest.comm })?.message
            }
          }
          if (setupError !== undefined) return setupError
          return options.bare ? longMode(vcpu, { rip: guest.entry }) : longMode(vcpu, vcpuEntry(index))
        },
      })
      if (!created.ok) return yield* Effect.fail(created.error.message)
      self.machine = created.value
      self.installObserver()
      yield* created.value.start()
    })
  }

  /**
   * Subscribes to KVM's exit hook for the machine's VM when a limit, an injection or the shell
   * needs to see exits: counts them, stops at the watched exit, the exit or step limit, and
   * applies each --inject VMWRITE before the entry that follows its exit, on the vCPU that exited.
   */
  private installObserver(): void {
    this.unsubscribeObserver?.()
    this.unsubscribeObserver = undefined
    const guest = this.guest!
    const machine = this.machine!
    const vm = machine.vm
    const maxExits = guest.maxExits
    const maxSteps = guest.maxSteps
    const needed = this.alwaysObserve || maxExits !== undefined || maxSteps !== undefined || this.pendingInjections.length > 0
    if (!needed) return
    this.unsubscribeObserver = this.kvm.hooks.vmExit.subscribe({
      exit: (vcpu, _cpu, reason): ExitVerdict => {
        if (vcpu.vm !== vm) return ExitVerdict.Continue
        this.exitCount++
        let verdict: ExitVerdict = ExitVerdict.Continue
        if (this.exitWatcher !== undefined && this.watchedExit === undefined && this.exitWatcher(reason, vcpu.id)) {
          this.watchedExit = { reason, vcpuId: vcpu.id }
          verdict = ExitVerdict.Yield
        }
        while (this.pendingInjections.length > 0 && this.pendingInjections[0]!.atExit === this.exitCount) {
          this.dueInjections.push({ injection: this.pendingInjections.shift()!, vcpu })
        }
        if (this.limitHit === undefined) {
          if (maxExits !== undefined && this.exitCount >= maxExits) this.hitLimit("exits")
          else if (maxSteps !== undefined && this.steps() >= maxSteps) this.hitLimit("steps")
        }
        return verdict
      },
      entry: (vcpu, cpu) => {
        if (vcpu.vm !== vm) return
        if (this.firstEntryEpochMs === undefined) this.firstEntryEpochMs = performance.timeOrigin + performance.now()
        if (this.dueInjections.length === 0) return
        for (let i = 0; i < this.dueInjections.length; i++) {
          const due = this.dueInjections[i]!
          // Written on the vCPU that took the exit, while its VMCS is current on this CPU.
          if (due.vcpu !== vcpu) continue
          this.dueInjections.splice(i--, 1)
          const lp = this.kvm.lp(cpu)
          const status = lp.vmwrite(due.injection.encoding, due.injection.value)
          const error = status === VmxStatus.Succeed ? 0 : lp.vmreadLo(VmcsField.VM_INSTRUCTION_ERROR)
          this.injected.push({ ...due.injection, vcpu: machine.vcpus.indexOf(vcpu), error })
        }
      },
    })
  }

  private hitLimit(limit: Limit): void {
    this.limitHit = limit
    this.machine?.finish({ kind: "error", message: limit === "steps" ? `the step limit (${this.guest?.maxSteps}) was reached` : `the exit limit (${this.guest?.maxExits}) was reached` })
  }

  /** Guest instructions retired by every vCPU of the machine. */
  steps(): number {
    let n = 0
    for (const v of this.machine?.vcpus ?? []) if (v !== undefined) n += v.regs.instructionsRetired
    return n
  }

  get finished(): boolean {
    const m = this.machine
    return m === undefined || (m.finished && m.threads.every((t) => t.task.state === "exited"))
  }

  /**
   * Runs the host until the guest ends, `stop` holds, or nothing can run. A guest whose vCPUs
   * all wait with interrupts enabled and nothing to wake them ends with an error, as `runMachine` does.
   */
  advance(stop?: () => boolean): Effect.Effect<void> {
    const self = this
    return Effect.gen(function* () {
      const m = self.machine
      if (m === undefined || m.closed) return
      const exited = () => m.threads.every((t) => t.task.state === "exited")
      const maxSteps = self.guest?.maxSteps
      yield* self.host.scheduler.run({
        until: () => {
          if (maxSteps !== undefined && self.limitHit === undefined && self.steps() >= maxSteps) self.hitLimit("steps")
          return (m.finished && exited()) || (stop?.() ?? false)
        },
      })
      self.flushConsole()
      if (stop?.() === true && !(m.finished && exited())) return
      if (!exited()) {
        if (!m.finished) m.finish({ kind: "error", message: "every vCPU is halted with interrupts enabled and nothing can wake it" })
        yield* self.host.scheduler.run({ until: exited })
      }
      self.flushConsole()
    })
  }

  /** Snapshot of every vCPU (registers through KVM_GET_REGS/SREGS, statistics). */
  vcpuSnapshots(): Array<VcpuSnapshot> {
    const m = this.machine
    if (m === undefined) return []
    return m.vcpus.flatMap((v, id) => {
      if (v === undefined) return []
      const thread = m.threads[id]
      const regs = m.closed ? undefined : v.getRegs()
      const sregs = m.closed ? undefined : v.getSregs()
      return [
        {
          id,
          tid: thread?.task.pid ?? v.pid,
          comm: thread?.task.comm ?? "",
          regs: regs?.ok === true ? regs.value : undefined,
          cr0: sregs?.ok === true ? sregs.value.cr0 : undefined,
          cr3: sregs?.ok === true ? sregs.value.cr3 : undefined,
          cr4: sregs?.ok === true ? sregs.value.cr4 : undefined,
          exits: v.stats.get("exits"),
          exitsByReason: [...v.stats.exitsByReason],
          instructions: v.regs.instructionsRetired,
        },
      ]
    })
  }

  /** Closes the VM and ends the QEMU process (after its threads exited). */
  close(): void {
    if (this.machine !== undefined && !this.machine.closed && this.machine.threads.every((t) => t.task.state === "exited")) {
      this.unsubscribeObserver?.()
      this.unsubscribeObserver = undefined
      this.machine.close()
    }
  }

  get end(): MachineEnd {
    return this.machine?.end ?? { kind: "running" }
  }

  /** The guest's console output: the 16550 at 0x3f8 and the 0xE9 debug port, interleaved as written. */
  get console(): string {
    return Buffer.from(this.consoleAll).toString("latin1")
  }

  virtualTimeNs(): number {
    return Math.max(0, Math.round(this.host.clock.nowNs() - this.startNs))
  }

  traceText(): string {
    return catTrace(this.trace)
  }
}

export interface VcpuSnapshot {
  readonly id: number
  readonly tid: number
  readonly comm: string
  readonly regs: KvmRegs | undefined
  readonly cr0: bigint | undefined
  readonly cr3: bigint | undefined
  readonly cr4: bigint | undefined
  readonly exits: number
  readonly exitsByReason: ReadonlyArray<number>
  readonly instructions: number
}

/** Boots the simulated host (released with the scope). Unknown event names are a usage error. */
export const bootSimHost = (options: HostOptions): Effect.Effect<SimHost, ModuleError | string, Scope.Scope> =>
  Effect.gen(function* () {
    const host = yield* makeHostKernel({ profile: options.profile, seed: options.seed, cpus: options.hostCpus ?? 4 })
    const trace = makeTrace({ cpuCount: host.cpuCount, clock: host.clock, tasks: host.tasks, era: host.profile.traceEra, hz: host.profile.hz })
    for (const name of options.events ?? []) {
      const index = trace.tracer.eventIndex(name)
      if (index < 0) return yield* Effect.fail(`unknown event '${name}' (known: ${knownEvents(trace).join(", ")})`)
      trace.tracer.setEventEnabled(index, true)
    }
    const hc = options.profile === "linux-6.x" ? { vcpuInfoHypercall: vcpuInfoNumber(options.profile, options.vcpuInfoHypercall) } : {}
    const kvm = yield* loadKvm(host, { trace: new FtraceSink(trace), ...hc })
    const sysfs = makeMachineSysfs({ tasks: host.tasks, tracefs: trace.tracefs, kvm: { instance: kvm, profile: options.profile } })
    return new SimHost(options, host, trace, kvm, sysfs)
  })

/** Names of the KVM tracepoints (events/kvm/*). */
export const knownEvents = (trace: TraceShape): Array<string> => {
  void trace
  return [...KVM_EVENT_NAMES]
}
