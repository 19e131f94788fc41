// exit.vmcall: a guest VMCALL, the VM exit, a minimal handler that advances GUEST_RIP by the
// exit instruction length, and VMRESUME: nanoseconds per round trip. Goal from the issue: at
// most 30 guest-instruction times per round trip. The issue's yardstick is "one guest
// instruction in guest.loop"; guest.loop now runs in a compiled block (~1 ns/instruction), so
// the yardstick here is one instruction of ../shared/bench/loop.asm on the INTERPRETER (compiled
// blocks disabled), timed in alternation with each figure so that both see the same machine
// load. Four figures:
//   exit.vmcall              round trip; calibration: interpreter instruction (blocks off)
//   exit.vmcall.vs-blocks    the same round trip; calibration: instruction with blocks on
//   exit.vmx.transition      VMX's own share: VMRESUME -> VM exit with no guest instruction
//                            (VMX-preemption timer 0), ns; calibration: interpreter instruction
//   exit.vmcall.full-save    the round trip when the guest changed system state (SWAPGS) before
//                            each VMCALL, so every exit saves the whole guest-state area
import { readFileSync } from "node:fs"
import { alternatingBestRates, bestRate, type Benchmark, type BenchResult, type Figure, result, type TimedWork, verify } from "./harness.ts"
import { VmcsField as F } from "../src/arch/vmx/vmcs-fields.ts"
import { ExitReason } from "../src/arch/exit-reasons.ts"
import { assemble } from "../src/guest/asm/index.ts"
import { CpuState, Reg } from "../src/guest/cpu/state.ts"
import { GuestMemory } from "../src/guest/mmu/memory.ts"
import { engineOf, runBatch, RunOutcome } from "../src/guest/run.ts"
import { VmxCapabilities } from "../src/hypervisor/vmx/capabilities.ts"
import { HostPhysicalMemory } from "../src/hypervisor/vmx/host-memory.ts"
import { LogicalProcessor } from "../src/hypervisor/vmx/logical-processor.ts"
import { VmxStatus } from "../src/hypervisor/vmx/outcome.ts"
import { VmxPlatform } from "../src/hypervisor/vmx/platform.ts"

const ROUND_TRIPS = 20_000
const LOOP_ITERATIONS = 200_000

/** Guest-physical memory: identity paging of the first GiB (PML4 0x1000, PDPT 0x2000), code at 0x100000. */
const guestMemory = (code: Uint8Array): GuestMemory => {
  const ram = new Uint8Array(2 * 1024 * 1024)
  const view = new DataView(ram.buffer)
  view.setUint32(0x1000, 0x2003, true)
  view.setUint32(0x2000, 0x83, true)
  ram.set(code, 0x100000)
  const memory = new GuestMemory()
  memory.setRegion(0, 0n, ram)
  return memory
}

const VMCALL_LOOP = "top: vmcall\ninc rbx\njmp top"
/** SWAPGS writes GS base and IA32_KERNEL_GS_BASE: system state the exit must save. */
const SWAPGS_VMCALL_LOOP = "top: swapgs\nvmcall\ninc rbx\njmp top"

/** A 64-bit CPL0 guest at 0x100000 on a VMCS set up as a minimal VMM would (no exits but VMCALL's). */
export const launchedVmcall = (guest: string = VMCALL_LOOP): { lp: LogicalProcessor; core: CpuState } => {
  const caps = new VmxCapabilities()
  const lp = new LogicalProcessor(0, new VmxPlatform(new HostPhysicalMemory()), caps)
  lp.root.cr4 |= 1n << 13n
  const region = (): bigint => {
    const page = lp.memory.allocPage()!
    lp.memory.write32(Number(page), caps.revisionId)
    return page
  }
  const ok = (status: number, what: string) => verify("exit.vmcall", what, VmxStatus.Succeed, status)
  ok(lp.vmxon(region()), "VMXON")
  const vmcs = region()
  ok(lp.vmclear(vmcs), "VMCLEAR")
  ok(lp.vmptrld(vmcs), "VMPTRLD")
  const w = (field: number, value: bigint | number) => ok(lp.vmwrite(field, BigInt(value)), `VMWRITE 0x${field.toString(16)}`)
  const adjust = (a: { allowed0: number; allowed1: number }, extra = 0) => ((a.allowed0 | extra) & a.allowed1) >>> 0
  w(F.PIN_BASED_VM_EXEC_CONTROL, adjust(caps.pin))
  w(F.CPU_BASED_VM_EXEC_CONTROL, adjust(caps.primary))
  w(F.VM_EXIT_CONTROLS, adjust(caps.exit, 0x200))
  w(F.VM_ENTRY_CONTROLS, adjust(caps.entry, 0x200))
  w(F.VMCS_LINK_POINTER, 0xffff_ffff_ffff_ffffn)
  w(F.HOST_CR0, lp.root.cr0)
  w(F.HOST_CR3, lp.root.cr3)
  w(F.HOST_CR4, lp.root.cr4)
  w(F.HOST_CS_SELECTOR, 0x10)
  w(F.HOST_SS_SELECTOR, 0x18)
  w(F.HOST_TR_SELECTOR, 0x40)
  w(F.HOST_RIP, 0xffff_ffff_8100_0000n)
  w(F.GUEST_CR0, 0x8000_0031)
  w(F.GUEST_CR3, 0x1000)
  w(F.GUEST_CR4, 0x2020)
  w(F.GUEST_RIP, 0x100000)
  w(F.GUEST_RSP, 0x1ff000)
  w(F.GUEST_RFLAGS, 2)
  w(F.GUEST_CS_SELECTOR, 0x8)
  w(F.GUEST_CS_AR_BYTES, 0xa09b)
  w(F.GUEST_CS_LIMIT, 0xffff_ffff)
  for (const [sel, ar, limit] of [
    [F.GUEST_SS_SELECTOR, F.GUEST_SS_AR_BYTES, F.GUEST_SS_LIMIT],
    [F.GUEST_DS_SELECTOR, F.GUEST_DS_AR_BYTES, F.GUEST_DS_LIMIT],
    [F.GUEST_ES_SELECTOR, F.GUEST_ES_AR_BYTES, F.GUEST_ES_LIMIT],
    [F.GUEST_FS_SELECTOR, F.GUEST_FS_AR_BYTES, F.GUEST_FS_LIMIT],
    [F.GUEST_GS_SELECTOR, F.GUEST_GS_AR_BYTES, F.GUEST_GS_LIMIT],
  ] as const) {
    w(sel, 0x10)
    w(ar, 0xc093)
    w(limit, 0xffff_ffff)
  }
  w(F.GUEST_TR_SELECTOR, 0x18)
  w(F.GUEST_TR_AR_BYTES, 0x8b)
  w(F.GUEST_TR_LIMIT, 0x67)
  w(F.GUEST_LDTR_AR_BYTES, 0x10000)
  // The guest: count VMCALLs in RBX forever.
  const code = assemble(`BITS 64\nORG 0x100000\n${guest}\n`).bytes
  const core = new CpuState(guestMemory(code))
  lp.core = core
  verify("exit.vmcall", "first VMLAUNCH", VmxStatus.VmExit, lp.vmlaunch(100))
  verify("exit.vmcall", "first exit reason", ExitReason.VMCALL, lp.vmreadLo(F.VM_EXIT_REASON))
  return { lp, core }
}

/** The whole round trip as KVM's handle_vmcall + skip_emulated_instruction + VMRESUME do it. */
export const roundTrips = (lp: LogicalProcessor, count: number): number => {
  let exits = 0
  for (let i = 0; i < count; i++) {
    const length = lp.vmreadLo(F.VM_EXIT_INSTRUCTION_LEN)
    lp.vmwriteLo(F.GUEST_RIP, lp.vmreadLo(F.GUEST_RIP) + length)
    if (lp.vmresume(1000) !== VmxStatus.VmExit) break
    if (lp.vmreadLo(F.VM_EXIT_REASON) === ExitReason.VMCALL) exits++
  }
  return exits
}

/**
 * One run of loop.asm natively (no VMX) on the same core, blocks on or off, as timed work: its
 * operations are the instructions it retires (checked once here: the loop ends in HLT).
 */
export const loopInstructionWork = (blocks: boolean): TimedWork => {
  const source = readFileSync(new URL("../../shared/bench/loop.asm", import.meta.url), "utf8")
  const code = assemble(source).bytes
  const run = (): { cpu: CpuState; outcome: number } => {
    const cpu = new CpuState(guestMemory(code))
    engineOf(cpu).blocksEnabled = blocks
    cpu.cr0 = 0x8000_0031
    cpu.cr4 = 0x20
    cpu.efer = 0x500
    cpu.cr3 = 0x1000n
    cpu.segAttr[1] = 0xa09b
    cpu.setRip(0x100000n)
    cpu.setReg(Reg.RDI, BigInt(LOOP_ITERATIONS))
    return { cpu, outcome: runBatch(cpu, 1e9) }
  }
  const probe = run()
  verify("exit.vmcall", "loop.asm ends in HLT", RunOutcome.HALTED, probe.outcome)
  const instructions = probe.cpu.instructionsRetired
  verify("exit.vmcall", "loop.asm instruction count", true, instructions >= 6 * LOOP_ITERATIONS)
  return { work: () => void run(), operations: instructions }
}

export const instructionFigure = (blocks: boolean, nsPerInstruction: number): Figure => ({
  name: blocks ? "loop.asm instruction, compiled blocks on" : "loop.asm instruction, interpreter (compiled blocks off)",
  unit: "ns",
  value: nsPerInstruction,
})

/** ns per guest instruction of loop.asm, blocks on or off, timed on its own. */
export const guestInstructionNs = (blocks: boolean): Figure => {
  const { work, operations } = loopInstructionWork(blocks)
  return instructionFigure(blocks, 1e9 / bestRate(work, operations, 600))
}

let interpreter: Figure | undefined
export const interpreterInstruction = (): Figure => (interpreter ??= guestInstructionNs(false))

/**
 * A figure in ns per operation of `work` with the interpreter's loop.asm instruction as its
 * calibration, the two timed in alternation so that both see the same machine load.
 */
const againstInstruction = (name: string, work: TimedWork): BenchResult => {
  const [value, instruction] = alternatingBestRates([work, loopInstructionWork(false)])
  return result(name, "ns", 1e9 / value!, instructionFigure(false, 1e9 / instruction!))
}

/** The VMCALL round trip as timed work, its exit count and the guest's own count checked once. */
const roundTripWork = (): TimedWork => {
  const { lp, core } = launchedVmcall()
  const before = core.getReg(Reg.RBX)
  const exits = roundTrips(lp, ROUND_TRIPS)
  verify("exit.vmcall", "VMCALL exits", ROUND_TRIPS, exits)
  verify("exit.vmcall", "guest-counted VMCALLs", before + BigInt(ROUND_TRIPS), core.getReg(Reg.RBX))
  return {
    work: () => {
      const n = roundTrips(lp, ROUND_TRIPS)
      if (n !== ROUND_TRIPS) throw new Error(`exit.vmcall: ${n} exits instead of ${ROUND_TRIPS}`)
    },
    operations: ROUND_TRIPS,
  }
}

/** The round trip when every exit must save the whole guest-state area. */
const fullSaveRoundTripWork = (): TimedWork => {
  const { lp, core } = launchedVmcall(SWAPGS_VMCALL_LOOP)
  const before = core.getReg(Reg.RBX)
  verify("exit.vmcall.full-save", "VMCALL exits", ROUND_TRIPS, roundTrips(lp, ROUND_TRIPS))
  verify("exit.vmcall.full-save", "guest-counted VMCALLs", before + BigInt(ROUND_TRIPS), core.getReg(Reg.RBX))
  return {
    work: () => {
      const n = roundTrips(lp, ROUND_TRIPS)
      if (n !== ROUND_TRIPS) throw new Error(`exit.vmcall.full-save: ${n} exits instead of ${ROUND_TRIPS}`)
    },
    operations: ROUND_TRIPS,
  }
}

/** VMRESUME -> preemption-timer exit with no guest instruction: VMX's entry and exit alone. */
const transitionWork = (): TimedWork => {
  const { lp, core } = launchedVmcall()
  verify("exit.vmx.transition", "enable the VMX-preemption timer", VmxStatus.Succeed, lp.vmwriteLo(F.PIN_BASED_VM_EXEC_CONTROL, lp.vmreadLo(F.PIN_BASED_VM_EXEC_CONTROL) | 0x40))
  verify("exit.vmx.transition", "timer value 0", VmxStatus.Succeed, lp.vmwriteLo(F.VMX_PREEMPTION_TIMER_VALUE, 0))
  const retired = core.instructionsRetired
  const transitions = (): void => {
    for (let i = 0; i < ROUND_TRIPS; i++) {
      if (lp.vmresume(1000) !== VmxStatus.VmExit) throw new Error("exit.vmx.transition: VMRESUME did not exit")
    }
  }
  transitions()
  verify("exit.vmx.transition", "exit reason", ExitReason.PREEMPTION_TIMER, lp.vmreadLo(F.VM_EXIT_REASON))
  verify("exit.vmx.transition", "no guest instruction retired", retired, core.instructionsRetired)
  return { work: transitions, operations: ROUND_TRIPS }
}

/** exit.vmcall's round trip, reused by exit.vmcall.vs-blocks. */
let vmcallRoundTrip: number | undefined

const benchmarks: ReadonlyArray<Benchmark> = [
  {
    name: "exit.vmcall",
    description:
      "guest VMCALL -> VM exit -> handler advancing RIP -> VMRESUME, ns per round trip; calibration: one loop.asm instruction on the interpreter (compiled blocks off), goal ratio <= 30",
    run: () => {
      const measured = againstInstruction("exit.vmcall", roundTripWork())
      vmcallRoundTrip = measured.value
      return measured
    },
  },
  {
    name: "exit.vmcall.full-save",
    description: "the exit.vmcall round trip with SWAPGS before each VMCALL, so every exit saves the whole guest-state area, ns; calibration: one loop.asm instruction on the interpreter",
    run: () => againstInstruction("exit.vmcall.full-save", fullSaveRoundTripWork()),
  },
  {
    name: "exit.vmx.transition",
    description: "VMX's own share: VMRESUME -> VM exit (VMX-preemption timer 0, no guest instruction), ns; calibration: one loop.asm instruction on the interpreter",
    run: () => againstInstruction("exit.vmx.transition", transitionWork()),
  },
  {
    // Last: running compiled blocks in this process first would slow the other figures' round trips.
    name: "exit.vmcall.vs-blocks",
    description: "the exit.vmcall round trip against one loop.asm instruction with compiled blocks on (guest.loop's mode), for comparison",
    run: () => result("exit.vmcall.vs-blocks", "ns", vmcallRoundTrip ?? 1e9 / bestRate(roundTripWork().work, ROUND_TRIPS, 600), guestInstructionNs(true)),
  },
]

export default benchmarks
