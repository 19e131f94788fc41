// What KVM announces to other modules (the 2017 vmcsctl patch's hooks in alloc_vmcs_cpu,
// free_vmcs, kvm_cpu_vmxon and kvm_cpu_vmxoff, without its load-order limits: a module loaded
// later enumerates what exists through Kvm.vmcsList()), and the VM-exit hook.

import { Hook } from "../../host/hooks.ts"
import { ExitHook } from "./exit-hook.ts"

export interface VmcsEvent {
  /** Physical address of the VMCS region. */
  readonly vmcs: bigint
  /** pid of the thread that created the VMCS (the vCPU's creator: its vCPU thread in QEMU). */
  readonly ownerPid: number
  /** The VM's debugfs name ("PID-FD") and the vCPU id the VMCS belongs to. */
  readonly vmName: string
  readonly vcpuId: number
}

export interface VmxonEvent {
  /** Host CPU whose logical processor entered or left VMX operation. */
  readonly cpu: number
}

export class KvmHooks {
  /** After a VMCS is allocated and VMCLEARed, before anything uses it. */
  readonly vmcsAlloc = new Hook<VmcsEvent>("vmcs_alloc")
  /** Before a VMCS is freed (it is still readable on its logical processor). */
  readonly vmcsFree = new Hook<VmcsEvent>("vmcs_free")
  /** After VMXON succeeded on a CPU. */
  readonly vmxon = new Hook<VmxonEvent>("kvm_cpu_vmxon")
  /** Before VMXOFF on a CPU. */
  readonly vmxoff = new Hook<VmxonEvent>("kvm_cpu_vmxoff")
  /** At every VM exit (and, if asked, before every VM entry) of every VM: exit-hook.ts. */
  readonly vmExit = new ExitHook()
}
