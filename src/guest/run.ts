// runBatch: the only hot loop. Fetches through the decoded-instruction cache (current code page
// held as a linear base + offset map), dispatches on the handler number in one dense switch,
// and turns guest exceptions and VM exits (thrown as preallocated sentinels) into IDT delivery
// or a return with the exit record filled. No allocation and no Effect per instruction.

import { ExitReason } from "../arch/exit-reasons.ts"
import { Rflags } from "../arch/x86.ts"
import { ActivityState, Interruptibility, type CpuState } from "./cpu/state.ts"
import { EXIT, Engine, FAULT, SHUTDOWN, TWO32 } from "./exec/engine.ts"
import { HOT_THRESHOLD, carryOf, compileBlock } from "./exec/blocks.ts"
import { executeSlow } from "./exec/execute.ts"
import { fetchDecode } from "./exec/fetch.ts"
import { InterruptionType } from "./intercept.ts"

/** What runBatch reports. */
export const RunOutcome = {
  /** The budget is spent (or the preemption timer / MTF did not fire): call again. */
  BUDGET: 0,
  /** A VM exit: `cpu.exit` holds the exit information. */
  VM_EXIT: 1,
  /** HLT with nothing pending that could wake it (and no HLT exiting). */
  HALTED: 2,
  /** Triple fault without intercepts: the processor is in the shutdown state. */
  SHUTDOWN: 3,
} as const
export type RunOutcome = (typeof RunOutcome)[keyof typeof RunOutcome]

/** The execution engine of a CPU (TLB, decode cache hookup), created on first use. */
export const engineOf = (cpu: CpuState): Engine => {
  const k = cpu.engine
  if (k !== null) return k
  return (cpu.engine = new Engine(cpu))
}

/**
 * Runs up to `budget` instructions (each delivered event also uses one unit). Returns a
 * RunOutcome; on VM_EXIT the exit record of `cpu` is filled.
 */
export const runBatch = (cpu: CpuState, budget: number): RunOutcome => {
  const k = engineOf(cpu)
  if (cpu.memory.generation !== k.memoryGeneration) {
    // The slot layout changed since the last batch: no cached translation may survive.
    k.memoryGeneration = cpu.memory.generation
    k.flushTlb()
  }
  const ic = cpu.intercepts
  const gp = ic !== null ? ic.guestPhysical : null
  if (cpu.cr0 !== k.ctxCr0 || cpu.cr4 !== k.ctxCr4 || cpu.efer !== k.ctxEfer || cpu.cpl !== k.ctxCpl || ic !== k.ctxIntercepts || gp !== k.ctxGuestPhysical) {
    k.flushTlb()
  }
  let limit = budget
  let timerStops = false
  let mtf = false
  if (ic !== null) {
    // The boundary work intercepts add (window exits, pending NMIs and interrupts exiting, a
    // shadow or activity state the entry loaded) is needed only when one of those is there:
    // KVM always sets NMI and external-interrupt exiting, and nothing is pending at most entries.
    if (
      ic.interruptWindowExiting ||
      ic.nmiWindowExiting ||
      cpu.nmiPending ||
      cpu.irrCount > 0 ||
      (cpu.interruptibility & 3) !== 0 ||
      cpu.activityState !== ActivityState.ACTIVE
    ) {
      cpu.attention = 1
    }
    const t = ic.preemptionTimerRemaining
    if (t >= 0 && t <= limit) {
      limit = t
      timerStops = true
    }
    if (ic.monitorTrapFlag && limit >= 1) {
      limit = 1
      mtf = true
      timerStops = false
    }
  }
  const r = cpu.attention === 0 && k.blocksEnabled ? enterAtBlock(k, limit) : loop(k, limit)
  k.ctxCr0 = cpu.cr0
  k.ctxCr4 = cpu.cr4
  k.ctxEfer = cpu.efer
  k.ctxCpl = cpu.cpl
  // Pointer stores carry a write barrier; the intercepts of a VM entry are usually the last ones.
  const icAfter = cpu.intercepts
  if (k.ctxIntercepts !== icAfter) k.ctxIntercepts = icAfter
  const gpAfter = icAfter !== null ? icAfter.guestPhysical : null
  if (k.ctxGuestPhysical !== gpAfter) k.ctxGuestPhysical = gpAfter
  if (ic !== null && ic.preemptionTimerRemaining >= 0) {
    ic.preemptionTimerRemaining = Math.max(0, ic.preemptionTimerRemaining - k.used)
  }
  if (r === RunOutcome.BUDGET && ic !== null && (mtf || timerStops) && (k.used > 0 || timerStops)) {
    cpu.exit.clear()
    cpu.exit.reason = mtf ? ExitReason.MONITOR_TRAP_FLAG : ExitReason.PREEMPTION_TIMER
    return RunOutcome.VM_EXIT
  }
  return r
}

const CONTINUE = -1
const DELIVERED = -2

/**
 * A batch that starts at a compiled block (where a VM entry resumes a hot guest loop) runs it
 * without entering `loop`'s frame and exception handler, and a VMCALL right after it exits from
 * here: exactly what `loop` does for the same instructions (no boundary work pending, the block
 * already compiled, the VMCALL's record already known not to start a block, so no heat or cache
 * bookkeeping changes). Anything else goes on in `loop`, which then counts from the block's end.
 */
const enterAtBlock = (k: Engine, limit: number): RunOutcome => {
  const cpu = k.cpu
  const rip = cpu.rip
  // The offset in the decoded page (codeBase is page-aligned, NaN when there is none): no division.
  const base = k.codeBase
  const offset = rip - base
  if (!(offset >= 0 && offset < 4096)) return loop(k, limit)
  const map = k.codeMap
  const i = map[offset | 0]! - 1
  const bc = k.blocks
  const cache = k.cache
  if (i < 0 || i === cache.scratch || bc.generation !== cache.generation) return loop(k, limit)
  const b = i >> 4 < bc.blockOf.length ? bc.blockOf[i >> 4]! : 0
  if (b <= 0 || bc.lengths[b]! > limit) return loop(k, limit)
  const used = bc.functions[b]!(cpu.lo, cpu.hi, cpu.flags, k, rip, limit, carryOf_)
  const next = k.blockRip
  const nextOffset = next - base
  if (used < limit && cpu.intercepts !== null && nextOffset >= 0 && nextOffset < 4096) {
    const D = cache.records
    const j = map[nextOffset | 0]! - 1
    if (j >= 0 && j !== cache.scratch && D[j + /* F_OP */ 0] === /* Op.VMCALL */ 108 && j >> 4 < bc.blockOf.length && bc.blockOf[j >> 4]! < 0) {
      instructionExit(k, ExitReason.VMCALL, next, D[j + /* F_LEN */ 2]!)
      k.used = used
      cpu.instructionsRetired += used
      return RunOutcome.VM_EXIT
    }
  }
  cpu.rip = next
  const r = loop(k, limit - used)
  k.used += used
  cpu.instructionsRetired += used
  return r
}

/** Work at an instruction boundary: interrupt shadows, windows, pending events, HLT. */
const boundary = (k: Engine): number => {
  const cpu = k.cpu
  const ic = cpu.intercepts
  if ((cpu.interruptibility & 3) !== 0) {
    if (k.shadowFresh) k.shadowFresh = false
    else cpu.interruptibility &= ~3
  }
  const shadow = (cpu.interruptibility & 3) !== 0
  const movSs = (cpu.interruptibility & Interruptibility.MOV_SS) !== 0
  const ifSet = (cpu.rflagsRest & Rflags.IF) !== 0
  const nmiBlocked = (cpu.interruptibility & Interruptibility.NMI) !== 0
  const irq = cpu.irrCount > 0
  if (ic !== null) {
    if (ic.nmiExiting && cpu.nmiPending && !movSs) {
      cpu.nmiPending = false
      cpu.exit.clear()
      cpu.exit.reason = ExitReason.EXCEPTION_NMI
      cpu.exit.interruptionInformation = 2 | (InterruptionType.NMI << 8) | (1 << 31)
      return RunOutcome.VM_EXIT
    }
    if (ic.externalInterruptExiting && irq) {
      cpu.exit.clear()
      cpu.exit.reason = ExitReason.EXTERNAL_INTERRUPT
      if (ic.acknowledgeInterruptOnExit) {
        const v = cpu.highestPendingInterrupt()
        cpu.acknowledgeInterrupt(v)
        cpu.exit.interruptionInformation = v | (InterruptionType.EXTERNAL_INTERRUPT << 8) | (1 << 31)
      }
      return RunOutcome.VM_EXIT
    }
    if (ic.nmiWindowExiting && !nmiBlocked && !movSs) {
      cpu.exit.clear()
      cpu.exit.reason = ExitReason.NMI_WINDOW
      return RunOutcome.VM_EXIT
    }
    if (ic.interruptWindowExiting && ifSet && !shadow) {
      cpu.exit.clear()
      cpu.exit.reason = ExitReason.INTERRUPT_WINDOW
      return RunOutcome.VM_EXIT
    }
  }
  if (cpu.nmiPending && !nmiBlocked && !movSs) {
    cpu.nmiPending = false
    k.deliver(2, InterruptionType.NMI, -1, cpu.rip, 0)
    cpu.interruptibility |= Interruptibility.NMI
    cpu.attention = 1
    return DELIVERED
  }
  if (irq && ifSet && !shadow) {
    const v = cpu.highestPendingInterrupt()
    cpu.acknowledgeInterrupt(v)
    k.deliver(v, InterruptionType.EXTERNAL_INTERRUPT, -1, cpu.rip, 0)
    cpu.attention = 1
    return DELIVERED
  }
  if (cpu.activityState !== ActivityState.ACTIVE) {
    cpu.attention = 1
    return cpu.activityState === ActivityState.SHUTDOWN ? RunOutcome.SHUTDOWN : RunOutcome.HALTED
  }
  // NMI exiting and external-interrupt exiting matter only while such an event is pending, and
  // requestNmi/requestInterrupt set cpu.attention when one arrives: without a pending event they
  // must not send every instruction through here (KVM always sets both pin controls).
  const windows =
    ic !== null && (ic.interruptWindowExiting || ic.nmiWindowExiting || (ic.nmiExiting && cpu.nmiPending) || (ic.externalInterruptExiting && irq))
  cpu.attention = shadow || windows || (irq && ifSet) || (cpu.nmiPending && !nmiBlocked) ? 1 : 0
  return CONTINUE
}

// Handler numbers and record field offsets are literals annotated with their names
// (`/* Op.JCC */ 50`, `/* F_LEN */ 2`; test/guest/dispatch-labels.test.ts checks every one):
// V8 emits a jump table only for literal case labels, and imported or module-level constants
// cost a context load (a getter call under some module loaders) on every instruction.
// Imported functions and sentinels are bound to module-local names for the same reason.
const FAULT_ = FAULT
const EXIT_ = EXIT
const SHUTDOWN_ = SHUTDOWN
const fetchDecode_ = fetchDecode
const executeSlow_ = executeSlow
const compileBlock_ = compileBlock
const carryOf_ = carryOf
const HOT = HOT_THRESHOLD
const CANONICAL = 0x8000_0000_0000
const canonicalTarget = (lin: number): boolean => lin < CANONICAL && lin >= -CANONICAL
/** A code map with nothing decoded: lookups through it always go to fetchDecode. */
const NO_CODE = new Int32Array(4096)

const loop = (k: Engine, limit: number): RunOutcome => {
  const cpu = k.cpu
  const lo = cpu.lo
  const hi = cpu.hi
  const F = cpu.flags
  // Re-read after fetchDecode: allocating a record may grow (replace) the array.
  let D = k.cache.records
  // Budget units used, and those that retired no instruction (delivered events, REP chunks,
  // faulting instructions): retired instructions = units - skipped, so the hot path counts once.
  let units = 0
  let skipped = 0
  for (;;) {
    // RIP lives in locals while the loop runs, as the linear base of its 4 KiB page (`base`,
    // an exact double) plus the offset in the page (`pc`, a small integer): the chain from one
    // instruction to the next is then integer adds and two typed-array loads, with no double
    // arithmetic. `map` is the page's decoded-record map when the engine's current code page is
    // this page, else NO_CODE (every lookup misses and goes through fetchDecode). cpu.rip is
    // written back before anything out of line (boundary work, fetch, slow handlers, faults)
    // can read it, and base/pc/map are recomputed after anything that may move RIP.
    let rip = cpu.rip
    let base = Math.floor(rip / 4096) * 4096
    let pc = (rip - base) | 0
    let map = base === k.codeBase ? k.codeMap : NO_CODE
    // cpu.attention in a local: only out-of-line work (boundary, slow handlers) can set it.
    let attention = cpu.attention
    // Set when a branch was taken: the next instruction is a candidate block start. So is the
    // first instruction of a batch (where a VM entry resumes the guest after an exit).
    let landed = true
    try {
      while (units < limit) {
        if (attention !== 0) {
          cpu.rip = base + pc
          const b = boundary(k)
          rip = cpu.rip
          base = Math.floor(rip / 4096) * 4096
          pc = (rip - base) | 0
          map = base === k.codeBase ? k.codeMap : NO_CODE
          attention = cpu.attention
          if (b === DELIVERED) {
            units++
            skipped++
            continue
          }
          if (b >= 0) {
            k.used = units
            cpu.instructionsRetired += units - skipped
            return b as RunOutcome
          }
        }
        let i: number
        if (pc >= 0 && pc < 4096 && (i = map[pc]! - 1) >= 0) {
          // decoded before
        } else {
          rip = base + pc
          cpu.rip = rip
          i = fetchDecode_(k, rip)
          D = k.cache.records
          base = Math.floor(rip / 4096) * 4096
          pc = (rip - base) | 0
          map = base === k.codeBase ? k.codeMap : NO_CODE
        }
        if (landed) {
          landed = false
          // A block runs several instructions without boundary work in between: only when no
          // boundary check is pending (an interrupt shadow or window the entry loaded, say).
          if (attention === 0 && k.blocksEnabled && i !== k.cache.scratch) {
            const bc = k.blocks
            if (bc.generation !== k.cache.generation) bc.reset(k.cache.generation)
            const r = i >> 4
            if (r >= bc.blockOf.length) bc.grow(D.length)
            let b = bc.blockOf[r]!
            if (b === 0 && ++bc.heat[r]! >= HOT) {
              const compiled = compileBlock_(D, map, pc)
              if (compiled === null) b = -1
              else {
                b = bc.functions.length
                bc.functions.push(compiled.fn)
                bc.lengths.push(compiled.length)
              }
              bc.blockOf[r] = b
            }
            if (b > 0 && units + bc.lengths[b]! <= limit) {
              const u = bc.functions[b]!(lo, hi, F, k, base + pc, limit - units, carryOf_)
              units += u
              landed = true
              rip = k.blockRip
              base = Math.floor(rip / 4096) * 4096
              pc = (rip - base) | 0
              map = base === k.codeBase ? k.codeMap : NO_CODE
              continue
            }
          }
        }
        const next = pc + D[i + /* F_LEN */ 2]!
        switch (D[i + /* F_OP */ 0]!) {
          case /* Op.ADD_RR64 */ 119: {
            const d = D[i + /* F_RM */ 7]!
            const s = D[i + /* F_REG */ 6]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            const bLo = lo[s]!
            const bHi = hi[s]!
            const sum = (aLo >>> 0) + (bLo >>> 0)
            const rLo = sum | 0
            const rHi = (aHi + bHi + (sum >= 4294967296 ? 1 : 0)) | 0
            lo[d] = rLo
            hi[d] = rHi
            F.op = 1 // FlagOp.ADD
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = bLo
            F.bHi = bHi
            F.resLo = rLo
            F.resHi = rHi
            pc = next
            break
          }
          case /* Op.SUB_RR64 */ 120: {
            const d = D[i + /* F_RM */ 7]!
            const s = D[i + /* F_REG */ 6]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            const bLo = lo[s]!
            const bHi = hi[s]!
            const diff = (aLo >>> 0) - (bLo >>> 0)
            const rLo = diff | 0
            const rHi = (aHi - bHi - (diff < 0 ? 1 : 0)) | 0
            lo[d] = rLo
            hi[d] = rHi
            F.op = 3 // FlagOp.SUB
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = bLo
            F.bHi = bHi
            F.resLo = rLo
            F.resHi = rHi
            pc = next
            break
          }
          case /* Op.CMP_RR64 */ 127: {
            const d = D[i + /* F_RM */ 7]!
            const s = D[i + /* F_REG */ 6]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            const bLo = lo[s]!
            const bHi = hi[s]!
            const diff = (aLo >>> 0) - (bLo >>> 0)
            F.op = 3 // FlagOp.SUB
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = bLo
            F.bHi = bHi
            F.resLo = diff | 0
            F.resHi = (aHi - bHi - (diff < 0 ? 1 : 0)) | 0
            pc = next
            break
          }
          case /* Op.XOR_RR64 */ 121: {
            const d = D[i + /* F_RM */ 7]!
            const s = D[i + /* F_REG */ 6]!
            const rLo = lo[d]! ^ lo[s]!
            const rHi = hi[d]! ^ hi[s]!
            lo[d] = rLo
            hi[d] = rHi
            F.op = 5 // FlagOp.LOGIC
            F.size = 8
            F.resLo = rLo
            F.resHi = rHi
            pc = next
            break
          }
          case /* Op.XOR_RR32 */ 128: {
            const d = D[i + /* F_RM */ 7]!
            const rLo = lo[d]! ^ lo[D[i + /* F_REG */ 6]!]!
            lo[d] = rLo
            hi[d] = 0
            F.op = 5 // FlagOp.LOGIC
            F.size = 4
            F.resLo = rLo
            F.resHi = 0
            pc = next
            break
          }
          case /* Op.INC_R64 */ 122: {
            const d = D[i + /* F_RM */ 7]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            // CF is preserved: read it from the previous lazy state (INC/DEC chains are common).
            const pop = F.op
            const cf = pop === 6 || pop === 7 ? F.cin : pop === 5 ? 0 : F.cf() ? 1 : 0
            const rLo = (aLo + 1) | 0
            const rHi = aLo === -1 ? (aHi + 1) | 0 : aHi
            lo[d] = rLo
            hi[d] = rHi
            F.op = 6 // FlagOp.INC
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = 1
            F.bHi = 0
            F.resLo = rLo
            F.resHi = rHi
            F.cin = cf
            pc = next
            break
          }
          case /* Op.DEC_R64 */ 123: {
            const d = D[i + /* F_RM */ 7]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            const pop = F.op
            const cf = pop === 6 || pop === 7 ? F.cin : pop === 5 ? 0 : F.cf() ? 1 : 0
            const rLo = (aLo - 1) | 0
            const rHi = aLo === 0 ? (aHi - 1) | 0 : aHi
            lo[d] = rLo
            hi[d] = rHi
            F.op = 7 // FlagOp.DEC
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = 1
            F.bHi = 0
            F.resLo = rLo
            F.resHi = rHi
            F.cin = cf
            pc = next
            break
          }
          case /* Op.JNZ */ 124: {
            const zf = F.op === 0 ? (F.stored & 0x40) !== 0 : F.size === 8 ? (F.resLo | F.resHi) === 0 : F.resLo === 0
            if (!zf) {
              const t = next + D[i + /* F_IMMLO */ 13]!
              // A target inside this (canonical) page needs no check; elsewhere #GP(0) at the branch.
              if ((t < 0 || t >= 4096) && !canonicalTarget(base + t)) {
                cpu.rip = base + pc
                k.gp(0)
              }
              pc = t
              landed = true
            } else pc = next
            break
          }
          case /* Op.JZ */ 125: {
            const zf = F.op === 0 ? (F.stored & 0x40) !== 0 : F.size === 8 ? (F.resLo | F.resHi) === 0 : F.resLo === 0
            if (zf) {
              const t = next + D[i + /* F_IMMLO */ 13]!
              // A target inside this (canonical) page needs no check; elsewhere #GP(0) at the branch.
              if ((t < 0 || t >= 4096) && !canonicalTarget(base + t)) {
                cpu.rip = base + pc
                k.gp(0)
              }
              pc = t
              landed = true
            } else pc = next
            break
          }
          case /* Op.MOV_RR64 */ 126: {
            const d = D[i + /* F_RM */ 7]!
            const s = D[i + /* F_REG */ 6]!
            lo[d] = lo[s]!
            hi[d] = hi[s]!
            pc = next
            break
          }
          case /* Op.ADD_RI64 */ 129: {
            const d = D[i + /* F_RM */ 7]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            const bLo = D[i + /* F_IMMLO */ 13]!
            const bHi = bLo >> 31
            const sum = (aLo >>> 0) + (bLo >>> 0)
            const rLo = sum | 0
            const rHi = (aHi + bHi + (sum >= 4294967296 ? 1 : 0)) | 0
            lo[d] = rLo
            hi[d] = rHi
            F.op = 1 // FlagOp.ADD
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = bLo
            F.bHi = bHi
            F.resLo = rLo
            F.resHi = rHi
            pc = next
            break
          }
          case /* Op.CMP_RI64 */ 130: {
            const d = D[i + /* F_RM */ 7]!
            const aLo = lo[d]!
            const aHi = hi[d]!
            const bLo = D[i + /* F_IMMLO */ 13]!
            const bHi = bLo >> 31
            const diff = (aLo >>> 0) - (bLo >>> 0)
            F.op = 3 // FlagOp.SUB
            F.size = 8
            F.aLo = aLo
            F.aHi = aHi
            F.bLo = bLo
            F.bHi = bHi
            F.resLo = diff | 0
            F.resHi = (aHi - bHi - (diff < 0 ? 1 : 0)) | 0
            pc = next
            break
          }
          case /* Op.ENDBR */ 132:
            pc = next
            break
          case /* Op.MOV_RR32 */ 133: {
            // A 32-bit destination is zero-extended into bits 63:32 (`mov ebx, ecx`).
            const d = D[i + /* F_RM */ 7]!
            lo[d] = lo[D[i + /* F_REG */ 6]!]!
            hi[d] = 0
            pc = next
            break
          }
          case /* Op.MOV_RI */ 134: {
            // B8+r: the record holds the whole value (immHi is 0 for the 32-bit form).
            const d = D[i + /* F_REG */ 6]!
            lo[d] = D[i + /* F_IMMLO */ 13]!
            hi[d] = D[i + /* F_IMMHI */ 14]!
            pc = next
            break
          }
          case /* Op.VMCALL */ 108: {
            // The hypercall instruction: in VMX non-root operation it always exits (no control
            // decides it), so the exit is filled here without the trip through executeSlow.
            if (cpu.intercepts === null) {
              cpu.rip = base + pc
              k.ud()
            }
            instructionExit(k, ExitReason.VMCALL, base + pc, D[i + /* F_LEN */ 2]!)
            k.used = units
            cpu.instructionsRetired += units - skipped
            return RunOutcome.VM_EXIT
          }
          default: {
            // Outside the dense range 108..134 (which V8 turns into a jump table): the other
            // hot branches, then everything else in executeSlow (its own jump table).
            const op = D[i + /* F_OP */ 0]!
            if (op === /* Op.JCC */ 50) {
              if (F.cond(D[i + /* F_SUB */ 1]!)) {
                const t = next + D[i + /* F_IMMLO */ 13]!
                if ((t < 0 || t >= 4096) && !canonicalTarget(base + t)) {
                  cpu.rip = base + pc
                  k.gp(0)
                }
                pc = t
                landed = true
              } else pc = next
              break
            }
            if (op === /* Op.JMP_REL */ 51) {
              const t = next + D[i + /* F_IMMLO */ 13]!
              // A target inside this (canonical) page needs no check; elsewhere #GP(0) at the branch.
              if ((t < 0 || t >= 4096) && !canonicalTarget(base + t)) {
                cpu.rip = base + pc
                k.gp(0)
              }
              pc = t
              landed = true
              break
            }
            if (op === /* Op.NOP */ 77) {
              pc = next
              break
            }
            // CPUID always exits in VMX non-root operation, HLT under HLT exiting (at CPL 0; at
            // CPL 3 executeSlow raises #GP first): the exits KVM sees most after VMCALL.
            const ic = cpu.intercepts
            if (ic !== null && (op === /* Op.CPUID */ 86 || (op === /* Op.HLT */ 85 && cpu.cpl === 0 && ic.exitsOnHlt()))) {
              instructionExit(k, op === /* Op.CPUID */ 86 ? ExitReason.CPUID : ExitReason.HLT, base + pc, D[i + /* F_LEN */ 2]!)
              k.used = units
              cpu.instructionsRetired += units - skipped
              return RunOutcome.VM_EXIT
            }
            rip = base + pc
            cpu.rip = rip
            const r = executeSlow_(k, D, i, rip, base + next)
            rip = cpu.rip
            base = Math.floor(rip / 4096) * 4096
            pc = (rip - base) | 0
            map = base === k.codeBase ? k.codeMap : NO_CODE
            attention = cpu.attention
            if (r >= 0) {
              k.used = units
              cpu.instructionsRetired += units - skipped
              return r as RunOutcome
            }
            if (r === -2) {
              // A chunk of a REP string instruction: each iteration uses one unit of budget,
              // and the instruction retires only when its last chunk completes.
              units += k.repIterations
              skipped += k.repIterations
              continue
            }
            if (r === /* FAULTED */ -3) {
              // A guest exception returned by the handler (no throw): deliver it now, RIP at
              // the faulting instruction. An exit or shutdown during delivery still throws.
              units++
              skipped++
              k.deliver(k.faultVector, /* InterruptionType.HARDWARE_EXCEPTION */ 3, k.faultError, cpu.rip, 0)
              rip = cpu.rip
              base = Math.floor(rip / 4096) * 4096
              pc = (rip - base) | 0
              map = base === k.codeBase ? k.codeMap : NO_CODE
              attention = cpu.attention
              continue
            }
          }
        }
        units++
      }
      cpu.rip = base + pc
      k.used = units
      cpu.instructionsRetired += units - skipped
      return RunOutcome.BUDGET
    } catch (e) {
      if (e === FAULT_) {
        units++
        skipped++
        try {
          k.deliver(k.faultVector, InterruptionType.HARDWARE_EXCEPTION, k.faultError, cpu.rip, 0)
        } catch (e2) {
          if (e2 === EXIT_) return finish(k, units - skipped, units, RunOutcome.VM_EXIT)
          if (e2 === SHUTDOWN_) return finish(k, units - skipped, units, RunOutcome.SHUTDOWN)
          throw e2
        }
        continue
      }
      if (e === EXIT_) return finish(k, units - skipped, units, RunOutcome.VM_EXIT)
      if (e === SHUTDOWN_) return finish(k, units - skipped, units, RunOutcome.SHUTDOWN)
      throw e
    }
  }
}

/**
 * An exit caused by the instruction at `rip` (`length` bytes) that no control qualifies further
 * (VMCALL, CPUID, HLT under HLT exiting): RIP stays at the instruction, the exit record holds
 * only the reason and the instruction length, as executeSlow's handlers would leave them.
 */
const instructionExit = (k: Engine, reason: number, rip: number, length: number): void => {
  k.cpu.rip = rip
  k.curLen = length
  k.nextRip = rip + length
  k.exitNow(reason, 0, 0, 0)
}

const finish = (k: Engine, n: number, units: number, r: RunOutcome): RunOutcome => {
  k.used = units
  k.cpu.instructionsRetired += n
  k.deliveringVector = -1
  return r
}

/**
 * VM-entry event injection (SDM Vol. 3C 27.6): delivers `vector` of InterruptionType `type`
 * (0 external interrupt, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged
 * software exception, 6 software exception) through the guest IDT as if at the instruction
 * boundary at RIP. The injected event itself is not subject to the exception bitmap; a fault
 * while delivering it is (and escalates to #DF / triple fault as usual). Software events push
 * RIP + `length` (the VM-entry instruction length). `errorCode` is -1 when the event has none.
 * Type 7 ("other event", a pending MTF exit) delivers nothing. Returns true when the guest can
 * run; false when the delivery caused a VM exit (`cpu.exit` filled, the injected event in its
 * IDT-vectoring fields) or, without intercepts, a triple fault (activity state shutdown).
 */
export const injectEvent = (cpu: CpuState, vector: number, type: number, errorCode: number, length: number): boolean => {
  if (type === 7) return true
  const k = engineOf(cpu)
  const software =
    type === InterruptionType.SOFTWARE_INTERRUPT || type === InterruptionType.SOFTWARE_EXCEPTION || type === InterruptionType.PRIVILEGED_SOFTWARE_EXCEPTION
  const returnRip = software ? cpu.rip + length : cpu.rip
  cpu.activityState = ActivityState.ACTIVE
  k.injecting = true
  try {
    k.deliver(vector & 0xff, type, errorCode, returnRip, software ? length : 0, cpu.rip)
  } catch (e) {
    k.deliveringVector = -1
    if (e === EXIT || e === SHUTDOWN) return false
    throw e
  } finally {
    k.injecting = false
  }
  cpu.attention = 1
  return true
}

/**
 * Completes the data access of an MMIO exit (EPT violation with `exit.mmioSize > 0`) the way
 * KVM does after user space handled KVM_EXIT_MMIO: the next runBatch re-executes the
 * instruction, and its access to that guest-physical address reads `data` (for a read) or is
 * consumed (for a write) instead of exiting again.
 */
export const completeMmioAccess = (cpu: CpuState, data: bigint = 0n): void => {
  const k = engineOf(cpu)
  const x = cpu.exit
  k.mmioReplayGpa = x.guestPhysicalHi * TWO32 + (x.guestPhysicalLo >>> 0)
  k.mmioReplayLo = Number(BigInt.asIntN(32, data))
  k.mmioReplayHi = Number(BigInt.asIntN(32, data >> 32n))
}
