// A QEMU-like VMM: one process with a main thread, an RCU thread and one thread per vCPU (named
// as the kernel profile's QEMU names them); each vCPU thread creates its vCPU (so it owns the
// VMCS) and runs the KVM_RUN loop as a fiber, handing port I/O to the devices: the 16550 console
// at 0x3f8, the 0xE9 debug console, isa-debug-exit at 0xf4. Bare mode loads an image at 0x100000
// and starts every vCPU there in 64-bit mode at CPL0 with the first 1 GiB identity-mapped.

import { Effect } from "effect"
import type { HostKernelShape } from "../../host/kernel.ts"
import type { Thread } from "../../host/scheduler.ts"
import type { Task } from "../../host/task.ts"
import { Errno } from "../../host/errno.ts"
import { kvmError } from "../kvm/errors.ts"
import type { KvmError } from "../kvm/errors.ts"
import type { Kvm } from "../kvm/kvm.ts"
import { openDevKvm } from "../kvm/module.ts"
import { kvmRun } from "../kvm/run.ts"
import { KvmExit } from "../kvm/uapi.ts"
import type { KvmRegs } from "../kvm/uapi.ts"
import type { Vcpu } from "../kvm/vcpu.ts"
import type { Vm } from "../kvm/vm.ts"
import { DebugConsole, IsaDebugExit, Serial16550 } from "./devices.ts"
import { PortIoBus } from "./io-bus.ts"
import { longModeSregs, writeBootStructures } from "./long-mode.ts"

export interface MachineOptions {
  /** Guest RAM in bytes (multiple of 4096; default 16 MiB). */
  readonly memoryBytes?: number
  readonly vcpus?: number
  /** Bare mode: the image and where it goes (default 0x100000); RIP starts at `entry` (default the load address). */
  readonly image?: Uint8Array
  readonly loadAddress?: bigint
  readonly entry?: bigint
  /** Registers to set after the bare-mode reset (all others zero), e.g. `{ rdi: 1000n }`. */
  readonly registers?: Partial<KvmRegs>
  /** Replaces bare-mode setup for a vCPU (a guest kernel's own boot protocol); a string is an error. */
  readonly configureVcpu?: (vcpu: Vcpu, index: number, machine: Machine) => string | undefined | void
  /**
   * Start with the VM paused, like QEMU's -S: the vCPU threads create and set up their vCPUs and
   * then wait until `resume()` (QEMU's "cont").
   */
  readonly startPaused?: boolean
  /** Called for every byte the guest writes to the serial port or port 0xE9. */
  readonly onConsole?: (byte: number) => void
}

export type MachineEnd =
  | { readonly kind: "running" }
  /** Every vCPU halted with interrupts off (bare mode's normal end). */
  | { readonly kind: "halted" }
  /** isa-debug-exit: the process exit status ((value << 1) | 1). */
  | { readonly kind: "exit"; readonly status: number }
  /** A triple fault (KVM_EXIT_SHUTDOWN). */
  | { readonly kind: "shutdown" }
  /** KVM_RUN failed or returned an exit the VMM cannot handle. */
  | { readonly kind: "error"; readonly message: string; readonly exitReason?: number; readonly detail?: unknown }

export class Machine {
  readonly memory: Uint8Array
  readonly bus = new PortIoBus()
  readonly serial: Serial16550
  private readonly consoleBytes: Array<number> = []
  private readonly debugBytes: Array<number> = []
  readonly vcpus: Array<Vcpu> = []
  readonly threads: Array<Thread> = []
  end: MachineEnd = { kind: "running" }
  private running = 0
  closed = false
  /** Paused (QEMU -S / "stop"): vCPU threads wait before their next KVM_RUN. */
  paused: boolean

  private constructor(
    readonly kvm: Kvm,
    readonly host: HostKernelShape,
    readonly process: Task,
    readonly vm: Vm,
    readonly options: MachineOptions,
  ) {
    this.memory = new Uint8Array(options.memoryBytes ?? 16 << 20)
    this.paused = options.startPaused === true
    const out = (sink: Array<number>) => (b: number) => {
      sink.push(b)
      options.onConsole?.(b)
    }
    this.serial = new Serial16550(0x3f8, out(this.consoleBytes))
    this.bus.claim(0x3f8, 8, this.serial)
    this.bus.claim(0xe9, 1, new DebugConsole(out(this.debugBytes)))
    this.bus.claim(0xf4, 4, new IsaDebugExit((status) => this.finish({ kind: "exit", status })))
  }

  /** Starts a QEMU process: opens /dev/kvm, creates the VM and its RAM slot, loads the image. */
  static create(kvm: Kvm, host: HostKernelShape, options: MachineOptions = {}): Result<Machine> {
    const process = host.tasks.spawnProcess("qemu-system-x86_64")
    const rcu = host.tasks.spawnThread(process, host.profile.name === "linux-6.x" ? "call_rcu" : process.comm)
    const fail = (error: KvmError): Result<Machine> => {
      host.tasks.exit(rcu)
      host.tasks.exit(process)
      return { ok: false, error }
    }
    const dev = openDevKvm(host, process)
    if (!dev.ok) return fail(kvmError("open(/dev/kvm)", dev.errno, "is kvm_intel loaded?"))
    const created = kvm.createVm(process)
    if (!created.ok) return fail(created.error)
    const machine = new Machine(kvm, host, process, created.value, options)
    machine.rcuThread = rcu
    machine.devKvmFd = dev.file.fd
    const slot = created.value.setUserMemoryRegion({ slot: 0, flags: 0, guest_phys_addr: 0n, memory_size: BigInt(machine.memory.length), userspace: machine.memory })
    if (!slot.ok) {
      created.value.destroy()
      return fail(slot.error)
    }
    if (options.image !== undefined) {
      const at = Number(options.loadAddress ?? 0x100000n)
      if (at + options.image.length > machine.memory.length) {
        created.value.destroy()
        return fail(kvmError("load image", Errno.EINVAL, `the image (${options.image.length} bytes at 0x${at.toString(16)}) does not fit in ${machine.memory.length} bytes of RAM`))
      }
      machine.memory.set(options.image, at)
      writeBootStructures(machine.memory)
    }
    return { ok: true, value: machine }
  }

  private rcuThread: Task | undefined
  private devKvmFd = -1

  get console(): string {
    return Buffer.from(this.consoleBytes).toString("latin1")
  }

  get debugOutput(): string {
    return Buffer.from(this.debugBytes).toString("latin1")
  }

  get finished(): boolean {
    return this.end.kind !== "running"
  }

  /** Spawns one thread per vCPU; each creates its vCPU and loops on KVM_RUN. */
  start(): Effect.Effect<void> {
    const self = this
    return Effect.gen(function* () {
      const count = self.options.vcpus ?? 1
      for (let index = 0; index < count; index++) {
        const task = self.host.tasks.spawnThread(self.process, self.host.profile.vcpuThreadComm(index))
        self.running++
        const thread = yield* self.host.scheduler.spawn(task, (t) => self.vcpuThread(t, index))
        self.threads.push(thread)
      }
    })
  }

  /** QEMU's "cont": paused vCPU threads go on. */
  resume(): void {
    this.paused = false
    for (const t of this.threads) this.host.scheduler.wake(t)
  }

  /** Ends the machine: every vCPU thread leaves KVM_RUN (a signal, as QEMU's SIG_IPI) and exits. */
  finish(end: MachineEnd): void {
    if (this.end.kind === "running") this.end = end
    for (const t of this.threads) {
      t.signalPending = true
      this.host.scheduler.wake(t)
    }
  }

  /** Closes the VM and ends the QEMU process (after its vCPU threads have exited). */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.vm.destroy()
    this.process.files.close(this.devKvmFd)
    if (this.rcuThread !== undefined) this.host.tasks.exit(this.rcuThread)
    this.host.tasks.exit(this.process)
  }

  private vcpuThread(thread: Thread, index: number): Effect.Effect<void> {
    const self = this
    return Effect.gen(function* () {
      const created = self.vm.createVcpu(thread.task, index)
      if (!created.ok) {
        self.threadDone({ kind: "error", message: created.error.message })
        return
      }
      const vcpu = created.value
      self.vcpus[index] = vcpu
      const setupError = self.options.configureVcpu !== undefined ? self.options.configureVcpu(vcpu, index, self) : self.bareSetup(vcpu)
      if (typeof setupError === "string") {
        self.threadDone({ kind: "error", message: `vCPU ${index} setup: ${setupError}` })
        return
      }
      // One description of KVM_RUN on this thread, run again at every iteration (Effects are
      // immutable: nothing is built per exit).
      const run = Effect.result(kvmRun(vcpu, thread))
      for (;;) {
        while (self.paused && !self.finished) yield* thread.block
        if (self.finished) break
        const result = yield* run
        if (result._tag === "Failure") {
          const error = result.failure
          if (error.errno === Errno.EINTR) continue
          self.threadDone({ kind: "error", message: error.message })
          return
        }
        const exit = vcpu.run.exit
        if (exit === undefined) continue
        if (exit.reason === KvmExit.IO) {
          self.bus.dispatch(exit.direction === 1, exit.port, exit.size, exit.count, exit.data)
          continue
        }
        if (exit.reason === KvmExit.MMIO) {
          // No MMIO devices: reads see all-ones, writes vanish (an empty bus).
          if (!exit.isWrite) exit.data.fill(0xff)
          continue
        }
        if (exit.reason === KvmExit.HLT) break
        if (exit.reason === KvmExit.SHUTDOWN) {
          self.finish({ kind: "shutdown" })
          break
        }
        self.finish({ kind: "error", message: `vCPU ${index}: unhandled KVM exit ${vcpu.run.exitReason}`, exitReason: vcpu.run.exitReason, detail: exit })
        break
      }
      self.threadDone({ kind: "halted" })
    })
  }

  private threadDone(end: MachineEnd): void {
    this.running--
    if (end.kind === "error") this.finish(end)
    else if (this.running === 0 && this.end.kind === "running") this.end = end
  }

  /** Bare mode: long mode at CPL0 on the identity map, GPRs zero, RFLAGS 0x2, RIP at the entry. */
  private bareSetup(vcpu: Vcpu): string | undefined {
    const sregs = vcpu.getSregs()
    if (!sregs.ok) return sregs.error.message
    const set = vcpu.setSregs(longModeSregs(sregs.value))
    if (!set.ok) return set.error.message
    const zero: KvmRegs = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n, r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0n, rflags: 2n }
    const regs = vcpu.setRegs({ ...zero, ...this.options.registers, rip: this.options.entry ?? this.options.loadAddress ?? 0x100000n, rflags: 2n })
    return regs.ok ? undefined : regs.error.message
  }
}

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: KvmError }

/** Creates, runs to the end, and closes one machine on the host's scheduler. */
export const runMachine = (kvm: Kvm, host: HostKernelShape, options: MachineOptions): Effect.Effect<Machine, KvmError> =>
  Effect.map(runMachines(kvm, host, [options]), (machines) => machines[0]!)

/** Runs several machines side by side on the host's scheduler (they compete for its CPUs); closes each. */
export const runMachines = (kvm: Kvm, host: HostKernelShape, all: ReadonlyArray<MachineOptions>): Effect.Effect<Array<Machine>, KvmError> =>
  Effect.gen(function* () {
    const machines: Array<Machine> = []
    for (const options of all) {
      const created = Machine.create(kvm, host, options)
      if (!created.ok) {
        for (const m of machines) m.close()
        return yield* Effect.fail(created.error)
      }
      machines.push(created.value)
    }
    for (const m of machines) yield* m.start()
    const allExited = () => machines.every((m) => m.threads.every((t) => t.task.state === "exited"))
    yield* host.scheduler.run({ until: () => machines.every((m) => m.finished) && allExited() })
    if (!allExited()) {
      for (const m of machines) if (!m.finished) m.finish({ kind: "error", message: "every vCPU is halted with interrupts enabled and nothing can wake it" })
      yield* host.scheduler.run({ until: allExited })
    }
    for (const m of machines) m.close()
    return machines
  })
