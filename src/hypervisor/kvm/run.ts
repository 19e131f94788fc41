// KVM_RUN (kvm_arch_vcpu_ioctl_run / vcpu_run / vcpu_enter_guest / vmx_handle_exit). The inner
// loop is synchronous: inject pending events, program the preemption timer with what is left of
// the thread's time slice, VMLAUNCH/VMRESUME with an instruction budget that ends at the next host
// timer tick, dispatch the exit through the handler table. It leaves the loop only at scheduling
// points — slice used up (cond_resched), HLT (the thread blocks), a signal, or an exit user space
// must handle — where the Effect around it yields the CPU, blocks, or returns to the VMM.

import { Effect } from "effect"
import { ExitReason } from "../../arch/exit-reasons.ts"
import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import { PinControl, PrimaryControl } from "../../arch/vmx/control-bits.ts"
import { Reg } from "../../guest/cpu/state.ts"
import { engineOf } from "../../guest/run.ts"
import { Errno } from "../../host/errno.ts"
import type { Thread } from "../../host/scheduler.ts"
import type { LogicalProcessor } from "../vmx/logical-processor.ts"
import { VmxStatus } from "../vmx/outcome.ts"
import { wordIndexOf } from "../vmx/vmcs-view.ts"
import { Cost } from "./costs.ts"
import { kvmError } from "./errors.ts"
import type { KvmError } from "./errors.ts"
import { ExitVerdict } from "./exit-hook.ts"
import { LOCAL_TIMER_VECTOR, Next, exitHandlerFor, handleVmcall, skipInstruction } from "./exits.ts"
import { EXIT_REASON_SLOTS, VcpuStat } from "./stats.ts"
import { KvmEvent } from "./trace-sink.ts"
import type { KvmCpuTraceSink } from "./trace-sink.ts"
import { KvmExit } from "./uapi.ts"
import { Pending } from "./vcpu.ts"
import type { Vcpu } from "./vcpu.ts"

const TWO32 = 4294967296
const W_PREEMPTION_TIMER_VALUE = wordIndexOf(F.VMX_PREEMPTION_TIMER_VALUE)
const W_IDT_VECTORING_INFO = wordIndexOf(F.IDT_VECTORING_INFO_FIELD)

/** Why the synchronous loop stopped. */
const Stop = {
  Userspace: 0,
  Resched: 1,
  Block: 2,
  Dead: 3,
  Signal: 4,
  /** An exit observer asked for a return to user space. */
  Requested: 5,
} as const
type Stop = (typeof Stop)[keyof typeof Stop]

/**
 * KVM_RUN on `thread` (which must be running: called from the vCPU thread's fiber). Succeeds with
 * kvm_run.exit_reason (kvm_run is `vcpu.run`); fails with EIO for a dead VM, EINTR for a signal or
 * immediate_exit, EBADF for a destroyed vCPU.
 */
export const kvmRun = (vcpu: Vcpu, thread: Thread): Effect.Effect<number, KvmError> =>
  Effect.suspend(() => {
    const call = "KVM_RUN"
    const vm = vcpu.vm
    if (vm.destroyed) return Effect.fail(kvmError(call, Errno.EBADF, "the vCPU's VM was destroyed"))
    if (vm.dead) return Effect.fail(kvmError(call, Errno.EIO, `the VM is dead after an internal error (${vm.deadReason})`))
    if (thread.cpu < 0) return Effect.die(new Error("KVM_RUN called from a thread that does not hold a CPU"))
    if (vcpu.run.immediateExit) return userspaceError(vcpu, thread, Errno.EINTR, "immediate_exit was set")
    // vcpu->pid follows the thread that runs the vCPU.
    vcpu.pid = thread.task.pid
    vcpu.thread = thread
    safeLoad(vcpu, thread.cpu)
    if (!vm.dead) completeUserspace(vcpu)
    const stop = innerLoop(vcpu, thread)
    if (stop === Stop.Resched || stop === Stop.Block) return acrossSchedulingPoints(vcpu, thread, stop)
    // Most calls return without reaching a scheduling point: no preempt notifier, no generator.
    vcpu.thread = undefined
    return leave(vcpu, thread, stop)
  })

/**
 * The rest of a KVM_RUN that reached a scheduling point: the thread yields its CPU or blocks (HLT),
 * with a preempt notifier reloading the VMCS wherever it runs next (vcpu_load), and the run loop
 * goes on until KVM_RUN returns.
 */
const acrossSchedulingPoints = (vcpu: Vcpu, thread: Thread, first: Stop): Effect.Effect<number, KvmError> => {
  const removeNotifier = thread.addNotifier({
    schedIn: (cpu) => safeLoad(vcpu, cpu),
    schedOut: () => {},
  })
  return Effect.gen(function* () {
    let stop = first
    for (;;) {
      if (stop === Stop.Resched) yield* thread.yieldCpu
      else if (stop === Stop.Block) {
        const since = thread.nowNs()
        vcpu.halted = true
        yield* thread.block
        vcpu.halted = false
        vcpu.kicked = false
        // Woken: the wait shows up in the trace, the vCPU goes on after its HLT.
        thread.charge(Cost.wakeupNs)
        vcpu.stats.counters[VcpuStat.halt_wakeup]!++
        const trace = vcpu.vm.kvm.trace
        if (trace.on[KvmEvent.vcpu_wakeup] === 1) trace.vcpuWakeup(thread.cpu, thread.task.pid, Math.max(0, thread.nowNs() - since), true, true)
      } else return yield* leave(vcpu, thread, stop)
      stop = innerLoop(vcpu, thread)
    }
  }).pipe(
    Effect.ensuring(
      Effect.sync(() => {
        removeNotifier()
        vcpu.thread = undefined
      }),
    ),
  )
}

/** KVM_RUN succeeding with each exit reason: the same immutable Effect every time. */
const succeedWith: Array<Effect.Effect<number> | undefined> = []

/** The return to user space for a stop that ends KVM_RUN (not a scheduling point). */
const leave = (vcpu: Vcpu, thread: Thread, stop: Stop): Effect.Effect<number, KvmError> => {
  if (stop === Stop.Userspace) {
    // An observer's request for user space is met by this return.
    vcpu.userspaceExitRequested = false
    traceUserspaceExit(vcpu, thread, 0)
    thread.charge(Cost.userspaceNs)
    const reason = vcpu.run.exitReason
    return (succeedWith[reason] ??= Effect.succeed(reason))
  }
  if (stop === Stop.Requested) {
    vcpu.userspaceExitRequested = false
    vcpu.run.exitReason = KvmExit.INTR
    vcpu.run.exit = { reason: KvmExit.INTR }
    return userspaceError(vcpu, thread, Errno.EINTR, "an exit observer asked KVM_RUN to return to user space")
  }
  if (stop === Stop.Signal) {
    thread.signalPending = false
    vcpu.stats.counters[VcpuStat.signal_exits]!++
    vcpu.run.exitReason = KvmExit.INTR
    vcpu.run.exit = { reason: KvmExit.INTR }
    return userspaceError(vcpu, thread, Errno.EINTR, "a signal is pending for the vCPU thread")
  }
  return userspaceError(vcpu, thread, Errno.EIO, `the VM is dead after an internal error (${vcpu.vm.deadReason})`)
}

const userspaceError = (vcpu: Vcpu, thread: Thread, errno: number, what: string): Effect.Effect<never, KvmError> => {
  traceUserspaceExit(vcpu, thread, -errno)
  return Effect.fail(kvmError("KVM_RUN", errno, what))
}

/** Every return from KVM_RUN: kvm_run.if_flag (post_kvm_run_save), then kvm_userspace_exit. */
const traceUserspaceExit = (vcpu: Vcpu, thread: Thread, errno: number): void => {
  vcpu.run.ifFlag = (vcpu.regs.getRflags32() & 0x200) !== 0
  const trace = vcpu.vm.kvm.trace
  if (trace.on[KvmEvent.userspace_exit] === 1 && thread.cpu >= 0) trace.userspaceExit(thread.cpu, thread.task.pid, vcpu.run.exitReason, errno)
}

/** vcpu_load that turns a failure (a KVM/VMX inconsistency) into a dead VM instead of a crash. */
const safeLoad = (vcpu: Vcpu, cpu: number): void => {
  if (vcpu.vm.dead) return
  try {
    vcpu.load(cpu)
  } catch (e) {
    vcpu.vm.bug(`vcpu_load of vCPU ${vcpu.id} on CPU ${cpu}: ${(e as Error).message}`)
  }
}

/** What user space answered since the last exit: IN data into RAX, MMIO data for the replay. */
const completeUserspace = (vcpu: Vcpu): void => {
  const r = vcpu.regs
  const data = vcpu.run.data
  if (vcpu.pending === Pending.PioIn) {
    const size = vcpu.pendingSize
    let value = 0
    for (let b = size - 1; b >= 0; b--) value = value * 256 + data[b]!
    if (size === 4) {
      r.lo[Reg.RAX] = value | 0
      r.hi[Reg.RAX] = 0
    } else {
      const mask = size === 1 ? 0xff : 0xffff
      r.lo[Reg.RAX] = (r.lo[Reg.RAX]! & ~mask) | value
    }
    const trace = vcpu.vm.kvm.trace
    if (trace.on[KvmEvent.pio] === 1 && vcpu.thread !== undefined) trace.pio(vcpu.thread.cpu, vcpu.thread.task.pid, 0, vcpu.pendingGpa, size, 1, value >>> 0)
  } else if (vcpu.pending === Pending.Hypercall) {
    // complete_hypercall_exit: RAX = kvm_run.hypercall.ret, count it, skip the VMCALL.
    const exit = vcpu.run.exit
    const ret = exit !== undefined && exit.reason === KvmExit.HYPERCALL ? BigInt.asUintN(64, exit.ret) : 0n
    r.setReg(Reg.RAX, ret)
    vcpu.stats.counters[VcpuStat.hypercalls]!++
    skipInstruction(vcpu, vcpu.lp)
  } else if (vcpu.pending === Pending.MmioRead) {
    const engine = engineOf(r)
    let lo = 0
    let hi = 0
    for (let b = Math.min(vcpu.pendingSize, 4) - 1; b >= 0; b--) lo = lo * 256 + data[b]!
    for (let b = vcpu.pendingSize - 1; b >= 4; b--) hi = hi * 256 + data[b]!
    engine.mmioReplayGpa = vcpu.pendingGpa
    engine.mmioReplayLo = vcpu.mmioIsWrite ? 0 : lo | 0
    engine.mmioReplayHi = vcpu.mmioIsWrite ? 0 : hi | 0
    const trace = vcpu.vm.kvm.trace
    if (!vcpu.mmioIsWrite && trace.on[KvmEvent.mmio] === 1 && vcpu.thread !== undefined) {
      trace.mmio(vcpu.thread.cpu, vcpu.thread.task.pid, 1, vcpu.pendingSize, vcpu.pendingGpa % TWO32, Math.floor(vcpu.pendingGpa / TWO32), lo >>> 0, hi >>> 0)
    }
  }
  vcpu.pending = Pending.None
}

/** Injects a queued exception or interrupt at the next entry, or asks for an interrupt window. */
const injectEvents = (vcpu: Vcpu, lp: LogicalProcessor, pid: number): void => {
  const trace = vcpu.vm.kvm.trace
  if (vcpu.pendingException >= 0) {
    const vector = vcpu.pendingException
    const hasError = vcpu.pendingExceptionError >= 0
    lp.vmwriteLo(F.VM_ENTRY_INTR_INFO_FIELD, (0x80000000 | (3 << 8) | (hasError ? 0x800 : 0) | vector) >>> 0)
    if (hasError) lp.vmwriteLo(F.VM_ENTRY_EXCEPTION_ERROR_CODE, vcpu.pendingExceptionError)
    if (trace.on[KvmEvent.inj_exception] === 1) trace.injException(vcpu.loadedCpu, pid, vector, hasError, Math.max(0, vcpu.pendingExceptionError), vcpu.pendingExceptionReinjected)
    vcpu.pendingException = -1
    return
  }
  if (vcpu.pendingIrqs.length === 0) return
  const interruptible = (vcpu.regs.getRflags32() & 0x200) !== 0 && (lp.vmreadLo(F.GUEST_INTERRUPTIBILITY_INFO) & 3) === 0
  if (interruptible) {
    const vector = vcpu.pendingIrqs.shift()!
    lp.vmwriteLo(F.VM_ENTRY_INTR_INFO_FIELD, (0x80000000 | vector) >>> 0)
    vcpu.stats.counters[VcpuStat.irq_injections]!++
    if (trace.on[KvmEvent.inj_virq] === 1) trace.injVirq(vcpu.loadedCpu, pid, vector, false, false)
  } else {
    const primary = lp.vmreadLo(F.CPU_BASED_VM_EXEC_CONTROL)
    if ((primary & PrimaryControl.INTR_WINDOW_EXITING) === 0) lp.vmwriteLo(F.CPU_BASED_VM_EXEC_CONTROL, primary | PrimaryControl.INTR_WINDOW_EXITING)
  }
}

/** An event that was being delivered when the exit happened (valid IDT-vectoring information) goes back in the queue (vmx_complete_interrupts). */
const requeueVectoring = (vcpu: Vcpu, lp: LogicalProcessor): void => {
  const info = lp.vmreadLo(F.IDT_VECTORING_INFO_FIELD)
  const vector = info & 0xff
  const type = (info >>> 8) & 7
  if (type === 3) vcpu.queueException(vector, (info & 0x800) !== 0 ? lp.vmreadLo(F.IDT_VECTORING_ERROR_CODE) : -1, true)
  else if (type === 0) vcpu.pendingIrqs.unshift(vector)
}

/** The exit observers, with a throwing one turned into a dead VM (-1) instead of a host crash. */
const notifyExitObservers = (vcpu: Vcpu, cpu: number, exitReason: number, lp: LogicalProcessor): number => {
  try {
    return vcpu.vm.kvm.hooks.vmExit.notifyExit(vcpu, cpu, exitReason, lp.lastExitQualificationLo >>> 0, lp.lastExitQualificationHi >>> 0)
  } catch (e) {
    vcpu.vm.bug(`exit observer at exit reason ${exitReason & 0xffff}: ${(e as Error).message}`)
    return -1
  }
}

/** The entry callbacks of exit observers; false (the VM is dead) if one threw. */
const notifyEntryObservers = (vcpu: Vcpu, cpu: number): boolean => {
  try {
    vcpu.vm.kvm.hooks.vmExit.notifyEntry(vcpu, cpu)
    return true
  } catch (e) {
    vcpu.vm.bug(`exit observer before VM entry: ${(e as Error).message}`)
    return false
  }
}

/**
 * The VMX-preemption timer value for `sliceLeftNs` of time slice: the instructions (TSC ticks) it
 * takes at `nsPerInstruction`, at least 1, divided by the timer's `scale` (2^`shift`) rounding up,
 * capped at the field's 32 bits. With 1 ns per instruction and a slice below 2^31 ns (always, for
 * the scheduler's slices) the rounded-up division is an add and a shift: the sum stays below 2^32.
 */
export const preemptionTimerValue = (sliceLeftNs: number, nsPerInstruction: number, scale: number, shift: number): number => {
  if (nsPerInstruction === 1 && (sliceLeftNs | 0) === sliceLeftNs) return ((sliceLeftNs > 1 ? sliceLeftNs : 1) + scale - 1) >>> shift
  const ticks = nsPerInstruction === 1 ? sliceLeftNs : Math.floor(sliceLeftNs / nsPerInstruction)
  return Math.min(0xffffffff, Math.ceil(Math.max(1, ticks) / scale))
}

const innerLoop = (vcpu: Vcpu, thread: Thread): Stop => {
  const vm = vcpu.vm
  const kvm = vm.kvm
  const clock = kvm.host.clock
  const cpuNs = clock.cpuNs
  const ns = clock.nsPerInstruction
  const trace = kvm.trace
  const traceOn = trace.on
  const exitHook = kvm.hooks.vmExit
  const regs = vcpu.regs
  const stats = vcpu.stats
  const counters = stats.counters
  const byReason = stats.exitsByReason
  const pid = thread.task.pid
  // The thread keeps its CPU until it leaves this loop (migration happens at scheduling points).
  const cpu = thread.cpu
  const lp = kvm.lp(cpu)
  const cpuTrace = trace.forCpu(cpu)
  const exitInfoEraA = kvm.profile.traceEra === "A"
  const timerScale = (kvm.config.pin & PinControl.VMX_PREEMPTION_TIMER) !== 0 ? lp.caps.preemptionTimerScale : 0
  const timerShift = lp.caps.preemptionTimerShift
  // The next host tick, recomputed only once local time has reached it.
  let tickNs = clock.nextTickNs(cpu)
  for (;;) {
    if (vm.dead) return Stop.Dead
    if (thread.signalPending) return Stop.Signal
    if (vcpu.userspaceExitRequested) return Stop.Requested
    if (vcpu.yieldRequested) {
      vcpu.yieldRequested = false
      return Stop.Resched
    }
    const now = cpuNs[cpu]!
    if (now >= thread.sliceEndNs) return Stop.Resched
    if (lp.currentVmcs !== vcpu.vmcsAddress) {
      vm.bug(`vCPU ${vcpu.id}'s VMCS is not current on CPU ${cpu} at VM entry`)
      return Stop.Dead
    }
    if (vcpu.pendingException >= 0 || vcpu.pendingIrqs.length !== 0) injectEvents(vcpu, lp, pid)
    // Slice left → VMX-preemption timer (TSC = 1 tick per instruction, scaled by the MISC shift);
    // host tick → the instruction budget, after which the timer interrupt arrives. Times are
    // integers, so with the default 1 ns per instruction no division is needed.
    if (now >= tickNs) tickNs = clock.nextTickNs(cpu)
    const tickInstructions = Math.max(1, ns === 1 ? tickNs - now : Math.floor((tickNs - now) / ns))
    if (timerScale !== 0) {
      const timer = preemptionTimerValue(thread.sliceEndNs - now, ns, timerScale, timerShift)
      // VMWRITE only a changed value (the field holds KVM's last write: no exit control saves it).
      if (lp.view.page.words[W_PREEMPTION_TIMER_VALUE] !== timer) lp.vmwriteLo(F.VMX_PREEMPTION_TIMER_VALUE, timer)
    }
    if (exitHook.entryCallbacks.length !== 0 && !notifyEntryObservers(vcpu, cpu)) return Stop.Dead
    if (traceOn[KvmEvent.entry] === 1) {
      const rip = regs.rip
      if (rip >= 0 && rip < TWO32) cpuTrace.entry(pid, vcpu.id, rip, 0)
      else {
        const ripHi = Math.floor(rip / TWO32)
        cpuTrace.entry(pid, vcpu.id, (rip - ripHi * TWO32) >>> 0, ripHi >>> 0)
      }
    }
    // The entry's cost, the guest's instructions and the exit's cost are charged in one add once
    // the guest stopped: nothing reads this CPU's clock while the guest runs (VMX and the core
    // count instructions, not time), and the sum of integer times is exact.
    let entryCharge: number = Cost.entryNs
    // Usually already this vCPU's: a compare instead of a pointer store (and its write barrier).
    if (lp.core !== regs) lp.core = regs
    const retiredBefore = regs.instructionsRetired
    let status = lp.currentLaunched ? lp.vmresume(tickInstructions) : lp.vmlaunch(tickInstructions)
    if (status === VmxStatus.GuestRunning) {
      // The budget ran to the host tick (or the guest halted without exiting, e.g. HLT exiting
      // cleared through sysfs, and the CPU sits in HLT until then): the timer interrupt arrives,
      // external-interrupt exiting turns it into a VM exit. The halted CPU waits for the tick from
      // the entry (its instructions are charged after the exit).
      cpuNs[cpu]! += entryCharge
      entryCharge = 0
      if (lp.guestHalted) clock.raiseTo(cpu, clock.nextTickNs(cpu))
      regs.requestInterrupt(LOCAL_TIMER_VECTOR)
      status = lp.continueGuest(1)
      if (status === VmxStatus.GuestRunning) {
        vm.bug(`the host timer interrupt did not cause an exit on CPU ${cpu}`)
        return Stop.Dead
      }
    }
    const guestNs = entryCharge + (regs.instructionsRetired - retiredBefore) * ns
    if (status !== VmxStatus.VmExit) {
      cpuNs[cpu]! += guestNs
      if (status === VmxStatus.FailValid || status === VmxStatus.FailInvalid) {
        // VMfail: KVM_EXIT_FAIL_ENTRY with the VM-instruction error (vmx_vcpu_run's "fail" path).
        const error = status === VmxStatus.FailValid ? lp.vmreadLo(F.VM_INSTRUCTION_ERROR) : 0
        vcpu.run.exitReason = KvmExit.FAIL_ENTRY
        vcpu.run.exit = { reason: KvmExit.FAIL_ENTRY, hardwareEntryFailureReason: BigInt(error), cpu }
        return Stop.Userspace
      }
      vm.bug(`VM entry on CPU ${cpu} ended in ${JSON.stringify(lp.outcome(status))}`)
      return Stop.Dead
    }
    cpuNs[cpu]! += guestNs + Cost.exitNs
    // VM_EXIT_REASON as the exit stored it (the number the VMCS field holds).
    const exitReason = lp.lastExitReason >>> 0
    const basic = exitReason & 0xffff
    counters[VcpuStat.exits]!++
    if (basic < EXIT_REASON_SLOTS) byReason[basic]!++
    if (traceOn[KvmEvent.exit] === 1) traceExit(vcpu, lp, cpuTrace, exitInfoEraA, pid, exitReason)
    if (exitHook.exitObservers.length !== 0) {
      const verdict = notifyExitObservers(vcpu, cpu, exitReason, lp)
      if (verdict < 0) return Stop.Dead
      if (verdict === ExitVerdict.Yield) vcpu.yieldRequested = true
      else if (verdict === ExitVerdict.Userspace) vcpu.userspaceExitRequested = true
    }
    if ((exitReason & 0x80000000) !== 0) {
      // A failed VM entry (invalid guest state, MSR loading, machine check): KVM_EXIT_FAIL_ENTRY.
      vcpu.run.exitReason = KvmExit.FAIL_ENTRY
      vcpu.run.exit = { reason: KvmExit.FAIL_ENTRY, hardwareEntryFailureReason: BigInt(exitReason), cpu }
      return Stop.Userspace
    }
    if ((lp.view.page.words[W_IDT_VECTORING_INFO]! & 0x80000000) !== 0) requeueVectoring(vcpu, lp)
    let next: Next
    try {
      // VMCALL, the hot exit, by a direct call the compiler can inline; the rest through the table.
      next = basic === ExitReason.VMCALL ? handleVmcall(vcpu, lp) : exitHandlerFor(basic)(vcpu, lp, basic)
    } catch (e) {
      // A KVM inconsistency while handling this VM's exit: this VM dies, the host goes on.
      vm.bug(`exit handler for reason ${basic}: ${(e as Error).message}`)
      return Stop.Dead
    }
    if (next === Next.Userspace) return Stop.Userspace
    if (next === Next.Block) return Stop.Block
  }
}

/** Valid, hardware exception, error code delivered (is_exception_with_error_code). */
const EXCEPTION_WITH_ERROR_CODE = 0x80000b00
const EXCEPTION_WITH_ERROR_CODE_MASK = 0x80000f00

/**
 * kvm_exit with what vmx_get_exit_info reports: info1 is the exit qualification; before 5.10
 * info2 is VM_EXIT_INTR_INFO; from 5.10 (linux-6.x) info2 is the IDT-vectoring information,
 * intr_info VM_EXIT_INTR_INFO and error_code VM_EXIT_INTR_ERROR_CODE for a hardware exception that
 * delivers one, all three 0 after a failed VM entry.
 */
const traceExit = (vcpu: Vcpu, lp: LogicalProcessor, cpuTrace: KvmCpuTraceSink, eraA: boolean, pid: number, exitReason: number): void => {
  const regs = vcpu.regs
  const view = lp.view
  const exitIntrInfo = view.lo(F.VM_EXIT_INTR_INFO)
  let info2 = 0
  let intrInfo = 0
  let errorCode = 0
  if (eraA) info2 = exitIntrInfo
  else if ((exitReason & 0x80000000) === 0) {
    info2 = view.lo(F.IDT_VECTORING_INFO_FIELD)
    intrInfo = exitIntrInfo
    if ((exitIntrInfo & EXCEPTION_WITH_ERROR_CODE_MASK) >>> 0 === EXCEPTION_WITH_ERROR_CODE) errorCode = view.lo(F.VM_EXIT_INTR_ERROR_CODE)
  }
  const rip = regs.rip
  // RIP is kept sign-extended from bit 47; below 4 GiB it is its own low half.
  const ripHi = rip >= 0 && rip < TWO32 ? 0 : Math.floor(rip / TWO32)
  cpuTrace.exit(pid, vcpu.id, exitReason, ripHi === 0 ? rip : (rip - ripHi * TWO32) >>> 0, ripHi >>> 0, lp.lastExitQualificationLo >>> 0, lp.lastExitQualificationHi >>> 0, info2, 0, intrInfo, errorCode)
}
