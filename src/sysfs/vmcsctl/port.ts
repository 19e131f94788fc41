// What the VMCS sysfs modules need from the simulated hardware and from KVM, as narrow
// interfaces: the VMX lane's logical processors and the KVM module's VMCS hooks are adapted to
// them (see adapters.ts), and tests can drive them directly.

/** The current-VMCS pointer value meaning "no current VMCS" (VMPTRST stores all ones). */
export const INVALID_VMCS_POINTER = 0xffff_ffff_ffff_ffffn

/** VMX instructions executed on one logical processor, by host CPU number. */
export interface VmxProcessors {
  /** True between VMXON and VMXOFF on that CPU. */
  isVmxOn(cpu: number): boolean
  /** VMPTRST: the current-VMCS pointer (INVALID_VMCS_POINTER if none). */
  vmptrst(cpu: number): bigint
  /** VMPTRLD: 0 on VMsucceed, otherwise the VM-instruction error number (or -1 for VMfailInvalid). */
  vmptrld(cpu: number, address: bigint): number
  /** VMCLEAR: 0 on VMsucceed, otherwise the VM-instruction error number (or -1). */
  vmclear(cpu: number, address: bigint): number
  /** VMREAD of the current VMCS: the value, or the VM-instruction error number as a number. */
  vmread(cpu: number, encoding: number): bigint | number
  /** VMWRITE to the current VMCS: 0, or the VM-instruction error number (or -1). */
  vmwrite(cpu: number, encoding: number, value: bigint): number
  /** The CPU on which the VMCS at `address` is active (KVM's loaded_vmcs->cpu), or -1. */
  activeOn(address: bigint): number
  /** The region's first two dwords, read from memory as the patch did: revision id and abort indicator. */
  regionHeader(address: bigint): { readonly revisionId: number; readonly abort: number }
}

/** One VMCS as KVM announces it. */
export interface VmcsInfo {
  /** Physical address of the VMCS region (what VMPTRLD takes). */
  readonly address: bigint
  /** pid of the thread that allocated it (the vCPU thread). */
  readonly creatorPid: number
  /** The CPU to use when the VMCS is active nowhere: where its vCPU last ran (vcpu->cpu), or -1. */
  homeCpu(): number
}

/** KVM's VMCS notifications (alloc_vmcs_cpu / free_vmcs hooks) and the VMCSs alive now. */
export interface VmcsEvents {
  onAlloc(listener: (vmcs: VmcsInfo) => void): () => void
  onFree(listener: (vmcs: VmcsInfo) => void): () => void
  /** VMCSs that exist now, for a module loaded after they were made. */
  existing(): ReadonlyArray<VmcsInfo>
}

/**
 * Runs `op` with the VMCS at `address` current on the logical processor that owns it, saving and
 * restoring that processor's current-VMCS pointer (the 2017 patch instead loaded the VMCS on the
 * reader's CPU even while it was active on another). A VMCS active nowhere is loaded on its home
 * CPU and VMCLEARed again afterwards, so its launch state stays "clear" as KVM expects.
 * Returns op's result, or undefined when VMX is off there or the VMCS cannot be loaded (EIO).
 */
export const onOwningProcessor = <A>(
  cpus: VmxProcessors,
  vmcs: VmcsInfo,
  op: (cpu: number) => A,
): A | undefined => {
  const owner = cpus.activeOn(vmcs.address)
  const cpu = owner >= 0 ? owner : vmcs.homeCpu()
  if (cpu < 0 || !cpus.isVmxOn(cpu)) return undefined
  const saved = cpus.vmptrst(cpu)
  const switched = saved !== vmcs.address
  if (switched && cpus.vmptrld(cpu, vmcs.address) !== 0) return undefined
  try {
    return op(cpu)
  } finally {
    if (owner < 0) cpus.vmclear(cpu, vmcs.address)
    if (switched && saved !== INVALID_VMCS_POINTER) cpus.vmptrld(cpu, saved)
  }
}
