import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ModuleRegistry } from "../../src/host/modules.ts"
import { EIO, ENOENT } from "../../src/sysfs/errno.ts"
import { makeSysfs } from "../../src/sysfs/service.ts"
import { type VmcsctlDirectory, vmcsctlModule } from "../../src/sysfs/vmcsctl/module.ts"
import { makeRig, type RigVmcs } from "./vmx-rig.ts"

type Op =
  | { op: "alloc"; pid: number; cpu: number }
  | { op: "free"; index: number }
  | { op: "run"; index: number; cpu: number }
  | { op: "vmxon"; cpu: number }
  | { op: "vmxoff"; cpu: number }
  | { op: "insmod" }
  | { op: "rmmod" }

const CPUS = 3
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("alloc" as const), pid: fc.integer({ min: 400, max: 404 }), cpu: fc.integer({ min: 0, max: CPUS - 1 }) }),
  fc.record({ op: fc.constant("free" as const), index: fc.nat(20) }),
  fc.record({ op: fc.constant("run" as const), index: fc.nat(20), cpu: fc.integer({ min: 0, max: CPUS - 1 }) }),
  fc.record({ op: fc.constant("vmxon" as const), cpu: fc.integer({ min: 0, max: CPUS - 1 }) }),
  fc.record({ op: fc.constant("vmxoff" as const), cpu: fc.integer({ min: 0, max: CPUS - 1 }) }),
  fc.constant({ op: "insmod" as const }),
  fc.constant({ op: "rmmod" as const }),
)

describe("vmcsctl: a VMCS directory exists exactly while its VMCS exists", () => {
  it("across random lifecycles of VMCSs, vCPU loads, VMXON/VMXOFF and module load/unload", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const rig = makeRig(CPUS)
        const vmxOn = Array.from({ length: CPUS }, () => false)
        const sysfs = makeSysfs()
        const fs = sysfs.fs
        const modules = new ModuleRegistry()
        let state: VmcsctlDirectory | undefined
        const module = vmcsctlModule({ sysfs, cpus: rig.cpus, events: rig.events, dependsOn: [] }, (s) => (state = s))
        const live: Array<RigVmcs> = []
        for (const step of ops) {
          switch (step.op) {
            case "alloc":
              live.push(rig.allocVmcs(step.pid, step.cpu))
              break
            case "free": {
              const vmcs = live.splice(step.index % Math.max(live.length, 1), 1)[0]
              if (vmcs !== undefined) rig.freeVmcs(vmcs)
              break
            }
            case "run": {
              const vmcs = live[step.index % Math.max(live.length, 1)]
              if (vmcs !== undefined && vmxOn[step.cpu]) {
                const owner = rig.platform.activeOn(vmcs.address)
                if (owner === undefined || vmxOn[owner]) rig.load(vmcs, step.cpu)
              }
              break
            }
            case "vmxon":
              if (!vmxOn[step.cpu]) rig.vmxon(step.cpu)
              vmxOn[step.cpu] = true
              break
            case "vmxoff":
              if (vmxOn[step.cpu]) rig.vmxoff(step.cpu)
              vmxOn[step.cpu] = false
              break
            case "insmod":
              if (!modules.isLoaded("vmcsctl")) Effect.runSync(modules.insmod(module))
              break
            case "rmmod":
              if (modules.isLoaded("vmcsctl")) Effect.runSync(modules.rmmod("vmcsctl"))
              break
          }
          if (!modules.isLoaded("vmcsctl")) {
            expect(fs.ls("/sys/kernel/vmcsctl")).toBe(-ENOENT)
            continue
          }
          const names = live.map((v) => state!.nameOf(v.address))
          expect(names.every((n) => n !== undefined)).toBe(true)
          expect(fs.ls("/sys/kernel/vmcsctl")).toEqual([...names].sort())
          expect(state!.size).toBe(live.length)
          for (const vmcs of live) {
            // Readable exactly when VMX is on where the VMCS lives (active there, else its home).
            const owner = rig.platform.activeOn(vmcs.address) ?? vmcs.home
            const text = fs.readFile(`/sys/kernel/vmcsctl/${state!.nameOf(vmcs.address)}/GUEST_RIP`)
            expect(text).toBe(vmxOn[owner] ? "0\n" : -EIO)
          }
        }
        for (const vmcs of live.splice(0)) rig.freeVmcs(vmcs)
        if (modules.isLoaded("vmcsctl")) expect(fs.ls("/sys/kernel/vmcsctl")).toEqual([])
        // No VMCS left active anywhere by sysfs accesses.
        expect(rig.platform.activeCount).toBe(0)
      }),
      { numRuns: 300 },
    )
  })
})
