// A KvmTraceSink in front of the ftrace sink: it forwards every tracepoint the user enabled and
// also sees every VM exit and entry, which is how the CLI counts exits for --max-exits and
// applies --inject writes between an exit and the next entry without touching KVM's run loop.
// `on` is the tracer's enable switches plus kvm_exit/kvm_entry when an observer needs them;
// `sync()` re-reads the switches (the shell calls it after every command, since a user may
// `echo 1 > events/kvm/kvm_exit/enable`).

import type { KvmTraceSink } from "../../hypervisor/kvm/trace-sink.ts"
import { KVM_EVENT_COUNT, KvmEvent } from "../../hypervisor/kvm/trace-sink.ts"

export interface ExitObserver {
  /** Called at every VM exit (before KVM handles it). */
  onExit(cpu: number, pid: number, vcpuId: number, reason: number): void
  /** Called before every VM entry. */
  onEntry(cpu: number, pid: number, vcpuId: number): void
}

export class ObservingSink implements KvmTraceSink {
  readonly on = new Uint8Array(KVM_EVENT_COUNT)
  observer: ExitObserver | undefined
  private readonly enabled: Uint8Array

  constructor(private readonly inner: KvmTraceSink) {
    this.enabled = inner.on
    this.sync()
  }

  /** Re-reads the tracer's enable switches (and keeps exit/entry on while observed). */
  sync(): void {
    this.on.set(this.enabled.subarray(0, KVM_EVENT_COUNT))
    if (this.observer !== undefined) {
      this.on[KvmEvent.exit] = 1
      this.on[KvmEvent.entry] = 1
    }
  }

  entry(cpu: number, pid: number, vcpuId: number, ripLo: number, ripHi: number): void {
    this.observer?.onEntry(cpu, pid, vcpuId)
    if (this.enabled[KvmEvent.entry] === 1) this.inner.entry(cpu, pid, vcpuId, ripLo, ripHi)
  }
  exit(cpu: number, pid: number, vcpuId: number, reason: number, ripLo: number, ripHi: number, info1Lo: number, info1Hi: number, info2Lo: number, info2Hi: number, intrInfo: number, errorCode: number): void {
    this.observer?.onExit(cpu, pid, vcpuId, reason)
    if (this.enabled[KvmEvent.exit] === 1) this.inner.exit(cpu, pid, vcpuId, reason, ripLo, ripHi, info1Lo, info1Hi, info2Lo, info2Hi, intrInfo, errorCode)
  }
  hypercall(cpu: number, pid: number, nrLo: number, nrHi: number, a0Lo: number, a0Hi: number, a1Lo: number, a1Hi: number, a2Lo: number, a2Hi: number, a3Lo: number, a3Hi: number): void {
    this.inner.hypercall(cpu, pid, nrLo, nrHi, a0Lo, a0Hi, a1Lo, a1Hi, a2Lo, a2Hi, a3Lo, a3Hi)
  }
  pio(cpu: number, pid: number, rw: number, port: number, size: number, count: number, val: number): void {
    this.inner.pio(cpu, pid, rw, port, size, count, val)
  }
  cpuid(cpu: number, pid: number, fn: number, index: number, rax: number, rbx: number, rcx: number, rdx: number, found: boolean, usedMaxBasic: boolean): void {
    this.inner.cpuid(cpu, pid, fn, index, rax, rbx, rcx, rdx, found, usedMaxBasic)
  }
  msr(cpu: number, pid: number, write: number, ecx: number, dataLo: number, dataHi: number, exception: boolean): void {
    this.inner.msr(cpu, pid, write, ecx, dataLo, dataHi, exception)
  }
  cr(cpu: number, pid: number, rw: number, cr: number, valLo: number, valHi: number): void {
    this.inner.cr(cpu, pid, rw, cr, valLo, valHi)
  }
  injException(cpu: number, pid: number, vector: number, hasError: boolean, errorCode: number, reinjected: boolean): void {
    this.inner.injException(cpu, pid, vector, hasError, errorCode, reinjected)
  }
  injVirq(cpu: number, pid: number, vector: number, soft: boolean, reinjected: boolean): void {
    this.inner.injVirq(cpu, pid, vector, soft, reinjected)
  }
  userspaceExit(cpu: number, pid: number, reason: number, errno: number): void {
    this.inner.userspaceExit(cpu, pid, reason, errno)
  }
  vcpuWakeup(cpu: number, pid: number, ns: number, waited: boolean, valid: boolean): void {
    this.inner.vcpuWakeup(cpu, pid, ns, waited, valid)
  }
  mmio(cpu: number, pid: number, type: number, len: number, gpaLo: number, gpaHi: number, valLo: number, valHi: number): void {
    this.inner.mmio(cpu, pid, type, len, gpaLo, gpaHi, valLo, valHi)
  }
  printf(cpu: number, pid: number, fn: string, format: string, args: ReadonlyArray<number | bigint | string>): void {
    this.inner.printf(cpu, pid, fn, format, args)
  }
}
