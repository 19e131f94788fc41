// Runs a user program under the mini guest kernel on the whole simulated host: host kernel,
// KVM module, QEMU-like VMM with one thread per vCPU, ftrace. This is the homework's setup
// (seed 003): a program in the guest calls syscall 548, the kernel issues KVM_HC_VCPU_INFO for
// every online CPU, the host's trace file shows one block per vCPU.
import { Effect } from "effect"
import type { KernelProfileName } from "../../src/host/profile.ts"
import { type BootParamsError, installKernel, kernelImageBytes, type UserProgram, vcpuEntry } from "../../src/guest/kernel/index.ts"
import type { KvmRegs } from "../../src/hypervisor/kvm/uapi.ts"
import { longModeSregs } from "../../src/hypervisor/vmm/long-mode.ts"
import { runMachine } from "../../src/hypervisor/vmm/machine.ts"
import type { MachineEnd } from "../../src/hypervisor/vmm/machine.ts"
import { bootHost, catTrace } from "../../src/hypervisor/vmm/system.ts"

/** KVM_HC_VCPU_INFO per profile: the homework's 11 in linux-5.0; a free number in linux-6.x (11 is SCHED_YIELD). */
export const vcpuInfoNumber = (profile: KernelProfileName): number => (profile === "linux-5.0" ? 11 : 13)

export interface VcpuSnapshot {
  readonly id: number
  /** pid (tid) of the vCPU's thread, from the host task table. */
  readonly pid: number
  readonly comm: string
  readonly exits: number
  readonly exitsByReason: ReadonlyArray<number>
  /** Guest instructions the vCPU retired. */
  readonly instructions: number
}

export interface HomeworkRun {
  readonly console: string
  readonly end: MachineEnd
  readonly trace: string
  readonly vcpus: ReadonlyArray<VcpuSnapshot>
  /** pid -> comm of every task the host has (the task list `ps -eL` would show). */
  readonly tasks: ReadonlyMap<number, string>
}

export const runHomework = (options: {
  readonly profile: KernelProfileName
  readonly vcpus: number
  readonly program: UserProgram
  readonly comm: string
  readonly seed?: number
}): Promise<HomeworkRun> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const hc = vcpuInfoNumber(options.profile)
        const sim = yield* bootHost({
          profile: options.profile,
          seed: options.seed ?? 1,
          cpus: 4,
          ...(options.profile === "linux-6.x" ? { vcpuInfoHypercall: hc } : {}),
        })
        let installed: BootParamsError | undefined | "pending" = "pending"
        const zero: KvmRegs = { rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n, r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0n, rflags: 2n }
        // The host's task list while the guest runs (taken at its first console byte): the
        // process and its threads are gone once the machine is closed.
        let tasks: Map<number, string> | undefined
        const machine = yield* runMachine(sim.kvm, sim.host, {
          memoryBytes: 16 << 20,
          vcpus: options.vcpus,
          image: kernelImageBytes(),
          onConsole: () => {
            tasks ??= new Map(sim.host.tasks.list().map((t) => [t.pid, t.comm] as const))
          },
          configureVcpu: (vcpu, index, m) => {
            // The first vCPU thread to get here installs program and boot parameters, before any guest code runs.
            if (installed === "pending") {
              installed = installKernel(m.memory, { program: options.program, nrCpus: options.vcpus, hypercallVcpuInfo: hc, comm: options.comm })
            }
            if (installed !== undefined) return installed.message
            const sregs = vcpu.getSregs()
            if (!sregs.ok) return sregs.error.message
            const set = vcpu.setSregs(longModeSregs(sregs.value))
            if (!set.ok) return set.error.message
            const regs = vcpu.setRegs({ ...zero, ...vcpuEntry(index) })
            return regs.ok ? undefined : regs.error.message
          },
        })
        const vcpus = machine.vcpus.map((v, id) => ({
          id,
          pid: machine.threads[id]!.task.pid,
          comm: machine.threads[id]!.task.comm,
          exits: v.stats.get("exits"),
          exitsByReason: [...v.stats.exitsByReason],
          instructions: v.regs.instructionsRetired,
        }))
        return { console: machine.console, end: machine.end, trace: catTrace(sim.trace), vcpus, tasks: tasks ?? new Map() }
      }),
    ),
  )

/** One trace line: TASK-PID, CPU, flags, timestamp, function and message. */
export interface TraceLine {
  readonly comm: string
  readonly pid: number
  readonly cpu: number
  readonly flags: string
  readonly timestamp: string
  readonly func: string
  readonly message: string
}

// "<comm>-<pid> [<cpu>] <flags> <sec>.<usec>: <function>: <message>"; 5.0 prints 4 flag characters, 6.x five.
const linePattern = /^\s*(.+)-(\d+)\s+\[(\d{3})\] (\S{4,5})\s+(\d+\.\d{6}): ([a-z_]+): (.*)$/

export const traceLines = (trace: string): Array<TraceLine> =>
  trace
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const m = linePattern.exec(l)
      if (m === null) throw new Error(`not a trace line: ${JSON.stringify(l)}`)
      return { comm: m[1]!, pid: Number(m[2]), cpu: Number(m[3]), flags: m[4]!, timestamp: m[5]!, func: m[6]!, message: m[7]! }
    })

/** The VCPU_INFO blocks: one per "vcpu id: N" line, with the lines that follow it. */
export const vcpuInfoBlocks = (lines: ReadonlyArray<TraceLine>): Array<{ id: number; lines: Array<TraceLine> }> => {
  const blocks: Array<{ id: number; lines: Array<TraceLine> }> = []
  for (const line of lines) {
    const start = /^vcpu id: (\d+)$/.exec(line.message)
    if (start !== null) blocks.push({ id: Number(start[1]), lines: [line] })
    else blocks.at(-1)?.lines.push(line)
  }
  return blocks
}

/** "name=value" pairs of a block's "regs:" lines and "rip: …, rflags: …" line. */
export const blockRegisters = (block: { lines: ReadonlyArray<TraceLine> }): Map<string, bigint> => {
  const regs = new Map<string, bigint>()
  for (const l of block.lines) {
    if (l.message.startsWith("regs: ")) {
      for (const m of l.message.slice(6).matchAll(/(\w+)=(\d+)/g)) regs.set(m[1]!, BigInt(m[2]!))
    }
    const rip = /^rip: 0x([0-9a-f]+), rflags: 0x([0-9a-f]+)$/.exec(l.message)
    if (rip !== null) {
      regs.set("rip", BigInt(`0x${rip[1]}`))
      regs.set("rflags", BigInt(`0x${rip[2]}`))
    }
  }
  return regs
}
