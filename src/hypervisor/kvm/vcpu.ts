// A vCPU: its register file (the guest core's CpuState), its VMCS (allocated by the creating
// thread's KVM_CREATE_VCPU, active on at most one logical processor), the kvm_run area, pending
// events and statistics. vcpu_load() makes the VMCS current on the CPU the calling thread runs
// on; when the thread has moved, the VMCS is first VMCLEARed on the old CPU (loaded_vmcs_clear),
// which also resets its launch state so the next entry is a VMLAUNCH.

import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import { EntryControl } from "../../arch/vmx/control-bits.ts"
import { CpuState, MsrSlot, Reg } from "../../guest/cpu/state.ts"
import type { Thread } from "../../host/scheduler.ts"
import type { LogicalProcessor } from "../vmx/logical-processor.ts"
import { VmxStatus } from "../vmx/outcome.ts"
import { supportedCpuid } from "./cpuid.ts"
import type { CpuidEntry } from "./cpuid.ts"
import type { HypercallContext } from "./hypercall-context.ts"
import type { HypercallVcpu } from "./hypercalls.ts"
import { segmentFields, segmentFromVmcs, segmentToAr } from "./segments.ts"
import type { SegmentName } from "./segments.ts"
import { VcpuStats } from "./stats.ts"
import type { KvmMsrEntry, KvmRegs, KvmRunExit, KvmSregs } from "./uapi.ts"
import { CR0_GUEST_OWNED, CR4_GUEST_OWNED, vmreadOrThrow, vmwriteOrThrow } from "./vmcs-config.ts"
import { fail, ok } from "./vm.ts"
import type { Result, Vm } from "./vm.ts"
import { Errno } from "../../host/errno.ts"

const CR0_NE = 1n << 5n
const CR0_PG = 1n << 31n
const CR4_VMXE = 1n << 13n
const EFER_LMA = 1n << 10n

/** kvm_run: what KVM_RUN reports, and the data page for I/O and MMIO. */
export class KvmRun {
  /** KVM_EXIT_* of the last return. */
  exitReason = 0
  exit: KvmRunExit | undefined
  /** Set by user space to make the next KVM_RUN return at once with -EINTR (KVM_CAP_IMMEDIATE_EXIT). */
  immediateExit = false
  /** The guest's RFLAGS.IF at the last exit (kvm_run.if_flag). */
  ifFlag = false
  /** Port I/O and MMIO data (user space reads OUT data and fills IN data here). */
  readonly data = new Uint8Array(4096)
  /** Views of the first 1..8 bytes of `data`, made once (an exit's `data` field). */
  private readonly heads: Array<Uint8Array | undefined> = []

  /** The first `size` bytes of `data` (1..8), as the same view every time. */
  dataHead(size: number): Uint8Array {
    return (this.heads[size] ??= this.data.subarray(0, size))
  }
}

/** What the next KVM_RUN must complete before entering the guest (user space has answered). */
export const Pending = {
  None: 0,
  PioIn: 1,
  MmioRead: 2,
  /** A hypercall forwarded to user space (KVM_EXIT_HYPERCALL): RAX gets kvm_run's ret. */
  Hypercall: 3,
} as const
export type Pending = (typeof Pending)[keyof typeof Pending]

export class Vcpu implements HypercallVcpu {
  readonly regs: CpuState
  readonly stats = new VcpuStats()
  readonly run = new KvmRun()
  /** Host CPU whose logical processor has this VMCS active, -1 when clear. */
  loadedCpu = -1
  cpuid: Array<CpuidEntry>
  /** IA32_APIC_BASE: BSP flag for vCPU 0, xAPIC enabled at the default base. */
  apicBase: bigint
  /** Queued external-interrupt vectors (KVM_INTERRUPT, IPIs), oldest first. */
  readonly pendingIrqs: Array<number> = []
  /** Exception to inject at the next entry: vector, or -1. */
  pendingException = -1
  pendingExceptionError = -1
  pendingExceptionReinjected = false
  /** Halted in the kernel (mp_state KVM_MP_STATE_HALTED). */
  halted = false
  /** What the next KVM_RUN completes first. */
  pending: Pending = Pending.None
  pendingGpa = 0
  pendingSize = 0
  mmioIsWrite = false
  /** KVM_HC_SCHED_YIELD or an exit observer asked to give up the slice at the next scheduling point. */
  yieldRequested = false
  /** An exit observer asked KVM_RUN to return to user space (EINTR) before the next entry. */
  userspaceExitRequested = false
  /** The thread currently inside KVM_RUN, if any. */
  thread: Thread | undefined
  /** Set by a kick: leave the halted state / re-check events. */
  kicked = false
  /** Physical address of the MSR bitmap page. */
  msrBitmap: bigint = 0n
  /** What this vCPU's hypercall handlers receive, made at its first hypercall (hypercall-context.ts). */
  hypercallContext: HypercallContext | undefined = undefined

  constructor(
    readonly vm: Vm,
    readonly id: number,
    /** pid of the creating thread (vcpu->pid; updated when another thread runs it). */
    public pid: number,
    /** The VMCS region's physical address. */
    readonly vmcs: bigint,
  ) {
    this.regs = new CpuState(vm.memory)
    this.vmcsAddress = Number(vmcs)
    this.cpuid = supportedCpuid(vm.kvm.profile, id)
    this.apicBase = 0xfee00000n | 0x800n | (id === 0 ? 0x100n : 0n)
  }

  /** The VMCS address as a number (what LogicalProcessor.currentVmcs holds): no conversion per entry. */
  readonly vmcsAddress: number

  /** The logical processor the VMCS is active on (after load()). */
  get lp(): LogicalProcessor {
    return this.vm.kvm.lp(this.loadedCpu)
  }

  /**
   * vcpu_load on `cpu`: VMCLEAR on the previous CPU if the vCPU moved, then VMPTRLD here unless the
   * VMCS is already current. A failure is a KVM bug (the caller marks the VM dead).
   */
  load(cpu: number): void {
    const kvm = this.vm.kvm
    if (this.loadedCpu >= 0 && this.loadedCpu !== cpu) {
      const old = kvm.lp(this.loadedCpu)
      const status = old.vmclear(this.vmcs)
      if (status !== VmxStatus.Succeed) throw new Error(`VMCLEAR of vCPU ${this.id}'s VMCS on CPU ${this.loadedCpu} failed: ${JSON.stringify(old.outcome(status))}`)
      this.loadedCpu = -1
    }
    const lp = kvm.lp(cpu)
    if (lp.currentVmcs !== this.vmcsAddress) {
      const status = lp.vmptrld(this.vmcs)
      if (status !== VmxStatus.Succeed) throw new Error(`VMPTRLD of vCPU ${this.id}'s VMCS on CPU ${cpu} failed: ${JSON.stringify(lp.outcome(status))}`)
    }
    if (this.loadedCpu !== cpu) {
      this.loadedCpu = cpu
      // The per-CPU host state (TR, GDT, ...) of the new CPU (vmx_vcpu_load_vmcs).
      kvm.writeHostState(lp)
    }
  }

  /** The CPU an ioctl from outside KVM_RUN works on: the caller's, else where the VMCS already is. */
  ioctlCpu(): number {
    const current = this.vm.kvm.host.scheduler.current
    if (current !== undefined) return current.cpu
    return this.loadedCpu >= 0 ? this.loadedCpu : 0
  }

  // ---------------------------------------------------------------- registers

  /** Checks done by every vCPU ioctl: a closed or dead VM answers EBADF / EIO. */
  private usable(call: string): Result<void> {
    if (this.vm.destroyed) return fail(call, Errno.EBADF, "the vCPU's VM was destroyed")
    if (this.vm.dead) return fail(call, Errno.EIO, `the VM is dead after an internal error (${this.vm.deadReason})`)
    return ok(undefined)
  }

  /** Runs an ioctl body after vcpu_load; a VMX failure inside marks the VM dead (KVM_BUG_ON) and answers EIO. */
  private ioctl<T>(call: string, body: () => T): Result<T> {
    const u = this.usable(call)
    if (!u.ok) return u
    try {
      this.load(this.ioctlCpu())
      return ok(body())
    } catch (e) {
      this.vm.bug(`${call}: ${(e as Error).message}`)
      return fail(call, Errno.EIO, `internal error: ${(e as Error).message}`)
    }
  }

  /** KVM_GET_REGS. */
  getRegs(): Result<KvmRegs> {
    return this.ioctl("KVM_GET_REGS", () => this.readRegs())
  }

  /** KVM_SET_REGS. */
  setRegs(v: KvmRegs): Result<void> {
    return this.ioctl("KVM_SET_REGS", () => this.writeRegs(v))
  }

  /** KVM_GET_SREGS. */
  getSregs(): Result<KvmSregs> {
    return this.ioctl("KVM_GET_SREGS", () => this.readSregs())
  }

  /** KVM_SET_SREGS. */
  setSregs(v: KvmSregs): Result<void> {
    return this.ioctl("KVM_SET_SREGS", () => this.writeSregs(v))
  }

  /** KVM_GET_MSRS: the entries read; stops at the first MSR KVM does not know, like the ioctl. */
  getMsrs(indices: ReadonlyArray<number>): Result<Array<KvmMsrEntry>> {
    return this.ioctl("KVM_GET_MSRS", () => {
      const out: Array<KvmMsrEntry> = []
      for (const index of indices) {
        const data = this.readMsr(index)
        if (data === undefined) break
        out.push({ index, data })
      }
      return out
    })
  }

  /** KVM_SET_MSRS: how many entries were written (stops at the first refused one). */
  setMsrs(entries: ReadonlyArray<KvmMsrEntry>): Result<number> {
    return this.ioctl("KVM_SET_MSRS", () => {
      let n = 0
      for (const e of entries) {
        if (!this.writeMsr(e.index, BigInt.asUintN(64, e.data))) break
        n++
      }
      return n
    })
  }

  /** KVM_INTERRUPT: queues an external interrupt (vector 0..255) for injection. */
  interrupt(vector: number): Result<void> {
    const u = this.usable("KVM_INTERRUPT")
    if (!u.ok) return u
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) return fail("KVM_INTERRUPT", Errno.EINVAL, `vector ${vector} is not 0..255`)
    this.queueInterrupt(vector)
    return ok(undefined)
  }

  /** KVM_SET_CPUID2. */
  setCpuid(entries: ReadonlyArray<CpuidEntry>): Result<void> {
    const u = this.usable("KVM_SET_CPUID2")
    if (!u.ok) return u
    if (entries.length > 80) return fail("KVM_SET_CPUID2", Errno.E2BIG, "at most 80 entries (KVM_MAX_CPUID_ENTRIES)")
    this.cpuid = [...entries]
    return ok(undefined)
  }

  readRegs(): KvmRegs {
    const r = this.regs
    const lp = this.lp
    return {
      rax: r.getReg(Reg.RAX),
      rbx: r.getReg(Reg.RBX),
      rcx: r.getReg(Reg.RCX),
      rdx: r.getReg(Reg.RDX),
      rsi: r.getReg(Reg.RSI),
      rdi: r.getReg(Reg.RDI),
      rsp: vmreadOrThrow(lp, F.GUEST_RSP),
      rbp: r.getReg(Reg.RBP),
      r8: r.getReg(Reg.R8),
      r9: r.getReg(Reg.R9),
      r10: r.getReg(Reg.R10),
      r11: r.getReg(Reg.R11),
      r12: r.getReg(Reg.R12),
      r13: r.getReg(Reg.R13),
      r14: r.getReg(Reg.R14),
      r15: r.getReg(Reg.R15),
      rip: vmreadOrThrow(lp, F.GUEST_RIP),
      rflags: vmreadOrThrow(lp, F.GUEST_RFLAGS),
    }
  }

  writeRegs(v: KvmRegs): void {
    const r = this.regs
    const u = (x: bigint) => BigInt.asUintN(64, x)
    r.setReg(Reg.RAX, u(v.rax))
    r.setReg(Reg.RBX, u(v.rbx))
    r.setReg(Reg.RCX, u(v.rcx))
    r.setReg(Reg.RDX, u(v.rdx))
    r.setReg(Reg.RSI, u(v.rsi))
    r.setReg(Reg.RDI, u(v.rdi))
    r.setReg(Reg.RSP, u(v.rsp))
    r.setReg(Reg.RBP, u(v.rbp))
    r.setReg(Reg.R8, u(v.r8))
    r.setReg(Reg.R9, u(v.r9))
    r.setReg(Reg.R10, u(v.r10))
    r.setReg(Reg.R11, u(v.r11))
    r.setReg(Reg.R12, u(v.r12))
    r.setReg(Reg.R13, u(v.r13))
    r.setReg(Reg.R14, u(v.r14))
    r.setReg(Reg.R15, u(v.r15))
    // Bit 1 of RFLAGS is fixed to 1 (kvm_set_rflags keeps it).
    const lp = this.lp
    vmwriteOrThrow(lp, F.GUEST_RSP, u(v.rsp))
    vmwriteOrThrow(lp, F.GUEST_RIP, u(v.rip))
    vmwriteOrThrow(lp, F.GUEST_RFLAGS, u(v.rflags) | 2n)
    r.setRip(u(v.rip))
    r.setRflags(u(v.rflags) | 2n)
  }

  readSregs(): KvmSregs {
    const lp = this.lp
    const seg = (name: SegmentName) => {
      const f = segmentFields[name]
      return segmentFromVmcs(Number(vmreadOrThrow(lp, f.selector)), vmreadOrThrow(lp, f.base), Number(vmreadOrThrow(lp, f.limit)), Number(vmreadOrThrow(lp, f.ar)))
    }
    const cr0Mask = vmreadOrThrow(lp, F.CR0_GUEST_HOST_MASK)
    const cr4Mask = vmreadOrThrow(lp, F.CR4_GUEST_HOST_MASK)
    // The guest's view: host-owned bits come from the read shadows (kvm_read_cr0/cr4).
    const cr0 = (vmreadOrThrow(lp, F.GUEST_CR0) & ~cr0Mask) | (vmreadOrThrow(lp, F.CR0_READ_SHADOW) & cr0Mask)
    const cr4 = (vmreadOrThrow(lp, F.GUEST_CR4) & ~cr4Mask) | (vmreadOrThrow(lp, F.CR4_READ_SHADOW) & cr4Mask)
    return {
      cs: seg("cs"),
      ds: seg("ds"),
      es: seg("es"),
      fs: seg("fs"),
      gs: seg("gs"),
      ss: seg("ss"),
      tr: seg("tr"),
      ldt: seg("ldt"),
      gdt: { base: vmreadOrThrow(lp, F.GUEST_GDTR_BASE), limit: Number(vmreadOrThrow(lp, F.GUEST_GDTR_LIMIT)) },
      idt: { base: vmreadOrThrow(lp, F.GUEST_IDTR_BASE), limit: Number(vmreadOrThrow(lp, F.GUEST_IDTR_LIMIT)) },
      cr0,
      cr2: this.regs.cr2,
      cr3: vmreadOrThrow(lp, F.GUEST_CR3),
      cr4,
      cr8: BigInt(this.regs.cr8),
      efer: vmreadOrThrow(lp, F.GUEST_IA32_EFER),
      apic_base: this.apicBase,
    }
  }

  writeSregs(s: KvmSregs): void {
    const lp = this.lp
    for (const name of Object.keys(segmentFields) as Array<SegmentName>) {
      const f = segmentFields[name]
      const v = s[name]
      vmwriteOrThrow(lp, f.selector, BigInt(v.selector & 0xffff))
      vmwriteOrThrow(lp, f.base, BigInt.asUintN(64, v.base))
      vmwriteOrThrow(lp, f.limit, BigInt(v.limit >>> 0))
      vmwriteOrThrow(lp, f.ar, BigInt(segmentToAr(v)))
    }
    vmwriteOrThrow(lp, F.GUEST_GDTR_BASE, s.gdt.base)
    vmwriteOrThrow(lp, F.GUEST_GDTR_LIMIT, BigInt(s.gdt.limit & 0xffff))
    vmwriteOrThrow(lp, F.GUEST_IDTR_BASE, s.idt.base)
    vmwriteOrThrow(lp, F.GUEST_IDTR_LIMIT, BigInt(s.idt.limit & 0xffff))
    this.setCr0(s.cr0)
    this.setCr4(s.cr4)
    vmwriteOrThrow(lp, F.GUEST_CR3, s.cr3)
    this.regs.cr2 = s.cr2
    this.regs.cr8 = Number(s.cr8 & 0xfn)
    this.setEfer(s.efer)
    this.apicBase = s.apic_base
  }

  /** CR0 as the guest sees it goes to the read shadow; the hardware value keeps NE (VMX requires it). */
  setCr0(value: bigint): void {
    const lp = this.lp
    vmwriteOrThrow(lp, F.CR0_READ_SHADOW, value & 0xffffffffn)
    vmwriteOrThrow(lp, F.GUEST_CR0, (value | CR0_NE) & 0xffffffffn)
    this.updateLongMode()
  }

  /** CR4: the hardware value keeps VMXE (CR4_FIXED0); the guest reads its own value from the shadow. */
  setCr4(value: bigint): void {
    const lp = this.lp
    vmwriteOrThrow(lp, F.CR4_READ_SHADOW, value)
    vmwriteOrThrow(lp, F.GUEST_CR4, value | CR4_VMXE)
  }

  /** EFER: LMA follows LME and CR0.PG (vmx_set_efer / enter_lmode); "IA-32e mode guest" follows LMA. */
  setEfer(value: bigint): void {
    vmwriteOrThrow(this.lp, F.GUEST_IA32_EFER, value)
    this.updateLongMode()
  }

  private updateLongMode(): void {
    const lp = this.lp
    let efer = vmreadOrThrow(lp, F.GUEST_IA32_EFER)
    const pg = (vmreadOrThrow(lp, F.GUEST_CR0) & CR0_PG) !== 0n
    const lme = (efer & (1n << 8n)) !== 0n
    efer = lme && pg ? efer | EFER_LMA : efer & ~EFER_LMA
    vmwriteOrThrow(lp, F.GUEST_IA32_EFER, efer)
    const entry = Number(vmreadOrThrow(lp, F.VM_ENTRY_CONTROLS))
    const next = (efer & EFER_LMA) !== 0n ? entry | EntryControl.IA32E_MODE : entry & ~EntryControl.IA32E_MODE
    if (next !== entry) vmwriteOrThrow(lp, F.VM_ENTRY_CONTROLS, BigInt(next >>> 0))
  }

  // ---------------------------------------------------------------- MSRs (KVM_GET_MSRS / KVM_SET_MSRS)

  /** Reads one MSR as kvm_get_msr does; undefined when KVM does not know it (#GP for the guest). */
  readMsr(index: number): bigint | undefined {
    const r = this.regs
    switch (index) {
      case 0x10: // IA32_TSC
        return r.tsc
      case 0x1b:
        return this.apicBase
      case 0x3a: // IA32_FEATURE_CONTROL: locked, no VMX for the guest
        return 1n
      case 0xfe: // MTRRcap
        return 0x508n
      case 0x1a0: // IA32_MISC_ENABLE: fast strings
        return 1n
      case 0x2ff: // MTRRdefType
        return 0xc06n
      case 0x174:
        return r.getMsrSlot(MsrSlot.SYSENTER_CS)
      case 0x175:
        return r.getMsrSlot(MsrSlot.SYSENTER_ESP)
      case 0x176:
        return r.getMsrSlot(MsrSlot.SYSENTER_EIP)
      case 0x277:
        return vmreadOrThrow(this.lp, F.GUEST_IA32_PAT)
      case 0xc0000080:
        return vmreadOrThrow(this.lp, F.GUEST_IA32_EFER)
      case 0xc0000081:
        return r.getMsrSlot(MsrSlot.STAR)
      case 0xc0000082:
        return r.getMsrSlot(MsrSlot.LSTAR)
      case 0xc0000083:
        return r.getMsrSlot(MsrSlot.CSTAR)
      case 0xc0000084:
        return r.getMsrSlot(MsrSlot.FMASK)
      case 0xc0000100:
        return vmreadOrThrow(this.lp, F.GUEST_FS_BASE)
      case 0xc0000101:
        return vmreadOrThrow(this.lp, F.GUEST_GS_BASE)
      case 0xc0000102:
        return r.getMsrSlot(MsrSlot.KERNEL_GS_BASE)
      case 0xc0000103:
        return r.getMsrSlot(MsrSlot.TSC_AUX)
      default:
        return undefined
    }
  }

  /** Writes one MSR as kvm_set_msr does; false when KVM refuses it (#GP for the guest). */
  writeMsr(index: number, value: bigint): boolean {
    const r = this.regs
    switch (index) {
      case 0x10:
        r.tsc = value
        return true
      case 0x1b:
        this.apicBase = value
        return true
      case 0x174:
        r.setMsrSlot(MsrSlot.SYSENTER_CS, value)
        return true
      case 0x175:
        r.setMsrSlot(MsrSlot.SYSENTER_ESP, value)
        return true
      case 0x176:
        r.setMsrSlot(MsrSlot.SYSENTER_EIP, value)
        return true
      case 0x277:
        vmwriteOrThrow(this.lp, F.GUEST_IA32_PAT, value)
        return true
      case 0xc0000080:
        // EFER: only SCE, LME, NXE may be set by the guest (LMA is the processor's).
        if ((value & ~0xd01n) !== 0n) return false
        this.setEfer(value)
        return true
      case 0xc0000081:
        r.setMsrSlot(MsrSlot.STAR, value)
        return true
      case 0xc0000082:
        r.setMsrSlot(MsrSlot.LSTAR, value)
        return true
      case 0xc0000083:
        r.setMsrSlot(MsrSlot.CSTAR, value)
        return true
      case 0xc0000084:
        r.setMsrSlot(MsrSlot.FMASK, value)
        return true
      case 0xc0000100:
        vmwriteOrThrow(this.lp, F.GUEST_FS_BASE, value)
        return true
      case 0xc0000101:
        vmwriteOrThrow(this.lp, F.GUEST_GS_BASE, value)
        return true
      case 0xc0000102:
        r.setMsrSlot(MsrSlot.KERNEL_GS_BASE, value)
        return true
      case 0xc0000103:
        r.setMsrSlot(MsrSlot.TSC_AUX, value & 0xffffffffn)
        return true
      case 0x4b564d00: // MSR_KVM_WALL_CLOCK_NEW
      case 0x4b564d01: // MSR_KVM_SYSTEM_TIME_NEW
        return true
      default:
        return false
    }
  }

  // ---------------------------------------------------------------- events

  /** Queues an external interrupt and wakes the vCPU if it is halted. */
  queueInterrupt(vector: number): void {
    this.pendingIrqs.push(vector & 0xff)
    this.kick()
  }

  /** kvm_vcpu_kick: a halted vCPU's thread is woken; a running one re-checks events at its next exit. */
  kick(): void {
    this.kicked = true
    if (this.halted && this.thread !== undefined) this.vm.kvm.host.scheduler.wake(this.thread)
  }

  queueException(vector: number, errorCode: number, reinjected = false): void {
    this.pendingException = vector
    this.pendingExceptionError = errorCode
    this.pendingExceptionReinjected = reinjected
  }

  /** CR0/CR4 guest/host masks, constant for KVM's vCPUs. */
  static readonly cr0Mask = BigInt.asUintN(64, ~BigInt(CR0_GUEST_OWNED))
  static readonly cr4Mask = BigInt.asUintN(64, ~BigInt(CR4_GUEST_OWNED))
}
