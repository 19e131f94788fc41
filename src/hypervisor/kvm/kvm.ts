// The KVM module pair (kvm + kvm_intel) as one object: per-CPU logical processors and their VMXON
// regions, the VMCS configuration, hardware enable/disable (VMXON on every CPU when the first VM
// is created, VMXOFF when the last goes, as 5.x does), vCPU creation and teardown with the VMCS
// hooks, the hypercall table, the trace sink, and /dev/kvm.

import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import { Errno } from "../../host/errno.ts"
import type { HostKernelShape } from "../../host/kernel.ts"
import { PerCpu } from "../../host/per-cpu.ts"
import type { KernelProfile } from "../../host/profile.ts"
import type { Task } from "../../host/task.ts"
import { VmxCapabilities } from "../vmx/capabilities.ts"
import { HostPhysicalMemory } from "../vmx/host-memory.ts"
import { LogicalProcessor } from "../vmx/logical-processor.ts"
import { VmxStatus } from "../vmx/outcome.ts"
import { VmxPlatform } from "../vmx/platform.ts"
import { supportedCpuid } from "./cpuid.ts"
import type { CpuidEntry } from "./cpuid.ts"
import { KvmHooks } from "./hooks.ts"
import type { VmcsEvent } from "./hooks.ts"
import { HypercallTable, builtinHypercalls } from "./hypercalls.ts"
import type { HypercallDefinition, RegisterResult } from "./hypercalls.ts"
import { NullTraceSink } from "./trace-sink.ts"
import type { KvmTraceSink } from "./trace-sink.ts"
import { KVM_API_VERSION, KVM_MAX_VCPUS, KVM_SOFT_MAX_VCPUS, KVM_USER_MEM_SLOTS, KvmCap, KvmHc } from "./uapi.ts"
import { Vcpu } from "./vcpu.ts"
import { EXCEPTION_BITMAP, setupVmcsConfig, vmwriteOrThrow, writeHostState } from "./vmcs-config.ts"
import type { VmcsConfig } from "./vmcs-config.ts"
import { Vm, fail, ok } from "./vm.ts"
import type { Result } from "./vm.ts"

const CR4_VMXE = 1n << 13n
/** Where a VM exit "returns" in the host: vmx_vmexit's address in a 5.x kvm_intel (any stable value). */
const HOST_RIP = 0xffffffffc0a3d2e0n

export interface KvmOptions {
  /** Number of KVM_HC_VCPU_INFO (default: the profile's; in linux-6.x it must not collide). */
  readonly vcpuInfoHypercall?: number
  readonly trace?: KvmTraceSink
  readonly capabilities?: VmxCapabilities
}

export class Kvm {
  readonly profile: KernelProfile
  readonly hooks = new KvmHooks()
  readonly hypercalls = new HypercallTable()
  readonly hostMemory = new HostPhysicalMemory()
  readonly platform: VmxPlatform
  readonly config: VmcsConfig
  readonly vcpuInfoHypercall: number
  readonly trace: KvmTraceSink
  private readonly lps: PerCpu<LogicalProcessor>
  private readonly vmxonRegions: Array<bigint> = []
  private readonly vms = new Set<Vm>()
  private readonly vpids = new Set<number>()
  /** CPUs in VMX operation (kvm_usage_count > 0). */
  hardwareEnabled = false

  constructor(
    readonly host: HostKernelShape,
    options: KvmOptions = {},
  ) {
    this.profile = host.profile
    this.trace = options.trace ?? new NullTraceSink()
    this.platform = new VmxPlatform(this.hostMemory)
    const caps = options.capabilities ?? new VmxCapabilities()
    const config = setupVmcsConfig(caps)
    if (typeof config === "string") throw new Error(`kvm_intel: ${config}`)
    this.config = config
    this.lps = new PerCpu(host.cpuCount, (cpu) => new LogicalProcessor(cpu, this.platform, caps))
    for (let cpu = 0; cpu < host.cpuCount; cpu++) {
      const page = this.hostMemory.allocPage()!
      this.hostMemory.write32(Number(page), caps.revisionId)
      this.vmxonRegions.push(page)
    }
    this.vcpuInfoHypercall = options.vcpuInfoHypercall ?? this.profile.defaultVcpuInfoHypercall
    for (const def of builtinHypercalls(this.profile, this.vcpuInfoHypercall)) {
      const r = this.hypercalls.register(def)
      if (!r.ok) throw new Error(`KVM_HC_VCPU_INFO: ${r.reason}`)
    }
  }

  /** Whether KVM's trace_printk records now (tracing_on and no reader holding recording off). */
  get printkRecording(): boolean {
    return this.trace.recording
  }

  lp(cpu: number): LogicalProcessor {
    return this.lps.get(cpu)
  }

  get vmCount(): number {
    return this.vms.size
  }

  allVms(): ReadonlyArray<Vm> {
    return [...this.vms]
  }

  /** Every VMCS that exists now (for modules loaded after VMs were created). */
  vmcsList(): Array<VmcsEvent> {
    const out: Array<VmcsEvent> = []
    for (const vm of this.vms) for (const v of vm.vcpus.values()) out.push({ vmcs: v.vmcs, ownerPid: v.pid, vmName: vm.name, vcpuId: v.id })
    return out
  }

  /** Registers a hypercall (a user's module); refuses taken numbers. */
  registerHypercall(def: HypercallDefinition): RegisterResult {
    return this.hypercalls.register(def)
  }

  writeHostState(lp: LogicalProcessor): void {
    writeHostState(lp, HOST_RIP)
  }

  // ---------------------------------------------------------------- hardware enable / disable

  private hardwareEnableAll(): Result<void> {
    for (let cpu = 0; cpu < this.host.cpuCount; cpu++) {
      const lp = this.lp(cpu)
      // kvm_cpu_vmxon: CR4.VMXE, then VMXON with this CPU's region.
      lp.writeCr4(lp.root.cr4 | CR4_VMXE)
      const status = lp.vmxon(this.vmxonRegions[cpu]!)
      if (status !== VmxStatus.Succeed) {
        for (let back = 0; back < cpu; back++) this.vmxoff(back)
        lp.writeCr4(lp.root.cr4 & ~CR4_VMXE)
        return fail("KVM_CREATE_VM", Errno.EBUSY, `VMXON failed on CPU ${cpu}: ${JSON.stringify(lp.outcome(status))}`)
      }
      this.hooks.vmxon.emit({ cpu })
    }
    this.hardwareEnabled = true
    return ok(undefined)
  }

  private vmxoff(cpu: number): void {
    const lp = this.lp(cpu)
    this.hooks.vmxoff.emit({ cpu })
    lp.vmxoff()
    lp.writeCr4(lp.root.cr4 & ~CR4_VMXE)
  }

  private hardwareDisableAll(): void {
    for (let cpu = 0; cpu < this.host.cpuCount; cpu++) this.vmxoff(cpu)
    this.hardwareEnabled = false
  }

  // ---------------------------------------------------------------- VMs and vCPUs

  /** KVM_CREATE_VM by process `caller`: a VM fd in its table. */
  createVm(caller: Task): Result<Vm> {
    const call = "KVM_CREATE_VM"
    if (!this.hardwareEnabled) {
      const r = this.hardwareEnableAll()
      if (!r.ok) return r
    }
    const vm = new Vm(this, caller.tgid)
    const fd = caller.files.install(vm)
    if (fd < 0 || !vm.buildEpt()) {
      if (fd >= 0) caller.files.close(fd)
      if (this.vms.size === 0) this.hardwareDisableAll()
      return fd < 0 ? fail(call, -fd, "too many open files") : fail(call, Errno.ENOMEM, "no host memory for the EPT tables")
    }
    vm.fd = fd
    this.vms.add(vm)
    // kvm_create_vm takes a reference on the vendor module: rmmod kvm_intel fails while VMs exist.
    vm.holdsModuleRef = this.host.modules.tryModuleGet("kvm_intel")
    return ok(vm)
  }

  /** Called by Vm.destroy. */
  vmDestroyed(vm: Vm): void {
    if (!this.vms.delete(vm)) return
    const leader = this.host.tasks.get(vm.creatorPid)
    leader?.files.close(vm.fd)
    if (vm.holdsModuleRef) {
      vm.holdsModuleRef = false
      this.host.modules.modulePut("kvm_intel")
    }
    if (this.vms.size === 0 && this.hardwareEnabled) this.hardwareDisableAll()
  }

  /** vmx_create_vcpu + vmx_vcpu_setup on the caller's CPU. */
  createVcpu(vm: Vm, caller: Task, id: number): Result<Vcpu> {
    const call = "KVM_CREATE_VCPU"
    const mem = this.hostMemory
    const vmcs = mem.allocPage()
    const msrBitmap = mem.allocPage()
    if (vmcs === undefined || msrBitmap === undefined) {
      if (vmcs !== undefined) mem.freePage(vmcs)
      if (msrBitmap !== undefined) mem.freePage(msrBitmap)
      return fail(call, Errno.ENOMEM, "no host memory for the VMCS")
    }
    // alloc_vmcs_cpu: revision identifier; then vmcs_clear.
    mem.write32(Number(vmcs), this.lp(0).caps.revisionId)
    writeMsrBitmap(mem, msrBitmap)
    const vcpu = new Vcpu(vm, id, caller.pid, vmcs)
    vcpu.msrBitmap = msrBitmap
    const cpu = vcpu.ioctlCpu()
    const lp = this.lp(cpu)
    const cleared = lp.vmclear(vmcs)
    if (cleared !== VmxStatus.Succeed) throw new Error(`VMCLEAR of a new VMCS failed: ${JSON.stringify(lp.outcome(cleared))}`)
    this.hooks.vmcsAlloc.emit({ vmcs, ownerPid: caller.pid, vmName: vm.name, vcpuId: id })
    vcpu.load(cpu)
    this.setupVmcs(vcpu)
    const fd = caller.files.install(vcpu)
    if (fd < 0) {
      this.destroyVcpu(vcpu)
      return fail(call, -fd, "too many open files")
    }
    vcpuFds.set(vcpu, fd)
    return ok(vcpu)
  }

  /** kvm_arch_vcpu_destroy: VMCLEAR where active, announce, free the pages and the fd. */
  destroyVcpu(vcpu: Vcpu): void {
    if (vcpu.loadedCpu >= 0) {
      const lp = this.lp(vcpu.loadedCpu)
      if (lp.vmxOperation) lp.vmclear(vcpu.vmcs)
      vcpu.loadedCpu = -1
    }
    this.hooks.vmcsFree.emit({ vmcs: vcpu.vmcs, ownerPid: vcpu.pid, vmName: vcpu.vm.name, vcpuId: vcpu.id })
    this.hostMemory.freePage(vcpu.vmcs)
    this.hostMemory.freePage(vcpu.msrBitmap)
    this.vpids.delete(vpidOf.get(vcpu) ?? -1)
    const fd = vcpuFds.get(vcpu)
    if (fd !== undefined) this.host.tasks.get(vcpu.vm.creatorPid)?.files.close(fd)
  }

  private allocVpid(): number {
    for (let v = 1; v < 65536; v++) {
      if (!this.vpids.has(v)) {
        this.vpids.add(v)
        return v
      }
    }
    return 0
  }

  /** vmx_vcpu_setup + vmx_vcpu_reset: controls, host state, masks, EPT, and the reset guest state. */
  private setupVmcs(vcpu: Vcpu): void {
    const lp = vcpu.lp
    const c = this.config
    const w = (field: number, value: bigint) => vmwriteOrThrow(lp, field, value)
    w(F.PIN_BASED_VM_EXEC_CONTROL, BigInt(c.pin))
    w(F.CPU_BASED_VM_EXEC_CONTROL, BigInt(c.primary))
    w(F.SECONDARY_VM_EXEC_CONTROL, BigInt(c.secondary))
    w(F.VM_EXIT_CONTROLS, BigInt(c.exit))
    w(F.VM_ENTRY_CONTROLS, BigInt(c.entry))
    w(F.EXCEPTION_BITMAP, BigInt(EXCEPTION_BITMAP))
    w(F.PAGE_FAULT_ERROR_CODE_MASK, 0n)
    w(F.PAGE_FAULT_ERROR_CODE_MATCH, 0n)
    w(F.CR3_TARGET_COUNT, 0n)
    w(F.MSR_BITMAP, vcpu.msrBitmap)
    w(F.VMCS_LINK_POINTER, 0xffffffffffffffffn)
    w(F.VM_EXIT_MSR_STORE_COUNT, 0n)
    w(F.VM_EXIT_MSR_LOAD_COUNT, 0n)
    w(F.VM_ENTRY_MSR_LOAD_COUNT, 0n)
    w(F.VM_ENTRY_INTR_INFO_FIELD, 0n)
    w(F.CR0_GUEST_HOST_MASK, Vcpu.cr0Mask)
    w(F.CR4_GUEST_HOST_MASK, Vcpu.cr4Mask)
    const vpid = this.allocVpid()
    vpidOf.set(vcpu, vpid)
    w(F.VIRTUAL_PROCESSOR_ID, BigInt(vpid))
    vcpu.vm.writeEptp(vcpu)
    this.writeHostState(lp)
    // vmx_vcpu_reset: the x86 power-on state (real mode at F000:FFF0, CR0 = ET|CD|NW).
    const seg = (sel: number, base: number, limit: number, ar: number, s: { selector: number; base: number; limit: number; ar: number }) => {
      w(s.selector, BigInt(sel))
      w(s.base, BigInt(base))
      w(s.limit, BigInt(limit))
      w(s.ar, BigInt(ar))
    }
    seg(0xf000, 0xffff0000, 0xffff, 0x9b, { selector: F.GUEST_CS_SELECTOR, base: F.GUEST_CS_BASE, limit: F.GUEST_CS_LIMIT, ar: F.GUEST_CS_AR_BYTES })
    for (const [selF, baseF, limF, arF] of [
      [F.GUEST_DS_SELECTOR, F.GUEST_DS_BASE, F.GUEST_DS_LIMIT, F.GUEST_DS_AR_BYTES],
      [F.GUEST_ES_SELECTOR, F.GUEST_ES_BASE, F.GUEST_ES_LIMIT, F.GUEST_ES_AR_BYTES],
      [F.GUEST_FS_SELECTOR, F.GUEST_FS_BASE, F.GUEST_FS_LIMIT, F.GUEST_FS_AR_BYTES],
      [F.GUEST_GS_SELECTOR, F.GUEST_GS_BASE, F.GUEST_GS_LIMIT, F.GUEST_GS_AR_BYTES],
      [F.GUEST_SS_SELECTOR, F.GUEST_SS_BASE, F.GUEST_SS_LIMIT, F.GUEST_SS_AR_BYTES],
    ] as const) {
      seg(0, 0, 0xffff, 0x93, { selector: selF, base: baseF, limit: limF, ar: arF })
    }
    seg(0, 0, 0xffff, 0x8b, { selector: F.GUEST_TR_SELECTOR, base: F.GUEST_TR_BASE, limit: F.GUEST_TR_LIMIT, ar: F.GUEST_TR_AR_BYTES })
    seg(0, 0, 0xffff, 0x82, { selector: F.GUEST_LDTR_SELECTOR, base: F.GUEST_LDTR_BASE, limit: F.GUEST_LDTR_LIMIT, ar: F.GUEST_LDTR_AR_BYTES })
    w(F.GUEST_GDTR_BASE, 0n)
    w(F.GUEST_GDTR_LIMIT, 0xffffn)
    w(F.GUEST_IDTR_BASE, 0n)
    w(F.GUEST_IDTR_LIMIT, 0xffffn)
    w(F.GUEST_RIP, 0xfff0n)
    w(F.GUEST_RSP, 0n)
    w(F.GUEST_RFLAGS, 2n)
    w(F.GUEST_CR3, 0n)
    w(F.GUEST_IA32_EFER, 0n)
    w(F.GUEST_IA32_PAT, 0x0007040600070406n)
    w(F.GUEST_DR7, 0x400n)
    w(F.GUEST_ACTIVITY_STATE, 0n)
    w(F.GUEST_INTERRUPTIBILITY_INFO, 0n)
    w(F.GUEST_PENDING_DBG_EXCEPTIONS, 0n)
    w(F.GUEST_SYSENTER_CS, 0n)
    w(F.GUEST_SYSENTER_ESP, 0n)
    w(F.GUEST_SYSENTER_EIP, 0n)
    vcpu.setCr0(0x60000010n)
    vcpu.setCr4(0n)
    vcpu.regs.setRip(0xfff0n)
    vcpu.regs.setRflags(2n)
  }

  // ---------------------------------------------------------------- /dev/kvm (system ioctls)

  /** KVM_GET_API_VERSION. */
  getApiVersion(): number {
    return KVM_API_VERSION
  }

  /** KVM_CHECK_EXTENSION: 0 for unknown capabilities, else the capability's value. */
  checkExtension(cap: number): number {
    switch (cap) {
      case KvmCap.IRQCHIP:
        return 0
      case KvmCap.HLT:
      case KvmCap.USER_MEMORY:
      case KvmCap.SET_TSS_ADDR:
      case KvmCap.EXT_CPUID:
      case KvmCap.MP_STATE:
      case KvmCap.SYNC_MMU:
      case KvmCap.USER_NMI:
      case KvmCap.SET_IDENTITY_MAP_ADDR:
      case KvmCap.INTERNAL_ERROR_DATA:
      case KvmCap.READONLY_MEM:
      case KvmCap.IMMEDIATE_EXIT:
        return 1
      case KvmCap.NR_VCPUS:
        return Math.min(this.host.cpuCount, KVM_SOFT_MAX_VCPUS)
      case KvmCap.MAX_VCPUS:
      case KvmCap.MAX_VCPU_ID:
        return KVM_MAX_VCPUS
      case KvmCap.NR_MEMSLOTS:
        return KVM_USER_MEM_SLOTS
      case KvmCap.EXIT_HYPERCALL:
        // KVM_EXIT_HYPERCALL_VALID_MASK: only MAP_GPA_RANGE (v5.14+).
        return this.profile.name === "linux-6.x" ? 1 << KvmHc.MAP_GPA_RANGE : 0
      default:
        return 0
    }
  }

  /** KVM_GET_VCPU_MMAP_SIZE: the kvm_run page plus the PIO data page. */
  getVcpuMmapSize(): number {
    return 2 * 4096
  }

  /** KVM_GET_SUPPORTED_CPUID (for vCPU 0; leaf 1's APIC id is set per vCPU). */
  getSupportedCpuid(): Array<CpuidEntry> {
    return supportedCpuid(this.profile, 0)
  }
}

/** vCPU file descriptors and VPIDs, kept beside the vCPU objects. */
const vcpuFds = new WeakMap<Vcpu, number>()
const vpidOf = new WeakMap<Vcpu, number>()

/** The MSR bitmap KVM starts from: every MSR exits except those it passes through. */
const writeMsrBitmap = (mem: HostPhysicalMemory, page: bigint): void => {
  const base = Number(page)
  for (let i = 0; i < 4096; i += 4) mem.write32(base + i, 0xffffffff)
  // Pass-through (vmx_disable_intercept_for_msr): SYSENTER_*, FS/GS base, KERNEL_GS_BASE, STAR..SFMASK, TSC_AUX.
  const clear = (offset: number, bit: number) => {
    const at = base + offset + (bit >>> 3)
    mem.write8(at, mem.read8(at) & ~(1 << (bit & 7)))
  }
  for (const msr of [0x174, 0x175, 0x176]) {
    clear(0, msr)
    clear(2048, msr)
  }
  for (const msr of [0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103]) {
    clear(1024, msr - 0xc0000000)
    clear(3072, msr - 0xc0000000)
  }
}
