// Each guest register file (vCPU) keeps its own TLB, as VPID/EPTP-tagged TLB entries survive a
// VMCS switch on real hardware: running another vCPU on the same logical processor must not
// flush this one's translations, while a change of its own translation context must — its EPT
// pointer (VMWRITE), its memory slots, INVEPT/INVVPID, or a different VMCS on the register file.
import { describe, expect, it } from "vitest"
import { VmcsField as F } from "../../../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { PrimaryControl, SecondaryControl } from "../../../src/arch/vmx/control-bits.ts"
import { VmxStatus } from "../../../src/hypervisor/vmx/outcome.ts"
import type { LogicalProcessor } from "../../../src/hypervisor/vmx/logical-processor.ts"
import type { CpuState } from "../../../src/guest/cpu/state.ts"
import { engineOf } from "../../../src/guest/run.ts"
import { enterVmx, expectStatus, identityEpt, loadNewVmcs, newHost, writeValidVmcs } from "./support.ts"
import { guestCode, newGuestCore, writeGuestDescriptorTables } from "./guest-support.ts"

// A data access and a VMCALL per round: every round fills or uses the TLB.
const CODE = guestCode("top: mov rax, [0x5000]\nvmcall\njmp top")

const read = (lp: LogicalProcessor, field: number): bigint => {
  expectStatus(lp.vmread(field), VmxStatus.Succeed, lp)
  return lp.value
}

/** A vCPU: its own VMCS (EPT on, identity EPT) and register file, launched once to its VMCALL. */
const vcpu = (lp: LogicalProcessor) => {
  const vmcs = loadNewVmcs(lp)
  writeValidVmcs(lp)
  writeGuestDescriptorTables(lp)
  lp.vmwrite(F.CPU_BASED_VM_EXEC_CONTROL, read(lp, F.CPU_BASED_VM_EXEC_CONTROL) | BigInt(PrimaryControl.ACTIVATE_SECONDARY_CONTROLS))
  lp.vmwrite(F.SECONDARY_VM_EXEC_CONTROL, BigInt(SecondaryControl.ENABLE_EPT))
  lp.vmwrite(F.EPT_POINTER, identityEpt(lp).eptp)
  const core = newGuestCore(CODE)
  lp.core = core
  expectStatus(lp.vmlaunch(10_000), VmxStatus.VmExit, lp)
  expect(Number(read(lp, F.VM_EXIT_REASON))).toBe(ExitReason.VMCALL)
  // Count every flush of this register file's TLB from here on.
  const engine = engineOf(core)
  const flushAll = engine.flushTlb.bind(engine)
  const counter = { flushes: 0 }
  engine.flushTlb = () => {
    counter.flushes++
    flushAll()
  }
  return { vmcs, core, counter }
}

/** Makes `v` current on `lp`, skips its VMCALL and resumes it to the next VMCALL. */
const round = (lp: LogicalProcessor, v: { vmcs: bigint; core: CpuState }): void => {
  expectStatus(lp.vmptrld(v.vmcs), VmxStatus.Succeed, lp)
  lp.core = v.core
  lp.vmwrite(F.GUEST_RIP, read(lp, F.GUEST_RIP) + read(lp, F.VM_EXIT_INSTRUCTION_LEN))
  expectStatus(lp.vmresume(10_000), VmxStatus.VmExit, lp)
  expect(Number(read(lp, F.VM_EXIT_REASON))).toBe(ExitReason.VMCALL)
}

const twoVcpus = () => {
  const { lp, platform } = newHost()
  enterVmx(lp)
  const a = vcpu(lp)
  const b = vcpu(lp)
  return { lp, platform, a, b }
}

describe("per-vCPU TLBs across VMCS switches on one logical processor", () => {
  it("switching between two vCPUs (separate VMs: own memory, own EPT) flushes neither", () => {
    const { lp, a, b } = twoVcpus()
    for (let i = 0; i < 20; i++) {
      round(lp, a)
      round(lp, b)
    }
    expect(a.counter.flushes).toBe(0)
    expect(b.counter.flushes).toBe(0)
  })

  it("a VMWRITE of one vCPU's EPT pointer flushes that vCPU only", () => {
    const { lp, a, b } = twoVcpus()
    round(lp, a)
    round(lp, b)
    expectStatus(lp.vmptrld(a.vmcs), VmxStatus.Succeed, lp)
    lp.vmwrite(F.EPT_POINTER, identityEpt(lp).eptp)
    round(lp, a)
    round(lp, b)
    round(lp, a)
    expect(a.counter.flushes).toBe(1)
    expect(b.counter.flushes).toBe(0)
  })

  it("a change of one vCPU's memory slots flushes that vCPU only", () => {
    const { lp, a, b } = twoVcpus()
    round(lp, a)
    round(lp, b)
    expect(a.core.memory.setRegion(1, 0x4000_0000n, new Uint8Array(4096))).toBeUndefined()
    round(lp, b)
    round(lp, a)
    round(lp, a)
    expect(a.counter.flushes).toBeGreaterThanOrEqual(1)
    const afterSlotChange = a.counter.flushes
    round(lp, b)
    round(lp, a)
    expect(a.counter.flushes).toBe(afterSlotChange)
    expect(b.counter.flushes).toBe(0)
  })

  it("INVEPT flushes every vCPU at its next entry (not only the one loaded)", () => {
    const { lp, a, b } = twoVcpus()
    round(lp, a)
    round(lp, b)
    expectStatus(lp.invept(2n, 0n), VmxStatus.Succeed, lp)
    round(lp, a)
    round(lp, b)
    expect(a.counter.flushes).toBeGreaterThanOrEqual(1)
    expect(b.counter.flushes).toBeGreaterThanOrEqual(1)
    const [fa, fb] = [a.counter.flushes, b.counter.flushes]
    round(lp, a)
    round(lp, b)
    expect([a.counter.flushes, b.counter.flushes]).toEqual([fa, fb])
  })

  it("the TLB caches the combined translation: repeated accesses walk EPT no more, across another vCPU running", () => {
    const { lp, a } = twoVcpus()
    const ept = lp.intercepts.ept
    const walk = ept.translate.bind(ept)
    let walks = 0
    ept.translate = (gpa: number, access: number): number => {
      walks++
      return walk(gpa, access)
    }
    for (let i = 0; i < 50; i++) round(lp, a)
    // a's code page, stack and [0x5000] were translated at its launch, before b launched: 50
    // round trips later (b having run in between) they are still TLB hits.
    expect(walks).toBe(0)
    expect(a.counter.flushes).toBe(0)
    // After a flush the same round trip walks again (the counter sees the EPT walks).
    a.core.flushTlb()
    round(lp, a)
    expect(walks).toBeGreaterThan(0)
  })

  it("running a vCPU's register file under another VMCS flushes it", () => {
    const { lp, a, b } = twoVcpus()
    round(lp, a)
    // b's VMCS on a's register file: a's translations were made under a's VMCS.
    expectStatus(lp.vmptrld(b.vmcs), VmxStatus.Succeed, lp)
    lp.core = a.core
    lp.vmwrite(F.GUEST_RIP, read(lp, F.GUEST_RIP) + read(lp, F.VM_EXIT_INSTRUCTION_LEN))
    expectStatus(lp.vmresume(10_000), VmxStatus.VmExit, lp)
    expect(a.counter.flushes).toBe(1)
  })
})
