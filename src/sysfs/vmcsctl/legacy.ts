// The legacy vmcs_sysfs module (documents 000/001): one kobject /sys/vmcs with seven attributes
// on the current VMCS of the logical processor the accessing task runs on. Fixed against the
// seed: input is decimal (the seed parsed base 2, so `echo 2` could not work), bad input is
// EINVAL and too-wide input ERANGE instead of being ignored, EIO when that processor has VMX
// off or no current VMCS, and the files are 0644 (the seed's 0777 is refused by the kernel).
// Values print as unsigned decimal (the seed's %ld printed kernel addresses as negatives).

import { Effect } from "effect"
import type { KernelModule } from "../../host/modules.ts"
import { EIO } from "../errno.ts"
import type { Attribute, KObject } from "../kobject.ts"
import { kstrtouWidth } from "../kstrtox.ts"
import { removeKObject, type SysfsShape } from "../service.ts"
import { INVALID_VMCS_POINTER, type VmxProcessors } from "./port.ts"
import { ModuleInitError } from "../../host/modules.ts"

/** File name, field encoding and width in bits, as the seed's get_field_addr mapped them. */
export const legacyFiles: ReadonlyArray<readonly [string, number, 32 | 64]> = [
  ["g_rip_a", 0x681e, 64], // GUEST_RIP
  ["g_rsp_b", 0x681c, 64], // GUEST_RSP
  ["g_cr0_c", 0x6800, 64], // GUEST_CR0
  ["g_cr3_c", 0x6802, 64], // GUEST_CR3
  ["g_cr4_c", 0x6804, 64], // GUEST_CR4
  ["guest_interruptibility_info", 0x4824, 32], // GUEST_INTERRUPTIBILITY_INFO
  ["guest_rflags", 0x6820, 64], // GUEST_RFLAGS
]

export interface LegacyVmcsDeps {
  readonly sysfs: Pick<SysfsShape, "sysKobj">
  readonly cpus: VmxProcessors
  /** The host CPU the accessing task runs on (smp_processor_id() inside show/store). */
  readonly callerCpu: () => number
  readonly dependsOn?: ReadonlyArray<string>
}

export const legacyAttributes = (deps: LegacyVmcsDeps): Array<Attribute> =>
  legacyFiles.map(([name, encoding, bits]) => {
    const current = (): number => {
      const cpu = deps.callerCpu()
      if (!deps.cpus.isVmxOn(cpu) || deps.cpus.vmptrst(cpu) === INVALID_VMCS_POINTER) return -1
      return cpu
    }
    return {
      name,
      mode: 0o644,
      show: () => {
        const cpu = current()
        if (cpu < 0) return -EIO
        const value = deps.cpus.vmread(cpu, encoding)
        return typeof value === "bigint" ? `${value}\n` : -EIO
      },
      store: (text: string) => {
        const value = kstrtouWidth(text, bits, 10)
        if (typeof value === "number") return value
        const cpu = current()
        if (cpu < 0) return -EIO
        return deps.cpus.vmwrite(cpu, encoding, value) === 0 ? text.length : -EIO
      },
    }
  })

/** The vmcs_sysfs kernel module: /sys/vmcs while loaded. */
export const legacyVmcsModule = (deps: LegacyVmcsDeps): KernelModule => ({
  name: "vmcs_sysfs",
  dependsOn: deps.dependsOn ?? ["kvm_intel"],
  init: () =>
    Effect.asVoid(
      Effect.acquireRelease(
        Effect.suspend(() => {
          const kobject = deps.sysfs.sysKobj.addChild("vmcs")
          if (typeof kobject === "number") return Effect.fail(new ModuleInitError({ errno: -kobject, message: "cannot create /sys/vmcs" }))
          const made = kobject.createGroup({ attrs: legacyAttributes(deps) })
          if (made < 0) {
            kobject.removeNow()
            return Effect.fail(new ModuleInitError({ errno: -made, message: "cannot create /sys/vmcs attributes" }))
          }
          return Effect.succeed(kobject as KObject)
        }),
        removeKObject,
      ),
    ),
})
