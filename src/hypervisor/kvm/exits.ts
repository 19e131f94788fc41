// The in-kernel exit handlers (vmx.c's kvm_vmx_exit_handlers), indexed by basic exit reason. Each
// returns what the run loop does next: re-enter the guest, return to user space with kvm_run
// filled, or block the vCPU thread (HLT). Hot paths (VMCALL, CPUID, port I/O) read the exit
// information with number-typed VMREADs and allocate nothing unless they go to user space.

import { ExitReason } from "../../arch/exit-reasons.ts"
import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import { PrimaryControl } from "../../arch/vmx/control-bits.ts"
import { Reg } from "../../guest/cpu/state.ts"
import type { LogicalProcessor } from "../vmx/logical-processor.ts"
import { wordIndexOf } from "../vmx/vmcs-view.ts"
import { lookupCpuid } from "./cpuid.ts"
import type { CpuidAnswer } from "./cpuid.ts"
import { Cost } from "./costs.ts"
import { hypercallContext } from "./hypercall-context.ts"
import { vcpuInfo } from "./hypercalls.ts"
import { EXIT_REASON_SLOTS, VcpuStat } from "./stats.ts"
import { KvmEvent } from "./trace-sink.ts"
import { KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KvmExit, KvmHcError, KvmInternalError } from "./uapi.ts"
import { Pending } from "./vcpu.ts"
import type { Vcpu } from "./vcpu.ts"

export const Next = {
  /** Re-enter the guest. */
  Enter: 0,
  /** Return to user space; kvm_run is filled. */
  Userspace: 1,
  /** Block the thread until an interrupt or kick (HLT). */
  Block: 2,
} as const
export type Next = (typeof Next)[keyof typeof Next]

export type ExitHandler = (vcpu: Vcpu, lp: LogicalProcessor, reason: number) => Next

const TWO32 = 4294967296
const STI_MOVSS_BLOCKING = 3
/** The host's local APIC timer vector (LOCAL_TIMER_VECTOR). */
export const LOCAL_TIMER_VECTOR = 0xec

const W_EXIT_INSTRUCTION_LEN = wordIndexOf(F.VM_EXIT_INSTRUCTION_LEN)
const W_GUEST_INTERRUPTIBILITY_INFO = wordIndexOf(F.GUEST_INTERRUPTIBILITY_INFO)

const hi32 = (v: number): number => Math.floor(v / TWO32) >>> 0
const lo32 = (v: number): number => (v - Math.floor(v / TWO32) * TWO32) >>> 0

// The exit handlers read the fields of the VMCS KVM made current before the entry (the run loop
// checked it), so VMREAD's own checks cannot fail here: the hot path reads through the current
// VMCS's view (`lp.view.lo`, by encoding; low 32 bits of natural-width fields).

/**
 * kvm_skip_emulated_instruction: RIP += instruction length, STI/MOV-SS blocking ends. The rare
 * cases (RIP at or above 4 GiB, a blocking to clear) are out of line so that this stays small
 * enough for the compiler to inline into the VMCALL handler together with the trace record.
 */
export const skipInstruction = (vcpu: Vcpu, lp: LogicalProcessor): void => {
  const words = lp.view.page.words
  const rip = vcpu.regs.rip + words[W_EXIT_INSTRUCTION_LEN]!
  if (rip >= 0 && rip < TWO32) lp.vmwriteLo(F.GUEST_RIP, rip)
  else writeWideRip(lp, rip)
  vcpu.regs.rip = rip
  const interruptibility = words[W_GUEST_INTERRUPTIBILITY_INFO]!
  if ((interruptibility & STI_MOVSS_BLOCKING) !== 0) endStiMovSsBlocking(lp, interruptibility)
}

/** GUEST_RIP outside the low 4 GiB (RIP is kept sign-extended from bit 47): a 64-bit VMWRITE. */
const writeWideRip = (lp: LogicalProcessor, rip: number): void => {
  lp.vmwrite(F.GUEST_RIP, (BigInt(hi32(rip)) << 32n) | BigInt(lo32(rip)))
}

const endStiMovSsBlocking = (lp: LogicalProcessor, interruptibility: number): void => {
  lp.vmwriteLo(F.GUEST_INTERRUPTIBILITY_INFO, interruptibility & ~STI_MOVSS_BLOCKING)
}

const cpuOf = (vcpu: Vcpu): number => vcpu.loadedCpu
const pidOf = (vcpu: Vcpu): number => vcpu.thread?.task.pid ?? vcpu.pid

const internalError = (vcpu: Vcpu, suberror: number, data: ReadonlyArray<bigint>): Next => {
  vcpu.run.exitReason = KvmExit.INTERNAL_ERROR
  vcpu.run.exit = { reason: KvmExit.INTERNAL_ERROR, suberror, data }
  return Next.Userspace
}

// ---------------------------------------------------------------- individual handlers

const handleExceptionNmi: ExitHandler = (vcpu, lp) => {
  const info = lp.vmreadLo(F.VM_EXIT_INTR_INFO)
  const type = (info >>> 8) & 7
  const vector = info & 0xff
  if (type === 2) return Next.Enter // a host NMI: handled by the host, the guest goes on
  const error = (info & 0x800) !== 0 ? lp.vmreadLo(F.VM_EXIT_INTR_ERROR_CODE) : -1
  if (vector === 18) return Next.Enter // #MC: kvm_machine_check, nothing to forward
  // #UD (no hypercall patching needed: kvmsim's guests use VMCALL), #DB, #AC: reflect to the guest.
  vcpu.queueException(vector, error, false)
  return Next.Enter
}

const handleExternalInterrupt: ExitHandler = (vcpu) => {
  // The interrupt (the host timer tick) was acknowledged on exit and handled by the host; the run
  // loop's need_resched check follows.
  vcpu.stats.counters[VcpuStat.irq_exits]!++
  return Next.Enter
}

const handleTripleFault: ExitHandler = (vcpu) => {
  vcpu.run.exitReason = KvmExit.SHUTDOWN
  vcpu.run.exit = { reason: KvmExit.SHUTDOWN }
  return Next.Userspace
}

const handleInterruptWindow: ExitHandler = (vcpu, lp) => {
  const primary = lp.vmreadLo(F.CPU_BASED_VM_EXEC_CONTROL)
  lp.vmwriteLo(F.CPU_BASED_VM_EXEC_CONTROL, primary & ~PrimaryControl.INTR_WINDOW_EXITING)
  vcpu.stats.counters[VcpuStat.irq_window_exits]!++
  return Next.Enter
}

const cpuidAnswer: CpuidAnswer = { eax: 0, ebx: 0, ecx: 0, edx: 0, found: false, usedMaxBasic: false }

const handleCpuid: ExitHandler = (vcpu, lp) => {
  const r = vcpu.regs
  const fn = r.lo[Reg.RAX]! >>> 0
  const index = r.lo[Reg.RCX]! >>> 0
  lookupCpuid(vcpu.cpuid, fn, index, cpuidAnswer)
  const a = cpuidAnswer
  r.lo[Reg.RAX] = a.eax | 0
  r.hi[Reg.RAX] = 0
  r.lo[Reg.RBX] = a.ebx | 0
  r.hi[Reg.RBX] = 0
  r.lo[Reg.RCX] = a.ecx | 0
  r.hi[Reg.RCX] = 0
  r.lo[Reg.RDX] = a.edx | 0
  r.hi[Reg.RDX] = 0
  const trace = vcpu.vm.kvm.trace
  if (trace.on[KvmEvent.cpuid] === 1) trace.cpuid(cpuOf(vcpu), pidOf(vcpu), fn, index, a.eax, a.ebx, a.ecx, a.edx, a.found, a.usedMaxBasic)
  skipInstruction(vcpu, lp)
  return Next.Enter
}

const handleHlt: ExitHandler = (vcpu, lp) => {
  vcpu.stats.counters[VcpuStat.halt_exits]!++
  skipInstruction(vcpu, lp)
  if (vcpu.pendingIrqs.length > 0 || vcpu.kicked) {
    vcpu.kicked = false
    return Next.Enter
  }
  const interruptsEnabled = (vcpu.regs.getRflags32() & 0x200) !== 0
  if (!interruptsEnabled) {
    // Nothing can wake it: KVM without an in-kernel irqchip hands HLT to user space.
    vcpu.run.exitReason = KvmExit.HLT
    vcpu.run.exit = { reason: KvmExit.HLT }
    return Next.Userspace
  }
  return Next.Block
}

const handleInvalidOpcodeExit: ExitHandler = (vcpu) => {
  // VMX instructions, INVD, RDPMC...: KVM without nested VMX answers with #UD.
  vcpu.queueException(6, -1, false)
  return Next.Enter
}

const handleNop: ExitHandler = (vcpu, lp) => {
  // MWAIT/MONITOR/PAUSE: KVM treats them as NOPs.
  skipInstruction(vcpu, lp)
  return Next.Enter
}

const handleCrAccess: ExitHandler = (vcpu, lp) => {
  const q = lp.view.lo(F.EXIT_QUALIFICATION)
  const cr = q & 15
  const type = (q >>> 4) & 3
  const reg = (q >>> 8) & 15
  const r = vcpu.regs
  const trace = vcpu.vm.kvm.trace
  const emit = (rw: number, value: bigint) => {
    if (trace.on[KvmEvent.cr] === 1) trace.cr(cpuOf(vcpu), pidOf(vcpu), rw, cr, Number(value & 0xffffffffn), Number(value >> 32n))
  }
  if (type === 0) {
    // MOV to CR.
    const value = reg === Reg.RSP ? lp.view.u64(F.GUEST_RSP) : r.getReg(reg)
    emit(1, value)
    if (cr === 0) {
      // kvm_set_cr0: PG without PE, or bits 63:32, are #GP.
      if ((value >> 32n) !== 0n || ((value & 0x80000000n) !== 0n && (value & 1n) === 0n)) {
        vcpu.queueException(13, 0)
        return Next.Enter
      }
      vcpu.setCr0(value)
    } else if (cr === 4) {
      if ((value & (1n << 13n)) !== 0n || (value >> 32n) !== 0n) {
        // VMXE: no nested VMX for the guest.
        vcpu.queueException(13, 0)
        return Next.Enter
      }
      vcpu.setCr4(value)
    } else if (cr === 3) lp.vmwrite(F.GUEST_CR3, value)
    else if (cr === 8) r.cr8 = Number(value & 0xfn)
    else return internalError(vcpu, KvmInternalError.EMULATION, [BigInt(q)])
  } else if (type === 1) {
    // MOV from CR (CR3/CR8 store exiting).
    const value = cr === 3 ? lp.view.u64(F.GUEST_CR3) : BigInt(r.cr8)
    emit(0, value)
    r.setReg(reg, value)
  } else if (type === 2) {
    // CLTS: clears the guest's TS.
    const shadow = lp.view.u64(F.CR0_READ_SHADOW)
    vcpu.setCr0(shadow & ~8n)
    emit(1, shadow & ~8n)
  } else {
    // LMSW: loads bits 3:0 (PE cannot be cleared by LMSW).
    const source = BigInt((q >>> 16) & 0xf)
    const shadow = lp.view.u64(F.CR0_READ_SHADOW)
    const value = (shadow & ~0xen) | (source & 0xen) | ((shadow | source) & 1n)
    vcpu.setCr0(value)
    emit(1, value)
  }
  skipInstruction(vcpu, lp)
  return Next.Enter
}

const handleIo: ExitHandler = (vcpu, lp) => {
  const q = lp.view.lo(F.EXIT_QUALIFICATION)
  const size = (q & 7) + 1
  const isIn = (q & 8) !== 0
  const isString = (q & 16) !== 0
  const port = q >>> 16
  vcpu.stats.counters[VcpuStat.io_exits]!++
  if (isString) {
    // INS/OUTS go through KVM's instruction emulator, which kvmsim does not model.
    return internalError(vcpu, KvmInternalError.EMULATION, [BigInt(q)])
  }
  skipInstruction(vcpu, lp)
  const run = vcpu.run
  const data = run.data
  if (isIn) {
    vcpu.pending = Pending.PioIn
    vcpu.pendingSize = size
    vcpu.pendingGpa = port
    data.fill(0, 0, size)
    run.exitReason = KvmExit.IO
    run.exit = { reason: KvmExit.IO, direction: KVM_EXIT_IO_IN, size: size as 1 | 2 | 4, port, count: 1, data: run.dataHead(size) }
    return Next.Userspace
  }
  const value = vcpu.regs.lo[Reg.RAX]! & (size === 4 ? -1 : (1 << (size * 8)) - 1)
  for (let b = 0; b < size; b++) data[b] = (value >>> (8 * b)) & 0xff
  const trace = vcpu.vm.kvm.trace
  if (trace.on[KvmEvent.pio] === 1) trace.pio(cpuOf(vcpu), pidOf(vcpu), 1, port, size, 1, value >>> 0)
  run.exitReason = KvmExit.IO
  run.exit = { reason: KvmExit.IO, direction: KVM_EXIT_IO_OUT, size: size as 1 | 2 | 4, port, count: 1, data: run.dataHead(size) }
  return Next.Userspace
}

const handleRdmsr: ExitHandler = (vcpu, lp) => {
  const r = vcpu.regs
  const index = r.lo[Reg.RCX]! >>> 0
  const value = vcpu.readMsr(index)
  const trace = vcpu.vm.kvm.trace
  if (value === undefined) {
    if (trace.on[KvmEvent.msr] === 1) trace.msr(cpuOf(vcpu), pidOf(vcpu), 0, index, 0, 0, true)
    vcpu.queueException(13, 0)
    return Next.Enter
  }
  r.lo[Reg.RAX] = Number(value & 0xffffffffn) | 0
  r.hi[Reg.RAX] = 0
  r.lo[Reg.RDX] = Number((value >> 32n) & 0xffffffffn) | 0
  r.hi[Reg.RDX] = 0
  if (trace.on[KvmEvent.msr] === 1) trace.msr(cpuOf(vcpu), pidOf(vcpu), 0, index, r.lo[Reg.RAX]! >>> 0, r.lo[Reg.RDX]! >>> 0, false)
  skipInstruction(vcpu, lp)
  return Next.Enter
}

const handleWrmsr: ExitHandler = (vcpu, lp) => {
  const r = vcpu.regs
  const index = r.lo[Reg.RCX]! >>> 0
  const lo = r.lo[Reg.RAX]! >>> 0
  const hi = r.lo[Reg.RDX]! >>> 0
  const ok = vcpu.writeMsr(index, (BigInt(hi) << 32n) | BigInt(lo))
  const trace = vcpu.vm.kvm.trace
  if (trace.on[KvmEvent.msr] === 1) trace.msr(cpuOf(vcpu), pidOf(vcpu), 1, index, lo, hi, !ok)
  if (!ok) {
    vcpu.queueException(13, 0)
    return Next.Enter
  }
  skipInstruction(vcpu, lp)
  return Next.Enter
}

const handleEptViolation: ExitHandler = (vcpu, lp) => {
  const size = vcpu.regs.exit.mmioSize
  if (size === 0) {
    // An instruction fetch (or page walk) outside every memslot: the emulator would fail too.
    return internalError(vcpu, KvmInternalError.EMULATION, [lp.view.u64(F.GUEST_PHYSICAL_ADDRESS)])
  }
  const gpaLo = lp.vmreadLo(F.GUEST_PHYSICAL_ADDRESS)
  const gpaHi = lp.view.hi(F.GUEST_PHYSICAL_ADDRESS)
  const gpa = gpaHi * TWO32 + gpaLo
  const isWrite = (lp.vmreadLo(F.EXIT_QUALIFICATION) & 2) !== 0
  const run = vcpu.run
  const data = run.data
  data.fill(0, 0, 8)
  vcpu.stats.counters[VcpuStat.mmio_exits]!++
  const trace = vcpu.vm.kvm.trace
  const x = vcpu.regs.exit
  if (isWrite) {
    for (let b = 0; b < Math.min(size, 4); b++) data[b] = (x.mmioDataLo >>> (8 * b)) & 0xff
    for (let b = 4; b < size; b++) data[b] = (x.mmioDataHi >>> (8 * (b - 4))) & 0xff
    if (trace.on[KvmEvent.mmio] === 1) trace.mmio(cpuOf(vcpu), pidOf(vcpu), 2, size, gpaLo, gpaHi, x.mmioDataLo >>> 0, x.mmioDataHi >>> 0)
  } else if (trace.on[KvmEvent.mmio] === 1) trace.mmio(cpuOf(vcpu), pidOf(vcpu), 0, size, gpaLo, gpaHi, 0, 0)
  // The access is replayed when the guest re-executes the instruction: a write is then dropped,
  // a read gets what user space put in kvm_run.
  vcpu.pending = Pending.MmioRead
  vcpu.pendingGpa = gpa
  vcpu.pendingSize = size
  vcpu.mmioIsWrite = isWrite
  run.exitReason = KvmExit.MMIO
  run.exit = { reason: KvmExit.MMIO, physAddr: (BigInt(gpaHi) << 32n) | BigInt(gpaLo), data: run.dataHead(size), len: size, isWrite }
  return Next.Userspace
}

const handlePreemptionTimer: ExitHandler = () => Next.Enter

const handleEptMisconfig: ExitHandler = (vcpu, lp) => internalError(vcpu, KvmInternalError.EMULATION, [lp.view.u64(F.GUEST_PHYSICAL_ADDRESS)])

export const handleVmcall = (vcpu: Vcpu, lp: LogicalProcessor): Next => {
  const kvm = vcpu.vm.kvm
  const r = vcpu.regs
  const trace = kvm.trace
  if (trace.on[KvmEvent.hypercall] === 1) {
    trace.forCpu(cpuOf(vcpu)).hypercall(pidOf(vcpu), r.lo[Reg.RAX]! >>> 0, r.hi[Reg.RAX]! >>> 0, r.lo[Reg.RBX]! >>> 0, r.hi[Reg.RBX]! >>> 0, r.lo[Reg.RCX]! >>> 0, r.hi[Reg.RCX]! >>> 0, r.lo[Reg.RDX]! >>> 0, r.hi[Reg.RDX]! >>> 0, r.lo[Reg.RSI]! >>> 0, r.hi[Reg.RSI]! >>> 0)
    vcpu.thread?.charge(Cost.traceNs)
  }
  const longMode = r.longModeActive && (r.segAttr[1]! & (1 << 13)) !== 0
  let resultLo: number
  let resultHi: number
  if (r.cpl !== 0) {
    resultLo = -1
    resultHi = -1
  } else {
    const nrHi = longMode ? r.hi[Reg.RAX]! : 0
    const nrLo = r.lo[Reg.RAX]! >>> 0
    const def = nrHi === 0 ? kvm.hypercalls.get(nrLo) : undefined
    if (def === undefined) {
      resultLo = -KvmHcError.ENOSYS
      resultHi = -1
    } else {
      const call = hypercallContext(vcpu, longMode)
      // VCPU_INFO, the built-in on the hot path, by a direct call the compiler can inline.
      const handle = def.handle
      const result = handle === vcpuInfo ? vcpuInfo(call) : handle(call)
      if (call.forwarded !== undefined) {
        // KVM_EXIT_HYPERCALL: RAX and the RIP advance wait for user space's answer.
        const [a0, a1, a2] = call.forwarded
        call.forwarded = undefined
        vcpu.pending = Pending.Hypercall
        vcpu.run.exitReason = KvmExit.HYPERCALL
        vcpu.run.exit = { reason: KvmExit.HYPERCALL, nr: BigInt(nrLo), args: [a0, a1, a2, 0n, 0n, 0n], ret: 0n }
        return Next.Userspace
      }
      if (typeof result === "number") {
        resultLo = result | 0
        resultHi = result < 0 ? -1 : Math.floor(result / TWO32) | 0
      } else {
        const v = BigInt.asUintN(64, result)
        resultLo = Number(v & 0xffffffffn) | 0
        resultHi = Number(v >> 32n) | 0
      }
    }
  }
  // Outside 64-bit mode the result is truncated to 32 bits (and a 32-bit write zero-extends).
  r.lo[Reg.RAX] = resultLo
  r.hi[Reg.RAX] = longMode ? resultHi : 0
  vcpu.stats.counters[VcpuStat.hypercalls]!++
  skipInstruction(vcpu, lp)
  return Next.Enter
}

const handleUnexpected: ExitHandler = (vcpu, _lp, reason) => internalError(vcpu, KvmInternalError.UNEXPECTED_EXIT_REASON, [BigInt(reason)])

/**
 * kvm_vmx_exit_handlers, indexed by basic exit reason. Every slot holds a handler (the unexpected
 * reasons' one where KVM has none), so the array stays dense and its loads monomorphic.
 */
export const exitHandlers: Array<ExitHandler> = new Array<ExitHandler>(EXIT_REASON_SLOTS).fill(handleUnexpected)
exitHandlers[ExitReason.EXCEPTION_NMI] = handleExceptionNmi
exitHandlers[ExitReason.EXTERNAL_INTERRUPT] = handleExternalInterrupt
exitHandlers[ExitReason.TRIPLE_FAULT] = handleTripleFault
exitHandlers[ExitReason.INTERRUPT_WINDOW] = handleInterruptWindow
exitHandlers[ExitReason.CPUID] = handleCpuid
exitHandlers[ExitReason.HLT] = handleHlt
exitHandlers[ExitReason.INVD] = handleInvalidOpcodeExit
exitHandlers[ExitReason.RDPMC] = handleInvalidOpcodeExit
exitHandlers[ExitReason.VMCALL] = handleVmcall
for (const r of [ExitReason.VMCLEAR, ExitReason.VMLAUNCH, ExitReason.VMPTRLD, ExitReason.VMPTRST, ExitReason.VMREAD, ExitReason.VMRESUME, ExitReason.VMWRITE, ExitReason.VMOFF, ExitReason.VMON, ExitReason.INVEPT, ExitReason.INVVPID]) {
  exitHandlers[r] = handleInvalidOpcodeExit
}
exitHandlers[ExitReason.CR_ACCESS] = handleCrAccess
exitHandlers[ExitReason.IO_INSTRUCTION] = handleIo
exitHandlers[ExitReason.MSR_READ] = handleRdmsr
exitHandlers[ExitReason.MSR_WRITE] = handleWrmsr
exitHandlers[ExitReason.MWAIT_INSTRUCTION] = handleNop
exitHandlers[ExitReason.MONITOR_INSTRUCTION] = handleNop
exitHandlers[ExitReason.PAUSE_INSTRUCTION] = handleNop
exitHandlers[ExitReason.EPT_VIOLATION] = handleEptViolation
exitHandlers[ExitReason.EPT_MISCONFIG] = handleEptMisconfig
exitHandlers[ExitReason.PREEMPTION_TIMER] = handlePreemptionTimer

export const exitHandlerFor = (reason: number): ExitHandler => (reason < EXIT_REASON_SLOTS ? exitHandlers[reason]! : handleUnexpected)
