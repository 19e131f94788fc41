// Compiled blocks: hot straight-line runs of register-only instructions (64-bit ADD/SUB/XOR/CMP
// between registers, 32-bit XOR, INC/DEC, MOV, ADD/CMP with an immediate, NOPs), ended by a
// JNZ/JZ/JMP or by the first instruction outside that set, are turned into one JavaScript
// function (generated once per block with `new Function`) that keeps the registers and lazy
// flags in locals. None of these instructions can fault or exit, so the architectural state is
// written back only at the block's end; a block that branches to its own start loops inside
// the function while the budget allows. Functions are shared between address spaces by their
// source (identical code, one function). The interpreter stays the reference: a property test
// runs random register programs both ways and compares every register and flag.

import type { LazyFlags } from "../cpu/flags.ts"
import { F_IMMHI, F_IMMLO, F_LEN, F_OP, F_REG, F_RM, STRIDE } from "../decode/cache.ts"
import { Op } from "../decode/ops.ts"
import type { Engine } from "./engine.ts"

/** A compiled block: returns the instructions it retired; the next RIP is left in `k.blockRip`. */
export type BlockFunction = (lo: Int32Array, hi: Int32Array, F: LazyFlags, k: Engine, rip0: number, budget: number, cfOf: typeof carryOf) => number

/** CF of a lazy-flags state held in locals (the same rules as LazyFlags.cf()). */
export const carryOf = (op: number, size: number, aLo: number, aHi: number, bLo: number, bHi: number, rLo: number, rHi: number, cin: number, stored: number): number => {
  switch (op) {
    case 0:
      return stored & 1
    case 5:
      return 0
    case 6:
    case 7:
      return cin
    case 1:
      return below(size, rLo, rHi, aLo, aHi)
    case 2:
      return cin !== 0 ? 1 - below(size, aLo, aHi, rLo, rHi) : below(size, rLo, rHi, aLo, aHi)
    case 3:
      return below(size, aLo, aHi, bLo, bHi)
    default:
      return cin !== 0 ? 1 - below(size, bLo, bHi, aLo, aHi) : below(size, aLo, aHi, bLo, bHi)
  }
}

/** 1 when x < y unsigned at `size` (operands below size 8 are held zero-extended). */
const below = (size: number, xLo: number, xHi: number, yLo: number, yHi: number): number =>
  (size === 8 && xHi !== yHi ? xHi >>> 0 < yHi >>> 0 : xLo >>> 0 < yLo >>> 0) ? 1 : 0

const MAX_BLOCK = 48
/** Landings on a branch target before it is compiled. */
export const HOT_THRESHOLD = 64

/** Ops a block compiles that neither read nor write the arithmetic flags. */
const flagless = (op: number): boolean =>
  op === Op.MOV_RR64 || op === Op.MOV_RR32 || op === Op.MOV_RI || op === Op.NOP || op === Op.ENDBR || op === Op.JMP_REL

const compilable = (op: number): boolean =>
  op === Op.ADD_RR64 ||
  op === Op.SUB_RR64 ||
  op === Op.XOR_RR64 ||
  op === Op.CMP_RR64 ||
  op === Op.XOR_RR32 ||
  op === Op.INC_R64 ||
  op === Op.DEC_R64 ||
  op === Op.MOV_RR64 ||
  op === Op.MOV_RR32 ||
  op === Op.MOV_RI ||
  op === Op.ADD_RI64 ||
  op === Op.CMP_RI64 ||
  op === Op.NOP ||
  op === Op.ENDBR

const FLAGS_LOAD =
  "let fop=F.op,fsize=F.size,faLo=F.aLo,faHi=F.aHi,fbLo=F.bLo,fbHi=F.bHi,fresLo=F.resLo,fresHi=F.resHi,fcin=F.cin,fst=F.stored;"
const FLAGS_STORE =
  "F.op=fop;F.size=fsize;F.aLo=faLo;F.aHi=faHi;F.bLo=fbLo;F.bHi=fbHi;F.resLo=fresLo;F.resHi=fresHi;F.cin=fcin;F.stored=fst;"

/**
 * Compiles the block starting at the instruction whose page-offset map is `map` and offset
 * `off` (records already decoded). Returns null when fewer than two instructions qualify.
 */
export const compileBlock = (D: Int32Array, map: Int32Array, off: number): { fn: BlockFunction; length: number } | null => {
  const body: Array<string> = []
  const used = new Set<number>()
  const written = new Set<number>()
  /** Page offsets already compiled into this block: a branch there ends the block instead of being followed. */
  const visited = new Set<number>()
  let at = off
  let count = 0
  let terminator = ""
  let delta = 0 // byte offset of the current instruction from the block start
  // The lazy-flags operation the block itself last set (1 ADD, 3 SUB/CMP, 5 logic, 6/7 INC/DEC),
  // or -1 before the first: INC and DEC keep CF, and once the operation that produced it is known
  // here, CF is one inline comparison (or a local) instead of a call to carryOf.
  let flagsOp = -1
  let flagsUsed = false
  while (count < MAX_BLOCK && at < 4096) {
    const rec = map[at]! - 1
    if (rec < 0) break
    const op = D[rec + F_OP]!
    const len = D[rec + F_LEN]!
    if (at + len > 4096) break
    const d = D[rec + F_RM]!
    const s = D[rec + F_REG]!
    const imm = D[rec + F_IMMLO]!
    visited.add(at)
    if (op === Op.JNZ || op === Op.JZ || op === Op.JMP_REL) {
      const next = delta + len
      const target = next + imm
      const zf = "(fop===0?(fst&64)!==0:fsize===8?(fresLo|fresHi)===0:fresLo===0)"
      const take = op === Op.JMP_REL ? "true" : op === Op.JNZ ? `!${zf}` : zf
      if (op !== Op.JMP_REL) flagsUsed = true
      count++
      // A forward or backward branch to another decoded, compilable instruction of this page
      // (not the block's start, which loops instead) is followed: the block goes on at the
      // target and the not-taken path leaves through a side exit. A target in the page is
      // canonical because the page is (the block runs at its start).
      const targetAt = at + len + imm
      const follow =
        target !== 0 &&
        targetAt >= 0 &&
        targetAt < 4096 &&
        !visited.has(targetAt) &&
        map[targetAt]! > 0 &&
        compilable(D[map[targetAt]! - 1 + F_OP]!) &&
        count < MAX_BLOCK
      if (follow) {
        if (op !== Op.JMP_REL) body.push(`if(!(${take})){units+=${count};rip=rip0+${next};break}`)
        delta = target
        at = targetAt
        continue
      }
      terminator =
        `units+=${count};` +
        `if(${take}){const t=rip0+${target};` +
        `if(t>=140737488355328||t<-140737488355328){units-=1;rip=rip0+${delta};break}` +
        (target === 0 ? `if(units+${count}<=budget)continue;` : "") +
        `rip=t;break}rip=rip0+${next};break;`
      break
    }
    if (!compilable(op)) break
    if (!flagless(op)) flagsUsed = true
    const R = (r: number): string => {
      used.add(r)
      return `r${r}`
    }
    // The destination of this instruction (stored back at the block's end).
    if (op !== Op.CMP_RR64 && op !== Op.CMP_RI64 && op !== Op.NOP && op !== Op.ENDBR) written.add(op === Op.MOV_RI ? s : d)
    switch (op) {
      case Op.ADD_RR64:
      case Op.ADD_RI64: {
        const bl = op === Op.ADD_RI64 ? `${imm}` : `${R(s)}l`
        const bh = op === Op.ADD_RI64 ? `${imm >> 31}` : `${R(s)}h`
        body.push(
          `{const aLo=${R(d)}l,aHi=${R(d)}h,bLo=${bl},bHi=${bh};const sum=(aLo>>>0)+(bLo>>>0);const rLo=sum|0;const rHi=(aHi+bHi+(sum>=4294967296?1:0))|0;` +
            `${R(d)}l=rLo;${R(d)}h=rHi;fop=1;fsize=8;faLo=aLo;faHi=aHi;fbLo=bLo;fbHi=bHi;fresLo=rLo;fresHi=rHi;}`,
        )
        break
      }
      case Op.SUB_RR64:
      case Op.CMP_RR64:
      case Op.CMP_RI64: {
        const bl = op === Op.CMP_RI64 ? `${imm}` : `${R(s)}l`
        const bh = op === Op.CMP_RI64 ? `${imm >> 31}` : `${R(s)}h`
        const store = op === Op.SUB_RR64 ? `${R(d)}l=rLo;${R(d)}h=rHi;` : ""
        body.push(
          `{const aLo=${R(d)}l,aHi=${R(d)}h,bLo=${bl},bHi=${bh};const df=(aLo>>>0)-(bLo>>>0);const rLo=df|0;const rHi=(aHi-bHi-(df<0?1:0))|0;` +
            `${store}fop=3;fsize=8;faLo=aLo;faHi=aHi;fbLo=bLo;fbHi=bHi;fresLo=rLo;fresHi=rHi;}`,
        )
        break
      }
      case Op.XOR_RR64:
        body.push(`{const rLo=${R(d)}l^${R(s)}l,rHi=${R(d)}h^${R(s)}h;${R(d)}l=rLo;${R(d)}h=rHi;fop=5;fsize=8;fresLo=rLo;fresHi=rHi;}`)
        break
      case Op.XOR_RR32:
        body.push(`{const rLo=${R(d)}l^${R(s)}l;${R(d)}l=rLo;${R(d)}h=0;fop=5;fsize=4;fresLo=rLo;fresHi=0;}`)
        break
      case Op.INC_R64:
      case Op.DEC_R64: {
        const dec = op === Op.DEC_R64
        body.push(
          `{const aLo=${R(d)}l,aHi=${R(d)}h;const cf=${carryExpression(flagsOp)};` +
            (dec
              ? `const rLo=(aLo-1)|0;const rHi=aLo===0?(aHi-1)|0:aHi;`
              : `const rLo=(aLo+1)|0;const rHi=aLo===-1?(aHi+1)|0:aHi;`) +
            `${R(d)}l=rLo;${R(d)}h=rHi;fop=${dec ? 7 : 6};fsize=8;faLo=aLo;faHi=aHi;fbLo=1;fbHi=0;fresLo=rLo;fresHi=rHi;fcin=cf;}`,
        )
        break
      }
      case Op.MOV_RR64:
        body.push(`${R(d)}l=${R(s)}l;${R(d)}h=${R(s)}h;`)
        break
      case Op.MOV_RR32:
        body.push(`${R(d)}l=${R(s)}l;${R(d)}h=0;`)
        break
      case Op.MOV_RI:
        // B8+r: the destination is the REG field; the record holds the whole value.
        body.push(`${R(s)}l=${imm};${R(s)}h=${D[rec + F_IMMHI]!};`)
        break
      default:
        break // NOP, ENDBR64
    }
    flagsOp = flagsSetBy(op, flagsOp)
    count++
    delta += len
    at += len
  }
  if (terminator === "") {
    if (count < 2) return null
    terminator = `units+=${count};rip=rip0+${delta};break;`
  }
  if (count < 2) return null
  // Registers the block touches live in locals; only those it writes are stored back, and the
  // lazy flags only when an instruction of the block reads or sets them.
  const regs = [...used]
  const load = regs.map((r) => `let r${r}l=lo[${r}],r${r}h=hi[${r}];`).join("")
  const store = [...written].map((r) => `lo[${r}]=r${r}l;hi[${r}]=r${r}h;`).join("")
  const source =
    `"use strict";${load}${flagsUsed ? FLAGS_LOAD : ""}let units=0;let rip=rip0;` +
    `for(;;){${body.join("")}${terminator}}` +
    `${store}${flagsUsed ? FLAGS_STORE : ""}k.blockRip=rip;return units;`
  return { fn: functionFor(source), length: count }
}

/** The lazy-flags operation in effect after `op`, given the one before it. */
const flagsSetBy = (op: number, before: number): number => {
  switch (op) {
    case Op.ADD_RR64:
    case Op.ADD_RI64:
      return 1
    case Op.SUB_RR64:
    case Op.CMP_RR64:
    case Op.CMP_RI64:
      return 3
    case Op.XOR_RR64:
    case Op.XOR_RR32:
      return 5
    case Op.INC_R64:
      return 6
    case Op.DEC_R64:
      return 7
    default:
      return before // MOV, NOP, ENDBR64 leave the flags alone
  }
}

/**
 * CF of the flags in locals as a source expression, the rules of carryOf with the operation known
 * at compile time (every flag-setting instruction the block compiles is 64-bit): ADD carries when
 * the result is below the first operand, SUB/CMP borrows when the first operand is below the
 * second, logic clears CF, INC/DEC pass on the CF they kept. Unknown (the block's first flag
 * user): the general function.
 */
const carryExpression = (flagsOp: number): string => {
  const below = (x: string, y: string): string => `((${x}Hi!==${y}Hi?(${x}Hi>>>0)<(${y}Hi>>>0):(${x}Lo>>>0)<(${y}Lo>>>0))?1:0)`
  switch (flagsOp) {
    case 1:
      return below("fres", "fa")
    case 3:
      return below("fa", "fb")
    case 5:
      return "0"
    case 6:
    case 7:
      return "fcin"
    default:
      return "cfOf(fop,fsize,faLo,faHi,fbLo,fbHi,fresLo,fresHi,fcin,fst)"
  }
}

/**
 * Generated functions by their source, shared by every address space: the source is a pure
 * function of the block's instruction bytes as decoded (ops, registers, immediates, lengths,
 * offsets), so VMs running identical code share one function and V8 compiles and optimizes it
 * once. A write to guest code needs nothing extra here: it bumps the decode-cache generation,
 * which resets that address space's BlockCache, and recompiling the changed code yields a
 * different source (another key). Bounded: when full, the map starts over (functions already
 * held by BlockCaches stay valid).
 */
const sharedFunctions = new Map<string, BlockFunction>()
const SHARED_FUNCTIONS_MAX = 4096

const functionFor = (source: string): BlockFunction => {
  let fn = sharedFunctions.get(source)
  if (fn === undefined) {
    if (sharedFunctions.size >= SHARED_FUNCTIONS_MAX) sharedFunctions.clear()
    fn = new Function("lo", "hi", "F", "k", "rip0", "budget", "cfOf", source) as BlockFunction
    sharedFunctions.set(source, fn)
  }
  return fn
}

const blockCaches = new WeakMap<object, BlockCache>()

/** The block cache that goes with a decode cache (both shared by the CPUs of one memory). */
export const blockCacheOf = (decodeCache: { readonly records: Int32Array }): BlockCache => {
  let b = blockCaches.get(decodeCache)
  if (b === undefined) {
    b = new BlockCache(decodeCache.records.length)
    blockCaches.set(decodeCache, b)
  }
  return b
}

/** Record index (of the cache's record array) → block number, per decode-cache generation. */
export class BlockCache {
  /** 0 unknown, -1 not compilable, n > 0 block n. Indexed by record / STRIDE; grows with the records. */
  blockOf: Int32Array
  heat: Int32Array
  readonly functions: Array<BlockFunction | null> = [null]
  readonly lengths: Array<number> = [0]
  generation = -1

  constructor(records: number) {
    this.blockOf = new Int32Array(records / STRIDE)
    this.heat = new Int32Array(records / STRIDE)
  }

  reset(generation: number): void {
    this.blockOf.fill(0)
    this.heat.fill(0)
    this.functions.length = 1
    this.lengths.length = 1
    this.generation = generation
  }

  /** Makes room for record arrays of `records` ints (the decode cache grew), keeping what is known. */
  grow(records: number): void {
    const blockOf = new Int32Array(records / STRIDE)
    const heat = new Int32Array(records / STRIDE)
    blockOf.set(this.blockOf)
    heat.set(this.heat)
    this.blockOf = blockOf
    this.heat = heat
  }
}
