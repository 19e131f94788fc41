// String instructions (MOVS STOS LODS SCAS CMPS INS OUTS) with REP/REPE/REPNE. A REP
// instruction runs in chunks of at most CHUNK iterations; between chunks RIP stays on the
// instruction with RCX/RSI/RDI updated, exactly as an interrupted REP string instruction
// leaves them, so events and budgets are honoured for any count.

import { Rflags } from "../../arch/x86.ts"
import { FL_REP, FL_REPNE } from "../decode/cache.ts"
import { Alu, Op } from "../decode/ops.ts"
import { alu } from "./alu.ts"
import { EXITED, type Engine, TWO32 } from "./engine.ts"
import { ioCheck } from "./system.ts"

const CHUNK = 256

/** Reads a pointer register at address size as a linear address (without segment base). */
const ptr = (k: Engine, r: number, asz: number): number =>
  asz === 8 ? k.cpu.hi[r]! * TWO32 + (k.cpu.lo[r]! >>> 0) : k.cpu.lo[r]! >>> 0

const advance = (k: Engine, r: number, asz: number, delta: number): void => {
  const cpu = k.cpu
  const s = (cpu.lo[r]! >>> 0) + delta
  cpu.lo[r] = s | 0
  if (asz === 8) {
    if (s >= TWO32) cpu.hi[r] = (cpu.hi[r]! + 1) | 0
    else if (s < 0) cpu.hi[r] = (cpu.hi[r]! - 1) | 0
  } else cpu.hi[r] = 0
}

const counterZero = (k: Engine, asz: number): boolean =>
  asz === 8 ? (k.cpu.lo[1]! | k.cpu.hi[1]!) === 0 : k.cpu.lo[1]! === 0

const decCounter = (k: Engine, asz: number): void => advance(k, 1, asz, -1)

export const stringOp = (k: Engine, D: Int32Array, i: number, next: number): number => {
  const cpu = k.cpu
  const op = D[i + /* F_OP */ 0]!
  const size = D[i + /* F_OSZ */ 3]!
  const asz = D[i + /* F_ASZ */ 4]!
  const flags = D[i + /* F_FLAGS */ 15]!
  const rep = (flags & (FL_REP | FL_REPNE)) !== 0
  const repne = (flags & FL_REPNE) !== 0
  const seg = D[i + /* F_SEG */ 5]!
  const segBase = seg >= 4 ? cpu.segBaseHi[seg]! * TWO32 + (cpu.segBaseLo[seg]! >>> 0) : 0
  const delta = (cpu.rflagsRest & Rflags.DF) !== 0 ? -size : size
  const conditional = op === Op.SCAS || op === Op.CMPS
  if (op === Op.INS || op === Op.OUTS) {
    const port = cpu.lo[2]! & 0xffff
    const lin = op === Op.INS ? ptr(k, 7, asz) : segBase + ptr(k, 6, asz)
    // Instruction information: address size (9:7) and, for OUTS, the segment (17:15).
    const info = ((asz === 8 ? 2 : 1) << 7) | (op === Op.OUTS ? (seg >= 0 ? seg : 3) << 15 : 0)
    if (!(rep && counterZero(k, asz)) && ioCheck(k, port, size, op === Op.INS, true, rep, false, lin, info) === EXITED) return EXITED
  }
  let n = 0
  for (;;) {
    if (rep) {
      if (counterZero(k, asz)) break
      if (n === CHUNK) {
        k.repIterations = n
        return -2
      }
    }
    switch (op) {
      case /* Op.MOVS */ 67: {
        const src = segBase + ptr(k, 6, asz)
        const dst = ptr(k, 7, asz)
        const v = k.read(src, size)
        k.write(dst, size, v, k.tHi)
        advance(k, 6, asz, delta)
        advance(k, 7, asz, delta)
        break
      }
      case /* Op.STOS */ 68: {
        const v = k.getReg(0, size)
        k.write(ptr(k, 7, asz), size, v, k.tHi)
        advance(k, 7, asz, delta)
        break
      }
      case /* Op.LODS */ 69: {
        const v = k.read(segBase + ptr(k, 6, asz), size)
        k.setReg(0, size, v, k.tHi)
        advance(k, 6, asz, delta)
        break
      }
      case /* Op.SCAS */ 70: {
        const m = k.read(ptr(k, 7, asz), size)
        const mh = k.tHi
        const a = k.getReg(0, size)
        alu(k, Alu.CMP, size, a, k.tHi, m, mh)
        advance(k, 7, asz, delta)
        break
      }
      case /* Op.CMPS */ 71: {
        const a = k.read(segBase + ptr(k, 6, asz), size)
        const ah = k.tHi
        const b = k.read(ptr(k, 7, asz), size)
        alu(k, Alu.CMP, size, a, ah, b, k.tHi)
        advance(k, 6, asz, delta)
        advance(k, 7, asz, delta)
        break
      }
      case /* Op.INS */ 94: {
        // Nothing answers on the port: the data read is all ones.
        k.write(ptr(k, 7, asz), size, -1, 0)
        advance(k, 7, asz, delta)
        break
      }
      default: {
        k.read(segBase + ptr(k, 6, asz), size)
        advance(k, 6, asz, delta)
        break
      }
    }
    n++
    if (!rep) break
    decCounter(k, asz)
    if (conditional) {
      const zf = cpu.flags.zf()
      if (repne ? zf : !zf) break
    }
  }
  cpu.rip = next
  return -1
}
