// Hypercalls on the Linux ABI (Documentation/virt/kvm/x86/hypercalls.rst): number in RAX,
// arguments in RBX, RCX, RDX, RSI, result in RAX. kvm_emulate_hypercall() checks the CPL first
// (CPL > 0: -KVM_EPERM, no dispatch) and answers unknown numbers with -KVM_ENOSYS; the VMCALL is
// skipped either way. The table is open: a user's module registers handlers (the homework's
// extension point) and they get the caller, the VM's vCPUs, trace_printk, statistics and VMCS
// access through HypercallCall.

import { exitReasonName } from "../../arch/exit-reasons.ts"
import type { CpuState } from "../../guest/cpu/state.ts"
import { Reg } from "../../guest/cpu/state.ts"
import type { KernelProfile } from "../../host/profile.ts"
import { KvmHc, KvmHcError } from "./uapi.ts"
import { VcpuStat } from "./stats.ts"
import type { VcpuStats } from "./stats.ts"

/** What a hypercall handler may see of a vCPU. */
export interface HypercallVcpu {
  readonly id: number
  /** pid of the vCPU's thread (the task that issues KVM_RUN). */
  readonly pid: number
  /** Register file: the live state for the caller, the state saved at its last exit for others. */
  readonly regs: CpuState
  readonly stats: VcpuStats
}

/** One hypercall being handled. */
export interface HypercallCall {
  readonly caller: HypercallVcpu
  /** RAX as issued. */
  readonly nr: bigint
  /** a0..a3 (RBX, RCX, RDX, RSI); truncated to 32 bits outside 64-bit mode. */
  readonly args: readonly [bigint, bigint, bigint, bigint]
  /** Bits 31:0 of argument `index` (0..3 = a0..a3) as an unsigned number: no bigint, for hot handlers. */
  argLo(index: number): number
  /** Bits 63:32 of argument `index` (0 outside 64-bit mode). */
  argHi(index: number): number
  /** The VM's vCPUs by id (kvm_get_vcpu_by_id). */
  vcpuById(id: number): HypercallVcpu | undefined
  /**
   * Whether trace_printk records now (tracing_on, no reader holding recording off). While it is
   * false a printf stores nothing and only accounts its cost, so a handler may skip building
   * arguments (strings, tables) that nothing would see.
   */
  readonly tracing: boolean
  /** trace_printk(format, args...) from kvm_emulate_hypercall on the caller's thread and CPU (end formats with "\n"). */
  printf(format: string, ...args: ReadonlyArray<number | bigint | string>): void
  /** trace_printk of finished text ("%s" format); add the "\n". */
  printk(text: string): void
  /**
   * Stages argument `index` (0..31) of the next printfStaged as a 64-bit integer in unsigned 32-bit
   * halves (what %d, %u, %lu, %lx, ... print). With printfStaged this is trace_printk without an
   * argument array or bigint: for handlers on hot paths.
   */
  stageArg(index: number, lo: number, hi: number): void
  /** Stages argument `index` as a string (%s). */
  stageString(index: number, text: string): void
  /** trace_printk(format) with staged arguments 0..count-1 (same record as printf with those values). */
  printfStaged(format: string, count: number): void
  /** VMREAD of the caller's VMCS (current on this CPU while the handler runs). */
  vmread(encoding: number): bigint
  /** VMWRITE of the caller's VMCS; returns the VM-instruction error number, 0 on success. */
  vmwrite(encoding: number, value: bigint): number
  /** Wakes a vCPU halted in the kernel (KICK_CPU, SEND_IPI); false if no such vCPU. */
  kick(id: number): boolean
  /** Injects external interrupt `vector` into a vCPU (SEND_IPI). */
  sendInterrupt(id: number, vector: number): boolean
  /** Gives up the rest of the caller's time slice (SCHED_YIELD). */
  yieldSlice(): void
  /** Whether user space asked (KVM_CAP_EXIT_HYPERCALL) to handle hypercall `nr` itself. */
  forwardedToUserspace(nr: number): boolean
  /** Ends the call with KVM_EXIT_HYPERCALL: user space answers in kvm_run.hypercall.ret (the handler's result is ignored). */
  exitToUserspace(args: readonly [bigint, bigint, bigint]): void
}

/** A handler returns RAX: a number (sign-extended to 64 bits) or a bigint. */
export type HypercallFunction = (call: HypercallCall) => number | bigint

export interface HypercallDefinition {
  readonly nr: number
  /** Name for listings, e.g. "KVM_HC_VCPU_INFO". */
  readonly name: string
  readonly handle: HypercallFunction
}

export type RegisterResult = { readonly ok: true; readonly unregister: () => void } | { readonly ok: false; readonly reason: string }

/** Hypercall numbers below this are found by array index; others (a user's big numbers) in a Map. */
const DENSE_NUMBERS = 256

export class HypercallTable {
  private readonly dense: Array<HypercallDefinition | undefined> = new Array<HypercallDefinition | undefined>(DENSE_NUMBERS).fill(undefined)
  private readonly sparse = new Map<number, HypercallDefinition>()

  /** Adds a hypercall; refuses a number that is already handled. */
  register(def: HypercallDefinition): RegisterResult {
    if (!Number.isInteger(def.nr) || def.nr < 0) return { ok: false, reason: `hypercall number must be a non-negative integer, got ${def.nr}` }
    const taken = this.get(def.nr)
    if (taken !== undefined) return { ok: false, reason: `hypercall ${def.nr} is already ${taken.name}; pick a free number` }
    if (def.nr < DENSE_NUMBERS) this.dense[def.nr] = def
    else this.sparse.set(def.nr, def)
    return {
      ok: true,
      unregister: () => {
        if (this.get(def.nr) !== def) return
        if (def.nr < DENSE_NUMBERS) this.dense[def.nr] = undefined
        else this.sparse.delete(def.nr)
      },
    }
  }

  /** The handler of hypercall `nr` (a non-negative integer). */
  get(nr: number): HypercallDefinition | undefined {
    return nr < DENSE_NUMBERS ? this.dense[nr] : this.sparse.get(nr)
  }

  list(): Array<HypercallDefinition> {
    const all: Array<HypercallDefinition> = []
    for (const def of this.dense) if (def !== undefined) all.push(def)
    return [...all, ...this.sparse.values()].sort((a, b) => a.nr - b.nr)
  }
}

const gprNames = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const

/** The general-purpose registers in the order VCPU_INFO prints them (two lines of eight). */
const VCPU_INFO_REGS_1 = [Reg.RAX, Reg.RBX, Reg.RCX, Reg.RDX, Reg.RSI, Reg.RDI, Reg.RSP, Reg.RBP] as const
const VCPU_INFO_REGS_2 = [Reg.R8, Reg.R9, Reg.R10, Reg.R11, Reg.R12, Reg.R13, Reg.R14, Reg.R15] as const
const TWO32 = 4294967296

/** Exits by reason as VCPU_INFO prints them, "CPUID=3 VMCALL=1" ("none" before any exit). */
const exitsByReasonText = (counts: Float64Array): string => {
  let text = ""
  for (let reason = 0; reason < counts.length; reason++) {
    const n = counts[reason]!
    if (n > 0) text += `${text === "" ? "" : " "}${exitReasonName(reason) ?? reason}=${n}`
  }
  return text === "" ? "none" : text
}

/** VCPU_INFO for an id that names no vCPU: one line saying so, -KVM_EINVAL. */
const vcpuInfoUnknownId = (call: HypercallCall, idLo: number, idHi: number): number => {
  call.stageArg(0, idLo, idHi)
  call.printfStaged("unknown cpu id: %lu\n", 1)
  return -KvmHcError.EINVAL
}

/** VCPU_INFO's lines for vCPU `target`. */
const vcpuInfoLines = (call: HypercallCall, target: HypercallVcpu): number => {
  const r = target.regs
  call.stageArg(0, target.id, 0)
  call.printfStaged("vcpu id: %lu\n", 1)
  call.stageArg(0, 0, 0)
  call.printfStaged("vcpu pid level: %d\n", 1)
  call.stageArg(0, target.pid >>> 0, 0)
  call.printfStaged("pid: %d\n", 1)
  for (let i = 0; i < 8; i++) call.stageArg(i, r.lo[VCPU_INFO_REGS_1[i]!]! >>> 0, r.hi[VCPU_INFO_REGS_1[i]!]! >>> 0)
  call.printfStaged("regs: rax=%lu, rbx=%lu, rcx=%lu, rdx=%lu, rsi=%lu, rdi=%lu, rsp=%lu, rbp=%lu\n", 8)
  for (let i = 0; i < 8; i++) call.stageArg(i, r.lo[VCPU_INFO_REGS_2[i]!]! >>> 0, r.hi[VCPU_INFO_REGS_2[i]!]! >>> 0)
  call.printfStaged("regs: r8=%lu, r9=%lu, r10=%lu, r11=%lu, r12=%lu, r13=%lu, r14=%lu, r15=%lu\n", 8)
  // RIP is kept sign-extended from bit 47 as a number; as a 64-bit value its halves are:
  const ripHi = Math.floor(r.rip / TWO32)
  call.stageArg(0, (r.rip - ripHi * TWO32) >>> 0, ripHi >>> 0)
  call.stageArg(1, r.getRflags32() >>> 0, 0)
  call.printfStaged("rip: 0x%lx, rflags: 0x%lx\n", 2)
  const exits = target.stats.counters[VcpuStat.exits]!
  const exitsHi = Math.floor(exits / TWO32)
  call.stageArg(0, (exits - exitsHi * TWO32) >>> 0, exitsHi >>> 0)
  call.printfStaged("vm exits nums: %llu\n", 1)
  call.stageString(0, call.tracing ? exitsByReasonText(target.stats.exitsByReason) : "")
  call.printfStaged("exits by reason: %s\n", 1)
  return 0
}

/**
 * KVM_HC_VCPU_INFO (the homework's hypercall, fixed): for the vCPU whose id is in a0, trace_printk
 * its id, its thread's pid, ITS registers (not the caller's), RIP, RFLAGS, exit count and exits by
 * reason. An unknown id prints a line saying so and returns -KVM_EINVAL. The arguments are staged
 * as 32-bit halves (no array, no bigint), and the exits-by-reason text is only built while
 * tracing records: with tracing off the handler formats nothing. Kept small (the lines are in
 * their own functions) so that KVM's VMCALL handler, which calls it directly, can inline it.
 */
export const vcpuInfo: HypercallFunction = (call) => {
  const idLo = call.argLo(0)
  const idHi = call.argHi(0)
  const target = idHi === 0 ? call.vcpuById(idLo) : undefined
  return target === undefined ? vcpuInfoUnknownId(call, idLo, idHi) : vcpuInfoLines(call, target)
}

export const vcpuInfoHypercall = (nr: number): HypercallDefinition => ({ nr, name: "KVM_HC_VCPU_INFO", handle: vcpuInfo })

/** The hypercalls the kernel of `profile` handles, plus VCPU_INFO at `vcpuInfoNr`. */
export const builtinHypercalls = (profile: KernelProfile, vcpuInfoNr: number): Array<HypercallDefinition> => {
  const defs: Array<HypercallDefinition> = [
    // A no-op whose only purpose is the exit: pending interrupts are looked at on re-entry.
    { nr: KvmHc.VAPIC_POLL_IRQ, name: "KVM_HC_VAPIC_POLL_IRQ", handle: () => 0 },
    {
      nr: KvmHc.KICK_CPU,
      name: "KVM_HC_KICK_CPU",
      // a0 = flags (reserved), a1 = APIC id of the vCPU to wake (APIC id = vCPU id here).
      handle: (call) => {
        const target = call.args[1]
        if (target <= 0xffffffffn) call.kick(Number(target))
        return 0
      },
    },
    {
      nr: KvmHc.SEND_IPI,
      name: "KVM_HC_SEND_IPI",
      // a0/a1: bitmap of destination APIC ids starting at a2; a3: ICR (vector in bits 7:0).
      // Returns the number of vCPUs the IPI reached.
      handle: (call) => {
        const [low, high, min, icr] = call.args
        const vector = Number(icr & 0xffn)
        let delivered = 0
        for (let bit = 0; bit < 128; bit++) {
          const word = bit < 64 ? low : high
          if (((word >> BigInt(bit & 63)) & 1n) === 0n) continue
          const id = min + BigInt(bit)
          if (id <= 0xffffffffn && call.sendInterrupt(Number(id), vector)) delivered++
        }
        return delivered
      },
    },
  ]
  if (profile.hasSchedYield) {
    defs.push({
      nr: KvmHc.MAP_GPA_RANGE,
      name: "KVM_HC_MAP_GPA_RANGE",
      // a0 = first GPA (page-aligned), a1 = pages, a2 = attributes (bits 63:5 reserved). Handled by
      // user space only if it enabled KVM_CAP_EXIT_HYPERCALL for this number.
      handle: (call) => {
        if (!call.forwardedToUserspace(KvmHc.MAP_GPA_RANGE)) return -KvmHcError.ENOSYS
        const [gpa, pages, attrs] = call.args
        const end = gpa + pages * 4096n
        if ((gpa & 0xfffn) !== 0n || pages === 0n || end > 1n << 52n || (attrs >> 5n) !== 0n) return -KvmHcError.EINVAL
        call.exitToUserspace([gpa, pages, attrs])
        return 0
      },
    })
    defs.push({
      nr: KvmHc.SCHED_YIELD,
      name: "KVM_HC_SCHED_YIELD",
      handle: (call) => {
        call.yieldSlice()
        return 0
      },
    })
  }
  if (!defs.some((d) => d.nr === vcpuInfoNr)) defs.push(vcpuInfoHypercall(vcpuInfoNr))
  return defs
}

export const gprName = (reg: number): string => gprNames[reg] ?? `r${reg}`
