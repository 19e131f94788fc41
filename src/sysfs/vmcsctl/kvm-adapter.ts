// Connects the VMCS sysfs modules to the KVM module: its VMCS hooks and VMCS list become the
// VmcsEvents port, its logical processors the VmxProcessors port, and module dependencies are
// on kvm_intel (so rmmod kvm_intel is refused while vmcsctl uses it, as with the patch).

import type { SysfsShape } from "../service.ts"
import type { VmcsEvent } from "../../hypervisor/kvm/hooks.ts"
import type { Kvm } from "../../hypervisor/kvm/kvm.ts"
import type { KernelModule } from "../../host/modules.ts"
import { legacyVmcsModule } from "./legacy.ts"
import { type VmcsctlDirectory, vmcsctlModule } from "./module.ts"
import type { VmcsEvents, VmcsInfo, VmxProcessors } from "./port.ts"
import { vmxProcessors } from "./vmx-adapter.ts"

/** The logical processors of every host CPU KVM drives. */
export const kvmProcessors = (kvm: Kvm): VmxProcessors =>
  vmxProcessors(Array.from({ length: kvm.host.cpuCount }, (_, cpu) => kvm.lp(cpu)))

const infoOf = (kvm: Kvm, event: VmcsEvent): VmcsInfo => ({
  address: event.vmcs,
  creatorPid: event.ownerPid,
  // Where the vCPU's VMCS lives when active nowhere: the CPU KVM last loaded it on, else the CPU
  // its thread last ran on, else CPU 0 (a vCPU created outside any thread).
  homeCpu: () => {
    const vcpu = kvm.allVms().find((vm) => vm.name === event.vmName)?.vcpuById(event.vcpuId)
    if (vcpu !== undefined && vcpu.loadedCpu >= 0) return vcpu.loadedCpu
    const task = kvm.host.tasks.get(event.ownerPid)
    return task !== undefined && task.cpu >= 0 ? task.cpu : 0
  },
})

/** KVM's vmcs_alloc / vmcs_free hooks and its list of existing VMCSs. */
export const kvmVmcsEvents = (kvm: Kvm): VmcsEvents => ({
  onAlloc: (listener) => kvm.hooks.vmcsAlloc.subscribe((event) => listener(infoOf(kvm, event))),
  onFree: (listener) => kvm.hooks.vmcsFree.subscribe((event) => listener(infoOf(kvm, event))),
  existing: () => kvm.vmcsList().map((event) => infoOf(kvm, event)),
})

/** The vmcsctl module for this KVM instance (`insmod vmcsctl [unsafe_writes=Y]`). */
export const vmcsctlForKvm = (
  sysfs: Pick<SysfsShape, "kernelKobj" | "moduleKobj">,
  kvm: Kvm,
  onLoad?: (state: VmcsctlDirectory) => void,
): KernelModule => vmcsctlModule({ sysfs, cpus: kvmProcessors(kvm), events: kvmVmcsEvents(kvm), dependsOn: ["kvm_intel"] }, onLoad)

/**
 * The legacy vmcs_sysfs module for this KVM instance: the accessing task's CPU is the host
 * scheduler's current thread's; a caller outside any simulated thread counts as CPU 0.
 */
export const legacyVmcsForKvm = (sysfs: Pick<SysfsShape, "sysKobj">, kvm: Kvm): KernelModule =>
  legacyVmcsModule({
    sysfs,
    cpus: kvmProcessors(kvm),
    callerCpu: () => kvm.host.scheduler.current?.cpu ?? 0,
    dependsOn: ["kvm_intel"],
  })
