import { readFileSync } from "node:fs"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { kernelProfile } from "../../../src/host/profile.ts"
import { lookupCpuid, supportedCpuid } from "../../../src/hypervisor/kvm/cpuid.ts"
import type { CpuidAnswer } from "../../../src/hypervisor/kvm/cpuid.ts"
import { HypercallTable, builtinHypercalls } from "../../../src/hypervisor/kvm/hypercalls.ts"
import { statFiles } from "../../../src/hypervisor/kvm/stats.ts"
import { KvmHc, KvmHcError } from "../../../src/hypervisor/kvm/uapi.ts"

const tsv = readFileSync(new URL("../../../../shared/reference/vmx/kvm-hypercalls.tsv", import.meta.url), "utf8")
const rows = tsv
  .trim()
  .split("\n")
  .slice(1)
  .map((l) => l.split("\t"))

describe("KVM tables agree with the reference", () => {
  it("hypercall numbers and return codes", () => {
    for (const [kind, number, name] of rows) {
      if (kind === "hypercall") expect(KvmHc[name!.replace("KVM_HC_", "") as keyof typeof KvmHc], name).toBe(Number(number))
      if (kind === "retcode") expect(KvmHcError[name!.replace("KVM_", "") as keyof typeof KvmHcError], name).toBe(Number(number))
    }
  })

  it("VCPU_INFO is 11 in linux-5.0 and a free number in linux-6.x, where 11 is SCHED_YIELD", () => {
    const p50 = kernelProfile("linux-5.0")
    const p6 = kernelProfile("linux-6.x")
    const by50 = new Map(builtinHypercalls(p50, p50.defaultVcpuInfoHypercall).map((d) => [d.nr, d.name]))
    const by6 = new Map(builtinHypercalls(p6, p6.defaultVcpuInfoHypercall).map((d) => [d.nr, d.name]))
    expect(by50.get(11)).toBe("KVM_HC_VCPU_INFO")
    expect(by6.get(11)).toBe("KVM_HC_SCHED_YIELD")
    const six = by6.get(p6.defaultVcpuInfoHypercall)
    expect(six).toBe("KVM_HC_VCPU_INFO")
    const official = new Set(rows.filter((r) => r[0] === "hypercall").map((r) => Number(r[1])))
    expect(official.has(p6.defaultVcpuInfoHypercall)).toBe(false)
  })

  it("refuses to register a taken hypercall number", () => {
    const t = new HypercallTable()
    const a = t.register({ nr: 42, name: "A", handle: () => 0 })
    expect(a.ok).toBe(true)
    const b = t.register({ nr: 42, name: "B", handle: () => 0 })
    expect(b.ok).toBe(false)
    if (a.ok) a.unregister()
    expect(t.register({ nr: 42, name: "B", handle: () => 0 }).ok).toBe(true)
  })

  it("hypercall numbers small and large: each found, listed in order, and freed by unregister (fast-check)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 20 }), (numbers) => {
        const t = new HypercallTable()
        const handles = numbers.map((nr) => t.register({ nr, name: `HC_${nr}`, handle: () => nr }))
        for (const nr of numbers) expect(t.get(nr)?.name).toBe(`HC_${nr}`)
        expect(t.list().map((d) => d.nr)).toEqual([...numbers].sort((a, b) => a - b))
        handles.forEach((h) => (h.ok ? h.unregister() : expect.fail("a free number was refused")))
        for (const nr of numbers) expect(t.get(nr)).toBeUndefined()
        expect(t.list()).toEqual([])
      }),
      { numRuns: 100 },
    )
  })

  it("debugfs statistics carry each era's names", () => {
    const n50 = statFiles("linux-5.0").map((f) => f.name)
    const n6 = statFiles("linux-6.x").map((f) => f.name)
    for (const name of ["exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits", "hypercalls", "irq_window", "request_irq"]) expect(n50).toContain(name)
    for (const name of ["exits", "irq_window_exits", "request_irq_exits", "directed_yield_attempted"]) expect(n6).toContain(name)
    expect(n50).not.toContain("irq_window_exits")
  })

  it("CPUID has KVM's signature leaf and Intel's max-basic-leaf rule", () => {
    const entries = supportedCpuid(kernelProfile("linux-5.0"), 2)
    const out: CpuidAnswer = { eax: 0, ebx: 0, ecx: 0, edx: 0, found: false, usedMaxBasic: false }
    lookupCpuid(entries, 0x40000000, 0, out)
    const sig = Buffer.alloc(12)
    sig.writeUInt32LE(out.ebx, 0)
    sig.writeUInt32LE(out.ecx, 4)
    sig.writeUInt32LE(out.edx, 8)
    expect(sig.toString("latin1")).toBe("KVMKVMKVM\0\0\0")
    expect(out.found).toBe(true)
    lookupCpuid(entries, 1, 0, out)
    expect(out.ebx >>> 24).toBe(2)
    expect(out.ecx >>> 31).toBe(1)
    lookupCpuid(entries, 0x80000009, 0, out)
    expect(out.found).toBe(false)
  })
})
