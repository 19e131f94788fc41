// System instructions: control registers (with the CR0/CR4 guest/host masks and read shadows
// of VMX), MSRs, I/O, CPUID, TSC, descriptor tables and segment loads, SYSCALL/SYSRET, IRETQ,
// and the exits VT-x defines for them. Rare enough that clarity beats speed here.

import { ExitReason } from "../../arch/exit-reasons.ts"
import { Msr } from "../../arch/msr.ts"
import { Cr0, Cr4, Efer, Rflags } from "../../arch/x86.ts"
import { Interruptibility, MsrSlot, Seg } from "../cpu/state.ts"
import { DONE, EXITED, Engine, TWO32 } from "./engine.ts"

const lo32 = (v: bigint): number => Number(BigInt.asIntN(32, v))
const hi32 = (v: bigint): number => Number(BigInt.asIntN(32, v >> 32n))
const big = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)

const CR0_RESERVED = ~(Cr0.PE | Cr0.MP | Cr0.EM | Cr0.TS | Cr0.ET | Cr0.NE | Cr0.WP | Cr0.AM | Cr0.NW | Cr0.CD | Cr0.PG)
const CR4_VALID =
  Cr4.VME | Cr4.PVI | Cr4.TSD | Cr4.DE | Cr4.PSE | Cr4.PAE | Cr4.MCE | Cr4.PGE | Cr4.PCE | Cr4.OSFXSR | Cr4.OSXMMEXCPT |
  Cr4.UMIP | Cr4.VMXE | Cr4.SMXE | Cr4.FSGSBASE | Cr4.PCIDE | Cr4.OSXSAVE | Cr4.SMEP | Cr4.SMAP

const requireCpl0 = (k: Engine): void => {
  if (k.cpu.cpl !== 0) k.gp(0)
}

/** CR-access exit (reason 28) with the SDM's qualification layout (Table 28-3). */
const crExit = (k: Engine, cr: number, accessType: number, gpr: number, lmswMem: boolean, lmswData: number): number =>
  k.exitNow(ExitReason.CR_ACCESS, cr | (accessType << 4) | (lmswMem ? 1 << 6 : 0) | (gpr << 8) | ((lmswData & 0xffff) << 16), 0, 0)

/** MOV from CR (0F 20): reads CR0/CR4 through the read shadows. */
export const movFromCr = (k: Engine, cr: number, gpr: number): number => {
  requireCpl0(k)
  const cpu = k.cpu
  const ic = cpu.intercepts
  let lo = 0
  let hi = 0
  switch (cr) {
    case 0:
      lo = cpu.cr0
      if (ic !== null) lo = (lo & ~ic.cr0GuestHostMask) | (ic.cr0ReadShadow & ic.cr0GuestHostMask)
      break
    case 2:
      lo = cpu.cr2Lo
      hi = cpu.cr2Hi
      break
    case 3:
      if (ic !== null && ic.exitsOnCrRead(3)) return crExit(k, 3, 1, gpr, false, 0)
      lo = cpu.cr3Lo
      hi = cpu.cr3Hi
      break
    case 4:
      lo = cpu.cr4
      if (ic !== null) lo = (lo & ~ic.cr4GuestHostMask) | (ic.cr4ReadShadow & ic.cr4GuestHostMask)
      break
    default:
      if (ic !== null && ic.exitsOnCrRead(8)) return crExit(k, 8, 1, gpr, false, 0)
      lo = cpu.cr8 & 0xf
      break
  }
  cpu.lo[gpr] = lo
  cpu.hi[gpr] = hi
  return DONE
}

/** MOV to CR (0F 22); returns EXITED when it exits (record filled), else DONE. */
export const movToCr = (k: Engine, cr: number, gpr: number): number => {
  requireCpl0(k)
  const cpu = k.cpu
  const ic = cpu.intercepts
  const lo = cpu.lo[gpr]!
  const hi = cpu.hi[gpr]!
  switch (cr) {
    case 0: {
      if (ic !== null && ((lo ^ ic.cr0ReadShadow) & ic.cr0GuestHostMask) !== 0) return crExit(k, 0, 0, gpr, false, 0)
      writeCr0(k, lo, hi)
      return DONE
    }
    case 2:
      cpu.cr2Lo = lo
      cpu.cr2Hi = hi
      return DONE
    case 3: {
      if (ic !== null && ic.exitsOnCrWrite(3, big(lo, hi))) return crExit(k, 3, 0, gpr, false, 0)
      // Bits above MAXPHYADDR (46) must be 0; bit 63 is the PCID no-flush hint (ignored without PCIDE).
      if ((hi & 0x7fffc000) !== 0) k.gp(0)
      cpu.cr3Lo = lo
      cpu.cr3Hi = hi & 0x7fffffff
      cpu.systemGeneration++
      if ((cpu.cr4 & Cr4.PGE) !== 0) k.tlb.flushNonGlobal()
      else k.tlb.flushAll()
      k.codeBase = NaN
      return DONE
    }
    case 4: {
      if (ic !== null && ((lo ^ ic.cr4ReadShadow) & ic.cr4GuestHostMask) !== 0) return crExit(k, 4, 0, gpr, false, 0)
      writeCr4(k, lo, hi)
      return DONE
    }
    default: {
      if (ic !== null && ic.exitsOnCrWrite(8, big(lo, hi))) return crExit(k, 8, 0, gpr, false, 0)
      if (hi !== 0 || (lo & ~0xf) !== 0) k.gp(0)
      cpu.cr8 = lo & 0xf
      cpu.attention = 1
      return DONE
    }
  }
}

const writeCr0 = (k: Engine, lo: number, hi: number): void => {
  const cpu = k.cpu
  if (hi !== 0 || (lo & CR0_RESERVED) !== 0) k.gp(0)
  if ((lo & Cr0.PG) !== 0 && (lo & Cr0.PE) === 0) k.gp(0)
  if ((lo & Cr0.NW) !== 0 && (lo & Cr0.CD) === 0) k.gp(0)
  // Leaving long mode by clearing PG in 64-bit mode is #GP (SDM: MOV CR).
  if ((lo & Cr0.PG) === 0 && (cpu.efer & Efer.LMA) !== 0) k.gp(0)
  const changed = cpu.cr0 ^ lo
  cpu.cr0 = lo | Cr0.ET
  cpu.systemGeneration++
  if ((changed & (Cr0.PG | Cr0.WP | Cr0.PE)) !== 0) k.flushTlb()
}

const writeCr4 = (k: Engine, lo: number, hi: number): void => {
  const cpu = k.cpu
  if (hi !== 0 || (lo & ~CR4_VALID) !== 0) k.gp(0)
  if ((lo & Cr4.PAE) === 0 && (cpu.efer & Efer.LMA) !== 0) k.gp(0)
  if ((lo & Cr4.PCIDE) !== 0 && (cpu.cr3Lo & 0xfff) !== 0 && (cpu.cr4 & Cr4.PCIDE) === 0) k.gp(0)
  const changed = cpu.cr4 ^ lo
  cpu.cr4 = lo
  cpu.systemGeneration++
  if ((changed & (Cr4.PGE | Cr4.PAE | Cr4.PSE | Cr4.SMEP | Cr4.SMAP | Cr4.PCIDE)) !== 0) k.flushTlb()
}

/** CLTS: exits when CR0.TS is owned by the host and the shadow's TS is 1. */
export const clts = (k: Engine): number => {
  requireCpl0(k)
  const cpu = k.cpu
  const ic = cpu.intercepts
  if (ic !== null && (ic.cr0GuestHostMask & Cr0.TS) !== 0 && (ic.cr0ReadShadow & Cr0.TS) !== 0) return crExit(k, 0, 2, 0, false, 0)
  cpu.cr0 &= ~Cr0.TS
  cpu.systemGeneration++
  return DONE
}

/** LMSW: loads CR0[3:0] (cannot clear PE). `source` is the 16-bit operand; `memLin` NaN for a register source. */
export const lmsw = (k: Engine, source: number, memLin: number): number => {
  requireCpl0(k)
  const cpu = k.cpu
  const ic = cpu.intercepts
  if (ic !== null) {
    const m = ic.cr0GuestHostMask
    const s = ic.cr0ReadShadow
    // SDM 25.1.3: exits if a masked bit among 3:1 differs from the shadow, or PE is masked, the
    // shadow's PE is 0 and the source's PE is 1.
    if ((m & 0xe & (source ^ s)) !== 0 || ((m & 1) !== 0 && (s & 1) === 0 && (source & 1) !== 0)) {
      // The exit record's guest-linear address holds a memory source's address (SDM 28.2.1).
      const r = crExit(k, 0, 3, 0, !Number.isNaN(memLin), source)
      if (!Number.isNaN(memLin)) {
        cpu.exit.guestLinearLo = ((memLin % TWO32) + TWO32) % TWO32 | 0
        cpu.exit.guestLinearHi = Math.floor(memLin / TWO32)
      }
      return r
    }
  }
  const newLow = (source & 0xf) | (cpu.cr0 & 1)
  cpu.cr0 = (cpu.cr0 & ~0xf) | newLow
  cpu.systemGeneration++
  return DONE
}

/** The 16 bits SMSW stores (CR0 through the shadow). */
export const smswValue = (k: Engine): number => {
  const cpu = k.cpu
  const ic = cpu.intercepts
  let v = cpu.cr0
  if (ic !== null) v = (v & ~ic.cr0GuestHostMask) | (ic.cr0ReadShadow & ic.cr0GuestHostMask)
  return v
}

// ---------------------------------------------------------------- MSRs

const canonical64 = (lo: number, hi: number): boolean => {
  const top = hi >> 15
  return top === 0 || top === -1
}

/** RDMSR; returns EXITED when it exits (record filled), else DONE. */
export const rdmsr = (k: Engine): number => {
  requireCpl0(k)
  const cpu = k.cpu
  const index = cpu.lo[1]! >>> 0
  const ic = cpu.intercepts
  if (ic !== null && ic.exitsOnRdmsr(index)) return k.exitNow(ExitReason.MSR_READ, 0, 0, 0)
  let v: bigint
  const slot = msrSlot(index)
  if (slot >= 0) v = cpu.getMsrSlot(slot)
  else {
    switch (index) {
      case Msr.IA32_EFER:
        v = BigInt(cpu.efer >>> 0)
        break
      case Msr.IA32_FS_BASE:
        v = big(cpu.segBaseLo[Seg.FS]!, cpu.segBaseHi[Seg.FS]!)
        break
      case Msr.IA32_GS_BASE:
        v = big(cpu.segBaseLo[Seg.GS]!, cpu.segBaseHi[Seg.GS]!)
        break
      case Msr.IA32_TSC:
        v = BigInt.asUintN(64, cpu.tsc + (ic !== null ? ic.tscOffset : 0n))
        break
      default:
        return k.gp(0)
    }
  }
  cpu.lo[0] = lo32(v)
  cpu.hi[0] = 0
  cpu.lo[2] = hi32(v)
  cpu.hi[2] = 0
  return DONE
}

const msrSlot = (index: number): number => {
  switch (index) {
    case Msr.IA32_STAR:
      return MsrSlot.STAR
    case Msr.IA32_LSTAR:
      return MsrSlot.LSTAR
    case Msr.IA32_CSTAR:
      return MsrSlot.CSTAR
    case Msr.IA32_FMASK:
      return MsrSlot.FMASK
    case Msr.IA32_KERNEL_GS_BASE:
      return MsrSlot.KERNEL_GS_BASE
    case Msr.IA32_TSC_AUX:
      return MsrSlot.TSC_AUX
    case Msr.IA32_APIC_BASE:
      return MsrSlot.APIC_BASE
    case Msr.IA32_SYSENTER_CS:
      return MsrSlot.SYSENTER_CS
    case Msr.IA32_SYSENTER_ESP:
      return MsrSlot.SYSENTER_ESP
    case Msr.IA32_SYSENTER_EIP:
      return MsrSlot.SYSENTER_EIP
    case Msr.IA32_PAT:
      return MsrSlot.PAT
    case Msr.IA32_FEATURE_CONTROL:
      return MsrSlot.FEATURE_CONTROL
    case Msr.IA32_TSC_ADJUST:
      return MsrSlot.TSC_ADJUST
    default:
      return -1
  }
}

/** WRMSR; returns EXITED when it exits (record filled), else DONE. */
export const wrmsr = (k: Engine): number => {
  requireCpl0(k)
  const cpu = k.cpu
  const index = cpu.lo[1]! >>> 0
  const ic = cpu.intercepts
  if (ic !== null && ic.exitsOnWrmsr(index)) return k.exitNow(ExitReason.MSR_WRITE, 0, 0, 0)
  const lo = cpu.lo[0]!
  const hi = cpu.lo[2]!
  switch (index) {
    case Msr.IA32_EFER: {
      if (hi !== 0 || (lo & ~(Efer.SCE | Efer.LME | Efer.LMA | Efer.NXE)) !== 0) return k.gp(0)
      // LME cannot change while paging is on; LMA is read-only.
      if ((cpu.cr0 & Cr0.PG) !== 0 && ((lo ^ cpu.efer) & Efer.LME) !== 0) return k.gp(0)
      const changed = cpu.efer ^ lo
      cpu.efer = (lo & ~Efer.LMA) | (cpu.efer & Efer.LMA)
      cpu.systemGeneration++
      if ((changed & Efer.NXE) !== 0) k.flushTlb()
      return DONE
    }
    case Msr.IA32_FS_BASE:
    case Msr.IA32_GS_BASE:
      if (!canonical64(lo, hi)) return k.gp(0)
      cpu.segBaseLo[index === Msr.IA32_FS_BASE ? Seg.FS : Seg.GS] = lo
      cpu.segBaseHi[index === Msr.IA32_FS_BASE ? Seg.FS : Seg.GS] = hi
      cpu.systemGeneration++
      return DONE
    case Msr.IA32_TSC:
      cpu.tsc = big(lo, hi)
      return DONE
    case Msr.IA32_KERNEL_GS_BASE:
    case Msr.IA32_LSTAR:
    case Msr.IA32_CSTAR:
    case Msr.IA32_SYSENTER_ESP:
    case Msr.IA32_SYSENTER_EIP:
      if (!canonical64(lo, hi)) return k.gp(0)
      break
    case Msr.IA32_FEATURE_CONTROL:
      // Locked: writes #GP.
      if ((cpu.msr[MsrSlot.FEATURE_CONTROL * 2]! & 1) !== 0) return k.gp(0)
      break
    case Msr.IA32_PAT:
      for (let b = 0; b < 8; b++) {
        const t = ((b < 4 ? lo : hi) >>> ((b & 3) * 8)) & 0xff
        if (t === 2 || t === 3 || t > 7) return k.gp(0)
      }
      break
    case Msr.IA32_APIC_BASE:
      break
    default:
      break
  }
  const slot = msrSlot(index)
  if (slot < 0) return k.gp(0)
  cpu.msr[slot * 2] = lo
  cpu.msr[slot * 2 + 1] = hi
  cpu.systemGeneration++
  return DONE
}

// ---------------------------------------------------------------- CPUID and TSC

/** CPUID as a bare processor reports it (KVM installs its own table through the CPUID exit). */
export const cpuid = (k: Engine): void => {
  const cpu = k.cpu
  if (cpu.intercepts !== null) k.exitInstruction(ExitReason.CPUID, 0, 0, 0)
  const leaf = cpu.lo[0]! >>> 0
  let a = 0
  let b = 0
  let c = 0
  let d = 0
  switch (leaf) {
    case 0:
      a = 0xd
      b = 0x756e6547 // "Genu"
      d = 0x49656e69 // "ineI"
      c = 0x6c65746e // "ntel"
      break
    case 1:
      a = 0x000506e3 // family 6 model 0x5e (Skylake) stepping 3
      b = 0x00000800
      c = 1 << 23 // POPCNT
      // FPU? no. TSC, MSR, PAE, CX8, APIC, SEP, PGE, CMOV, PAT
      d = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 11) | (1 << 13) | (1 << 15) | (1 << 16)
      c |= 1 << 13 // CMPXCHG16B
      break
    case 7:
      b = (1 << 3) | (1 << 7) // BMI1 (TZCNT), SMEP
      break
    case 0x80000000:
      a = 0x80000008
      break
    case 0x80000001:
      c = (1 << 0) | (1 << 5) // LAHF/SAHF in 64-bit, LZCNT
      d = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29) // SYSCALL, NX, 1G pages, RDTSCP, LM
      break
    case 0x80000008:
      a = 46 | (48 << 8)
      break
    default:
      break
  }
  cpu.lo[0] = a
  cpu.hi[0] = 0
  cpu.lo[3] = b
  cpu.hi[3] = 0
  cpu.lo[1] = c
  cpu.hi[1] = 0
  cpu.lo[2] = d
  cpu.hi[2] = 0
}

/** RDTSC/RDTSCP; returns EXITED when it exits (record filled), else DONE. */
export const rdtsc = (k: Engine, withAux: boolean): number => {
  const cpu = k.cpu
  if ((cpu.cr4 & Cr4.TSD) !== 0 && cpu.cpl !== 0) k.gp(0)
  const ic = cpu.intercepts
  if (ic !== null) {
    if (withAux ? ic.exitsOnRdtscp() : ic.exitsOnRdtsc()) return k.exitNow(withAux ? ExitReason.RDTSCP : ExitReason.RDTSC, 0, 0, 0)
  }
  const v = BigInt.asUintN(64, cpu.tsc + (ic !== null ? ic.tscOffset : 0n))
  cpu.lo[0] = lo32(v)
  cpu.hi[0] = 0
  cpu.lo[2] = hi32(v)
  cpu.hi[2] = 0
  if (withAux) {
    cpu.lo[1] = cpu.msr[MsrSlot.TSC_AUX * 2]!
    cpu.hi[1] = 0
  }
  return DONE
}

// ---------------------------------------------------------------- I/O

/**
 * The IN/OUT/INS/OUTS permission check and exit. In 64-bit mode CPL > IOPL needs the TSS I/O
 * permission bitmap; a missing or denying bitmap is #GP(0) (checked before any VM exit).
 */
export const ioCheck = (k: Engine, port: number, size: number, isIn: boolean, isString: boolean, isRep: boolean, immediate: boolean, stringLin: number, info: number): number => {
  const cpu = k.cpu
  const iopl = (cpu.rflagsRest >> 12) & 3
  if (cpu.cpl > iopl && !ioBitmapAllows(k, port, size)) k.gp(0)
  const ic = cpu.intercepts
  if (ic !== null && ic.exitsOnIo(port, size, isIn, isString, isRep)) {
    const x = cpu.exit
    const qual = (size - 1) | (isIn ? 8 : 0) | (isString ? 16 : 0) | (isRep ? 32 : 0) | (immediate ? 64 : 0) | (port << 16)
    if (isString) {
      x.clear()
      x.reason = ExitReason.IO_INSTRUCTION
      x.qualificationLo = qual
      x.instructionLength = k.curLen
      x.instructionInformation = info
      x.guestLinearLo = ((stringLin % TWO32) + TWO32) % TWO32 | 0
      x.guestLinearHi = Math.floor(stringLin / TWO32)
      return EXITED
    }
    return k.exitNow(ExitReason.IO_INSTRUCTION, qual, 0, 0)
  }
  return DONE
}


const ioBitmapAllows = (k: Engine, port: number, size: number): boolean => {
  const cpu = k.cpu
  const limit = cpu.segLimit[Seg.TR]!
  if (limit < 0x67) return false
  const base = cpu.segBaseHi[Seg.TR]! * TWO32 + (cpu.segBaseLo[Seg.TR]! >>> 0)
  return k.withCpl0(() => {
    const mapBase = k.read16(base + 0x66)
    const byteOff = mapBase + (port >>> 3)
    if (byteOff + 1 > limit) return false
    const bits = k.read16(base + byteOff)
    const want = ((1 << size) - 1) << (port & 7)
    return (bits & want) === 0
  })
}

// ---------------------------------------------------------------- descriptor tables and segments

export const loadSegment = (k: Engine, seg: number, selector: number): void => {
  const cpu = k.cpu
  selector &= 0xffff
  const rpl = selector & 3
  if ((selector & 0xfffc) === 0) {
    if (seg === Seg.SS && (cpu.cpl === 3 || rpl !== cpu.cpl)) k.gp(0)
    cpu.segSel[seg] = selector
    cpu.segAttr[seg] = 0x10000 | (seg === Seg.SS ? cpu.cpl << 5 : 0)
    cpu.systemGeneration++
    if (seg !== Seg.FS && seg !== Seg.GS) {
      cpu.segBaseLo[seg] = 0
      cpu.segBaseHi[seg] = 0
    }
    // FS/GS with a null selector: Intel keeps the base (the 64-bit kernel's habit relies on it).
    if (seg === Seg.SS) setShadow(k, Interruptibility.MOV_SS)
    return
  }
  const lo = k.readDescriptor(selector)
  const hi = k.tHi
  const ar = Engine.accessRights(hi)
  const dpl = (ar >> 5) & 3
  const isCode = (ar & 0x18) === 0x18
  const isData = (ar & 0x18) === 0x10
  if (seg === Seg.SS) {
    if (rpl !== cpu.cpl || dpl !== cpu.cpl || !isData || (ar & 2) === 0) k.gp(selector & 0xfffc)
    if ((ar & 0x80) === 0) k.fault(12, selector & 0xfffc)
  } else {
    const readable = isData || (isCode && (ar & 2) !== 0)
    if (!readable) k.gp(selector & 0xfffc)
    const conforming = isCode && (ar & 4) !== 0
    if (!conforming && (rpl > dpl || cpu.cpl > dpl)) k.gp(selector & 0xfffc)
    if ((ar & 0x80) === 0) k.fault(11, selector & 0xfffc)
  }
  cpu.segSel[seg] = selector
  cpu.segBaseLo[seg] = Engine.baseOf(lo, hi) | 0
  cpu.segBaseHi[seg] = 0
  cpu.segLimit[seg] = Engine.limitOf(lo, hi)
  cpu.segAttr[seg] = ar | 1 // accessed
  cpu.systemGeneration++
  if (seg === Seg.SS) setShadow(k, Interruptibility.MOV_SS)
}

export const setShadow = (k: Engine, bit: number): void => {
  const cpu = k.cpu
  // A shadow is not renewed by a second STI/MOV SS right after the first.
  if ((cpu.interruptibility & (Interruptibility.STI | Interruptibility.MOV_SS)) === 0) {
    cpu.interruptibility |= bit
    k.shadowFresh = true
  }
  cpu.attention = 1
}

export const lgdtLidt = (k: Engine, lin: number, idt: boolean): void => {
  requireCpl0(k)
  const limit = k.read16(lin)
  const lo = k.read32(lin + 2)
  const hi = k.read32(lin + 6)
  const cpu = k.cpu
  if (!canonical64(lo, hi)) k.gp(0)
  if (idt) {
    cpu.idtrLimit = limit
    cpu.idtrBaseLo = lo
    cpu.idtrBaseHi = hi
    cpu.systemGeneration++
  } else {
    cpu.gdtrLimit = limit
    cpu.gdtrBaseLo = lo
    cpu.gdtrBaseHi = hi
    cpu.systemGeneration++
  }
}

export const sgdtSidt = (k: Engine, lin: number, idt: boolean): void => {
  const cpu = k.cpu
  if ((cpu.cr4 & Cr4.UMIP) !== 0 && cpu.cpl > 0) k.gp(0)
  k.probeWrite(lin, 10)
  k.write16(lin, idt ? cpu.idtrLimit : cpu.gdtrLimit)
  k.write32(lin + 2, idt ? cpu.idtrBaseLo : cpu.gdtrBaseLo)
  k.write32(lin + 6, idt ? cpu.idtrBaseHi : cpu.gdtrBaseHi)
}

/** Loads LDTR or TR from a 16-byte system descriptor in the GDT. */
export const lldtLtr = (k: Engine, selector: number, tr: boolean): void => {
  requireCpl0(k)
  const cpu = k.cpu
  selector &= 0xffff
  if ((selector & 0xfffc) === 0) {
    if (tr) k.gp(0)
    cpu.segSel[Seg.LDTR] = selector
    cpu.segAttr[Seg.LDTR] = 0x10000
    cpu.systemGeneration++
    return
  }
  if ((selector & 4) !== 0) k.gp(selector & 0xfffc)
  const index = selector & ~7
  if (index + 15 > cpu.gdtrLimit) k.gp(selector & 0xfffc)
  const lin = cpu.gdtrBaseHi * TWO32 + (cpu.gdtrBaseLo >>> 0) + index
  const lo = k.withCpl0(() => k.read32(lin))
  const hi = k.withCpl0(() => k.read32(lin + 4))
  const upper = k.withCpl0(() => k.read32(lin + 8))
  const ar = Engine.accessRights(hi)
  const type = ar & 0x1f
  if (tr ? type !== 0x09 : type !== 0x02) k.gp(selector & 0xfffc)
  if ((ar & 0x80) === 0) k.fault(11, selector & 0xfffc)
  if (!canonical64(Engine.baseOf(lo, hi) | 0, upper)) k.gp(selector & 0xfffc)
  const s = tr ? Seg.TR : Seg.LDTR
  cpu.segSel[s] = selector
  cpu.segBaseLo[s] = Engine.baseOf(lo, hi) | 0
  cpu.segBaseHi[s] = upper
  cpu.segLimit[s] = Engine.limitOf(lo, hi)
  if (tr) {
    // Mark the TSS busy in the GDT.
    k.withCpl0(() => k.write32(lin + 4, hi | 0x200))
    cpu.segAttr[s] = ar | 2
  } else cpu.segAttr[s] = ar
  cpu.systemGeneration++
}

// ---------------------------------------------------------------- SYSCALL / SYSRET / IRETQ

export const syscall = (k: Engine): void => {
  const cpu = k.cpu
  if ((cpu.efer & Efer.SCE) === 0) k.ud()
  const next = k.nextRip
  const rflags = cpu.getRflags32()
  cpu.lo[1] = ((next % TWO32) + TWO32) % TWO32 | 0
  cpu.hi[1] = Math.floor(next / TWO32)
  cpu.lo[11] = rflags & ~Rflags.RF
  cpu.hi[11] = 0
  const lstarLo = cpu.msr[MsrSlot.LSTAR * 2]!
  const lstarHi = cpu.msr[MsrSlot.LSTAR * 2 + 1]!
  const starHi = cpu.msr[MsrSlot.STAR * 2 + 1]!
  const fmask = cpu.msr[MsrSlot.FMASK * 2]!
  const csSel = starHi & 0xfffc
  cpu.segSel[Seg.CS] = csSel
  cpu.segBaseLo[Seg.CS] = 0
  cpu.segBaseHi[Seg.CS] = 0
  cpu.segLimit[Seg.CS] = 0xffffffff
  cpu.segAttr[Seg.CS] = 0xa09b // P, DPL0, code exec/read accessed, L=1, G=1
  cpu.segSel[Seg.SS] = (csSel + 8) & 0xffff
  cpu.segBaseLo[Seg.SS] = 0
  cpu.segBaseHi[Seg.SS] = 0
  cpu.segLimit[Seg.SS] = 0xffffffff
  cpu.segAttr[Seg.SS] = 0xc093 // P, DPL0, data read/write accessed, D/B=1, G=1
  cpu.systemGeneration++
  cpu.cpl = 0
  cpu.setRflags32(rflags & ~fmask & ~Rflags.RF)
  cpu.rip = lstarHi * TWO32 + (lstarLo >>> 0)
  k.codeBase = NaN
}

export const sysret = (k: Engine, rexW: boolean): void => {
  const cpu = k.cpu
  if ((cpu.efer & Efer.SCE) === 0) k.ud()
  if (cpu.cpl !== 0) k.gp(0)
  // Returning to compatibility mode (SYSRET without REX.W) is not simulated: 32-bit code cannot run here.
  if (!rexW) k.gp(0)
  const rcxLo = cpu.lo[1]!
  const rcxHi = cpu.hi[1]!
  if (!canonical64(rcxLo, rcxHi)) k.gp(0)
  const starHi = cpu.msr[MsrSlot.STAR * 2 + 1]!
  const base = (starHi >>> 16) & 0xffff
  cpu.segSel[Seg.CS] = ((base + 16) | 3) & 0xffff
  cpu.segBaseLo[Seg.CS] = 0
  cpu.segBaseHi[Seg.CS] = 0
  cpu.segLimit[Seg.CS] = 0xffffffff
  cpu.segAttr[Seg.CS] = 0xa0fb // P, DPL3, code, L=1, G=1
  cpu.segSel[Seg.SS] = ((base + 8) | 3) & 0xffff
  cpu.segBaseLo[Seg.SS] = 0
  cpu.segBaseHi[Seg.SS] = 0
  cpu.segLimit[Seg.SS] = 0xffffffff
  cpu.segAttr[Seg.SS] = 0xc0f3
  cpu.systemGeneration++
  cpu.cpl = 3
  cpu.setRflags32((cpu.lo[11]! & 0x3c7fd7) | 2)
  cpu.rip = rcxHi * TWO32 + (rcxLo >>> 0)
  k.codeBase = NaN
}

/** IRETQ (and IRETD/IRETW frames) in 64-bit mode: pops RIP, CS, RFLAGS, RSP, SS. */
export const iret = (k: Engine, osz: number): void => {
  const cpu = k.cpu
  if (osz !== 8) k.gp(0) // 16/32-bit IRET frames would return to compatibility mode: not simulated
  const sp = k.stackTop()
  k.canonical(sp, true)
  const ripLo = k.read64(sp)
  const ripHi = k.tHi
  const csSel = k.read64(sp + 8) & 0xffff
  const flags = k.read64(sp + 16)
  const rspLo = k.read64(sp + 24)
  const rspHi = k.tHi
  const ssSel = k.read64(sp + 32) & 0xffff
  const rpl = csSel & 3
  if ((csSel & 0xfffc) === 0) k.gp(0)
  if (rpl < cpu.cpl) k.gp(csSel & 0xfffc)
  const dLo = k.readDescriptor(csSel)
  const dHi = k.tHi
  const ar = Engine.accessRights(dHi)
  if ((ar & 0x18) !== 0x18) k.gp(csSel & 0xfffc)
  const dpl = (ar >> 5) & 3
  if ((ar & 4) === 0 ? dpl !== rpl : dpl > rpl) k.gp(csSel & 0xfffc)
  if ((ar & 0x80) === 0) k.fault(11, csSel & 0xfffc)
  if ((ar & 0x2000) === 0) k.gp(csSel & 0xfffc) // target is not 64-bit code: compatibility mode not simulated
  if (!canonical64(ripLo, ripHi)) k.gp(0)
  // SS: null allowed when returning to CPL < 3 in 64-bit mode.
  let ssAr = 0x10000 | (rpl << 5)
  let ssBase = 0
  let ssLimit = 0xffffffff
  if ((ssSel & 0xfffc) === 0) {
    if (rpl === 3) k.gp(0)
  } else {
    if ((ssSel & 3) !== rpl) k.gp(ssSel & 0xfffc)
    const sLo = k.readDescriptor(ssSel)
    const sHi = k.tHi
    const sar = Engine.accessRights(sHi)
    if ((sar & 0x18) !== 0x10 || (sar & 2) === 0 || ((sar >> 5) & 3) !== rpl) k.gp(ssSel & 0xfffc)
    if ((sar & 0x80) === 0) k.fault(12, ssSel & 0xfffc)
    ssAr = sar | 1
    ssBase = Engine.baseOf(sLo, sHi)
    ssLimit = Engine.limitOf(sLo, sHi)
  }
  // RFLAGS: IOPL only at CPL 0, IF only when CPL <= IOPL; VM/VIF/VIP stay 0 here.
  const old = cpu.getRflags32()
  const iopl = (old >> 12) & 3
  let changeable = Rflags.CF | Rflags.PF | Rflags.AF | Rflags.ZF | Rflags.SF | Rflags.TF | Rflags.DF | Rflags.OF | Rflags.NT | Rflags.RF | Rflags.AC | Rflags.ID
  if (cpu.cpl === 0) changeable |= Rflags.IOPL
  if (cpu.cpl <= iopl) changeable |= Rflags.IF
  const newFlags = (old & ~changeable) | (flags & changeable) | 2
  cpu.segSel[Seg.CS] = csSel
  cpu.segBaseLo[Seg.CS] = 0
  cpu.segBaseHi[Seg.CS] = 0
  cpu.segLimit[Seg.CS] = Engine.limitOf(dLo, dHi)
  cpu.segAttr[Seg.CS] = ar | 1
  cpu.segSel[Seg.SS] = ssSel
  cpu.segBaseLo[Seg.SS] = ssBase | 0
  cpu.segBaseHi[Seg.SS] = 0
  cpu.segLimit[Seg.SS] = ssLimit
  cpu.segAttr[Seg.SS] = ssAr
  cpu.systemGeneration++
  cpu.lo[4] = rspLo
  cpu.hi[4] = rspHi
  cpu.cpl = rpl
  cpu.setRflags32(newFlags)
  // IRET ends NMI blocking.
  cpu.interruptibility &= ~Interruptibility.NMI
  cpu.rip = ripHi * TWO32 + (ripLo >>> 0)
  k.codeBase = NaN
  if (rpl > 0) {
    // Data segments not accessible at the new CPL become null (SDM IRET pseudo-code).
    for (const s of [Seg.ES, Seg.DS, Seg.FS, Seg.GS]) {
      const a = cpu.segAttr[s]!
      const d = (a >> 5) & 3
      const conformingCode = (a & 0x1c) === 0x1c
      if ((a & 0x10000) === 0 && !conformingCode && d < rpl && (cpu.segSel[s]! & 0xfffc) !== 0) {
        cpu.segSel[s] = 0
        cpu.segAttr[s] = 0x10000
        cpu.systemGeneration++
      }
    }
  }
}

export const swapgs = (k: Engine): void => {
  requireCpl0(k)
  const cpu = k.cpu
  const lo = cpu.segBaseLo[Seg.GS]!
  const hi = cpu.segBaseHi[Seg.GS]!
  cpu.segBaseLo[Seg.GS] = cpu.msr[MsrSlot.KERNEL_GS_BASE * 2]!
  cpu.segBaseHi[Seg.GS] = cpu.msr[MsrSlot.KERNEL_GS_BASE * 2 + 1]!
  cpu.msr[MsrSlot.KERNEL_GS_BASE * 2] = lo
  cpu.msr[MsrSlot.KERNEL_GS_BASE * 2 + 1] = hi
  cpu.systemGeneration++
}

/** MOV to/from DR0-7 (DR4/DR5 alias DR6/DR7 unless CR4.DE). No breakpoints are simulated. */
export const movDr = (k: Engine, dr: number, gpr: number, toDr: boolean): number => {
  const cpu = k.cpu
  if ((dr === 4 || dr === 5) && (cpu.cr4 & Cr4.DE) !== 0) k.ud()
  requireCpl0(k)
  if (cpu.intercepts !== null && cpu.intercepts.exitsOnDrAccess !== undefined && cpu.intercepts.exitsOnDrAccess()) {
    return k.exitNow(ExitReason.DR_ACCESS, dr | (toDr ? 0 : 1 << 4) | (gpr << 8), 0, 0)
  }
  const r = dr === 4 ? 6 : dr === 5 ? 7 : dr
  if (toDr) {
    const lo = cpu.lo[gpr]!
    const hi = cpu.hi[gpr]!
    if (r < 4) cpu.dr[r] = big(lo, hi)
    else {
      if (hi !== 0) k.gp(0)
      if (r === 6) cpu.dr6 = (lo | 0xffff0ff0) >>> 0
      else {
        cpu.dr7 = ((lo & ~0xd800) | 0x400) >>> 0
        cpu.systemGeneration++
      }
    }
  } else {
    let v: bigint
    if (r < 4) v = cpu.dr[r]!
    else v = BigInt(r === 6 ? cpu.dr6 >>> 0 : cpu.dr7 >>> 0)
    cpu.lo[gpr] = lo32(v)
    cpu.hi[gpr] = hi32(v)
  }
  return DONE
}
