// The HypercallCall a hypercall handler receives: one per vCPU, made at its first hypercall and
// reused for every call after, so the VMCALL path allocates nothing unless a handler asks for
// bigint arguments or trace_printk records strings. trace_printk from here is
// kvm_emulate_hypercall's: it costs its virtual time whether or not tracing records (the kernel
// formats the arguments before the ring buffer refuses them), but the simulator builds nothing for
// the sink while tracing is off.

import { Reg } from "../../guest/cpu/state.ts"
import type { CpuState } from "../../guest/cpu/state.ts"
import type { LogicalProcessor } from "../vmx/logical-processor.ts"
import { Cost } from "./costs.ts"
import type { HypercallCall, HypercallVcpu } from "./hypercalls.ts"
import type { KvmTraceSink } from "./trace-sink.ts"
import type { Vcpu } from "./vcpu.ts"

/** a0..a3 of the Linux hypercall ABI. */
const ARG_REGS: ReadonlyArray<number> = [Reg.RBX, Reg.RCX, Reg.RDX, Reg.RSI]
/** The trace subsystem's trace_printk argument limit. */
const MAX_STAGED = 32
const TWO32 = 4294967296
/** A staged value whose high half is below this is exact as a number (< 2^53); wider ones go as bigint. */
const EXACT_HIGH_LIMIT = 0x200000
const PRINTK_FUNCTION = "kvm_emulate_hypercall"

/**
 * Whether a trace_printk of `format` is recorded now; if not, its call site is still registered
 * (nothing else is built for a record that would not be stored).
 */
const reachesSink = (trace: KvmTraceSink, format: string): boolean => {
  if (trace.recording) return true
  trace.registerPrintk(PRINTK_FUNCTION, format)
  return false
}

export class HypercallContext implements HypercallCall {
  /** The caller is in 64-bit mode (arguments are 64-bit; otherwise truncated to 32 bits). */
  longMode = true
  /** Set by exitToUserspace for the call in progress. */
  forwarded: readonly [bigint, bigint, bigint] | undefined
  private readonly stagedLo = new Uint32Array(MAX_STAGED)
  private readonly stagedHi = new Uint32Array(MAX_STAGED)
  private readonly stagedText: Array<string | undefined> = new Array<string | undefined>(MAX_STAGED).fill(undefined)
  /** Argument arrays handed to the trace sink, one per length, reused. */
  private readonly argArrays: Array<Array<number | bigint | string> | undefined> = []

  /** The caller's register file and KVM's trace sink, fixed for the vCPU's life: one load each on the hot path. */
  private readonly regs: CpuState
  private readonly trace: KvmTraceSink

  constructor(readonly caller: Vcpu) {
    this.regs = caller.regs
    this.trace = caller.vm.kvm.trace
  }

  private arg(reg: number): bigint {
    const r = this.regs
    return this.longMode ? r.getReg(reg) : BigInt(r.lo[reg]! >>> 0)
  }
  get nr(): bigint {
    return this.arg(Reg.RAX)
  }
  get args(): readonly [bigint, bigint, bigint, bigint] {
    return [this.arg(Reg.RBX), this.arg(Reg.RCX), this.arg(Reg.RDX), this.arg(Reg.RSI)]
  }
  argLo(index: number): number {
    return this.regs.lo[ARG_REGS[index]!]! >>> 0
  }
  argHi(index: number): number {
    return this.longMode ? this.regs.hi[ARG_REGS[index]!]! >>> 0 : 0
  }
  vcpuById(id: number): HypercallVcpu | undefined {
    return this.caller.vm.vcpuById(id)
  }

  // ---------------------------------------------------------------- trace_printk

  get tracing(): boolean {
    return this.caller.vm.kvm.printkRecording
  }

  printf(format: string, ...args: ReadonlyArray<number | bigint | string>): void {
    this.emit(format, args)
  }
  printk(text: string): void {
    this.emit("%s", [text])
  }
  stageArg(index: number, lo: number, hi: number): void {
    this.stagedLo[index] = lo
    this.stagedHi[index] = hi
    this.stagedText[index] = undefined
  }
  stageString(index: number, text: string): void {
    this.stagedText[index] = text
  }
  printfStaged(format: string, count: number): void {
    const vcpu = this.caller
    vcpu.thread?.charge(Cost.traceNs)
    const trace = this.trace
    if (!reachesSink(trace, format)) return
    if (this.noStringsStaged(count)) {
      // Integers only: their halves go to the sink as staged, no argument array.
      trace.printfWords(vcpu.loadedCpu, pidOf(vcpu), PRINTK_FUNCTION, format, this.stagedLo, this.stagedHi, count)
      return
    }
    let args = this.argArrays[count]
    if (args === undefined) {
      args = new Array<number | bigint | string>(count).fill(0)
      this.argArrays[count] = args
    }
    for (let i = 0; i < count; i++) {
      const text = this.stagedText[i]
      if (text !== undefined) {
        args[i] = text
        continue
      }
      const lo = this.stagedLo[i]!
      const hi = this.stagedHi[i]!
      args[i] = hi === 0 ? lo : hi < EXACT_HIGH_LIMIT ? hi * TWO32 + lo : (BigInt(hi) << 32n) | BigInt(lo)
    }
    trace.printf(vcpu.loadedCpu, pidOf(vcpu), PRINTK_FUNCTION, format, args)
  }
  /** Whether staged arguments 0..count-1 are all integers (no string). */
  private noStringsStaged(count: number): boolean {
    for (let i = 0; i < count; i++) if (this.stagedText[i] !== undefined) return false
    return true
  }
  private emit(format: string, args: ReadonlyArray<number | bigint | string>): void {
    const vcpu = this.caller
    vcpu.thread?.charge(Cost.traceNs)
    const trace = this.trace
    if (reachesSink(trace, format)) trace.printf(vcpu.loadedCpu, pidOf(vcpu), PRINTK_FUNCTION, format, args)
  }

  // ---------------------------------------------------------------- VMCS, other vCPUs, user space

  private get lp(): LogicalProcessor {
    return this.caller.lp
  }
  vmread(encoding: number): bigint {
    const lp = this.lp
    lp.vmread(encoding)
    return lp.value
  }
  vmwrite(encoding: number, value: bigint): number {
    const lp = this.lp
    const status = lp.vmwrite(encoding, value)
    return status === 0 ? 0 : lp.lastError || -1
  }
  kick(id: number): boolean {
    const target = this.caller.vm.vcpuById(id)
    if (target === undefined) return false
    target.kick()
    return true
  }
  sendInterrupt(id: number, vector: number): boolean {
    const target = this.caller.vm.vcpuById(id)
    if (target === undefined) return false
    target.queueInterrupt(vector)
    return true
  }
  yieldSlice(): void {
    this.caller.yieldRequested = true
  }
  forwardedToUserspace(nr: number): boolean {
    return nr < 64 && (this.caller.vm.exitHypercalls & (1n << BigInt(nr))) !== 0n
  }
  exitToUserspace(args: readonly [bigint, bigint, bigint]): void {
    this.forwarded = args
  }
}

const pidOf = (vcpu: Vcpu): number => vcpu.thread?.task.pid ?? vcpu.pid

/** The vCPU's hypercall context, made at its first hypercall. */
export const hypercallContext = (vcpu: Vcpu, longMode: boolean): HypercallContext => {
  let context = vcpu.hypercallContext
  if (context === undefined) {
    context = new HypercallContext(vcpu)
    vcpu.hypercallContext = context
  }
  context.longMode = longMode
  return context
}
