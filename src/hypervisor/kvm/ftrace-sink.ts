// KVM's tracepoints and trace_printk written into the trace subsystem's ring buffers. The enable
// switches are the tracer's own (events/kvm/<name>/enable), so `on` costs nothing to keep in sync.
// Contexts follow the kernel: kvm_entry runs with interrupts off (`d...`), kvm_exit too from
// 5.10 on, but from the exit handler with interrupts on in 5.0 (`....`).

import { TASK_CONTEXT } from "../../trace/context.ts"
import { KVM_EVENT_NAMES } from "../../trace/kvm-events.ts"
import { FormatError } from "../../trace/printf.ts"
import type { TraceShape } from "../../trace/service.ts"
import type { PrintkSite, Tracer } from "../../trace/tracer.ts"
import type { KvmTracepoints } from "../../trace/kvm-tracepoints.ts"
import type { KvmCpuWriter } from "../../trace/kvm-cpu-writer.ts"
import { KvmEvent } from "./trace-sink.ts"
import type { KvmCpuTraceSink, KvmTraceSink } from "./trace-sink.ts"

// The sink's event indices are the tracer's: checked once here rather than trusted.
const names: ReadonlyArray<string> = KVM_EVENT_NAMES
for (const [name, index] of Object.entries(KvmEvent)) {
  if (index < names.length && names[index] !== `kvm_${name}`) throw new Error(`KvmEvent.${name} is not KVM_EVENT_NAMES[${index}]`)
}

export class FtraceSink implements KvmTraceSink {
  // What the writers read comes first (declaration order is field order: one cache line).
  // The writers, held directly: one property load per event instead of two.
  private readonly kvm: KvmTracepoints
  private readonly tracer: Tracer
  // The last call site: a handler printing in a loop finds its site by two identity compares.
  private lastSite: PrintkSite | undefined
  private lastFormat = ""
  private lastFn = ""
  readonly on: Uint8Array
  // Call sites by format, then by function: formats are mostly string literals, whose hashes
  // V8 keeps, so a lookup builds no key string.
  private readonly sites = new Map<string, Map<string, PrintkSite>>()
  /**
   * The trace subsystem's per-CPU writers: KVM's per-CPU sinks themselves (their entry, exit and
   * hypercall write the kernel's contexts), and what a trace_printk finds its CPU's in one load.
   */
  private readonly writers: ReadonlyArray<KvmCpuWriter>

  constructor(readonly trace: TraceShape) {
    this.kvm = trace.kvm
    this.tracer = trace.tracer
    this.on = trace.tracer.eventEnabled
    this.writers = Array.from({ length: trace.tracer.cpuCount }, (_, cpu) => trace.kvm.forCpu(cpu))
  }

  get recording(): boolean {
    return this.tracer.recording
  }
  forCpu(cpu: number): KvmCpuTraceSink {
    return this.writers[cpu]!
  }

  pio(cpu: number, pid: number, rw: number, port: number, size: number, count: number, val: number): void {
    this.kvm.pio(cpu, pid, TASK_CONTEXT, rw === 1, port, size, count, val)
  }
  cpuid(cpu: number, pid: number, fn: number, index: number, rax: number, rbx: number, rcx: number, rdx: number, found: boolean, usedMaxBasic: boolean): void {
    this.kvm.cpuid(cpu, pid, TASK_CONTEXT, fn, index, rax, 0, rbx, 0, rcx, 0, rdx, 0, found, usedMaxBasic)
  }
  msr(cpu: number, pid: number, write: number, ecx: number, dataLo: number, dataHi: number, exception: boolean): void {
    this.kvm.msr(cpu, pid, TASK_CONTEXT, write === 1, ecx, dataLo, dataHi, exception)
  }
  cr(cpu: number, pid: number, rw: number, cr: number, valLo: number, valHi: number): void {
    this.kvm.cr(cpu, pid, TASK_CONTEXT, rw === 1, cr, valLo, valHi)
  }
  injException(cpu: number, pid: number, vector: number, hasError: boolean, errorCode: number, reinjected: boolean): void {
    this.kvm.injException(cpu, pid, TASK_CONTEXT, vector, hasError, errorCode, reinjected)
  }
  injVirq(cpu: number, pid: number, vector: number, soft: boolean, reinjected: boolean): void {
    this.kvm.injVirq(cpu, pid, TASK_CONTEXT, vector, soft, reinjected)
  }
  userspaceExit(cpu: number, pid: number, reason: number, errno: number): void {
    this.kvm.userspaceExit(cpu, pid, TASK_CONTEXT, reason, errno)
  }
  vcpuWakeup(cpu: number, pid: number, ns: number, waited: boolean, valid: boolean): void {
    this.kvm.vcpuWakeup(cpu, pid, TASK_CONTEXT, ns, waited, valid)
  }
  mmio(): void {
    // kvm_mmio is not among the trace subsystem's events yet.
  }
  printf(cpu: number, pid: number, fn: string, format: string, args: ReadonlyArray<number | bigint | string>): void {
    let site = this.lastSite
    if (site === undefined || format !== this.lastFormat || fn !== this.lastFn) site = this.siteFor(fn, format)
    const tracer = this.tracer
    const count = args.length
    if (count <= 4 && site.numeric) {
      // Up to four numbers: written straight into the record, nothing staged.
      const a0 = count > 0 ? args[0] : 0
      const a1 = count > 1 ? args[1] : 0
      const a2 = count > 2 ? args[2] : 0
      const a3 = count > 3 ? args[3] : 0
      if (typeof a0 === "number" && typeof a1 === "number" && typeof a2 === "number" && typeof a3 === "number") {
        this.writers[cpu]!.printkNumbers(pid, TASK_CONTEXT, site, a0, a1, a2, a3)
        return
      }
    }
    if (!tracer.recording) return
    tracer.stageValues(args)
    tracer.printk(cpu, pid, TASK_CONTEXT, site)
  }

  registerPrintk(fn: string, format: string): void {
    if (this.lastSite === undefined || format !== this.lastFormat || fn !== this.lastFn) this.siteFor(fn, format)
  }

  /** printf with integer arguments as 32-bit halves, any number of them (see KvmTraceSink.printfWords). */
  printfWords(cpu: number, pid: number, fn: string, format: string, lo: Uint32Array, hi: Uint32Array, count: number): void {
    let site = this.lastSite
    if (site === undefined || format !== this.lastFormat || fn !== this.lastFn) site = this.siteFor(fn, format)
    this.writers[cpu]!.printkWords(pid, TASK_CONTEXT, site, lo, hi, count)
  }

  /**
   * The registered trace_printk site of (fn, format), registering it at its first use; it becomes
   * the last site, which callers test first (two identity compares, kept out of this function so
   * that the usual case inlines).
   */
  private siteFor(fn: string, format: string): PrintkSite {
    let byFn = this.sites.get(format)
    if (byFn === undefined) {
      byFn = new Map()
      this.sites.set(format, byFn)
    }
    let site = byFn.get(fn)
    if (site === undefined) {
      const registered = this.tracer.registerPrintk(fn, format)
      if (registered instanceof FormatError) throw new Error(`trace_printk format ${JSON.stringify(format)}: ${registered.message}`)
      site = registered
      byFn.set(fn, site)
    }
    this.lastFn = fn
    this.lastFormat = format
    this.lastSite = site
    return site
  }
}
