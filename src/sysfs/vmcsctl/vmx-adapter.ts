// Adapts the simulated VT-x (hypervisor/vmx LogicalProcessor) to the VmxProcessors port the VMCS
// sysfs modules use: each call is the VMX instruction executed on that logical processor.

import type { LogicalProcessor } from "../../hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../../hypervisor/vmx/outcome.ts"
import { INVALID_VMCS_POINTER, type VmxProcessors } from "./port.ts"

// VMfailValid gives the VM-instruction error number; every other failure is reported negative.
const code = (lp: LogicalProcessor, status: VmxStatus): number =>
  status === VmxStatus.Succeed ? 0 : status === VmxStatus.FailValid ? lp.lastError : -status

export const vmxProcessors = (processors: ReadonlyArray<LogicalProcessor>): VmxProcessors => {
  const at = (cpu: number): LogicalProcessor => {
    const lp = processors[cpu]
    if (lp === undefined) throw new RangeError(`no logical processor ${cpu} (have ${processors.length})`)
    return lp
  }
  const first = at(0)
  return {
    // In non-root operation the host cannot execute VMX instructions on that processor.
    isVmxOn: (cpu) => processors[cpu] !== undefined && at(cpu).vmxOperation && !at(cpu).nonRoot,
    vmptrst: (cpu) => {
      const lp = at(cpu)
      return lp.vmptrst() === VmxStatus.Succeed ? lp.value : INVALID_VMCS_POINTER
    },
    vmptrld: (cpu, address) => code(at(cpu), at(cpu).vmptrld(address)),
    vmclear: (cpu, address) => code(at(cpu), at(cpu).vmclear(address)),
    vmread: (cpu, encoding) => {
      const lp = at(cpu)
      const status = lp.vmread(encoding)
      return status === VmxStatus.Succeed ? lp.value : code(lp, status)
    },
    vmwrite: (cpu, encoding, value) => code(at(cpu), at(cpu).vmwrite(encoding, value)),
    activeOn: (address) => first.platform.activeOn(address) ?? -1,
    regionHeader: (address) => ({
      revisionId: first.memory.read32(Number(address)),
      abort: first.memory.read32(Number(address) + 4),
    }),
  }
}
