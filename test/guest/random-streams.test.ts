// Robustness: random instruction streams at CPL0 and CPL3 with paging on, with and without
// intercepts, with an IDT whose handlers halt, run more random code, or are missing. Every
// stream must end in an exit, a halt, a triple fault or the budget — the simulator itself
// must never throw, whatever the bytes do to the page tables, descriptor tables or stacks.

import { describe, expect, it } from "vitest"
import { CpuState, MsrSlot, Seg } from "../../src/guest/cpu/state.ts"
import { NoIntercepts } from "../../src/guest/intercept.ts"
import { FlatSelectors, setupLongMode } from "../../src/guest/longmode.ts"
import { GuestMemory } from "../../src/guest/mmu/memory.ts"
import { RunOutcome, runBatch } from "../../src/guest/run.ts"

const MEMORY = 0x40000
const TABLES = 0x0 // GDT, TSS, PML4, PDPT, PD (0x0..0x4000)
const IDT = 0x5000
const HANDLER_HLT = 0x6000
const STACK_TOP = 0x9000
const CODE = 0xa000
const CODE_SIZE = 0x4000

class RandomIntercepts extends NoIntercepts {
  constructor(private readonly rand: () => number) {
    super()
  }
  override exitsOnHlt(): boolean {
    return this.rand() < 0.7
  }
  override exitsOnIo(): boolean {
    return this.rand() < 0.5
  }
  override exitsOnRdmsr(): boolean {
    return this.rand() < 0.5
  }
  override exitsOnWrmsr(): boolean {
    return this.rand() < 0.5
  }
  override exitsOnException(vector: number): boolean {
    return vector === 14 ? this.rand() < 0.3 : this.rand() < 0.1
  }
  override exitsOnCrWrite(): boolean {
    return this.rand() < 0.5
  }
  override exitsOnInvlpg(): boolean {
    return this.rand() < 0.5
  }
}

describe("random instruction streams never crash the simulator", () => {
  it("200,000 streams (≤ 4,096 instructions each, CPL0 and CPL3, paging on) end in an exit, halt, triple fault or the budget", () => {
    let s = 0x1234567
    const rand = (): number => {
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      return (s >>> 0) / 4294967296
    }
    const memory = new GuestMemory()
    const backing = new Uint8Array(MEMORY)
    memory.setRegion(0, 0n, backing)
    const cpu = new CpuState(memory)
    setupLongMode(cpu, { tablesAt: BigInt(TABLES), user: true })
    memory.write(BigInt(HANDLER_HLT), Uint8Array.from([0xf4, 0xeb, 0xfd]))
    // TSS.RSP0 for CPL3 → CPL0 transitions.
    memory.writeU64(BigInt(TABLES + 0x100 + 4), BigInt(STACK_TOP))
    const pristine = backing.slice(0, CODE)
    const view = new DataView(backing.buffer)
    const writeGate = (v: number, target: number): void => {
      view.setUint32(IDT + v * 16, (target & 0xffff) | (FlatSelectors.KERNEL_CODE << 16), true)
      view.setUint32(IDT + v * 16 + 4, (target & 0xffff0000) | 0xee00, true)
      view.setUint32(IDT + v * 16 + 8, 0, true)
      view.setUint32(IDT + v * 16 + 12, 0, true)
    }
    for (let v = 0; v < 256; v++) writeGate(v, HANDLER_HLT)
    const haltingIdt = backing.slice(IDT, IDT + 0x1000)
    const outcomes = new Map<number, number>()
    let cpl3 = 0
    let delivered = 0
    const STREAMS = Number(process.env.KVMSIM_STREAMS ?? 200_000)
    for (let n = 0; n < STREAMS; n++) {
      backing.set(pristine)
      // IDT: 80% every vector → a HLT handler; 2% → random code (long fault chains, random
      // budget); the rest no IDT at all (the first exception escalates to a triple fault).
      const idtMode = rand()
      const chaotic = idtMode >= 0.8 && idtMode < 0.82
      if (idtMode < 0.8) backing.set(haltingIdt, IDT)
      else if (chaotic) for (let v = 0; v < 256; v++) writeGate(v, CODE + Math.floor(rand() * CODE_SIZE))
      // Random code: mostly short windows to keep the run time bounded.
      const len = 64 + Math.floor(rand() * 192)
      for (let j = 0; j < len; j++) backing[CODE + j] = (rand() * 256) | 0
      memory.noteWrite(0, CODE + CODE_SIZE)
      cpu.setIdtr(BigInt(IDT), idtMode < 0.82 ? 0xfff : 0)
      for (let r = 0; r < 16; r++) cpu.setReg(r, BigInt(Math.floor(rand() * 4294967296)) * (rand() < 0.5 ? 1n : 0x10001n))
      cpu.setReg(4, BigInt(STACK_TOP - 0x100))
      cpu.setReg(6, BigInt(CODE + 0x1000))
      cpu.setReg(7, BigInt(CODE + 0x2000))
      cpu.setRip(BigInt(CODE))
      cpu.setRflags(BigInt(0x2 | (rand() < 0.5 ? 0x200 : 0)))
      cpu.cr3 = BigInt(TABLES + 0x1000)
      cpu.cr0 = 0x80050033
      cpu.cr4 = 0x20
      cpu.efer = 0xd01
      cpu.setMsrSlot(MsrSlot.LSTAR, BigInt(CODE + 0x20))
      cpu.setMsrSlot(MsrSlot.STAR, 0x0013000800000000n)
      cpu.activityState = 0
      cpu.setInterruptibility(0)
      const user = rand() < 0.4
      if (user) {
        cpl3++
        cpu.setSegment(Seg.CS, { selector: FlatSelectors.USER_CODE, base: 0n, limit: 0xffffffff, accessRights: 0xa0fb })
        cpu.setSegment(Seg.SS, { selector: FlatSelectors.USER_DATA, base: 0n, limit: 0xffffffff, accessRights: 0xc0f3 })
      } else {
        cpu.setSegment(Seg.CS, { selector: FlatSelectors.KERNEL_CODE, base: 0n, limit: 0xffffffff, accessRights: 0xa09b })
        cpu.setSegment(Seg.SS, { selector: FlatSelectors.KERNEL_DATA, base: 0n, limit: 0xffffffff, accessRights: 0xc093 })
      }
      cpu.intercepts = rand() < 0.5 ? new RandomIntercepts(rand) : null
      if (rand() < 0.05) cpu.requestInterrupt(32 + Math.floor(rand() * 200))
      const before = cpu.instructionsRetired
      // Budgets up to the 4,096 cap; the fault-chain streams get a random one (each guest
      // exception costs a JS throw, about a microsecond, so these dominate the run time).
      const outcome = runBatch(cpu, chaotic ? 1 + Math.floor(rand() * 4096) : 4096)
      delivered += cpu.instructionsRetired - before
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      // Clear leftovers so one stream's pending events do not leak into the next.
      while (cpu.highestPendingInterrupt() >= 0) cpu.acknowledgeInterrupt(cpu.highestPendingInterrupt())
    }
    const total = [...outcomes.values()].reduce((a, b) => a + b, 0)
    expect(total).toBe(STREAMS)
    expect(cpl3).toBeGreaterThan(STREAMS / 4)
    expect(outcomes.get(RunOutcome.VM_EXIT) ?? 0).toBeGreaterThan(1000)
    expect(outcomes.get(RunOutcome.SHUTDOWN) ?? 0).toBeGreaterThan(1000)
    expect(outcomes.get(RunOutcome.HALTED) ?? 0).toBeGreaterThan(1000)
    expect(delivered).toBeGreaterThan(STREAMS)
  })
})
