// Integer arithmetic on (lo, hi) 32-bit halves at operand sizes 1, 2, 4, 8, with flags: the
// lazy ones recorded in LazyFlags, the rest (shifts, rotates, multiplies, bit scans)
// materialised immediately. Results: low half returned, high half in `k.tHi`.

import { ARITH_MASK, FlagOp, parity, type LazyFlags } from "../cpu/flags.ts"
import { Alu } from "../decode/ops.ts"
import type { Engine } from "./engine.ts"

const CF = 1
const PF = 4
const AF = 0x10
const ZF = 0x40
const SF = 0x80
const OF = 0x800
const TWO32 = 4294967296

/** Truncates a low half to `size` (zero-extended); size 4 and 8 keep the int32. */
export const mask = (v: number, size: number): number => (size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v)

const record = (f: LazyFlags, op: number, size: number, aLo: number, aHi: number, bLo: number, bHi: number, rLo: number, rHi: number, cin: number): void => {
  f.op = op
  f.size = size
  f.aLo = aLo
  f.aHi = aHi
  f.bLo = bLo
  f.bHi = bHi
  f.resLo = rLo
  f.resHi = rHi
  f.cin = cin
}

/** ADD/OR/ADC/SBB/AND/SUB/XOR/CMP at `size`. Operands zero-extended (hi = 0) below 8. */
export const alu = (k: Engine, op: number, size: number, aLo: number, aHi: number, bLo: number, bHi: number): number => {
  const f = k.cpu.flags
  if (size !== 8) {
    aHi = 0
    bHi = 0
    aLo = mask(aLo, size)
    bLo = mask(bLo, size)
  }
  let rLo = 0
  let rHi = 0
  switch (op) {
    case /* Alu.ADD */ 0:
    case /* Alu.ADC */ 2: {
      const c = op === Alu.ADC && f.cf() ? 1 : 0
      const s = (aLo >>> 0) + (bLo >>> 0) + c
      rLo = mask(s | 0, size)
      if (size === 8) rHi = (aHi + bHi + (s >= TWO32 ? 1 : 0)) | 0
      record(f, op === Alu.ADD ? FlagOp.ADD : FlagOp.ADC, size, aLo, aHi, bLo, bHi, rLo, rHi, c)
      break
    }
    case /* Alu.SUB */ 5:
    case /* Alu.SBB */ 3:
    case /* Alu.CMP */ 7: {
      const c = op === Alu.SBB && f.cf() ? 1 : 0
      const s = (aLo >>> 0) - (bLo >>> 0) - c
      rLo = mask(s | 0, size)
      if (size === 8) rHi = (aHi - bHi - (s < 0 ? 1 : 0)) | 0
      record(f, op === Alu.SBB ? FlagOp.SBB : FlagOp.SUB, size, aLo, aHi, bLo, bHi, rLo, rHi, c)
      break
    }
    case /* Alu.AND */ 4:
      rLo = aLo & bLo
      rHi = aHi & bHi
      record(f, FlagOp.LOGIC, size, 0, 0, 0, 0, rLo, rHi, 0)
      break
    case /* Alu.OR */ 1:
      rLo = aLo | bLo
      rHi = aHi | bHi
      record(f, FlagOp.LOGIC, size, 0, 0, 0, 0, rLo, rHi, 0)
      break
    default:
      rLo = aLo ^ bLo
      rHi = aHi ^ bHi
      record(f, FlagOp.LOGIC, size, 0, 0, 0, 0, rLo, rHi, 0)
      break
  }
  k.tHi = rHi
  return rLo
}

export const incDec = (k: Engine, dec: boolean, size: number, aLo: number, aHi: number): number => {
  const f = k.cpu.flags
  const cf = f.cf() ? 1 : 0
  if (size !== 8) {
    aHi = 0
    aLo = mask(aLo, size)
  }
  let rLo: number
  let rHi = 0
  if (dec) {
    rLo = mask((aLo - 1) | 0, size)
    if (size === 8) rHi = aLo === 0 ? (aHi - 1) | 0 : aHi
  } else {
    rLo = mask((aLo + 1) | 0, size)
    if (size === 8) rHi = aLo === -1 ? (aHi + 1) | 0 : aHi
  }
  record(f, dec ? FlagOp.DEC : FlagOp.INC, size, aLo, aHi, 1, 0, rLo, rHi, cf)
  k.tHi = rHi
  return rLo
}

export const neg = (k: Engine, size: number, aLo: number, aHi: number): number => {
  return alu(k, Alu.SUB, size, 0, 0, aLo, aHi)
}

/** Stores finished flags: `bits` for the six arithmetic flags. */
export const setFlags = (f: LazyFlags, bits: number): void => {
  f.op = FlagOp.NONE
  f.stored = bits & ARITH_MASK
}

const szp = (size: number, lo: number, hi: number): number => {
  const zero = size === 8 ? (lo | hi) === 0 : mask(lo, size) === 0
  const sign = size === 1 ? (lo >> 7) & 1 : size === 2 ? (lo >> 15) & 1 : size === 4 ? lo >>> 31 : hi >>> 31
  return (zero ? ZF : 0) | (sign !== 0 ? SF : 0) | parity[lo & 0xff]!
}

// ---- shifts and rotates: operate on a 64-bit value via two halves ----

const shl64 = (lo: number, hi: number, n: number, out: Int32Array): void => {
  if (n === 0) {
    out[0] = lo
    out[1] = hi
  } else if (n < 32) {
    out[1] = (hi << n) | (lo >>> (32 - n))
    out[0] = lo << n
  } else if (n < 64) {
    out[1] = lo << (n - 32)
    out[0] = 0
  } else {
    out[0] = 0
    out[1] = 0
  }
}
const shr64 = (lo: number, hi: number, n: number, out: Int32Array): void => {
  if (n === 0) {
    out[0] = lo
    out[1] = hi
  } else if (n < 32) {
    out[0] = (lo >>> n) | (hi << (32 - n))
    out[1] = hi >>> n
  } else if (n < 64) {
    out[0] = hi >>> (n - 32)
    out[1] = 0
  } else {
    out[0] = 0
    out[1] = 0
  }
}
const bit64 = (lo: number, hi: number, n: number): number => (n < 32 ? (lo >>> n) & 1 : (hi >>> (n - 32)) & 1)
const tmp = new Int32Array(2)
const tmp2 = new Int32Array(2)

/** Sign-extends a value of `size` to 64 bits in tmp. */
const sext = (lo: number, size: number): void => {
  if (size === 1) lo = (lo << 24) >> 24
  else if (size === 2) lo = (lo << 16) >> 16
  tmp[0] = lo
  tmp[1] = lo >> 31
}

/**
 * Shift/rotate group (sub 0..7: ROL ROR RCL RCR SHL SHR SAL SAR) by `count` (already read).
 * Returns the result (tHi); flags per the SDM (undefined ones: OF for counts > 1 is computed as
 * for count 1's formula; AF is cleared).
 */
export const shift = (k: Engine, opn: number, size: number, aLo: number, aHi: number, countRaw: number): number => {
  const f = k.cpu.flags
  const bits = size * 8
  const count = countRaw & (size === 8 ? 63 : 31)
  if (size !== 8) {
    aHi = 0
    aLo = mask(aLo, size)
  }
  if (count === 0) {
    k.tHi = aHi
    return aLo
  }
  let rLo = 0
  let rHi = 0
  let cf = 0
  let of = 0
  const old = f.materialize()
  switch (opn) {
    case 4:
    case 6: {
      // SHL/SAL
      shl64(aLo, aHi, count, tmp)
      rLo = mask(tmp[0]!, size)
      rHi = size === 8 ? tmp[1]! : 0
      cf = count <= bits ? bit64(aLo, aHi, bits - count) : 0
      of = bit64(rLo, rHi, bits - 1) ^ cf
      setFlags(f, (cf ? CF : 0) | (of ? OF : 0) | szp(size, rLo, rHi))
      break
    }
    case 5: {
      // SHR
      shr64(aLo, aHi, count, tmp)
      rLo = tmp[0]!
      rHi = tmp[1]!
      cf = count <= bits ? bit64(aLo, aHi, count - 1) : 0
      of = count === 1 ? bit64(aLo, aHi, bits - 1) : 0
      setFlags(f, (cf ? CF : 0) | (of ? OF : 0) | szp(size, rLo, rHi))
      break
    }
    case 7: {
      // SAR
      sext(aLo, size)
      const sLo = size === 8 ? aLo : tmp[0]!
      const sHi = size === 8 ? aHi : tmp[1]!
      const c = count >= bits ? bits - 1 : count
      // arithmetic shift of 64-bit signed (sLo, sHi) by c
      if (c < 32) {
        rLo = c === 0 ? sLo : (sLo >>> c) | (sHi << (32 - c))
        rHi = sHi >> c
      } else {
        rLo = sHi >> (c - 32)
        rHi = sHi >> 31
      }
      cf = count >= bits ? bit64(sLo, sHi, bits - 1) : bit64(sLo, sHi, count - 1)
      rLo = mask(rLo, size)
      if (size !== 8) rHi = 0
      setFlags(f, (cf ? CF : 0) | szp(size, rLo, rHi))
      break
    }
    case 0:
    case 1: {
      // ROL / ROR: count modulo operand size; flags only CF/OF.
      const n = count % bits
      if (opn === 0) {
        shl64(aLo, aHi, n, tmp)
        shr64(aLo, aHi, bits - n, tmp2)
      } else {
        shr64(aLo, aHi, n, tmp)
        shl64(aLo, aHi, bits - n, tmp2)
      }
      rLo = mask(tmp[0]! | (n === 0 ? 0 : tmp2[0]!), size)
      rHi = size === 8 ? tmp[1]! | (n === 0 ? 0 : tmp2[1]!) : 0
      if (opn === 0) {
        cf = rLo & 1
        of = bit64(rLo, rHi, bits - 1) ^ cf
      } else {
        cf = bit64(rLo, rHi, bits - 1)
        of = cf ^ bit64(rLo, rHi, bits - 2)
      }
      setFlags(f, (old & ~(CF | OF)) | (cf ? CF : 0) | (of ? OF : 0))
      break
    }
    default: {
      // RCL / RCR through CF: rotate a (bits+1)-bit value one step at a time (counts ≤ 63).
      const n = size === 1 ? count % 9 : size === 2 ? count % 17 : count
      let c = old & CF
      rLo = aLo
      rHi = aHi
      for (let i = 0; i < n; i++) {
        if (opn === 2) {
          const out = bit64(rLo, rHi, bits - 1)
          shl64(rLo, rHi, 1, tmp)
          rLo = mask(tmp[0]! | c, size)
          rHi = size === 8 ? tmp[1]! : 0
          c = out
        } else {
          const out = rLo & 1
          shr64(rLo, rHi, 1, tmp)
          rLo = tmp[0]!
          rHi = tmp[1]!
          if (c) {
            if (size === 8) rHi |= 1 << 31
            else rLo |= 1 << (bits - 1)
          }
          c = out
        }
      }
      if (opn === 2) of = bit64(rLo, rHi, bits - 1) ^ c
      else of = bit64(rLo, rHi, bits - 1) ^ bit64(rLo, rHi, bits - 2)
      setFlags(f, (old & ~(CF | OF)) | (c ? CF : 0) | (of ? OF : 0))
      break
    }
  }
  k.tHi = rHi
  return rLo
}

/** SHLD/SHRD: dest (aLo,aHi), source (bLo,bHi), count masked; flags per SDM. */
export const shiftDouble = (k: Engine, left: boolean, size: number, aLo: number, aHi: number, bLo: number, bHi: number, countRaw: number): number => {
  const f = k.cpu.flags
  const bits = size * 8
  const count = countRaw & (size === 8 ? 63 : 31)
  if (size !== 8) {
    aLo = mask(aLo, size)
    bLo = mask(bLo, size)
    aHi = 0
    bHi = 0
  }
  if (count === 0) {
    k.tHi = aHi
    return aLo
  }
  let rLo: number
  let rHi: number
  let cf: number
  if (size === 2) {
    // 16-bit: the concatenation is 32 bits (counts above 16 give undefined results; this follows
    // the usual hardware behaviour of shifting the 48-bit dest:src:dest pattern).
    const wide = left ? ((aLo << 16) | bLo) >>> 0 : ((bLo << 16) | aLo) >>> 0
    const bigWide = left ? BigInt(wide) * 65536n + BigInt(aLo) : (BigInt(aLo) << 32n) | BigInt(wide)
    if (left) {
      const r = (bigWide << BigInt(count)) >> 32n
      rLo = Number(r & 0xffffn)
      cf = Number((bigWide >> BigInt(48 - count)) & 1n)
    } else {
      const r = bigWide >> BigInt(count)
      rLo = Number(r & 0xffffn)
      cf = Number((bigWide >> BigInt(count - 1)) & 1n)
    }
    rHi = 0
  } else if (left) {
    shl64(aLo, aHi, count, tmp)
    shr64(bLo, bHi, bits - count, tmp2)
    rLo = mask(tmp[0]! | tmp2[0]!, size)
    rHi = size === 8 ? tmp[1]! | tmp2[1]! : 0
    cf = bit64(aLo, aHi, bits - count)
  } else {
    shr64(aLo, aHi, count, tmp)
    if (size === 8) shl64(bLo, bHi, bits - count, tmp2)
    else {
      tmp2[0] = bLo << (bits - count)
      tmp2[1] = 0
    }
    rLo = mask(tmp[0]! | tmp2[0]!, size)
    rHi = size === 8 ? tmp[1]! | tmp2[1]! : 0
    cf = bit64(aLo, aHi, count - 1)
  }
  const sa = bit64(aLo, aHi, bits - 1)
  const sr = bit64(rLo, rHi, bits - 1)
  setFlags(f, (cf ? CF : 0) | (sa !== sr ? OF : 0) | szp(size, rLo, rHi))
  k.tHi = rHi
  return rLo
}

// ---- multiplication ----

/** 64x64 → 128 unsigned multiply into prod[0..3] (32-bit words, low first). */
export const prod = new Int32Array(4)
const limbs = new Float64Array(8)
const aL = new Float64Array(4)
const bL = new Float64Array(4)
export const mulU64 = (aLo: number, aHi: number, bLo: number, bHi: number): void => {
  // 16-bit limbs keep every partial product exact in a double.
  aL[0] = aLo & 0xffff
  aL[1] = aLo >>> 16
  aL[2] = aHi & 0xffff
  aL[3] = aHi >>> 16
  bL[0] = bLo & 0xffff
  bL[1] = bLo >>> 16
  bL[2] = bHi & 0xffff
  bL[3] = bHi >>> 16
  limbs.fill(0)
  for (let i = 0; i < 4; i++) {
    let carry = 0
    const ai = aL[i]!
    for (let j = 0; j < 4; j++) {
      const t = ai * bL[j]! + limbs[i + j]! + carry
      carry = Math.floor(t / 65536)
      limbs[i + j] = t - carry * 65536
    }
    limbs[i + 4] = carry
  }
  prod[0] = limbs[0]! | (limbs[1]! << 16)
  prod[1] = limbs[2]! | (limbs[3]! << 16)
  prod[2] = limbs[4]! | (limbs[5]! << 16)
  prod[3] = limbs[6]! | (limbs[7]! << 16)
}

/** Signed 64x64 → 128 into prod. */
export const mulS64 = (aLo: number, aHi: number, bLo: number, bHi: number): void => {
  mulU64(aLo, aHi, bLo, bHi)
  // Correct the high 64 bits: subtract b if a < 0, subtract a if b < 0.
  let hLo = prod[2]! >>> 0
  let hHi = prod[3]!
  if (aHi < 0) {
    const s = hLo - (bLo >>> 0)
    hHi = (hHi - bHi - (s < 0 ? 1 : 0)) | 0
    hLo = s < 0 ? s + TWO32 : s
  }
  if (bHi < 0) {
    const s = hLo - (aLo >>> 0)
    hHi = (hHi - aHi - (s < 0 ? 1 : 0)) | 0
    hLo = s < 0 ? s + TWO32 : s
  }
  prod[2] = hLo | 0
  prod[3] = hHi
}

/**
 * Multiplies for MUL/IMUL (one-operand: result into the A/D pair by the caller) — returns via
 * prod: low product in prod[0..1], high in prod[2..3], for operands at `size`.
 * Sets CF=OF per the SDM; SF/ZF/PF from the low result, AF cleared (they are undefined).
 */
export const multiply = (k: Engine, signed: boolean, size: number, aLo: number, aHi: number, bLo: number, bHi: number): void => {
  const f = k.cpu.flags
  let overflow: boolean
  if (size === 8) {
    if (signed) mulS64(aLo, aHi, bLo, bHi)
    else mulU64(aLo, aHi, bLo, bHi)
    overflow = signed ? !(prod[3] === prod[1]! >> 31 && prod[2] === prod[1]! >> 31) : (prod[2]! | prod[3]!) !== 0
  } else {
    let a: number
    let b: number
    if (signed) {
      sext(aLo, size)
      a = tmp[0]!
      sext(bLo, size)
      b = tmp[0]!
    } else {
      a = mask(aLo, size) >>> 0
      b = mask(bLo, size) >>> 0
    }
    if (size === 4) {
      if (signed) mulS64(a, a >> 31, b, b >> 31)
      else mulU64(a, 0, b, 0)
      // Split the 64-bit product into low 32 / high 32 as the D:A pair.
      const lo = prod[0]!
      const hi = prod[1]!
      prod[0] = lo
      prod[1] = 0
      prod[2] = hi
      prod[3] = 0
      overflow = signed ? hi !== lo >> 31 : hi !== 0
    } else {
      const p = a * b // exact: |p| < 2^32
      const bits = size * 8
      const lowMask = size === 1 ? 0xff : 0xffff
      const lo = p & lowMask
      const hi = Math.floor(p / (1 << bits)) & lowMask
      prod[0] = lo
      prod[1] = 0
      prod[2] = hi
      prod[3] = 0
      if (signed) {
        const loSigned = size === 1 ? (lo << 24) >> 24 : (lo << 16) >> 16
        overflow = loSigned !== p
      } else overflow = hi !== 0
    }
  }
  const rl = prod[0]!
  const rh = size === 8 ? prod[1]! : 0
  setFlags(f, (overflow ? CF | OF : 0) | szp(size, rl, rh))
}

// ---- bit scans and counts ----

export const popcount32 = (v: number): number => {
  v = v - ((v >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}

/** Index of the lowest set bit of (lo, hi) or -1. */
export const lowestBit = (lo: number, hi: number): number => {
  if (lo !== 0) return 31 - Math.clz32(lo & -lo)
  if (hi !== 0) return 63 - Math.clz32(hi & -hi)
  return -1
}

/** Index of the highest set bit or -1. */
export const highestBit = (lo: number, hi: number): number => {
  if (hi !== 0) return 63 - Math.clz32(hi)
  if (lo !== 0) return 31 - Math.clz32(lo)
  return -1
}

export const flagBits = { CF, PF, AF, ZF, SF, OF } as const
export { szp }
