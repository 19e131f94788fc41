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
  /** trace_printk(format, args...) from kvm_emulate_hypercall on the caller's thread and CPU (end formats with "\n"). */
  printf(format: string, ...args: ReadonlyArray<number | bigint | string>): void
  /** trace_printk of finished text ("%s" format); add the "\n". */
  printk(text: string): void
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

export class HypercallTable {
  private readonly handlers = new Map<number, HypercallDefinition>()

  /** Adds a hypercall; refuses a number that is already handled. */
  register(def: HypercallDefinition): RegisterResult {
    if (!Number.isInteger(def.nr) || def.nr < 0) return { ok: false, reason: `hypercall number must be a non-negative integer, got ${def.nr}` }
    const taken = this.handlers.get(def.nr)
    if (taken !== undefined) return { ok: false, reason: `hypercall ${def.nr} is already ${taken.name}; pick a free number` }
    this.handlers.set(def.nr, def)
    return {
      ok: true,
      unregister: () => {
        if (this.handlers.get(def.nr) === def) this.handlers.delete(def.nr)
      },
    }
  }

  get(nr: number): HypercallDefinition | undefined {
    return this.handlers.get(nr)
  }

  list(): Array<HypercallDefinition> {
    return [...this.handlers.values()].sort((a, b) => a.nr - b.nr)
  }
}

const gprNames = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const

/**
 * KVM_HC_VCPU_INFO (the homework's hypercall, fixed): for the vCPU whose id is in a0, trace_printk
 * its id, its thread's pid, ITS registers (not the caller's), RIP, RFLAGS, exit count and exits by
 * reason. An unknown id prints a line saying so and returns -KVM_EINVAL.
 */
export const vcpuInfoHypercall = (nr: number): HypercallDefinition => ({
  nr,
  name: "KVM_HC_VCPU_INFO",
  handle: (call) => {
    const idLo = call.argLo(0)
    const idHi = call.argHi(0)
    const target = idHi === 0 ? call.vcpuById(idLo) : undefined
    if (target === undefined) {
      call.printf("unknown cpu id: %lu\n", idHi === 0 ? idLo : call.args[0])
      return -KvmHcError.EINVAL
    }
    const r = target.regs
    const g = (reg: number) => r.getReg(reg)
    call.printf("vcpu id: %lu\n", BigInt(target.id))
    call.printf("vcpu pid level: %d\n", 0)
    call.printf("pid: %d\n", target.pid)
    call.printf(
      "regs: rax=%lu, rbx=%lu, rcx=%lu, rdx=%lu, rsi=%lu, rdi=%lu, rsp=%lu, rbp=%lu\n",
      g(Reg.RAX), g(Reg.RBX), g(Reg.RCX), g(Reg.RDX), g(Reg.RSI), g(Reg.RDI), g(Reg.RSP), g(Reg.RBP),
    )
    call.printf(
      "regs: r8=%lu, r9=%lu, r10=%lu, r11=%lu, r12=%lu, r13=%lu, r14=%lu, r15=%lu\n",
      g(Reg.R8), g(Reg.R9), g(Reg.R10), g(Reg.R11), g(Reg.R12), g(Reg.R13), g(Reg.R14), g(Reg.R15),
    )
    call.printf("rip: 0x%lx, rflags: 0x%lx\n", r.ripValue, r.rflags)
    call.printf("vm exits nums: %llu\n", BigInt(target.stats.get("exits")))
    const byReason: Array<string> = []
    const counts = target.stats.exitsByReason
    for (let reason = 0; reason < counts.length; reason++) {
      if (counts[reason]! > 0) byReason.push(`${exitReasonName(reason) ?? reason}=${counts[reason]}`)
    }
    call.printf("exits by reason: %s\n", byReason.length === 0 ? "none" : byReason.join(" "))
    return 0
  },
})

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
