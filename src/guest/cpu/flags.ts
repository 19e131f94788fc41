// Lazily computed arithmetic flags. An arithmetic instruction records its operation, operand
// size, operands and result (32-bit halves); CF/PF/AF/ZF/SF/OF are derived only when something
// reads them (Jcc, SETcc, PUSHF, ...). Instructions whose flags are awkward to derive later
// (shifts, multiplies, bit scans) store the finished flags with `setOp(FlagOp.NONE)`.

export const FlagOp = {
  /** Flags held directly in `stored`. */
  NONE: 0,
  ADD: 1,
  ADC: 2,
  SUB: 3,
  SBB: 4,
  /** AND/OR/XOR/TEST: CF=OF=0, AF=0 (undefined by the SDM; the simulator clears it). */
  LOGIC: 5,
  /** INC/DEC: like ADD/SUB with 1, but CF is preserved (cfIn). */
  INC: 6,
  DEC: 7,
} as const

const CF = 0x1
const PF = 0x4
const AF = 0x10
const ZF = 0x40
const SF = 0x80
const OF = 0x800
export const ARITH_MASK = CF | PF | AF | ZF | SF | OF

const parityTable = new Uint8Array(256)
for (let i = 0; i < 256; i++) {
  let bits = 0
  for (let b = 0; b < 8; b++) bits += (i >> b) & 1
  parityTable[i] = (bits & 1) === 0 ? PF : 0
}

/** Sign bit (0 or 1) of a result held as halves at operand size `size`. */
const signBit = (size: number, lo: number, hi: number): number =>
  size === 8 ? hi >>> 31 : size === 4 ? lo >>> 31 : size === 2 ? (lo >> 15) & 1 : (lo >> 7) & 1

export class LazyFlags {
  op = 0
  /** Operand size in bytes: 1, 2, 4 or 8. */
  size = 4
  resLo = 0
  resHi = 0
  aLo = 0
  aHi = 0
  bLo = 0
  bHi = 0
  /** Carry in (ADC/SBB) or preserved CF (INC/DEC). */
  cin = 0
  /** Materialized flags when op === NONE. */
  stored = 0

  set(rflags: number): void {
    this.op = FlagOp.NONE
    this.stored = rflags & ARITH_MASK
  }

  /** Sign bit of the result at the operation size. */
  private signOf(lo: number, hi: number): number {
    switch (this.size) {
      case 1:
        return (lo >> 7) & 1
      case 2:
        return (lo >> 15) & 1
      case 4:
        return (lo >>> 31) & 1
      default:
        return (hi >>> 31) & 1
    }
  }

  zf(): boolean {
    if (this.op === FlagOp.NONE) return (this.stored & ZF) !== 0
    return this.size === 8 ? (this.resLo | this.resHi) === 0 : this.resLo === 0
  }

  sf(): boolean {
    if (this.op === FlagOp.NONE) return (this.stored & SF) !== 0
    return this.signOf(this.resLo, this.resHi) !== 0
  }

  pf(): boolean {
    if (this.op === FlagOp.NONE) return (this.stored & PF) !== 0
    return parityTable[this.resLo & 0xff] !== 0
  }

  af(): boolean {
    switch (this.op) {
      case /* FlagOp.NONE */ 0:
        return (this.stored & AF) !== 0
      case /* FlagOp.LOGIC */ 5:
        return false
      default:
        return ((this.aLo ^ this.bLo ^ this.resLo) & 0x10) !== 0
    }
  }

  cf(): boolean {
    switch (this.op) {
      case /* FlagOp.NONE */ 0:
        return (this.stored & CF) !== 0
      case /* FlagOp.LOGIC */ 5:
        return false
      case /* FlagOp.INC */ 6:
      case /* FlagOp.DEC */ 7:
        return this.cin !== 0
      case /* FlagOp.ADD */ 1:
        return this.below(this.resLo, this.resHi, this.aLo, this.aHi)
      case /* FlagOp.ADC */ 2:
        return this.cin !== 0
          ? !this.below(this.aLo, this.aHi, this.resLo, this.resHi) // res <= a
          : this.below(this.resLo, this.resHi, this.aLo, this.aHi)
      case /* FlagOp.SUB */ 3:
        return this.below(this.aLo, this.aHi, this.bLo, this.bHi)
      default: // SBB
        return this.cin !== 0
          ? !this.below(this.bLo, this.bHi, this.aLo, this.aHi) // a <= b
          : this.below(this.aLo, this.aHi, this.bLo, this.bHi)
    }
  }

  of(): boolean {
    switch (this.op) {
      case /* FlagOp.NONE */ 0:
        return (this.stored & OF) !== 0
      case /* FlagOp.LOGIC */ 5:
        return false
      case /* FlagOp.ADD */ 1:
      case /* FlagOp.ADC */ 2:
      case /* FlagOp.INC */ 6:
        return this.signOf((this.aLo ^ this.resLo) & (this.bLo ^ this.resLo), (this.aHi ^ this.resHi) & (this.bHi ^ this.resHi)) !== 0
      default:
        return this.signOf((this.aLo ^ this.bLo) & (this.aLo ^ this.resLo), (this.aHi ^ this.bHi) & (this.aHi ^ this.resHi)) !== 0
    }
  }

  /** Unsigned x < y at the current size (operands are stored zero-extended below size 8). */
  private below(xLo: number, xHi: number, yLo: number, yHi: number): boolean {
    if (this.size === 8 && xHi !== yHi) return xHi >>> 0 < yHi >>> 0
    return xLo >>> 0 < yLo >>> 0
  }

  /**
   * The six arithmetic flags as RFLAGS bits: the rules of cf() ... of() in one pass over the
   * fields, with ZF/SF/PF shared by every operation and the CF/OF/AF rules by operation (every
   * VM exit saves RFLAGS, so this runs once per exit; a property test pins it to the getters).
   */
  materialize(): number {
    const op = this.op
    if (op === /* FlagOp.NONE */ 0) return this.stored
    const size = this.size
    const rLo = this.resLo
    const rHi = this.resHi
    let f = parityTable[rLo & 0xff]!
    if (size === 8 ? (rLo | rHi) === 0 : rLo === 0) f |= ZF
    if (signBit(size, rLo, rHi) !== 0) f |= SF
    if (op === /* FlagOp.LOGIC */ 5) return f
    const aLo = this.aLo
    const aHi = this.aHi
    const bLo = this.bLo
    const bHi = this.bHi
    if (((aLo ^ bLo ^ rLo) & 0x10) !== 0) f |= AF
    // OF: ADD-like when the operands agree in sign and the result does not; SUB-like when they
    // differ and the result's sign differs from the first operand's.
    const addLike = op === /* FlagOp.ADD */ 1 || op === /* FlagOp.ADC */ 2 || op === /* FlagOp.INC */ 6
    const ofBit = addLike
      ? signBit(size, (aLo ^ rLo) & (bLo ^ rLo), (aHi ^ rHi) & (bHi ^ rHi))
      : signBit(size, (aLo ^ bLo) & (aLo ^ rLo), (aHi ^ bHi) & (aHi ^ rHi))
    if (ofBit !== 0) f |= OF
    if (op === /* FlagOp.INC */ 6 || op === /* FlagOp.DEC */ 7 ? this.cin !== 0 : this.cf()) f |= CF
    return f
  }

  /** Evaluates condition code cc (0..15: O NO B AE E NE BE A S NS P NP L GE LE G). */
  cond(cc: number): boolean {
    let r: boolean
    switch (cc >> 1) {
      case 0:
        r = this.of()
        break
      case 1:
        r = this.cf()
        break
      case 2:
        r = this.zf()
        break
      case 3:
        r = this.cf() || this.zf()
        break
      case 4:
        r = this.sf()
        break
      case 5:
        r = this.pf()
        break
      case 6:
        r = this.sf() !== this.of()
        break
      default:
        r = this.zf() || this.sf() !== this.of()
        break
    }
    return (cc & 1) === 0 ? r : !r
  }
}

export const parity = parityTable
