// The VM-entry MSR-load, VM-exit MSR-store and VM-exit MSR-load areas (SDM 24.7.2, 24.8.2):
// 16-byte entries {index: u32, reserved: u32, data: u64} in host physical memory.
import { Msr as MsrImport } from "../../arch/msr.ts"
import { MsrSlot as MsrSlotImport, Seg as SegImport, type CpuState } from "../../guest/cpu/state.ts"
import type { HostPhysicalMemory } from "./host-memory.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const Msr = MsrImport
const MsrSlot = MsrSlotImport
const Seg = SegImport

/** MSRs the guest core keeps, by index → MsrSlot (FS/GS base and EFER handled separately). */
const SLOT_BY_INDEX = new Map<number, number>([
  [Msr.IA32_STAR, MsrSlot.STAR],
  [Msr.IA32_LSTAR, MsrSlot.LSTAR],
  [Msr.IA32_CSTAR, MsrSlot.CSTAR],
  [Msr.IA32_FMASK, MsrSlot.FMASK],
  [Msr.IA32_KERNEL_GS_BASE, MsrSlot.KERNEL_GS_BASE],
  [Msr.IA32_TSC_AUX, MsrSlot.TSC_AUX],
  [Msr.IA32_SYSENTER_CS, MsrSlot.SYSENTER_CS],
  [Msr.IA32_SYSENTER_ESP, MsrSlot.SYSENTER_ESP],
  [Msr.IA32_SYSENTER_EIP, MsrSlot.SYSENTER_EIP],
  [Msr.IA32_PAT, MsrSlot.PAT],
  [Msr.IA32_TSC_ADJUST, MsrSlot.TSC_ADJUST],
])

/** Reads a guest MSR for the VM-exit MSR-store area; undefined for an MSR the core does not have. */
export const readGuestMsr = (cpu: CpuState, index: number): bigint | undefined => {
  const slot = SLOT_BY_INDEX.get(index)
  if (slot !== undefined) return cpu.getMsrSlot(slot)
  if (index === Msr.IA32_EFER) return BigInt(cpu.efer >>> 0)
  if (index === Msr.IA32_TSC) return cpu.tsc
  if (index === Msr.IA32_FS_BASE) return cpu.getSegment(Seg.FS).base
  if (index === Msr.IA32_GS_BASE) return cpu.getSegment(Seg.GS).base
  return undefined
}

/**
 * Loads one entry of the VM-entry MSR-load area into the guest core. Returns false where the
 * SDM makes the entry fail (26.4): FS/GS base, x2APIC MSRs, SMM-related MSRs, or a value WRMSR
 * would reject (unknown MSR, non-canonical address MSRs, reserved EFER bits).
 */
const writeGuestMsr = (cpu: CpuState, index: number, value: bigint): boolean => {
  if (index === Msr.IA32_FS_BASE || index === Msr.IA32_GS_BASE) return false
  if (index >= 0x800 && index <= 0x8ff) return false
  if (index === 0x9b || index === 0x9e) return false // IA32_SMM_MONITOR_CTL, IA32_SMBASE
  const canonical = BigInt.asIntN(48, value) === BigInt.asIntN(64, value)
  if (index === Msr.IA32_EFER) {
    if ((value & ~0xd01n) !== 0n) return false
    cpu.efer = Number(value)
    cpu.systemGeneration++
    return true
  }
  if (index === Msr.IA32_TSC) {
    cpu.tsc = value
    return true
  }
  const slot = SLOT_BY_INDEX.get(index)
  if (slot === undefined) return false
  if ((slot === MsrSlot.LSTAR || slot === MsrSlot.CSTAR || slot === MsrSlot.KERNEL_GS_BASE || slot === MsrSlot.SYSENTER_ESP || slot === MsrSlot.SYSENTER_EIP) && !canonical) {
    return false
  }
  cpu.setMsrSlot(slot, value)
  return true
}

/** Processes the VM-entry MSR-load list. Returns 0 on success or the 1-based index of the failing entry. */
export const loadEntryMsrs = (memory: HostPhysicalMemory, address: number, count: number, maxEntries: number, cpu: CpuState): number => {
  for (let i = 0; i < count; i++) {
    if (i >= maxEntries) return i + 1
    const entry = address + i * 16
    const index = memory.read32(entry)
    if (memory.read32(entry + 4) !== 0) return i + 1
    if (!writeGuestMsr(cpu, index, memory.read64(BigInt(entry + 8)))) return i + 1
  }
  return 0
}

/** Stores guest MSRs into the VM-exit MSR-store list. Returns 0 or the 1-based failing entry. */
export const storeExitMsrs = (memory: HostPhysicalMemory, address: number, count: number, cpu: CpuState): number => {
  for (let i = 0; i < count; i++) {
    const entry = address + i * 16
    const index = memory.read32(entry)
    const value = readGuestMsr(cpu, index)
    if (value === undefined || memory.read32(entry + 4) !== 0) return i + 1
    memory.write64(BigInt(entry + 8), value)
  }
  return 0
}

/**
 * Processes the VM-exit MSR-load list into the host's MSRs (kept by the logical processor).
 * Returns 0 or the 1-based failing entry (a VMX abort).
 */
export const loadExitMsrs = (memory: HostPhysicalMemory, address: number, count: number, hostMsrs: Map<number, bigint>): number => {
  for (let i = 0; i < count; i++) {
    const entry = address + i * 16
    const index = memory.read32(entry)
    if (memory.read32(entry + 4) !== 0 || index === Msr.IA32_FS_BASE || index === Msr.IA32_GS_BASE || (index >= 0x800 && index <= 0x8ff)) return i + 1
    hostMsrs.set(index >>> 0, memory.read64(BigInt(entry + 8)))
  }
  return 0
}
