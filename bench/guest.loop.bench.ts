// guest.loop: ../shared/bench/loop.asm (assembled by kvmsim's own assembler) run to its HLT on
// the guest core in 64-bit mode with paging on, in guest MIPS. The RAX checksum is verified
// against the same loop computed with exact 64-bit BigInt arithmetic. Calibration: the loop
// body written directly in JavaScript on 32-bit halves (goal: ratio >= 0.1, >= 250 MIPS).
// guest.loop runs with compiled blocks (the loop becomes one generated function, like QEMU's
// TCG); guest.loop.interp is the same run with blocks disabled: the plain interpreter.

import { readFileSync } from "node:fs"
import type { Benchmark, BenchResult } from "./harness.ts"
import { bestRate, result, verify } from "./harness.ts"
import { assemble } from "../src/guest/asm/index.ts"
import { CpuState, Reg } from "../src/guest/cpu/state.ts"
import { setupLongMode } from "../src/guest/longmode.ts"
import { GuestMemory } from "../src/guest/mmu/memory.ts"
import { RunOutcome, engineOf, runBatch } from "../src/guest/run.ts"

const ITERATIONS = 2_000_000
const INSTRUCTIONS = 6 * ITERATIONS + 11 // body × iterations, plus 7 setup and 4 teardown instructions (HLT included)

const image = assemble(readFileSync(new URL("../../shared/bench/loop.asm", import.meta.url), "utf8")).bytes

/** loop.asm's checksum for `n` iterations, exact. */
const expectedChecksum = (n: number): bigint => {
  let a = 0n
  let b = 0x12345n
  let d = 0x5a5an
  let s = 0n
  for (let c = BigInt(n); c > 0n; c--) {
    a = BigInt.asUintN(64, a + c)
    d ^= a
    b = BigInt.asUintN(64, b - d)
    s++
  }
  return BigInt.asUintN(64, (a ^ b ^ d) + s)
}

const memory = new GuestMemory()
memory.setRegion(0, 0n, new Uint8Array(4 << 20))
memory.write(0x100000n, image)
const cpu = new CpuState(memory)
setupLongMode(cpu, { tablesAt: 0x10000n })

let lastRax = 0n
let lastRetired = 0
const runGuest = (): void => {
  for (let r = 0; r < 16; r++) cpu.setReg(r, 0n)
  cpu.setReg(Reg.RDI, BigInt(ITERATIONS))
  cpu.setReg(Reg.RSP, 0x200000n)
  cpu.setRip(0x100000n)
  cpu.activityState = 0
  const before = cpu.instructionsRetired
  let outcome: number = RunOutcome.BUDGET
  while (outcome === RunOutcome.BUDGET) outcome = runBatch(cpu, 1 << 26)
  verify("guest.loop", "outcome", RunOutcome.HALTED, outcome)
  lastRax = cpu.getReg(Reg.RAX)
  lastRetired = cpu.instructionsRetired - before
}

/** The loop body in JS on signed 32-bit halves: what the interpreter's handlers compute. */
let sink = 0
const calibrationLoop = (): void => {
  let aLo = 0, aHi = 0, bLo = 0x12345, bHi = 0, dLo = 0x5a5a, dHi = 0, sLo = 0, sHi = 0
  let cLo = ITERATIONS | 0, cHi = 0
  while ((cLo | cHi) !== 0) {
    const sum = (aLo >>> 0) + (cLo >>> 0)
    aHi = (aHi + cHi + (sum >= 4294967296 ? 1 : 0)) | 0
    aLo = sum | 0
    dLo ^= aLo
    dHi ^= aHi
    const diff = (bLo >>> 0) - (dLo >>> 0)
    bHi = (bHi - dHi - (diff < 0 ? 1 : 0)) | 0
    bLo = diff | 0
    if (sLo === -1) sHi = (sHi + 1) | 0
    sLo = (sLo + 1) | 0
    if (cLo === 0) cHi = (cHi - 1) | 0
    cLo = (cLo - 1) | 0
  }
  sink = aLo ^ bLo ^ dLo ^ sLo ^ aHi ^ bHi ^ dHi ^ sHi
}

const measure = (name: string, blocks: boolean): BenchResult => {
  engineOf(cpu).blocksEnabled = blocks
  const rate = bestRate(runGuest, INSTRUCTIONS, 1500)
  verify(name, "RAX checksum", expectedChecksum(ITERATIONS), lastRax)
  verify(name, "instructions retired", INSTRUCTIONS, lastRetired)
  const calibration = bestRate(calibrationLoop, INSTRUCTIONS, 400)
  void sink
  return result(name, "MIPS", rate / 1e6, { name: "loop body in JS (32-bit halves)", unit: "MIPS", value: calibration / 1e6 })
}

const benchmarks: Benchmark[] = [
  {
    name: "guest.loop",
    description: "loop.asm to HLT on the guest core (paging on, compiled blocks on), guest MIPS; calibration: the loop body in JS on 32-bit halves",
    run: (): BenchResult => measure("guest.loop", true),
  },
  {
    name: "guest.loop.interp",
    description: "loop.asm to HLT on the plain interpreter (compiled blocks disabled), guest MIPS; calibration: the loop body in JS on 32-bit halves",
    run: (): BenchResult => measure("guest.loop.interp", false),
  },
]

export default benchmarks
