import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { ModuleRegistry } from "../../src/host/modules.ts"
import { EINVAL, EIO, ENOENT, ERANGE } from "../../src/sysfs/errno.ts"
import { makeSysfs } from "../../src/sysfs/service.ts"
import { legacyVmcsModule } from "../../src/sysfs/vmcsctl/legacy.ts"
import { makeRig } from "./vmx-rig.ts"

describe("legacy /sys/vmcs (vmcs_sysfs)", () => {
  const setup = async () => {
    const rig = makeRig(2)
    rig.vmxon(0)
    rig.vmxon(1)
    const sysfs = makeSysfs()
    const modules = new ModuleRegistry()
    let callerCpu = 0
    await Effect.runPromise(modules.insmod(legacyVmcsModule({ sysfs, cpus: rig.cpus, callerCpu: () => callerCpu, dependsOn: [] })))
    return { rig, fs: sysfs.fs, modules, setCpu: (cpu: number) => (callerCpu = cpu) }
  }

  it("has the seven files of the seed, 0644", async () => {
    const { fs } = await setup()
    expect(fs.ls("/sys/vmcs")).toEqual(
      ["g_cr0_c", "g_cr3_c", "g_cr4_c", "g_rip_a", "g_rsp_b", "guest_interruptibility_info", "guest_rflags"],
    )
    expect((fs.stat("/sys/vmcs/g_rip_a") as { mode: number }).mode).toBe(0o100644)
  })

  it("works on the current VMCS of the caller's CPU; EIO when there is none", async () => {
    const { rig, fs, setCpu } = await setup()
    expect(fs.readFile("/sys/vmcs/g_rip_a")).toBe(-EIO)
    const v = rig.allocVmcs(1, 1)
    rig.load(v, 1)
    setCpu(1)
    // decimal input: the seed's base-2 parser could not take "2"
    expect(fs.writeFile("/sys/vmcs/g_rip_a", "2\n")).toBe(2)
    expect(fs.readFile("/sys/vmcs/g_rip_a")).toBe("2\n")
    expect(fs.writeFile("/sys/vmcs/g_rip_a", "10\n")).toBe(3)
    expect(fs.readFile("/sys/vmcs/g_rip_a")).toBe("10\n")
    expect(fs.writeFile("/sys/vmcs/g_rip_a", "0x10\n")).toBe(-EINVAL)
    expect(fs.writeFile("/sys/vmcs/g_rip_a", "abc")).toBe(-EINVAL)
    expect(fs.writeFile("/sys/vmcs/guest_interruptibility_info", "4294967296")).toBe(-ERANGE)
    expect(fs.readFile("/sys/vmcs/g_rip_a")).toBe("10\n")
    // kernel addresses print unsigned
    expect(fs.writeFile("/sys/vmcs/g_rsp_b", "18446744071562067968")).toBe(20)
    expect(fs.readFile("/sys/vmcs/g_rsp_b")).toBe("18446744071562067968\n")
    setCpu(0)
    expect(fs.readFile("/sys/vmcs/g_rip_a")).toBe(-EIO)
    setCpu(1)
    rig.vmxoff(1)
    expect(fs.readFile("/sys/vmcs/g_rip_a")).toBe(-EIO)
  })

  it("rmmod removes /sys/vmcs", async () => {
    const { fs, modules } = await setup()
    await Effect.runPromise(modules.rmmod("vmcs_sysfs"))
    expect(fs.ls("/sys/vmcs")).toBe(-ENOENT)
  })
})
