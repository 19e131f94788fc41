// Every instruction the hot loop in run.ts does not special-case. One function with one dense
// switch on the handler number; operands come from the decoded record `D[i + F_*]`.
// Returns -1 when the instruction completed (RIP updated), -2 when it must run again without
// retiring (a REP string chunk), or a RunOutcome to return from runBatch.

import { ExitReason } from "../../arch/exit-reasons.ts"
import { Cr4, Rflags } from "../../arch/x86.ts"
import { ActivityState, Interruptibility, Seg } from "../cpu/state.ts"
import {
  FL_MEM,
  FL_REXW,
  FL_TOOLONG,
  IMM2_SHIFT,
} from "../decode/cache.ts"
import { RIP_BASE } from "../decode/decoder.ts"
import { Alu, Op } from "../decode/ops.ts"
import { InterruptionType } from "../intercept.ts"
import { alu, highestBit, incDec, lowestBit, mask, multiply, popcount32, prod, setFlags, shift, shiftDouble } from "./alu.ts"
import { EXIT, EXITED, type Engine, TWO32 } from "./engine.ts"
import * as sys from "./system.ts"
import { stringOp } from "./string.ts"

const CANON = 0x8000_0000_0000

/** Effective address → linear address (exact double). `withSeg` adds the FS/GS base (LEA does not). */
export const effectiveAddress = (k: Engine, D: Int32Array, i: number, next: number, withSeg: boolean): number => {
  const cpu = k.cpu
  const base = D[i + /* F_BASE */ 8]!
  const index = D[i + /* F_INDEX */ 9]!
  let lo = D[i + /* F_DISPLO */ 11]! >>> 0
  let hi = D[i + /* F_DISPHI */ 12]!
  if (base >= 0) {
    if (base === RIP_BASE) {
      lo += ((next % TWO32) + TWO32) % TWO32
      hi += Math.floor(next / TWO32)
    } else {
      lo += cpu.lo[base]! >>> 0
      hi += cpu.hi[base]!
    }
  }
  if (index >= 0) {
    const m = 1 << D[i + /* F_SCALE */ 10]!
    lo += (cpu.lo[index]! >>> 0) * m
    hi += cpu.hi[index]! * m
  }
  let carry = Math.floor(lo / TWO32)
  lo -= carry * TWO32
  hi = (hi + carry) | 0
  if (D[i + /* F_ASZ */ 4] === 4) hi = 0
  if (withSeg) {
    const seg = D[i + /* F_SEG */ 5]!
    if (seg >= 4) {
      lo += cpu.segBaseLo[seg]! >>> 0
      carry = lo >= TWO32 ? 1 : 0
      if (carry) lo -= TWO32
      hi = (hi + cpu.segBaseHi[seg]! + carry) | 0
    }
  }
  return hi * TWO32 + lo
}

const isMem = (D: Int32Array, i: number): boolean => (D[i + /* F_FLAGS */ 15]! & FL_MEM) !== 0

/** Reads the r/m operand (memory at `lin` or register). High half in k.tHi. */
const readRm = (k: Engine, D: Int32Array, i: number, size: number, lin: number): number =>
  isMem(D, i) ? k.read(lin, size) : k.getReg(D[i + /* F_RM */ 7]!, size)

const writeRm = (k: Engine, D: Int32Array, i: number, size: number, lin: number, lo: number, hi: number): void => {
  if (isMem(D, i)) k.write(lin, size, lo, hi)
  else k.setReg(D[i + /* F_RM */ 7]!, size, lo, hi)
}

const branch = (k: Engine, target: number): void => {
  if (target >= CANON || target < -CANON) k.gp(0)
  k.cpu.rip = target
}

/** Sign-extended immediate of the record at operand size (for size < 8 the low half suffices). */
const immLo = (D: Int32Array, i: number, size: number): number => mask(D[i + /* F_IMMLO */ 13]!, size)

const iopl = (k: Engine): number => (k.cpu.rflagsRest >> 12) & 3

export const executeSlow = (k: Engine, D: Int32Array, i: number, rip: number, next: number): number => {
  const cpu = k.cpu
  const op = D[i + /* F_OP */ 0]!
  const size = D[i + /* F_OSZ */ 3]!
  k.curLen = D[i + /* F_LEN */ 2]!
  k.nextRip = next
  switch (op) {
    case /* Op.UD */ 0: {
      if ((D[i + /* F_FLAGS */ 15]! & FL_TOOLONG) !== 0) return k.raise(13, 0)
      return k.raise(6, -1)
    }
    case /* Op.ALU_RM_R */ 1:
    case /* Op.ALU_RM_I */ 3:
    case /* Op.ALU_R_RM */ 2:
    case /* Op.ADD_RR64 */ 119:
    case /* Op.SUB_RR64 */ 120:
    case /* Op.XOR_RR64 */ 121:
    case /* Op.CMP_RR64 */ 127:
    case /* Op.XOR_RR32 */ 128:
    case /* Op.ADD_RI64 */ 129:
    case /* Op.CMP_RI64 */ 130: {
      const sub = D[i + /* F_SUB */ 1]!
      if (op === Op.ALU_R_RM) {
        const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
        const bLo = readRm(k, D, i, size, lin)
        const bHi = k.tHi
        const aLo = k.getReg(D[i + /* F_REG */ 6]!, size)
        const aHi = k.tHi
        const r = alu(k, sub, size, aLo, aHi, bLo, bHi)
        if (sub !== Alu.CMP) k.setReg(D[i + /* F_REG */ 6]!, size, r, k.tHi)
      } else {
        const mem = isMem(D, i)
        const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
        if (mem && sub !== Alu.CMP) k.probeWrite(lin, size)
        let bLo: number
        let bHi: number
        if (op === Op.ALU_RM_I || op === Op.ADD_RI64 || op === Op.CMP_RI64) {
          bLo = D[i + /* F_IMMLO */ 13]!
          bHi = D[i + /* F_IMMHI */ 14]!
        } else {
          bLo = k.getReg(D[i + /* F_REG */ 6]!, size)
          bHi = k.tHi
        }
        const aLo = readRm(k, D, i, size, lin)
        const aHi = k.tHi
        const r = alu(k, sub, size, aLo, aHi, bLo, bHi)
        if (sub !== Alu.CMP) writeRm(k, D, i, size, lin, r, k.tHi)
      }
      cpu.rip = next
      return -1
    }
    case /* Op.TEST_RM_R */ 4:
    case /* Op.TEST_RM_I */ 5: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const aLo = readRm(k, D, i, size, lin)
      const aHi = k.tHi
      let bLo: number
      let bHi: number
      if (op === Op.TEST_RM_I) {
        bLo = D[i + /* F_IMMLO */ 13]!
        bHi = D[i + /* F_IMMHI */ 14]!
      } else {
        bLo = k.getReg(D[i + /* F_REG */ 6]!, size)
        bHi = k.tHi
      }
      alu(k, Alu.AND, size, aLo, aHi, bLo, bHi)
      cpu.rip = next
      return -1
    }
    case /* Op.INC */ 6:
    case /* Op.DEC */ 7:
    case /* Op.INC_R64 */ 122:
    case /* Op.DEC_R64 */ 123:
    case /* Op.NEG */ 8:
    case /* Op.NOT */ 9: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
      if (mem) k.probeWrite(lin, size)
      const aLo = readRm(k, D, i, size, lin)
      const aHi = k.tHi
      let r: number
      if (op === Op.NEG) r = alu(k, Alu.SUB, size, 0, 0, aLo, aHi)
      else if (op === Op.NOT) {
        r = ~aLo
        k.tHi = ~aHi
      } else r = incDec(k, op === Op.DEC || op === Op.DEC_R64, size, aLo, aHi)
      writeRm(k, D, i, size, lin, r, k.tHi)
      cpu.rip = next
      return -1
    }
    case /* Op.MUL */ 10:
    case /* Op.IMUL1 */ 11: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const bLo = readRm(k, D, i, size, lin)
      const bHi = k.tHi
      const aLo = k.getReg(0, size)
      const aHi = k.tHi
      multiply(k, op === Op.IMUL1, size, aLo, aHi, bLo, bHi)
      if (size === 1) k.setReg(0, 2, (prod[0]! & 0xff) | ((prod[2]! & 0xff) << 8), 0)
      else if (size === 8) {
        cpu.lo[0] = prod[0]!
        cpu.hi[0] = prod[1]!
        cpu.lo[2] = prod[2]!
        cpu.hi[2] = prod[3]!
      } else {
        k.setReg(0, size, prod[0]!, 0)
        k.setReg(2, size, prod[2]!, 0)
      }
      cpu.rip = next
      return -1
    }
    case /* Op.IMUL2 */ 12:
    case /* Op.IMUL3 */ 13: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const bLo = readRm(k, D, i, size, lin)
      const bHi = k.tHi
      let aLo: number
      let aHi: number
      if (op === Op.IMUL3) {
        aLo = D[i + /* F_IMMLO */ 13]!
        aHi = D[i + /* F_IMMHI */ 14]!
      } else {
        aLo = k.getReg(D[i + /* F_REG */ 6]!, size)
        aHi = k.tHi
      }
      multiply(k, true, size, aLo, aHi, bLo, bHi)
      k.setReg(D[i + /* F_REG */ 6]!, size, prod[0]!, size === 8 ? prod[1]! : 0)
      cpu.rip = next
      return -1
    }
    case /* Op.DIV */ 14:
    case /* Op.IDIV */ 15: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const bLo = readRm(k, D, i, size, lin)
      const bHi = k.tHi
      divide(k, op === Op.IDIV, size, bLo, bHi)
      cpu.rip = next
      return -1
    }
    case /* Op.SHIFT */ 16: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
      const sub = D[i + /* F_SUB */ 1]!
      const kind = sub >> 3
      const count = kind === 0 ? D[i + /* F_IMMLO */ 13]! & 0xff : kind === 1 ? 1 : cpu.lo[1]! & 0xff
      const masked = count & (size === 8 ? 63 : 31)
      if (mem && masked !== 0) k.probeWrite(lin, size)
      const aLo = readRm(k, D, i, size, lin)
      const aHi = k.tHi
      const r = shift(k, sub & 7, size, aLo, aHi, count)
      if (masked !== 0) writeRm(k, D, i, size, lin, r, k.tHi)
      else if (!mem && size === 4) k.setReg(D[i + /* F_RM */ 7]!, 4, aLo, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.SHLD */ 17:
    case /* Op.SHRD */ 18: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
      const count = D[i + /* F_SUB */ 1] === 0 ? D[i + /* F_IMMLO */ 13]! & 0xff : cpu.lo[1]! & 0xff
      const masked = count & (size === 8 ? 63 : 31)
      if (mem && masked !== 0) k.probeWrite(lin, size)
      const aLo = readRm(k, D, i, size, lin)
      const aHi = k.tHi
      const bLo = k.getReg(D[i + /* F_REG */ 6]!, size)
      const bHi = k.tHi
      const r = shiftDouble(k, op === Op.SHLD, size, aLo, aHi, bLo, bHi, count)
      if (masked !== 0) writeRm(k, D, i, size, lin, r, k.tHi)
      else if (!mem && size === 4) k.setReg(D[i + /* F_RM */ 7]!, 4, aLo, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.BT */ 19: {
      const sub = D[i + /* F_SUB */ 1]!
      const opn = sub & 3
      const byImm = (sub & 4) !== 0
      const bits = size * 8
      let lin = 0
      let bitIndex: number
      const mem = isMem(D, i)
      if (byImm) bitIndex = D[i + /* F_IMMLO */ 13]! & (bits - 1)
      else {
        const offLo = k.getReg(D[i + /* F_REG */ 6]!, size)
        const offHi = k.tHi
        if (mem) {
          // Register bit offsets reach outside the operand: signed, in operand-size units.
          const signed = size === 8 ? offHi * TWO32 + (offLo >>> 0) : size === 4 ? offLo | 0 : (offLo << 16) >> 16
          const unit = Math.floor(signed / bits)
          bitIndex = signed - unit * bits
          lin = effectiveAddress(k, D, i, next, true) + unit * size
        } else bitIndex = offLo & (bits - 1)
      }
      if (mem && (byImm || lin === 0)) lin = byImm ? effectiveAddress(k, D, i, next, true) : lin
      if (mem && opn !== 0) k.probeWrite(lin, size)
      let vLo = readRm(k, D, i, size, lin)
      let vHi = k.tHi
      const bit = bitIndex < 32 ? (vLo >>> bitIndex) & 1 : (vHi >>> (bitIndex - 32)) & 1
      const old = cpu.flags.materialize()
      setFlags(cpu.flags, (old & ~1) | bit)
      if (opn !== 0) {
        const m = bitIndex < 32 ? 1 << bitIndex : 0
        const mh = bitIndex >= 32 ? 1 << (bitIndex - 32) : 0
        if (opn === 1) {
          vLo |= m
          vHi |= mh
        } else if (opn === 2) {
          vLo &= ~m
          vHi &= ~mh
        } else {
          vLo ^= m
          vHi ^= mh
        }
        writeRm(k, D, i, size, lin, vLo, vHi)
      }
      cpu.rip = next
      return -1
    }
    case /* Op.BSF */ 20:
    case /* Op.BSR */ 21:
    case /* Op.TZCNT */ 22:
    case /* Op.LZCNT */ 23:
    case /* Op.POPCNT */ 24: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      let sLo = readRm(k, D, i, size, lin)
      let sHi = k.tHi
      if (size !== 8) {
        sLo = mask(sLo, size)
        sHi = 0
      }
      const zero = (sLo | sHi) === 0
      const old = cpu.flags.materialize()
      const reg = D[i + /* F_REG */ 6]!
      if (op === Op.POPCNT) {
        const c = popcount32(sLo) + popcount32(sHi)
        k.setReg(reg, size, c, 0)
        setFlags(cpu.flags, zero ? 0x40 : 0)
      } else if (op === Op.BSF || op === Op.BSR) {
        if (zero) {
          setFlags(cpu.flags, (old & ~0x40) | 0x40)
        } else {
          const idx = op === Op.BSF ? lowestBit(sLo, sHi) : highestBit(sLo, sHi)
          k.setReg(reg, size, idx, 0)
          setFlags(cpu.flags, old & ~0x40)
        }
      } else {
        const bits = size * 8
        let c: number
        if (zero) c = bits
        else if (op === Op.TZCNT) c = lowestBit(sLo, sHi)
        else c = bits - 1 - highestBit(sLo, sHi)
        k.setReg(reg, size, c, 0)
        setFlags(cpu.flags, (old & ~0x41) | (zero ? 1 : 0) | (c === 0 ? 0x40 : 0))
      }
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_RM_R */ 25: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const v = k.getReg(D[i + /* F_REG */ 6]!, size)
      writeRm(k, D, i, size, lin, v, k.tHi)
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_R_RM */ 26: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const v = readRm(k, D, i, size, lin)
      k.setReg(D[i + /* F_REG */ 6]!, size, v, k.tHi)
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_RM_I */ 27: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      writeRm(k, D, i, size, lin, D[i + /* F_IMMLO */ 13]!, D[i + /* F_IMMHI */ 14]!)
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_R_I */ 28:
      k.setReg(D[i + /* F_REG */ 6]!, size, D[i + /* F_IMMLO */ 13]!, D[i + /* F_IMMHI */ 14]!)
      cpu.rip = next
      return -1
    case /* Op.MOV_MOFFS_LOAD */ 29:
    case /* Op.MOV_MOFFS_STORE */ 30: {
      const lin = effectiveAddress(k, D, i, next, true)
      if (op === Op.MOV_MOFFS_LOAD) {
        const v = k.read(lin, size)
        k.setReg(0, size, v, k.tHi)
      } else {
        const v = k.getReg(0, size)
        k.write(lin, size, v, k.tHi)
      }
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_FROM_SREG */ 31: {
      const sel = cpu.segSel[D[i + /* F_REG */ 6]!]! & 0xffff
      if (isMem(D, i)) k.write16(effectiveAddress(k, D, i, next, true), sel)
      else k.setReg(D[i + /* F_RM */ 7]!, size === 2 ? 2 : size, sel, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_TO_SREG */ 32: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const sel = isMem(D, i) ? k.read16(lin) : cpu.lo[D[i + /* F_RM */ 7]!]! & 0xffff
      sys.loadSegment(k, D[i + /* F_REG */ 6]!, sel)
      cpu.rip = next
      return -1
    }
    case /* Op.MOV_FROM_CR */ 33:
      if (sys.movFromCr(k, D[i + /* F_REG */ 6]!, D[i + /* F_RM */ 7]!) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.MOV_TO_CR */ 34:
      if (sys.movToCr(k, D[i + /* F_REG */ 6]!, D[i + /* F_RM */ 7]!) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.MOV_FROM_DR */ 35:
    case /* Op.MOV_TO_DR */ 36:
      if (sys.movDr(k, D[i + /* F_REG */ 6]!, D[i + /* F_RM */ 7]!, op === Op.MOV_TO_DR) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.MOVZX */ 37:
    case /* Op.MOVSX */ 38:
    case /* Op.MOVSXD */ 39: {
      const src = op === Op.MOVSXD ? 4 : D[i + /* F_SUB */ 1]!
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      let v = readRm(k, D, i, src, lin)
      let vh = 0
      if (op === Op.MOVZX) v = mask(v, src)
      else {
        if (src === 1) v = (v << 24) >> 24
        else if (src === 2) v = (v << 16) >> 16
        vh = v >> 31
      }
      k.setReg(D[i + /* F_REG */ 6]!, size, v, vh)
      cpu.rip = next
      return -1
    }
    case /* Op.LEA */ 40: {
      const lin = effectiveAddress(k, D, i, next, false)
      const lo = ((lin % TWO32) + TWO32) % TWO32 | 0
      const hi = Math.floor(lin / TWO32) | 0
      k.setReg(D[i + /* F_REG */ 6]!, size, lo, hi)
      cpu.rip = next
      return -1
    }
    case /* Op.XCHG */ 41: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
      if (mem) k.probeWrite(lin, size)
      const aLo = readRm(k, D, i, size, lin)
      const aHi = k.tHi
      const bLo = k.getReg(D[i + /* F_REG */ 6]!, size)
      const bHi = k.tHi
      writeRm(k, D, i, size, lin, bLo, bHi)
      k.setReg(D[i + /* F_REG */ 6]!, size, aLo, aHi)
      cpu.rip = next
      return -1
    }
    case /* Op.CMPXCHG */ 42: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
      if (mem) k.probeWrite(lin, size)
      const dLo = readRm(k, D, i, size, lin)
      const dHi = k.tHi
      const aLo = k.getReg(0, size)
      const aHi = k.tHi
      alu(k, Alu.CMP, size, aLo, aHi, dLo, dHi)
      if (cpu.flags.zf()) {
        const sLo = k.getReg(D[i + /* F_REG */ 6]!, size)
        writeRm(k, D, i, size, lin, sLo, k.tHi)
      } else {
        if (mem) k.write(lin, size, dLo, dHi)
        k.setReg(0, size, dLo, dHi)
      }
      cpu.rip = next
      return -1
    }
    case /* Op.CMPXCHG8B */ 43: {
      const lin = effectiveAddress(k, D, i, next, true)
      const wide = (D[i + /* F_FLAGS */ 15]! & FL_REXW) !== 0
      if (wide && lin % 16 !== 0) return k.raise(13, 0)
      k.probeWrite(lin, wide ? 16 : 8)
      if (!wide) {
        const mLo = k.read32(lin)
        const mHi = k.read32(lin + 4)
        const equal = mLo === cpu.lo[0] && mHi === cpu.lo[2]
        const old = cpu.flags.materialize()
        setFlags(cpu.flags, (old & ~0x40) | (equal ? 0x40 : 0))
        if (equal) {
          k.write32(lin, cpu.lo[3]!)
          k.write32(lin + 4, cpu.lo[1]!)
        } else {
          k.write32(lin, mLo)
          k.write32(lin + 4, mHi)
          cpu.lo[0] = mLo
          cpu.hi[0] = 0
          cpu.lo[2] = mHi
          cpu.hi[2] = 0
        }
      } else {
        const m0 = k.read64(lin)
        const m0h = k.tHi
        const m1 = k.read64(lin + 8)
        const m1h = k.tHi
        const equal = m0 === cpu.lo[0] && m0h === cpu.hi[0] && m1 === cpu.lo[2] && m1h === cpu.hi[2]
        const old = cpu.flags.materialize()
        setFlags(cpu.flags, (old & ~0x40) | (equal ? 0x40 : 0))
        if (equal) {
          k.write64(lin, cpu.lo[3]!, cpu.hi[3]!)
          k.write64(lin + 8, cpu.lo[1]!, cpu.hi[1]!)
        } else {
          k.write64(lin, m0, m0h)
          k.write64(lin + 8, m1, m1h)
          cpu.lo[0] = m0
          cpu.hi[0] = m0h
          cpu.lo[2] = m1
          cpu.hi[2] = m1h
        }
      }
      cpu.rip = next
      return -1
    }
    case /* Op.XADD */ 44: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : 0
      if (mem) k.probeWrite(lin, size)
      const dLo = readRm(k, D, i, size, lin)
      const dHi = k.tHi
      const sLo = k.getReg(D[i + /* F_REG */ 6]!, size)
      const sHi = k.tHi
      const r = alu(k, Alu.ADD, size, dLo, dHi, sLo, sHi)
      const rHi = k.tHi
      k.setReg(D[i + /* F_REG */ 6]!, size, dLo, dHi)
      writeRm(k, D, i, size, lin, r, rHi)
      cpu.rip = next
      return -1
    }
    case /* Op.BSWAP */ 45: {
      const r = D[i + /* F_REG */ 6]!
      if (size === 8) {
        const l = cpu.lo[r]!
        const h = cpu.hi[r]!
        cpu.lo[r] = bswap32(h)
        cpu.hi[r] = bswap32(l)
      } else if (size === 4) {
        cpu.lo[r] = bswap32(cpu.lo[r]!)
        cpu.hi[r] = 0
      } else k.setReg(r, 2, 0, 0) // 16-bit BSWAP is undefined; Intel CPUs produce 0
      cpu.rip = next
      return -1
    }
    case /* Op.CONVERT_A */ 46: {
      if (size === 2) k.setReg(0, 2, (cpu.lo[0]! << 24) >> 24, 0)
      else if (size === 4) k.setReg(0, 4, (cpu.lo[0]! << 16) >> 16, 0)
      else cpu.hi[0] = cpu.lo[0]! >> 31
      cpu.rip = next
      return -1
    }
    case /* Op.CONVERT_D */ 47: {
      if (size === 2) k.setReg(2, 2, (cpu.lo[0]! << 16) >> 31, 0)
      else if (size === 4) k.setReg(2, 4, cpu.lo[0]! >> 31, 0)
      else {
        cpu.lo[2] = cpu.hi[0]! >> 31
        cpu.hi[2] = cpu.hi[0]! >> 31
      }
      cpu.rip = next
      return -1
    }
    case /* Op.SETCC */ 48: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      writeRm(k, D, i, 1, lin, cpu.flags.cond(D[i + /* F_SUB */ 1]!) ? 1 : 0, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.CMOVCC */ 49: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const v = readRm(k, D, i, size, lin)
      const vh = k.tHi
      const r = D[i + /* F_REG */ 6]!
      if (cpu.flags.cond(D[i + /* F_SUB */ 1]!)) k.setReg(r, size, v, vh)
      else if (size === 4) cpu.hi[r] = 0
      cpu.rip = next
      return -1
    }
    case /* Op.JCC */ 50:
    case /* Op.JNZ */ 124:
    case /* Op.JZ */ 125:
    case /* Op.JMP_REL */ 51:
    case /* Op.NOP */ 77:
    case /* Op.ENDBR */ 132:
    case /* Op.MOV_RR64 */ 126:
    case /* Op.MOV_RR32 */ 133:
    case /* Op.MOV_RI */ 134:
    case /* Op.VMCALL */ 108:
      // Handled in run.ts; reached only if the fast path ever delegates.
      throw new Error(`executeSlow: fast-path handler ${op} delegated`)
    case /* Op.JMP_RM */ 52: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const t = readRm(k, D, i, 8, lin)
      branch(k, k.tHi * TWO32 + (t >>> 0))
      return -1
    }
    case /* Op.CALL_REL */ 53: {
      const t = next + D[i + /* F_IMMLO */ 13]!
      if (t >= CANON || t < -CANON) return k.raise(13, 0)
      k.push64(((next % TWO32) + TWO32) % TWO32 | 0, Math.floor(next / TWO32))
      cpu.rip = t
      return -1
    }
    case /* Op.CALL_RM */ 54: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const tLo = readRm(k, D, i, 8, lin)
      const t = k.tHi * TWO32 + (tLo >>> 0)
      if (t >= CANON || t < -CANON) return k.raise(13, 0)
      k.push64(((next % TWO32) + TWO32) % TWO32 | 0, Math.floor(next / TWO32))
      cpu.rip = t
      return -1
    }
    case /* Op.RET */ 55: {
      const sp = k.stackTop()
      k.canonical(sp, true)
      const tLo = k.read64(sp)
      const t = k.tHi * TWO32 + (tLo >>> 0)
      if (t >= CANON || t < -CANON) return k.raise(13, 0)
      k.addRsp(8 + (D[i + /* F_SUB */ 1] === 1 ? D[i + /* F_IMMLO */ 13]! & 0xffff : 0))
      cpu.rip = t
      return -1
    }
    case /* Op.LOOP */ 56:
    case /* Op.JRCXZ */ 57: {
      const asz = D[i + /* F_ASZ */ 4]!
      let cLo = cpu.lo[1]!
      let cHi = asz === 8 ? cpu.hi[1]! : 0
      let take: boolean
      if (op === Op.LOOP) {
        if (cLo === 0) cHi = (cHi - 1) | 0
        cLo = (cLo - 1) | 0
        if (asz === 8) {
          cpu.lo[1] = cLo
          cpu.hi[1] = cHi
        } else {
          cpu.lo[1] = cLo
          cpu.hi[1] = 0
          cHi = 0
        }
        const nz = (cLo | cHi) !== 0
        const sub = D[i + /* F_SUB */ 1]!
        take = sub === 2 ? nz : sub === 1 ? nz && cpu.flags.zf() : nz && !cpu.flags.zf()
      } else take = (cLo | cHi) === 0
      if (take) branch(k, next + D[i + /* F_IMMLO */ 13]!)
      else cpu.rip = next
      return -1
    }
    case /* Op.PUSH_R */ 58: {
      const r = D[i + /* F_REG */ 6]!
      if (size === 8) k.push64(cpu.lo[r]!, cpu.hi[r]!)
      else k.push16(cpu.lo[r]! & 0xffff)
      cpu.rip = next
      return -1
    }
    case /* Op.POP_R */ 59: {
      const r = D[i + /* F_REG */ 6]!
      if (size === 8) {
        const v = k.pop64()
        cpu.lo[r] = v
        cpu.hi[r] = k.tHi
      } else k.setReg(r, 2, k.pop16(), 0)
      cpu.rip = next
      return -1
    }
    case /* Op.PUSH_RM */ 60: {
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const v = readRm(k, D, i, size, lin)
      if (size === 8) k.push64(v, k.tHi)
      else k.push16(v)
      cpu.rip = next
      return -1
    }
    case /* Op.POP_RM */ 61: {
      const sp = k.stackTop()
      k.canonical(sp, true)
      const v = size === 8 ? k.read64(sp) : k.read16(sp)
      const vh = size === 8 ? k.tHi : 0
      const savedLo = cpu.lo[4]!
      const savedHi = cpu.hi[4]!
      k.addRsp(size)
      try {
        // The destination address is computed with the incremented RSP.
        const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
        writeRm(k, D, i, size, lin, v, vh)
      } catch (e) {
        cpu.lo[4] = savedLo
        cpu.hi[4] = savedHi
        throw e
      }
      cpu.rip = next
      return -1
    }
    case /* Op.PUSH_I */ 62:
      if (size === 8) k.push64(D[i + /* F_IMMLO */ 13]!, D[i + /* F_IMMHI */ 14]!)
      else k.push16(D[i + /* F_IMMLO */ 13]! & 0xffff)
      cpu.rip = next
      return -1
    case /* Op.PUSHF */ 63: {
      const v = cpu.getRflags32() & ~(Rflags.VM | Rflags.RF)
      if (size === 8) k.push64(v, 0)
      else k.push16(v & 0xffff)
      cpu.rip = next
      return -1
    }
    case /* Op.POPF */ 64: {
      const v = size === 8 ? k.pop64() : k.pop16()
      const old = cpu.getRflags32()
      let changeable =
        Rflags.CF | Rflags.PF | Rflags.AF | Rflags.ZF | Rflags.SF | Rflags.TF | Rflags.DF | Rflags.OF | Rflags.NT | Rflags.AC | Rflags.ID
      if (cpu.cpl === 0) changeable |= Rflags.IOPL
      if (cpu.cpl <= iopl(k)) changeable |= Rflags.IF
      if (size === 2) changeable &= 0xffff
      cpu.setRflags32((old & ~changeable) | (v & changeable))
      cpu.rip = next
      return -1
    }
    case /* Op.ENTER */ 65: {
      const frameSize = D[i + /* F_IMMLO */ 13]! & 0xffff
      const level = ((D[i + /* F_FLAGS */ 15]! >> IMM2_SHIFT) & 0xff) % 32
      k.push64(cpu.lo[5]!, cpu.hi[5]!)
      const ftLo = cpu.lo[4]!
      const ftHi = cpu.hi[4]!
      if (level > 0) {
        let bp = cpu.hi[5]! * TWO32 + (cpu.lo[5]! >>> 0)
        for (let l = 1; l < level; l++) {
          bp -= 8
          const v = k.read64(bp)
          k.push64(v, k.tHi)
        }
        k.push64(ftLo, ftHi)
      }
      cpu.lo[5] = ftLo
      cpu.hi[5] = ftHi
      k.addRsp(-frameSize)
      cpu.rip = next
      return -1
    }
    case /* Op.LEAVE */ 66: {
      const savedLo = cpu.lo[4]!
      const savedHi = cpu.hi[4]!
      cpu.lo[4] = cpu.lo[5]!
      cpu.hi[4] = cpu.hi[5]!
      try {
        const v = k.pop64()
        cpu.lo[5] = v
        cpu.hi[5] = k.tHi
      } catch (e) {
        cpu.lo[4] = savedLo
        cpu.hi[4] = savedHi
        throw e
      }
      cpu.rip = next
      return -1
    }
    case /* Op.MOVS */ 67:
    case /* Op.STOS */ 68:
    case /* Op.LODS */ 69:
    case /* Op.SCAS */ 70:
    case /* Op.CMPS */ 71:
    case /* Op.INS */ 94:
    case /* Op.OUTS */ 95:
      return stringOp(k, D, i, next)
    case /* Op.FLAGOP */ 72: {
      const sub = D[i + /* F_SUB */ 1]!
      if (sub <= 2) {
        const old = cpu.flags.materialize()
        setFlags(cpu.flags, sub === 0 ? old & ~1 : sub === 1 ? old | 1 : old ^ 1)
      } else if (sub === 3) cpu.rflagsRest &= ~Rflags.DF
      else cpu.rflagsRest |= Rflags.DF
      cpu.rip = next
      return -1
    }
    case /* Op.CLI */ 73:
      if (cpu.cpl > iopl(k)) return k.raise(13, 0)
      cpu.rflagsRest &= ~Rflags.IF
      cpu.rip = next
      return -1
    case /* Op.STI */ 74:
      if (cpu.cpl > iopl(k)) return k.raise(13, 0)
      if ((cpu.rflagsRest & Rflags.IF) === 0) {
        cpu.rflagsRest |= Rflags.IF
        sys.setShadow(k, Interruptibility.STI)
      }
      cpu.attention = 1
      cpu.rip = next
      return -1
    case /* Op.LAHF */ 75: {
      const f = cpu.flags.materialize()
      k.setReg(16, 1, (f & 0xd5) | 2, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.SAHF */ 76: {
      const ah = (cpu.lo[0]! >> 8) & 0xd5
      const old = cpu.flags.materialize()
      setFlags(cpu.flags, (old & ~0xd5) | ah)
      cpu.rip = next
      return -1
    }
    case /* Op.PAUSE */ 78: {
      const ic = cpu.intercepts
      if (ic !== null && ic.exitsOnPause()) return k.exitNow(ExitReason.PAUSE_INSTRUCTION, 0, 0, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.UD2 */ 79:
      return k.raise(6, -1)
    case /* Op.INT */ 80: {
      cpu.rip = next
      try {
        k.deliver(D[i + /* F_IMMLO */ 13]! & 0xff, InterruptionType.SOFTWARE_INTERRUPT, -1, next, k.curLen, rip)
      } catch (e) {
        cpu.rip = rip
        throw e
      }
      return -1
    }
    case /* Op.INT3 */ 81:
    case /* Op.INT1 */ 117: {
      const vector = op === Op.INT3 ? 3 : 1
      const type = op === Op.INT3 ? InterruptionType.SOFTWARE_EXCEPTION : InterruptionType.PRIVILEGED_SOFTWARE_EXCEPTION
      cpu.rip = next
      try {
        k.deliver(vector, type, -1, next, k.curLen, rip)
      } catch (e) {
        if (e === EXIT) cpu.rip = rip // the exit reports the INT3 itself (RIP at it, length in the record)
        else cpu.rip = rip
        throw e
      }
      return -1
    }
    case /* Op.IRET */ 82:
      sys.iret(k, size)
      return -1
    case /* Op.SYSCALL */ 83:
      sys.syscall(k)
      return -1
    case /* Op.SYSRET */ 84:
      sys.sysret(k, (D[i + /* F_FLAGS */ 15]! & FL_REXW) !== 0)
      return -1
    case /* Op.HLT */ 85: {
      if (cpu.cpl !== 0) return k.raise(13, 0)
      const ic = cpu.intercepts
      if (ic !== null && ic.exitsOnHlt()) return k.exitNow(ExitReason.HLT, 0, 0, 0)
      cpu.rip = next
      cpu.activityState = ActivityState.HLT
      cpu.attention = 1
      return -1
    }
    case /* Op.CPUID */ 86:
      if (cpu.intercepts !== null) return k.exitNow(ExitReason.CPUID, 0, 0, 0)
      sys.cpuid(k)
      cpu.rip = next
      return -1
    case /* Op.RDMSR */ 87:
      if (sys.rdmsr(k) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.WRMSR */ 88:
      if (sys.wrmsr(k) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.RDTSC */ 89:
    case /* Op.RDTSCP */ 90:
      if (op === /* Op.RDTSCP */ 90 && cpu.intercepts !== null && cpu.intercepts.rdtscpEnabled === false) return k.raise(6, -1)
      if (sys.rdtsc(k, op === /* Op.RDTSCP */ 90) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.RDPMC */ 91: {
      if ((cpu.cr4 & Cr4.PCE) === 0 && cpu.cpl !== 0) return k.raise(13, 0)
      const ic = cpu.intercepts
      if (ic !== null && ic.exitsOnRdpmc()) return k.exitNow(ExitReason.RDPMC, 0, 0, 0)
      if ((cpu.lo[1]! >>> 0) > 3) return k.raise(13, 0) // general-purpose counters 0..3 only, all reading 0
      k.setReg(0, 4, 0, 0)
      k.setReg(2, 4, 0, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.IN */ 92:
    case /* Op.OUT */ 93: {
      const byDx = D[i + /* F_SUB */ 1] === 1
      const port = byDx ? cpu.lo[2]! & 0xffff : D[i + /* F_IMMLO */ 13]! & 0xff
      if (sys.ioCheck(k, port, size, op === /* Op.IN */ 92, false, false, !byDx, 0, 0) === EXITED) return EXITED
      if (op === Op.IN) k.setReg(0, size, -1, 0) // nothing on the bus: all ones
      cpu.rip = next
      return -1
    }
    case /* Op.LGDT */ 96:
    case /* Op.LIDT */ 97:
      if (cpu.cpl !== 0) return k.raise(13, 0)
      if (descriptorTableExiting(k)) return descriptorTableExit(k, D, i, ExitReason.GDTR_IDTR, op === /* Op.LGDT */ 96 ? 2 : 3)
      sys.lgdtLidt(k, effectiveAddress(k, D, i, next, true), op === Op.LIDT)
      cpu.rip = next
      return -1
    case /* Op.SGDT */ 98:
    case /* Op.SIDT */ 99:
      if ((cpu.cr4 & Cr4.UMIP) !== 0 && cpu.cpl > 0) return k.raise(13, 0)
      if (descriptorTableExiting(k)) return descriptorTableExit(k, D, i, ExitReason.GDTR_IDTR, op === /* Op.SGDT */ 98 ? 0 : 1)
      sys.sgdtSidt(k, effectiveAddress(k, D, i, next, true), op === Op.SIDT)
      cpu.rip = next
      return -1
    case /* Op.LLDT */ 100:
    case /* Op.LTR */ 101: {
      if (cpu.cpl !== 0) return k.raise(13, 0)
      if (descriptorTableExiting(k)) return descriptorTableExit(k, D, i, ExitReason.LDTR_TR, op === /* Op.LLDT */ 100 ? 2 : 3)
      const lin = isMem(D, i) ? effectiveAddress(k, D, i, next, true) : 0
      const sel = isMem(D, i) ? k.read16(lin) : cpu.lo[D[i + /* F_RM */ 7]!]! & 0xffff
      sys.lldtLtr(k, sel, op === Op.LTR)
      cpu.rip = next
      return -1
    }
    case /* Op.SLDT */ 102:
    case /* Op.STR */ 103:
    case /* Op.SMSW */ 104: {
      if ((cpu.cr4 & Cr4.UMIP) !== 0 && cpu.cpl > 0) return k.raise(13, 0)
      if (op !== /* Op.SMSW */ 104 && descriptorTableExiting(k)) {
        return descriptorTableExit(k, D, i, ExitReason.LDTR_TR, op === /* Op.SLDT */ 102 ? 0 : 1)
      }
      const v = op === Op.SMSW ? sys.smswValue(k) : cpu.segSel[op === Op.SLDT ? Seg.LDTR : Seg.TR]! & 0xffff
      if (isMem(D, i)) k.write16(effectiveAddress(k, D, i, next, true), v & 0xffff)
      else k.setReg(D[i + /* F_RM */ 7]!, size, op === Op.SMSW && size === 2 ? v & 0xffff : op === Op.SMSW ? v : v & 0xffff, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.LMSW */ 105: {
      const mem = isMem(D, i)
      const lin = mem ? effectiveAddress(k, D, i, next, true) : NaN
      if (cpu.cpl !== 0) return k.raise(13, 0)
      const v = mem ? k.read16(lin) : cpu.lo[D[i + /* F_RM */ 7]!]! & 0xffff
      if (sys.lmsw(k, v, lin) === EXITED) return EXITED
      cpu.rip = next
      return -1
    }
    case /* Op.CLTS */ 106:
      if (sys.clts(k) === EXITED) return EXITED
      cpu.rip = next
      return -1
    case /* Op.INVLPG */ 107: {
      const lin = effectiveAddress(k, D, i, next, true)
      if (cpu.cpl !== 0) return k.raise(13, 0)
      const ic = cpu.intercepts
      if (ic !== null && ic.exitsOnInvlpg()) {
        return k.exitNow(ExitReason.INVLPG, ((lin % TWO32) + TWO32) % TWO32 | 0, Math.floor(lin / TWO32) | 0, 0)
      }
      k.tlb.flushPage(Math.floor(lin / 4096))
      k.codeBase = NaN
      cpu.rip = next
      return -1
    }
    case /* Op.VMX */ 109: {
      if (cpu.intercepts === null) return k.raise(6, -1)
      const info = vmxInstructionInfo(D, i)
      const disp = isMem(D, i) ? D[i + /* F_DISPLO */ 11]! : 0
      return k.exitNow(D[i + /* F_SUB */ 1]!, disp, isMem(D, i) ? D[i + /* F_DISPHI */ 12]! : 0, info)
    }
    case /* Op.MONITOR */ 110:
    case /* Op.MWAIT */ 111: {
      if (cpu.cpl !== 0) return k.raise(6, -1)
      const ic = cpu.intercepts
      if (op === Op.MONITOR && ic !== null && ic.exitsOnMonitor()) return k.exitNow(ExitReason.MONITOR_INSTRUCTION, 0, 0, 0)
      if (op === Op.MWAIT && ic !== null && ic.exitsOnMwait()) return k.exitNow(ExitReason.MWAIT_INSTRUCTION, 0, 0, 0)
      cpu.rip = next
      return -1
    }
    case /* Op.INVD */ 112:
    case /* Op.WBINVD */ 113:
      if (cpu.cpl !== 0) return k.raise(13, 0)
      if (op === Op.INVD && cpu.intercepts !== null) return k.exitNow(ExitReason.INVD, 0, 0, 0)
      if (op === /* Op.WBINVD */ 113 && cpu.intercepts !== null && cpu.intercepts.exitsOnWbinvd !== undefined && cpu.intercepts.exitsOnWbinvd()) {
        return k.exitNow(ExitReason.WBINVD, 0, 0, 0)
      }
      cpu.rip = next
      return -1
    case /* Op.SWAPGS */ 114:
      sys.swapgs(k)
      cpu.rip = next
      return -1
    case /* Op.PUSH_SEG */ 115: {
      const sel = cpu.segSel[D[i + /* F_SUB */ 1]!]! & 0xffff
      if (size === 8) k.push64(sel, 0)
      else k.push16(sel)
      cpu.rip = next
      return -1
    }
    case /* Op.POP_SEG */ 116: {
      const sp = k.stackTop()
      k.canonical(sp, true)
      const sel = k.read16(sp)
      sys.loadSegment(k, D[i + /* F_SUB */ 1]!, sel)
      k.addRsp(size)
      cpu.rip = next
      return -1
    }
    case /* Op.XLAT */ 118: {
      const seg = D[i + /* F_SEG */ 5]!
      let lin = cpu.hi[3]! * TWO32 + (cpu.lo[3]! >>> 0) + (cpu.lo[0]! & 0xff)
      if (D[i + /* F_ASZ */ 4] === 4) lin = ((cpu.lo[3]! >>> 0) + (cpu.lo[0]! & 0xff)) % TWO32
      if (seg >= 4) lin += cpu.segBaseHi[seg]! * TWO32 + (cpu.segBaseLo[seg]! >>> 0)
      k.setReg(0, 1, k.read8(lin), 0)
      cpu.rip = next
      return -1
    }
    case /* Op.CLAC_STAC */ 131:
      // SMAP is not advertised by CPUID here, so CLAC/STAC are #UD as on such processors.
      return k.raise(6, -1)
    default:
      throw new Error(`executeSlow: no handler for op ${op}`)
  }
}

const bswap32 = (v: number): number => ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)

/** DIV/IDIV with #DE on a zero divisor or a quotient that does not fit. */
const divide = (k: Engine, signed: boolean, size: number, bLo: number, bHi: number): void => {
  const cpu = k.cpu
  if (size === 8 ? (bLo | bHi) === 0 : mask(bLo, size) === 0) k.fault(0, -1)
  let dividend: bigint
  let divisor: bigint
  const bits = BigInt(size * 8)
  const u = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
  switch (size) {
    case 1:
      dividend = BigInt(cpu.lo[0]! & 0xffff)
      divisor = BigInt(bLo & 0xff)
      break
    case 2:
      dividend = (BigInt(cpu.lo[2]! & 0xffff) << 16n) | BigInt(cpu.lo[0]! & 0xffff)
      divisor = BigInt(bLo & 0xffff)
      break
    case 4:
      dividend = (BigInt(cpu.lo[2]! >>> 0) << 32n) | BigInt(cpu.lo[0]! >>> 0)
      divisor = BigInt(bLo >>> 0)
      break
    default:
      dividend = (u(cpu.lo[2]!, cpu.hi[2]!) << 64n) | u(cpu.lo[0]!, cpu.hi[0]!)
      divisor = u(bLo, bHi)
  }
  if (signed) {
    dividend = BigInt.asIntN(Number(bits * 2n), dividend)
    divisor = BigInt.asIntN(Number(bits), divisor)
  }
  const q = dividend / divisor
  const r = dividend % divisor
  if (signed ? q !== BigInt.asIntN(Number(bits), q) : q >> bits !== 0n) k.fault(0, -1)
  const qu = BigInt.asUintN(Number(bits), q)
  const ru = BigInt.asUintN(Number(bits), r)
  if (size === 1) k.setReg(0, 2, Number(qu) | (Number(ru) << 8), 0)
  else {
    k.setReg(0, size, Number(BigInt.asIntN(32, qu)), Number(BigInt.asIntN(32, qu >> 32n)))
    k.setReg(2, size, Number(BigInt.asIntN(32, ru)), Number(BigInt.asIntN(32, ru >> 32n)))
  }
}

/** VM-exit instruction information for VMX instructions (SDM Table 28-13/28-14). */
const descriptorTableExiting = (k: Engine): boolean => {
  const ic = k.cpu.intercepts
  return ic !== null && ic.exitsOnDescriptorTable !== undefined && ic.exitsOnDescriptorTable()
}

/**
 * Descriptor-table exits (reasons 46 and 47, SDM Vol. 3C Tables 28-10 and 28-11): the
 * qualification is the displacement of a memory operand; the instruction information holds
 * scaling (1:0), for reason 47 a register operand (6:3) and mem/reg (10), the address size
 * (9:7), for reason 46 the operand size (11: 0 = 16-bit, 1 = 32-bit), the segment (17:15),
 * index (21:18, 22 invalid), base (26:23, 27 invalid) and the instruction identity (29:28).
 */
const descriptorTableExit = (k: Engine, D: Int32Array, i: number, reason: number, identity: number): number => {
  const mem = isMem(D, i)
  let info = ((D[i + /* F_ASZ */ 4] === 8 ? 2 : 1) << 7) | (identity << 28)
  if (reason === ExitReason.GDTR_IDTR && D[i + /* F_OSZ */ 3] !== 2) info |= 1 << 11
  if (!mem) return k.exitNow(reason, 0, 0, info | (1 << 10) | ((D[i + /* F_RM */ 7]! & 15) << 3))
  const base = D[i + /* F_BASE */ 8]!
  const index = D[i + /* F_INDEX */ 9]!
  // Without an override the segment is SS for RSP/RBP-based forms, else DS.
  const seg = D[i + /* F_SEG */ 5]! >= 0 ? D[i + /* F_SEG */ 5]! : base === 4 || base === 5 ? Seg.SS : Seg.DS
  info |= (D[i + /* F_SCALE */ 10]! & 3) | ((seg & 7) << 15)
  info |= index >= 0 ? (index & 15) << 18 : 1 << 22
  info |= base >= 0 && base !== RIP_BASE ? (base & 15) << 23 : 1 << 27
  return k.exitNow(reason, D[i + /* F_DISPLO */ 11]!, D[i + /* F_DISPHI */ 12]!, info)
}

const vmxInstructionInfo = (D: Int32Array, i: number): number => {
  const mem = isMem(D, i)
  const scale = D[i + /* F_SCALE */ 10]!
  const aszCode = D[i + /* F_ASZ */ 4] === 8 ? 2 : 1
  let info = (aszCode << 7) | ((D[i + /* F_REG */ 6]! & 15) << 28)
  if (!mem) {
    info |= 1 << 10
    info |= (D[i + /* F_RM */ 7]! & 15) << 3
    return info
  }
  const seg = D[i + /* F_SEG */ 5]! >= 0 ? D[i + /* F_SEG */ 5]! : Seg.DS
  const base = D[i + /* F_BASE */ 8]!
  const index = D[i + /* F_INDEX */ 9]!
  info |= scale & 3
  info |= (seg & 7) << 15
  if (index >= 0) info |= (index & 15) << 18
  else info |= 1 << 22
  if (base >= 0 && base !== RIP_BASE) info |= (base & 15) << 23
  else info |= 1 << 27
  return info
}
