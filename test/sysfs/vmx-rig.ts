// Test rig: real simulated VT-x logical processors (hypervisor/vmx) plus the VMCS alloc/free
// notifications KVM makes, driven by hand so the sysfs modules can be tested on their own.

import { Hook } from "../../src/host/hooks.ts"
import { HostPhysicalMemory } from "../../src/hypervisor/vmx/host-memory.ts"
import { LogicalProcessor } from "../../src/hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../../src/hypervisor/vmx/outcome.ts"
import { VmxPlatform } from "../../src/hypervisor/vmx/platform.ts"
import type { VmcsEvents, VmcsInfo } from "../../src/sysfs/vmcsctl/port.ts"
import { vmxProcessors } from "../../src/sysfs/vmcsctl/vmx-adapter.ts"

const CR4_VMXE = 1n << 13n

export interface RigVmcs extends VmcsInfo {
  home: number
}

export const makeRig = (cpuCount = 2) => {
  const memory = new HostPhysicalMemory()
  const platform = new VmxPlatform(memory)
  const lps = Array.from({ length: cpuCount }, (_, i) => new LogicalProcessor(i, platform))
  const revisionId = lps[0]!.caps.revisionId
  const vmxonRegions = new Map<number, bigint>()
  const allocHook = new Hook<VmcsInfo>("vmcs_alloc")
  const freeHook = new Hook<VmcsInfo>("vmcs_free")
  const live = new Map<bigint, RigVmcs>()

  const vmxon = (cpu: number): void => {
    const lp = lps[cpu]!
    lp.writeCr4(lp.root.cr4 | CR4_VMXE)
    const region = vmxonRegions.get(cpu) ?? memory.allocPage()!
    vmxonRegions.set(cpu, region)
    memory.write32(Number(region), revisionId)
    const status = lp.vmxon(region)
    if (status !== VmxStatus.Succeed) throw new Error(`VMXON on ${cpu}: ${JSON.stringify(lp.outcome(status))}`)
  }

  /** KVM's hardware_disable: VMCLEAR what is active here, then VMXOFF. */
  const vmxoff = (cpu: number): void => {
    const lp = lps[cpu]!
    for (const address of lp.activeVmcsAddresses) lp.vmclear(address)
    lp.vmxoff()
  }

  /** alloc_loaded_vmcs: a zeroed region with the revision id, VMCLEARed, then announced. */
  const allocVmcs = (creatorPid: number, home = 0): RigVmcs => {
    const address = memory.allocPage()!
    memory.write32(Number(address), revisionId)
    if (lps[home]!.vmxOperation) lps[home]!.vmclear(address)
    const vmcs: RigVmcs = { address, creatorPid, home, homeCpu: () => vmcs.home }
    live.set(address, vmcs)
    allocHook.emit(vmcs)
    return vmcs
  }

  /** free_loaded_vmcs: announced, VMCLEARed where active, then the page is freed. */
  const freeVmcs = (vmcs: RigVmcs): void => {
    freeHook.emit(vmcs)
    const owner = platform.activeOn(vmcs.address)
    if (owner !== undefined) lps[owner]!.vmclear(vmcs.address)
    live.delete(vmcs.address)
    memory.freePage(vmcs.address)
  }

  /** vmx_vcpu_load: make the VMCS current on `cpu` (clearing it on its old CPU first). */
  const load = (vmcs: RigVmcs, cpu: number): void => {
    const owner = platform.activeOn(vmcs.address)
    if (owner !== undefined && owner !== cpu) lps[owner]!.vmclear(vmcs.address)
    const status = lps[cpu]!.vmptrld(vmcs.address)
    if (status !== VmxStatus.Succeed) throw new Error(`VMPTRLD on ${cpu}: ${JSON.stringify(lps[cpu]!.outcome(status))}`)
    vmcs.home = cpu
  }

  const events: VmcsEvents = {
    onAlloc: (listener) => allocHook.subscribe(listener),
    onFree: (listener) => freeHook.subscribe(listener),
    existing: () => [...live.values()],
  }

  return { memory, platform, lps, revisionId, cpus: vmxProcessors(lps), events, vmxon, vmxoff, allocVmcs, freeVmcs, load, live }
}
