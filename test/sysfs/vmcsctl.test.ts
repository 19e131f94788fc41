import { readFileSync } from "node:fs"
import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { ModuleRegistry } from "../../src/host/modules.ts"
import { EACCES, EINVAL, EIO, ENODEV, ENOENT, ERANGE } from "../../src/sysfs/errno.ts"
import { O_RDWR, userCred } from "../../src/sysfs/pseudo-fs.ts"
import { makeSysfs } from "../../src/sysfs/service.ts"
import { vmcsctlFields } from "../../src/sysfs/vmcsctl/fields.ts"
import { type VmcsctlDirectory, vmcsctlModule } from "../../src/sysfs/vmcsctl/module.ts"
import { INVALID_VMCS_POINTER } from "../../src/sysfs/vmcsctl/port.ts"
import { makeRig } from "./vmx-rig.ts"

const reference = (path: string) => readFileSync(new URL(`../../../shared/reference/${path}`, import.meta.url), "utf8")
const listing = reference("vmcsctl-listing.txt").split("\n").filter((l) => l.trim() !== "")
const referenceFields = new Map(
  reference("vmx/vmcs-fields.tsv")
    .split("\n")
    .slice(1)
    .filter((l) => l !== "")
    .map((l) => l.split("\t"))
    .map((c) => [c[0]!, { encoding: Number.parseInt(c[1]!, 16), width: c[2]!, type: c[3]!, access: c[4]! }]),
)
const vmxBasic = BigInt(
  reference("vmx/vmx-msrs.tsv")
    .split("\n")
    .find((l) => l.split("\t")[1] === "IA32_VMX_BASIC")!
    .split("\t")[4]!,
)

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

const setup = async (params: Record<string, string> = {}, cpuCount = 2) => {
  const rig = makeRig(cpuCount)
  for (let cpu = 0; cpu < cpuCount; cpu++) rig.vmxon(cpu)
  const sysfs = makeSysfs()
  const modules = new ModuleRegistry()
  let state: VmcsctlDirectory | undefined
  const module = vmcsctlModule({ sysfs, cpus: rig.cpus, events: rig.events, dependsOn: [] }, (s) => (state = s))
  const load = (p: Record<string, string> = params) => run(modules.insmod(module, p))
  const unload = () => run(modules.rmmod("vmcsctl"))
  return { rig, sysfs, fs: sysfs.fs, modules, load, unload, state: () => state! }
}

describe("vmcsctl: the field table", () => {
  it("has the 176 fields of the listing, with the reference encodings, widths and types", () => {
    expect(vmcsctlFields.length).toBe(176)
    expect([...vmcsctlFields.map((f) => f.name), "abort", "revision_id"].sort()).toEqual(listing)
    for (const field of vmcsctlFields) {
      const ref = referenceFields.get(field.name)!
      expect(field.encoding, field.name).toBe(ref.encoding)
      expect(field.width, field.name).toBe(ref.width)
      expect(field.type === "exit-info" ? "ro-exit-info" : field.type, field.name).toBe(ref.type)
    }
  })
})

describe("vmcsctl module", () => {
  it("ls of a VMCS directory equals the listing; revision_id is IA32_VMX_BASIC's revision", async () => {
    const t = await setup()
    await t.load()
    const vmcs = t.rig.allocVmcs(12398)
    expect(t.fs.ls("/sys/kernel/vmcsctl")).toEqual(["vmcs12398"])
    expect(t.fs.ls("/sys/kernel/vmcsctl/vmcs12398")).toEqual(listing)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs12398/revision_id")).toBe(`${vmxBasic & 0x7fff_ffffn}\n`)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs12398/abort")).toBe("0\n")
    t.rig.freeVmcs(vmcs)
    expect(t.fs.ls("/sys/kernel/vmcsctl")).toEqual([])
  })

  it("made at load time for VMCSs that already exist; gone at unload; second VMCS of a thread gets -2", async () => {
    const t = await setup()
    t.rig.allocVmcs(500)
    t.rig.allocVmcs(500)
    await t.load()
    expect(t.fs.ls("/sys/kernel/vmcsctl")).toEqual(["vmcs500", "vmcs500-2"])
    const third = t.rig.allocVmcs(500)
    expect(t.state().nameOf(third.address)).toBe("vmcs500-3")
    await t.unload()
    expect(t.fs.ls("/sys/kernel/vmcsctl")).toBe(-ENOENT)
    expect(t.fs.ls("/sys/module/vmcsctl")).toBe(-ENOENT)
    t.rig.allocVmcs(501)
    await t.load()
    expect(t.fs.ls("/sys/kernel/vmcsctl")).toEqual(["vmcs500", "vmcs500-2", "vmcs500-3", "vmcs501"])
  })

  it("permissions: exit information 0444; host state and physical addresses 0444 unless unsafe_writes", async () => {
    const t = await setup()
    await t.load()
    t.rig.allocVmcs(7)
    const modeOf = (name: string) => (t.fs.stat(`/sys/kernel/vmcsctl/vmcs7/${name}`) as { mode: number }).mode & 0o777
    for (const field of vmcsctlFields) {
      const ref = referenceFields.get(field.name)!
      const protectedField = ref.access === "ro" || ref.type === "host-state" || field.physicalAddress
      expect(modeOf(field.name), field.name).toBe(protectedField ? 0o444 : 0o644)
    }
    expect(modeOf("revision_id")).toBe(0o444)
    expect(t.fs.readFile("/sys/module/vmcsctl/parameters/unsafe_writes")).toBe("N\n")
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs7/HOST_RIP", "1\n")).toBe(-EACCES)
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs7/VM_EXIT_REASON", "1\n")).toBe(-EACCES)
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs7/GUEST_RIP", "1\n", userCred())).toBe(-EACCES)
    await t.unload()
    await t.load({ unsafe_writes: "Y" })
    expect(t.fs.readFile("/sys/module/vmcsctl/parameters/unsafe_writes")).toBe("Y\n")
    expect(modeOf("HOST_RIP")).toBe(0o644)
    expect(modeOf("EPT_POINTER_HIGH")).toBe(0o644)
    expect(modeOf("VM_EXIT_REASON")).toBe(0o444)
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs7/HOST_RIP", "0xffffffff81000000\n")).toBe(19)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs7/HOST_RIP")).toBe(`${0xffffffff81000000n}\n`)
  })

  it("a bad module parameter fails insmod with EINVAL and leaves nothing behind", async () => {
    const t = await setup()
    const exit = await Effect.runPromiseExit(t.modules.insmod(vmcsctlModule({ sysfs: t.sysfs, cpus: t.rig.cpus, events: t.rig.events, dependsOn: [] }), { unsafe_writes: "maybe" }))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(JSON.stringify(exit)).toContain('"errno":22')
    expect(t.fs.ls("/sys/kernel/vmcsctl")).toBe(-ENOENT)
  })

  it("store: kstrtoull base 0, width checks, rejected writes change nothing; show prints decimal", async () => {
    const t = await setup()
    await t.load()
    t.rig.allocVmcs(9)
    const path = (name: string) => `/sys/kernel/vmcsctl/vmcs9/${name}`
    expect(t.fs.writeFile(path("GUEST_RIP"), "0x1000\n")).toBe(7)
    expect(t.fs.readFile(path("GUEST_RIP"))).toBe("4096\n")
    for (const [text, errno] of [["", 0], ["\n", EINVAL], ["-1\n", EINVAL], ["0x\n", EINVAL], ["1e3\n", EINVAL], ["12 \n", EINVAL], ["18446744073709551616\n", ERANGE]] as const) {
      expect(t.fs.writeFile(path("GUEST_RIP"), text), JSON.stringify(text)).toBe(errno === 0 ? 0 : -errno)
      expect(t.fs.readFile(path("GUEST_RIP"))).toBe("4096\n")
    }
    expect(t.fs.writeFile(path("GUEST_CS_SELECTOR"), "65536")).toBe(-ERANGE)
    expect(t.fs.writeFile(path("GUEST_CS_SELECTOR"), "+0xffff")).toBe(7)
    expect(t.fs.readFile(path("GUEST_CS_SELECTOR"))).toBe("65535\n")
    expect(t.fs.writeFile(path("EXCEPTION_BITMAP"), "0x100000000")).toBe(-ERANGE)
    expect(t.fs.writeFile(path("TSC_OFFSET"), "18446744073709551615")).toBe(20)
    expect(t.fs.readFile(path("TSC_OFFSET_HIGH"))).toBe("4294967295\n")
    expect(t.fs.writeFile(path("TSC_OFFSET_HIGH"), "0")).toBe(1)
    expect(t.fs.readFile(path("TSC_OFFSET"))).toBe("4294967295\n")
  })

  it("accesses run on the processor that owns the VMCS and restore its current-VMCS pointer", async () => {
    const t = await setup({}, 2)
    await t.load()
    const a = t.rig.allocVmcs(100, 0)
    const b = t.rig.allocVmcs(101, 1)
    t.rig.load(a, 1) // a active and current on CPU 1
    t.rig.load(b, 1) // b now current on CPU 1, a still active there
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs100/GUEST_RSP", "77")).toBe(2)
    expect(t.rig.lps[1]!.currentVmcsPointer).toBe(b.address)
    expect(t.rig.lps[0]!.currentVmcsPointer).toBe(INVALID_VMCS_POINTER)
    expect(t.rig.platform.activeOn(a.address)).toBe(1)
    // The value is in a, not b.
    t.rig.lps[1]!.vmptrld(a.address)
    t.rig.lps[1]!.vmread(0x681c)
    expect(t.rig.lps[1]!.value).toBe(77n)
    // A VMCS active nowhere is loaded on its home CPU and left clear and inactive again.
    const c = t.rig.allocVmcs(102, 0)
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs102/GUEST_RSP", "5")).toBe(1)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs102/GUEST_RSP")).toBe("5\n")
    expect(t.rig.platform.activeOn(c.address)).toBeUndefined()
    expect(t.rig.lps[0]!.currentVmcsPointer).toBe(INVALID_VMCS_POINTER)
  })

  it("EIO when VMX is off on the owning processor; works again after VMXON", async () => {
    const t = await setup({}, 2)
    await t.load()
    const v = t.rig.allocVmcs(300, 1)
    t.rig.vmxoff(1)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs300/GUEST_RIP")).toBe(-EIO)
    expect(t.fs.writeFile("/sys/kernel/vmcsctl/vmcs300/GUEST_RIP", "1")).toBe(-EIO)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs300/revision_id")).toBe(`${t.rig.revisionId}\n`)
    t.rig.vmxon(1)
    expect(t.fs.readFile("/sys/kernel/vmcsctl/vmcs300/GUEST_RIP")).toBe("0\n")
    t.rig.freeVmcs(v)
  })

  it("after the free hook the directory is gone and handles opened before fail with ENODEV", async () => {
    const t = await setup()
    await t.load()
    const v = t.rig.allocVmcs(400)
    const fd = t.fs.open("/sys/kernel/vmcsctl/vmcs400/GUEST_RIP", O_RDWR)
    expect(t.fs.pread(fd, 0)).toBe("0\n")
    t.rig.freeVmcs(v)
    expect(t.fs.pread(fd, 0)).toBe(-ENODEV)
    expect(t.fs.write(fd, "1")).toBe(-ENODEV)
    expect(t.fs.ls("/sys/kernel/vmcsctl/vmcs400")).toBe(-ENOENT)
  })
})
