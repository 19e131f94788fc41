// The CPUID table a vCPU answers from (what KVM_GET_SUPPORTED_CPUID returns and QEMU passes back
// with KVM_SET_CPUID2). It describes kvmsim's guest core truthfully — an Intel family-6 Skylake
// signature, long mode, SYSCALL, NX, the hypervisor bit — plus KVM's paravirtual leaves: the
// signature "KVMKVMKVM\0\0\0" at 0x40000000 and the feature bits at 0x40000001.

import type { KernelProfile } from "../../host/profile.ts"

export interface CpuidEntry {
  readonly function: number
  readonly index: number
  /** KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1): the entry depends on ECX. */
  readonly flags: number
  readonly eax: number
  readonly ebx: number
  readonly ecx: number
  readonly edx: number
}

export const KVM_CPUID_SIGNATURE = 0x40000000
export const KVM_CPUID_FEATURES = 0x40000001

/** Bits of CPUID 0x40000001 EAX (arch/x86/include/uapi/asm/kvm_para.h). */
export const KvmFeature = {
  PV_UNHALT: 7,
  PV_SEND_IPI: 11,
  PV_SCHED_YIELD: 13,
} as const

const ascii4 = (s: string): number => (s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24)) >>> 0

const entry = (fn: number, eax: number, ebx: number, ecx: number, edx: number, index = 0, flags = 0): CpuidEntry => ({
  function: fn,
  index,
  flags,
  eax: eax >>> 0,
  ebx: ebx >>> 0,
  ecx: ecx >>> 0,
  edx: edx >>> 0,
})

/** The supported CPUID of a vCPU; leaf 1 EBX carries the vCPU's APIC id. */
export const supportedCpuid = (profile: KernelProfile, apicId: number): Array<CpuidEntry> => {
  const kvmFeatures = (1 << KvmFeature.PV_UNHALT) | (1 << KvmFeature.PV_SEND_IPI) | (profile.hasSchedYield ? 1 << KvmFeature.PV_SCHED_YIELD : 0)
  // Leaf 1 EDX: TSC, MSR, PAE, CX8, APIC, SEP, PGE, CMOV, PAT; ECX: the hypervisor bit (31).
  const leaf1Edx = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 11) | (1 << 13) | (1 << 15) | (1 << 16)
  return [
    entry(0, 0x0d, ascii4("Genu"), ascii4("ntel"), ascii4("ineI")),
    // Family 6, model 0x5e, stepping 3; CLFLUSH line 8 quadwords, one logical processor.
    entry(1, 0x000506e3, (apicId << 24) | (1 << 16) | (8 << 8), 1 << 31, leaf1Edx),
    entry(KVM_CPUID_SIGNATURE, KVM_CPUID_FEATURES, ascii4("KVMK"), ascii4("VMKV"), ascii4("M\0\0\0")),
    entry(KVM_CPUID_FEATURES, kvmFeatures, 0, 0, 0),
    entry(0x80000000, 0x80000008, 0, 0, 0),
    // LAHF in 64-bit mode; SYSCALL, NX, long mode.
    entry(0x80000001, 0, 0, 1, (1 << 11) | (1 << 20) | (1 << 29)),
    // 39 physical and 48 linear address bits.
    entry(0x80000008, 0x3027, 0, 0, 0),
  ]
}

export interface CpuidAnswer {
  eax: number
  ebx: number
  ecx: number
  edx: number
  found: boolean
  usedMaxBasic: boolean
}

/**
 * kvm_cpuid(): the entry for (function, index); a function above its range's maximum is answered
 * with the highest basic leaf as Intel CPUs do; anything else reads as zeros.
 */
export const lookupCpuid = (entries: ReadonlyArray<CpuidEntry>, fn: number, index: number, out: CpuidAnswer): void => {
  out.found = false
  out.usedMaxBasic = false
  let e = find(entries, fn, index)
  if (e !== undefined) out.found = true
  else {
    const base = fn >= 0x80000000 ? 0x80000000 : fn >= 0x40000000 ? 0x40000000 : 0
    const range = find(entries, base, 0)
    if (base !== 0x40000000 && range !== undefined && fn > range.eax) {
      e = find(entries, find(entries, 0, 0)?.eax ?? 0, index)
      out.usedMaxBasic = e !== undefined
    }
  }
  out.eax = e?.eax ?? 0
  out.ebx = e?.ebx ?? 0
  out.ecx = e?.ecx ?? 0
  out.edx = e?.edx ?? 0
}

const find = (entries: ReadonlyArray<CpuidEntry>, fn: number, index: number): CpuidEntry | undefined => {
  for (const e of entries) if (e.function === fn && ((e.flags & 1) === 0 || e.index === index)) return e
  return undefined
}
