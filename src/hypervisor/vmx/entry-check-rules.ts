// The predicates behind the VM-entry checks of src/arch/vmx/entry-checks.ts, one per check, in
// the same order. Each lists the VMCS fields it reads (so VMWRITE can mark it dirty) and whether
// it also reads something outside the VMCS (processor state, memory): those run on every entry.
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { EntryControl as EntryControlImport, ExitControl as ExitControlImport, PinControl as PinControlImport, PrimaryControl as PrimaryControlImport, SecondaryControl as SecondaryControlImport } from "../../arch/vmx/control-bits.ts"
import type { VmxCapabilities } from "./capabilities.ts"
import type { HostPhysicalMemory } from "./host-memory.ts"
import type { VmcsView } from "./vmcs-view.ts"
import { byteOffset } from "./vmcs-layout.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const F = FImport
const EntryControl = EntryControlImport
const ExitControl = ExitControlImport
const PinControl = PinControlImport
const PrimaryControl = PrimaryControlImport
const SecondaryControl = SecondaryControlImport

/** What a check may look at besides the VMCS fields it declares. */
export interface CheckContext {
  readonly view: VmcsView
  readonly caps: VmxCapabilities
  readonly memory: HostPhysicalMemory
  /** The logical processor is in IA-32e mode (host IA32_EFER.LMA). */
  readonly hostLongMode: boolean
  /** Changes whenever the processor's root state (what `hostLongMode` reads) may have changed. */
  readonly processorVersion: number
}

export interface CheckRule {
  readonly name: string
  readonly fields: ReadonlyArray<number>
  /** Also reads the processor's root state: runs again whenever `processorVersion` changed. */
  readonly readsProcessor: boolean
  /**
   * Whether the check reads memory at this entry (then it runs at every entry; memory is not
   * versioned), or null for a check that never does. Reads only the check's own fields.
   */
  readonly readsMemory: ((ctx: CheckContext) => boolean) | null
  /**
   * Declared 64-bit or natural-width fields of which the check reads only bits 63:32: a write
   * confined to bits 31:0 of such a field leaves the check's verdict as it was.
   */
  readonly highHalfOnly: ReadonlyArray<number>
  readonly passes: (ctx: CheckContext) => boolean
}

const CR0_PE = 1 << 0
const CR0_PG = 1 << 31
const CR4_PAE = 1 << 5
const CR4_PCIDE = 1 << 17
const RFLAGS_TF = 1 << 8
const RFLAGS_IF = 1 << 9
const RFLAGS_VM = 1 << 17
const AR_UNUSABLE = 1 << 16

// Physical-address width tests on (lo, hi) halves: bits 63:width must be 0.
const withinWidth = (ctx: CheckContext, lo: number, hi: number): boolean => {
  void lo
  return hi >>> (ctx.memory.physicalAddressWidth - 32) === 0
}
const alignedWithin = (ctx: CheckContext, encoding: number, alignMask: number): boolean =>
  (ctx.view.lo(encoding) & alignMask) === 0 && withinWidth(ctx, 0, ctx.view.hi(encoding))
/** 48-bit canonical: bits 63:47 all equal. */
const canonicalHi = (hi: number): boolean => {
  const top = (hi | 0) >> 15
  return top === 0 || top === -1
}
const canonical = (ctx: CheckContext, encoding: number): boolean => canonicalHi(ctx.view.hi(encoding))
const respects = (value: number, allowed0: number, allowed1: number): boolean =>
  ((value & allowed0) >>> 0) === allowed0 >>> 0 && (value & ~allowed1) === 0
const patValid = (lo: number, hi: number): boolean => {
  for (let i = 0; i < 4; i++) {
    const a = (lo >>> (i * 8)) & 0xff
    const b = (hi >>> (i * 8)) & 0xff
    if (a === 2 || a === 3 || a > 7 || b === 2 || b === 3 || b > 7) return false
  }
  return true
}
// IA32_PERF_GLOBAL_CTRL on a Core i7-6700K: 4 general counters (bits 3:0), 3 fixed (bits 34:32).
const PERF_GLOBAL_VALID_LO = 0xf
const PERF_GLOBAL_VALID_HI = 0x7
// IA32_EFER bits an Intel CPU implements: SCE, LME, LMA, NXE.
const EFER_VALID = 0xd01
const EFER_LME = 1 << 8
const EFER_LMA = 1 << 10
const DEBUGCTL_VALID = 0xffc3

const pin = (ctx: CheckContext): number => ctx.view.lo(F.PIN_BASED_VM_EXEC_CONTROL)
const primary = (ctx: CheckContext): number => ctx.view.lo(F.CPU_BASED_VM_EXEC_CONTROL)
/** Secondary controls as in effect: 0 unless primary bit 31 activates them. */
const secondary = (ctx: CheckContext): number =>
  (primary(ctx) & PrimaryControl.ACTIVATE_SECONDARY_CONTROLS) !== 0 ? ctx.view.lo(F.SECONDARY_VM_EXEC_CONTROL) : 0
const exitCtl = (ctx: CheckContext): number => ctx.view.lo(F.VM_EXIT_CONTROLS)
const entryCtl = (ctx: CheckContext): number => ctx.view.lo(F.VM_ENTRY_CONTROLS)
const ia32eGuest = (ctx: CheckContext): boolean => (entryCtl(ctx) & EntryControl.IA32E_MODE) !== 0
const hostSize = (ctx: CheckContext): boolean => (exitCtl(ctx) & ExitControl.HOST_ADDR_SPACE_SIZE) !== 0
const unrestricted = (ctx: CheckContext): boolean => (secondary(ctx) & SecondaryControl.UNRESTRICTED_GUEST) !== 0
const ept = (ctx: CheckContext): boolean => (secondary(ctx) & SecondaryControl.ENABLE_EPT) !== 0

const msrArea = (ctx: CheckContext, countField: number, addressField: number): boolean => {
  const count = ctx.view.lo(countField)
  if (count === 0) return true
  const lo = ctx.view.lo(addressField)
  const hi = ctx.view.hi(addressField)
  if ((lo & 0xf) !== 0) return false
  const last = ((BigInt(hi) << 32n) | BigInt(lo)) + BigInt(count) * 16n - 1n
  return ctx.memory.isValidAddress(last)
}

/** G must be 0 if any of limit bits 11:0 is 0, and 1 if any of bits 31:20 is 1. */
const granularityConsistent = (limit: number, ar: number): boolean => {
  const g = (ar & (1 << 15)) !== 0
  if ((limit & 0xfff) !== 0xfff && g) return false
  if ((limit & 0xfff0_0000) !== 0 && !g) return false
  return true
}
const arReservedClear = (ar: number): boolean => (ar & 0xf00) === 0 && (ar & 0xfffe_0000) === 0
const arType = (ar: number): number => ar & 0xf
const arS = (ar: number): boolean => (ar & 0x10) !== 0
const arDpl = (ar: number): number => (ar >>> 5) & 3
const arP = (ar: number): boolean => (ar & 0x80) !== 0
const usable = (ar: number): boolean => (ar & AR_UNUSABLE) === 0

const CTL = [F.PIN_BASED_VM_EXEC_CONTROL, F.CPU_BASED_VM_EXEC_CONTROL, F.SECONDARY_VM_EXEC_CONTROL]
const SEGMENTS = [
  [F.GUEST_CS_SELECTOR, F.GUEST_CS_BASE, F.GUEST_CS_LIMIT, F.GUEST_CS_AR_BYTES],
  [F.GUEST_SS_SELECTOR, F.GUEST_SS_BASE, F.GUEST_SS_LIMIT, F.GUEST_SS_AR_BYTES],
  [F.GUEST_DS_SELECTOR, F.GUEST_DS_BASE, F.GUEST_DS_LIMIT, F.GUEST_DS_AR_BYTES],
  [F.GUEST_ES_SELECTOR, F.GUEST_ES_BASE, F.GUEST_ES_LIMIT, F.GUEST_ES_AR_BYTES],
  [F.GUEST_FS_SELECTOR, F.GUEST_FS_BASE, F.GUEST_FS_LIMIT, F.GUEST_FS_AR_BYTES],
  [F.GUEST_GS_SELECTOR, F.GUEST_GS_BASE, F.GUEST_GS_LIMIT, F.GUEST_GS_AR_BYTES],
] as const
const SEGMENT_FIELDS = SEGMENTS.flat()
/** DS ES FS GS (SEGMENTS from index 2 on) and the SS DS ES bases, hoisted out of the checks. */
const DATA_SEGMENTS = SEGMENTS.slice(2)
const SS_DS_ES_BASES = [
  [F.GUEST_SS_BASE, F.GUEST_SS_AR_BYTES],
  [F.GUEST_DS_BASE, F.GUEST_DS_AR_BYTES],
  [F.GUEST_ES_BASE, F.GUEST_ES_AR_BYTES],
] as const
const TR_FIELDS = [F.GUEST_TR_SELECTOR, F.GUEST_TR_BASE, F.GUEST_TR_LIMIT, F.GUEST_TR_AR_BYTES]
const LDTR_FIELDS = [F.GUEST_LDTR_SELECTOR, F.GUEST_LDTR_BASE, F.GUEST_LDTR_LIMIT, F.GUEST_LDTR_AR_BYTES]

// Word indices of fields the most frequently run checks read.
const W_LINK_POINTER = byteOffset[F.VMCS_LINK_POINTER]! >>> 2
const W_ENTRY_CONTROLS = byteOffset[F.VM_ENTRY_CONTROLS]! >>> 2
const W_GUEST_CS_AR = byteOffset[F.GUEST_CS_AR_BYTES]! >>> 2
const W_GUEST_RIP = byteOffset[F.GUEST_RIP]! >>> 2

const rule = (
  name: string,
  fields: ReadonlyArray<number>,
  passes: (ctx: CheckContext) => boolean,
  reads: { processor?: boolean; memory?: (ctx: CheckContext) => boolean; highHalfOnly?: ReadonlyArray<number> } = {},
): CheckRule => ({
  name,
  fields,
  readsProcessor: reads.processor ?? false,
  readsMemory: reads.memory ?? null,
  highHalfOnly: reads.highHalfOnly ?? [],
  passes,
})

// The VM-entry interruption-information field taken apart (numbers: no object per check).
const injectionInfo = (ctx: CheckContext): number => ctx.view.lo(F.VM_ENTRY_INTR_INFO_FIELD)
const injectionValid = (info: number): boolean => (info & 0x8000_0000) !== 0
const injectionType = (info: number): number => (info >>> 8) & 7

export const checkRules: ReadonlyArray<CheckRule> = [
  rule("ctl.pin.allowed", [F.PIN_BASED_VM_EXEC_CONTROL], (ctx) => respects(pin(ctx), ctx.caps.pin.allowed0, ctx.caps.pin.allowed1)),
  rule("ctl.primary.allowed", [F.CPU_BASED_VM_EXEC_CONTROL], (ctx) => respects(primary(ctx), ctx.caps.primary.allowed0, ctx.caps.primary.allowed1)),
  rule("ctl.secondary.allowed", CTL, (ctx) => respects(secondary(ctx), ctx.caps.secondary.allowed0, ctx.caps.secondary.allowed1)),
  rule("ctl.cr3-target-count", [F.CR3_TARGET_COUNT], (ctx) => ctx.view.lo(F.CR3_TARGET_COUNT) >>> 0 <= ctx.caps.cr3TargetCount),
  rule("ctl.io-bitmaps", [F.CPU_BASED_VM_EXEC_CONTROL, F.IO_BITMAP_A, F.IO_BITMAP_B], (ctx) =>
    (primary(ctx) & PrimaryControl.USE_IO_BITMAPS) === 0 || (alignedWithin(ctx, F.IO_BITMAP_A, 0xfff) && alignedWithin(ctx, F.IO_BITMAP_B, 0xfff)),
  ),
  rule("ctl.msr-bitmap", [F.CPU_BASED_VM_EXEC_CONTROL, F.MSR_BITMAP], (ctx) =>
    (primary(ctx) & PrimaryControl.USE_MSR_BITMAPS) === 0 || alignedWithin(ctx, F.MSR_BITMAP, 0xfff),
  ),
  rule("ctl.tpr-shadow", [...CTL, F.VIRTUAL_APIC_PAGE_ADDR, F.TPR_THRESHOLD], (ctx) => {
    if ((primary(ctx) & PrimaryControl.TPR_SHADOW) === 0) return true
    if (!alignedWithin(ctx, F.VIRTUAL_APIC_PAGE_ADDR, 0xfff)) return false
    return (secondary(ctx) & SecondaryControl.VIRTUAL_INTR_DELIVERY) !== 0 || (ctx.view.lo(F.TPR_THRESHOLD) & 0xffff_fff0) === 0
  }),
  rule("ctl.apic-virtualization-needs-tpr-shadow", CTL, (ctx) =>
    (primary(ctx) & PrimaryControl.TPR_SHADOW) !== 0 ||
    (secondary(ctx) & (SecondaryControl.VIRTUALIZE_X2APIC_MODE | SecondaryControl.APIC_REGISTER_VIRT | SecondaryControl.VIRTUAL_INTR_DELIVERY)) === 0,
  ),
  rule("ctl.virtual-nmis-need-nmi-exiting", [F.PIN_BASED_VM_EXEC_CONTROL], (ctx) =>
    (pin(ctx) & PinControl.NMI_EXITING) !== 0 || (pin(ctx) & PinControl.VIRTUAL_NMIS) === 0,
  ),
  rule("ctl.nmi-window-needs-virtual-nmis", CTL, (ctx) =>
    (pin(ctx) & PinControl.VIRTUAL_NMIS) !== 0 || (primary(ctx) & PrimaryControl.NMI_WINDOW_EXITING) === 0,
  ),
  rule("ctl.apic-access-address", [...CTL, F.APIC_ACCESS_ADDR], (ctx) =>
    (secondary(ctx) & SecondaryControl.VIRTUALIZE_APIC_ACCESSES) === 0 || alignedWithin(ctx, F.APIC_ACCESS_ADDR, 0xfff),
  ),
  rule("ctl.x2apic-excludes-apic-accesses", CTL, (ctx) => {
    const s = secondary(ctx)
    return (s & SecondaryControl.VIRTUALIZE_X2APIC_MODE) === 0 || (s & SecondaryControl.VIRTUALIZE_APIC_ACCESSES) === 0
  }),
  rule("ctl.virtual-interrupt-delivery-needs-external-interrupt-exiting", CTL, (ctx) =>
    (secondary(ctx) & SecondaryControl.VIRTUAL_INTR_DELIVERY) === 0 || (pin(ctx) & PinControl.EXT_INTR_MASK) !== 0,
  ),
  rule("ctl.posted-interrupts", [...CTL, F.VM_EXIT_CONTROLS, F.POSTED_INTR_NV, F.POSTED_INTR_DESC_ADDR], (ctx) => {
    if ((pin(ctx) & PinControl.POSTED_INTR) === 0) return true
    return (
      (secondary(ctx) & SecondaryControl.VIRTUAL_INTR_DELIVERY) !== 0 &&
      (exitCtl(ctx) & ExitControl.ACK_INTR_ON_EXIT) !== 0 &&
      (ctx.view.lo(F.POSTED_INTR_NV) & 0xff00) === 0 &&
      alignedWithin(ctx, F.POSTED_INTR_DESC_ADDR, 0x3f)
    )
  }),
  rule("ctl.vpid-nonzero", [...CTL, F.VIRTUAL_PROCESSOR_ID], (ctx) =>
    (secondary(ctx) & SecondaryControl.ENABLE_VPID) === 0 || ctx.view.lo(F.VIRTUAL_PROCESSOR_ID) !== 0,
  ),
  rule("ctl.ept-pointer", [...CTL, F.EPT_POINTER], (ctx) => {
    if (!ept(ctx)) return true
    const lo = ctx.view.lo(F.EPT_POINTER)
    const cap = ctx.caps.eptVpidCap
    const memoryType = lo & 7
    if (!((memoryType === 0 && (cap & (1n << 8n)) !== 0n) || (memoryType === 6 && (cap & (1n << 14n)) !== 0n))) return false
    if (((lo >>> 3) & 7) !== 3) return false
    if ((lo & 0x40) !== 0 && (cap & (1n << 21n)) === 0n) return false
    if ((lo & 0xf80) !== 0) return false
    return withinWidth(ctx, lo, ctx.view.hi(F.EPT_POINTER))
  }),
  rule("ctl.unrestricted-guest-needs-ept", CTL, (ctx) => !unrestricted(ctx) || ept(ctx)),
  rule("ctl.pml", [...CTL, F.PML_ADDRESS], (ctx) =>
    (secondary(ctx) & SecondaryControl.ENABLE_PML) === 0 || (ept(ctx) && alignedWithin(ctx, F.PML_ADDRESS, 0xfff)),
  ),
  rule("ctl.vm-functions", [...CTL, F.VM_FUNCTION_CONTROL, F.EPTP_LIST_ADDRESS], (ctx) => {
    if ((secondary(ctx) & SecondaryControl.ENABLE_VMFUNC) === 0) return true
    const lo = ctx.view.lo(F.VM_FUNCTION_CONTROL)
    const hi = ctx.view.hi(F.VM_FUNCTION_CONTROL)
    const allowedLo = Number(ctx.caps.vmfunc & 0xffff_ffffn)
    const allowedHi = Number(ctx.caps.vmfunc >> 32n)
    if ((lo & ~allowedLo) !== 0 || (hi & ~allowedHi) !== 0) return false
    return (lo & 1) === 0 || (ept(ctx) && alignedWithin(ctx, F.EPTP_LIST_ADDRESS, 0xfff))
  }),
  rule("ctl.vmcs-shadowing", [...CTL, F.VMREAD_BITMAP, F.VMWRITE_BITMAP], (ctx) =>
    (secondary(ctx) & SecondaryControl.SHADOW_VMCS) === 0 ||
    (alignedWithin(ctx, F.VMREAD_BITMAP, 0xfff) && alignedWithin(ctx, F.VMWRITE_BITMAP, 0xfff)),
  ),
  rule("ctl.ept-violation-ve", [...CTL, F.VE_INFORMATION_ADDRESS], (ctx) =>
    (secondary(ctx) & SecondaryControl.EPT_VIOLATION_VE) === 0 || alignedWithin(ctx, F.VE_INFORMATION_ADDRESS, 0xfff),
  ),
  rule("ctl.exit.allowed", [F.VM_EXIT_CONTROLS], (ctx) => respects(exitCtl(ctx), ctx.caps.exit.allowed0, ctx.caps.exit.allowed1)),
  rule("ctl.exit.save-preemption-timer", [F.PIN_BASED_VM_EXEC_CONTROL, F.VM_EXIT_CONTROLS], (ctx) =>
    (exitCtl(ctx) & ExitControl.SAVE_VMX_PREEMPTION_TIMER) === 0 || (pin(ctx) & PinControl.VMX_PREEMPTION_TIMER) !== 0,
  ),
  rule("ctl.exit.msr-store-area", [F.VM_EXIT_MSR_STORE_COUNT, F.VM_EXIT_MSR_STORE_ADDR], (ctx) =>
    msrArea(ctx, F.VM_EXIT_MSR_STORE_COUNT, F.VM_EXIT_MSR_STORE_ADDR),
  ),
  rule("ctl.exit.msr-load-area", [F.VM_EXIT_MSR_LOAD_COUNT, F.VM_EXIT_MSR_LOAD_ADDR], (ctx) =>
    msrArea(ctx, F.VM_EXIT_MSR_LOAD_COUNT, F.VM_EXIT_MSR_LOAD_ADDR),
  ),
  rule("ctl.entry.allowed", [F.VM_ENTRY_CONTROLS], (ctx) => respects(entryCtl(ctx), ctx.caps.entry.allowed0, ctx.caps.entry.allowed1)),
  rule(
    "ctl.entry.event-injection",
    [...CTL, F.VM_ENTRY_INTR_INFO_FIELD, F.VM_ENTRY_EXCEPTION_ERROR_CODE, F.VM_ENTRY_INSTRUCTION_LEN, F.GUEST_CR0],
    (ctx) => {
      const info = ctx.view.lo(F.VM_ENTRY_INTR_INFO_FIELD)
      if ((info & 0x8000_0000) === 0) return true
      const type = injectionType(info)
      const vector = info & 0xff
      if (type === 1) return false
      if (type === 2 && vector !== 2) return false
      if (type === 3 && vector > 31) return false
      if (type === 7 && vector !== 0) return false
      if ((info & 0x7fff_f000) !== 0) return false
      const deliver = (info & 0x800) !== 0
      const protectedMode = unrestricted(ctx) ? (ctx.view.lo(F.GUEST_CR0) & CR0_PE) !== 0 : true
      const hasErrorCode = vector === 8 || (vector >= 10 && vector <= 14) || vector === 17 || vector === 21
      const shouldDeliver = protectedMode && type === 3 && hasErrorCode
      if (deliver && !shouldDeliver) return false
      if (!deliver && shouldDeliver && !ctx.caps.errorCodeFreeInjection) return false
      if (deliver && (ctx.view.lo(F.VM_ENTRY_EXCEPTION_ERROR_CODE) & 0xffff_0000) !== 0) return false
      if (type === 4 || type === 5 || type === 6) {
        const length = ctx.view.lo(F.VM_ENTRY_INSTRUCTION_LEN) >>> 0
        if (length > 15 || (length === 0 && !ctx.caps.zeroLengthInjection)) return false
      }
      return true
    },
  ),
  rule("ctl.entry.msr-load-area", [F.VM_ENTRY_MSR_LOAD_COUNT, F.VM_ENTRY_MSR_LOAD_ADDR], (ctx) =>
    msrArea(ctx, F.VM_ENTRY_MSR_LOAD_COUNT, F.VM_ENTRY_MSR_LOAD_ADDR),
  ),
  rule("ctl.entry.smm", [F.VM_ENTRY_CONTROLS], (ctx) => (entryCtl(ctx) & (EntryControl.SMM | EntryControl.DEACT_DUAL_MONITOR)) === 0),
  // Host state (26.2.2-26.2.4).
  rule("host.cr0.fixed", [F.HOST_CR0], (ctx) => fixedOk(ctx.view.u64(F.HOST_CR0), ctx.caps.cr0Fixed0, ctx.caps.cr0Fixed1)),
  rule("host.cr4.fixed0", [F.HOST_CR4], (ctx) => (ctx.view.u64(F.HOST_CR4) & ctx.caps.cr4Fixed0) === ctx.caps.cr4Fixed0),
  rule("host.cr4.fixed1", [F.HOST_CR4], (ctx) => (ctx.view.u64(F.HOST_CR4) & ~ctx.caps.cr4Fixed1) === 0n),
  rule("host.cr3.width", [F.HOST_CR3], (ctx) => withinWidth(ctx, 0, ctx.view.hi(F.HOST_CR3))),
  rule("host.sysenter.canonical", [F.HOST_IA32_SYSENTER_ESP, F.HOST_IA32_SYSENTER_EIP], (ctx) =>
    canonical(ctx, F.HOST_IA32_SYSENTER_ESP) && canonical(ctx, F.HOST_IA32_SYSENTER_EIP),
  ),
  rule("host.perf-global-ctrl", [F.VM_EXIT_CONTROLS, F.HOST_IA32_PERF_GLOBAL_CTRL], (ctx) =>
    (exitCtl(ctx) & ExitControl.LOAD_IA32_PERF_GLOBAL_CTRL) === 0 ||
    ((ctx.view.lo(F.HOST_IA32_PERF_GLOBAL_CTRL) & ~PERF_GLOBAL_VALID_LO) === 0 && (ctx.view.hi(F.HOST_IA32_PERF_GLOBAL_CTRL) & ~PERF_GLOBAL_VALID_HI) === 0),
  ),
  rule("host.pat", [F.VM_EXIT_CONTROLS, F.HOST_IA32_PAT], (ctx) =>
    (exitCtl(ctx) & ExitControl.LOAD_IA32_PAT) === 0 || patValid(ctx.view.lo(F.HOST_IA32_PAT), ctx.view.hi(F.HOST_IA32_PAT)),
  ),
  rule("host.efer", [F.VM_EXIT_CONTROLS, F.HOST_IA32_EFER], (ctx) => {
    if ((exitCtl(ctx) & ExitControl.LOAD_IA32_EFER) === 0) return true
    const lo = ctx.view.lo(F.HOST_IA32_EFER)
    if ((lo & ~EFER_VALID) !== 0 || ctx.view.hi(F.HOST_IA32_EFER) !== 0) return false
    const size = hostSize(ctx)
    return (lo & EFER_LMA) !== 0 === size && (lo & EFER_LME) !== 0 === size
  }),
  rule(
    "host.selectors.rpl-ti",
    [F.HOST_ES_SELECTOR, F.HOST_CS_SELECTOR, F.HOST_SS_SELECTOR, F.HOST_DS_SELECTOR, F.HOST_FS_SELECTOR, F.HOST_GS_SELECTOR, F.HOST_TR_SELECTOR],
    (ctx) =>
      ((ctx.view.lo(F.HOST_ES_SELECTOR) |
        ctx.view.lo(F.HOST_CS_SELECTOR) |
        ctx.view.lo(F.HOST_SS_SELECTOR) |
        ctx.view.lo(F.HOST_DS_SELECTOR) |
        ctx.view.lo(F.HOST_FS_SELECTOR) |
        ctx.view.lo(F.HOST_GS_SELECTOR) |
        ctx.view.lo(F.HOST_TR_SELECTOR)) &
        7) ===
      0,
  ),
  rule("host.cs.nonzero", [F.HOST_CS_SELECTOR], (ctx) => ctx.view.lo(F.HOST_CS_SELECTOR) !== 0),
  rule("host.tr.nonzero", [F.HOST_TR_SELECTOR], (ctx) => ctx.view.lo(F.HOST_TR_SELECTOR) !== 0),
  rule("host.ss.nonzero", [F.VM_EXIT_CONTROLS, F.HOST_SS_SELECTOR], (ctx) => hostSize(ctx) || ctx.view.lo(F.HOST_SS_SELECTOR) !== 0),
  rule("host.bases.canonical", [F.HOST_FS_BASE, F.HOST_GS_BASE, F.HOST_GDTR_BASE, F.HOST_IDTR_BASE, F.HOST_TR_BASE], (ctx) =>
    canonical(ctx, F.HOST_FS_BASE) && canonical(ctx, F.HOST_GS_BASE) && canonical(ctx, F.HOST_GDTR_BASE) && canonical(ctx, F.HOST_IDTR_BASE) && canonical(ctx, F.HOST_TR_BASE),
  ),
  rule(
    "host.address-space",
    [F.VM_EXIT_CONTROLS, F.VM_ENTRY_CONTROLS],
    (ctx) => (ctx.hostLongMode ? hostSize(ctx) : !hostSize(ctx) && !ia32eGuest(ctx)),
    { processor: true },
  ),
  rule("host.address-space.legacy", [F.VM_EXIT_CONTROLS, F.VM_ENTRY_CONTROLS, F.HOST_CR4, F.HOST_RIP], (ctx) =>
    hostSize(ctx) || (!ia32eGuest(ctx) && (ctx.view.lo(F.HOST_CR4) & CR4_PCIDE) === 0 && ctx.view.hi(F.HOST_RIP) === 0),
  ),
  rule("host.address-space.ia32e", [F.VM_EXIT_CONTROLS, F.HOST_CR4, F.HOST_RIP], (ctx) =>
    !hostSize(ctx) || ((ctx.view.lo(F.HOST_CR4) & CR4_PAE) !== 0 && canonical(ctx, F.HOST_RIP)),
  ),
  // Guest state (26.3.1).
  rule("guest.cr0.fixed", [...CTL, F.GUEST_CR0], (ctx) => {
    const relaxed = unrestricted(ctx) ? BigInt(CR0_PE) | (1n << 31n) : 0n
    return fixedOk(ctx.view.u64(F.GUEST_CR0), ctx.caps.cr0Fixed0 & ~relaxed, ctx.caps.cr0Fixed1)
  }),
  rule("guest.cr0.pg-needs-pe", [F.GUEST_CR0], (ctx) => {
    const cr0 = ctx.view.lo(F.GUEST_CR0)
    return (cr0 & CR0_PG) === 0 || (cr0 & CR0_PE) !== 0
  }),
  rule("guest.cr4.fixed", [F.GUEST_CR4], (ctx) => fixedOk(ctx.view.u64(F.GUEST_CR4), ctx.caps.cr4Fixed0, ctx.caps.cr4Fixed1)),
  rule("guest.debug-controls", [F.VM_ENTRY_CONTROLS, F.GUEST_IA32_DEBUGCTL, F.GUEST_DR7], (ctx) =>
    (entryCtl(ctx) & EntryControl.LOAD_DEBUG_CONTROLS) === 0 ||
    ((ctx.view.lo(F.GUEST_IA32_DEBUGCTL) & ~DEBUGCTL_VALID) === 0 && ctx.view.hi(F.GUEST_IA32_DEBUGCTL) === 0 && ctx.view.hi(F.GUEST_DR7) === 0),
  ),
  rule("guest.ia32e-mode", [F.VM_ENTRY_CONTROLS, F.GUEST_CR0, F.GUEST_CR4], (ctx) =>
    ia32eGuest(ctx)
      ? (ctx.view.lo(F.GUEST_CR0) & CR0_PG) !== 0 && (ctx.view.lo(F.GUEST_CR4) & CR4_PAE) !== 0
      : (ctx.view.lo(F.GUEST_CR4) & CR4_PCIDE) === 0,
  ),
  rule("guest.cr3.width", [F.GUEST_CR3], (ctx) => withinWidth(ctx, 0, ctx.view.hi(F.GUEST_CR3))),
  rule("guest.sysenter.canonical", [F.GUEST_SYSENTER_ESP, F.GUEST_SYSENTER_EIP], (ctx) =>
    canonical(ctx, F.GUEST_SYSENTER_ESP) && canonical(ctx, F.GUEST_SYSENTER_EIP),
  ),
  rule("guest.perf-global-ctrl", [F.VM_ENTRY_CONTROLS, F.GUEST_IA32_PERF_GLOBAL_CTRL], (ctx) =>
    (entryCtl(ctx) & EntryControl.LOAD_IA32_PERF_GLOBAL_CTRL) === 0 ||
    ((ctx.view.lo(F.GUEST_IA32_PERF_GLOBAL_CTRL) & ~PERF_GLOBAL_VALID_LO) === 0 && (ctx.view.hi(F.GUEST_IA32_PERF_GLOBAL_CTRL) & ~PERF_GLOBAL_VALID_HI) === 0),
  ),
  rule("guest.pat", [F.VM_ENTRY_CONTROLS, F.GUEST_IA32_PAT], (ctx) =>
    (entryCtl(ctx) & EntryControl.LOAD_IA32_PAT) === 0 || patValid(ctx.view.lo(F.GUEST_IA32_PAT), ctx.view.hi(F.GUEST_IA32_PAT)),
  ),
  rule("guest.efer", [F.VM_ENTRY_CONTROLS, F.GUEST_IA32_EFER, F.GUEST_CR0], (ctx) => {
    if ((entryCtl(ctx) & EntryControl.LOAD_IA32_EFER) === 0) return true
    const lo = ctx.view.lo(F.GUEST_IA32_EFER)
    if ((lo & ~EFER_VALID) !== 0 || ctx.view.hi(F.GUEST_IA32_EFER) !== 0) return false
    const lma = (lo & EFER_LMA) !== 0
    if (lma !== ia32eGuest(ctx)) return false
    return (ctx.view.lo(F.GUEST_CR0) & CR0_PG) === 0 || (lo & EFER_LME) !== 0 === lma
  }),
  rule("guest.segments.virtual-8086", [F.GUEST_RFLAGS, ...SEGMENT_FIELDS], (ctx) => {
    if ((ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_VM) === 0) return true
    for (const [selector, base, limit, ar] of SEGMENTS) {
      const sel = ctx.view.lo(selector)
      if (ctx.view.lo(base) !== sel << 4 || ctx.view.hi(base) !== 0) return false
      if (ctx.view.lo(limit) !== 0xffff || ctx.view.lo(ar) !== 0xf3) return false
    }
    return true
  }),
  rule("guest.segments.selectors", [...CTL, F.GUEST_RFLAGS, ...SEGMENT_FIELDS, ...TR_FIELDS, ...LDTR_FIELDS], (ctx) => {
    if ((ctx.view.lo(F.GUEST_TR_SELECTOR) & 4) !== 0) return false
    if (usable(ctx.view.lo(F.GUEST_LDTR_AR_BYTES)) && (ctx.view.lo(F.GUEST_LDTR_SELECTOR) & 4) !== 0) return false
    if ((ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_VM) !== 0 || unrestricted(ctx)) return true
    return (ctx.view.lo(F.GUEST_SS_SELECTOR) & 3) === (ctx.view.lo(F.GUEST_CS_SELECTOR) & 3)
  }),
  rule("guest.segments.bases", [...SEGMENT_FIELDS, ...TR_FIELDS, ...LDTR_FIELDS], (ctx) => {
    if (!canonical(ctx, F.GUEST_FS_BASE) || !canonical(ctx, F.GUEST_GS_BASE) || !canonical(ctx, F.GUEST_TR_BASE)) return false
    if (usable(ctx.view.lo(F.GUEST_LDTR_AR_BYTES)) && !canonical(ctx, F.GUEST_LDTR_BASE)) return false
    if (ctx.view.hi(F.GUEST_CS_BASE) !== 0) return false
    for (const [base, ar] of SS_DS_ES_BASES) {
      if (usable(ctx.view.lo(ar)) && ctx.view.hi(base) !== 0) return false
    }
    return true
  }),
  rule("guest.cs.access-rights", [...CTL, F.VM_ENTRY_CONTROLS, F.GUEST_RFLAGS, ...SEGMENT_FIELDS], (ctx) => {
    if ((ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_VM) !== 0) return true
    const ar = ctx.view.lo(F.GUEST_CS_AR_BYTES)
    const type = arType(ar)
    const ssDpl = arDpl(ctx.view.lo(F.GUEST_SS_AR_BYTES))
    if (!(type === 9 || type === 11 || type === 13 || type === 15 || (type === 3 && unrestricted(ctx)))) return false
    if (!arS(ar) || !arP(ar) || !arReservedClear(ar) || !granularityConsistent(ctx.view.lo(F.GUEST_CS_LIMIT), ar)) return false
    if (type === 3 && arDpl(ar) !== 0) return false
    if ((type === 9 || type === 11) && arDpl(ar) !== ssDpl) return false
    if ((type === 13 || type === 15) && arDpl(ar) > ssDpl) return false
    // L = 1 with D = 1 is reserved in IA-32e mode.
    if (ia32eGuest(ctx) && (ar & 0x2000) !== 0 && (ar & 0x4000) !== 0) return false
    return true
  }),
  rule("guest.ss.access-rights", [...CTL, F.GUEST_RFLAGS, F.GUEST_CR0, ...SEGMENT_FIELDS], (ctx) => {
    if ((ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_VM) !== 0) return true
    const ar = ctx.view.lo(F.GUEST_SS_AR_BYTES)
    const csType = arType(ctx.view.lo(F.GUEST_CS_AR_BYTES))
    if ((ctx.view.lo(F.GUEST_CR0) & CR0_PE) === 0 && arDpl(ar) !== 0) return false
    if (csType === 3 && arDpl(ar) !== 0) return false
    if (!usable(ar)) return true
    const type = arType(ar)
    if (type !== 3 && type !== 7) return false
    if (!unrestricted(ctx) && arDpl(ar) !== (ctx.view.lo(F.GUEST_SS_SELECTOR) & 3)) return false
    return arS(ar) && arP(ar) && arReservedClear(ar) && granularityConsistent(ctx.view.lo(F.GUEST_SS_LIMIT), ar)
  }),
  rule("guest.data-segments.access-rights", [F.GUEST_RFLAGS, ...SEGMENT_FIELDS], (ctx) => {
    if ((ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_VM) !== 0) return true
    for (const [, , limit, arField] of DATA_SEGMENTS) {
      const ar = ctx.view.lo(arField)
      if (!usable(ar)) continue
      const type = arType(ar)
      if ((type & 1) === 0) return false
      if ((type & 8) !== 0 && (type & 2) === 0) return false
      if (!arS(ar) || !arP(ar) || !arReservedClear(ar) || !granularityConsistent(ctx.view.lo(limit), ar)) return false
    }
    return true
  }),
  rule("guest.tr.access-rights", [F.VM_ENTRY_CONTROLS, ...TR_FIELDS], (ctx) => {
    const ar = ctx.view.lo(F.GUEST_TR_AR_BYTES)
    const type = arType(ar)
    if (!usable(ar)) return false
    if (!(type === 11 || (type === 3 && !ia32eGuest(ctx)))) return false
    return !arS(ar) && arP(ar) && arReservedClear(ar) && granularityConsistent(ctx.view.lo(F.GUEST_TR_LIMIT), ar)
  }),
  rule("guest.ldtr.access-rights", LDTR_FIELDS, (ctx) => {
    const ar = ctx.view.lo(F.GUEST_LDTR_AR_BYTES)
    if (!usable(ar)) return true
    return arType(ar) === 2 && !arS(ar) && arP(ar) && arReservedClear(ar) && granularityConsistent(ctx.view.lo(F.GUEST_LDTR_LIMIT), ar)
  }),
  rule("guest.descriptor-tables", [F.GUEST_GDTR_BASE, F.GUEST_IDTR_BASE, F.GUEST_GDTR_LIMIT, F.GUEST_IDTR_LIMIT], (ctx) =>
    canonical(ctx, F.GUEST_GDTR_BASE) &&
    canonical(ctx, F.GUEST_IDTR_BASE) &&
    (ctx.view.lo(F.GUEST_GDTR_LIMIT) & 0xffff_0000) === 0 &&
    (ctx.view.lo(F.GUEST_IDTR_LIMIT) & 0xffff_0000) === 0,
  ),
  // Only RIP's bits 63:32 matter (47-bit canonical, or zero outside 64-bit code), so the RIP
  // changes of every exit and of an exit handler's VMWRITE below 4 GiB re-run nothing.
  rule(
    "guest.rip",
    [F.VM_ENTRY_CONTROLS, F.GUEST_CS_AR_BYTES, F.GUEST_RIP],
    (ctx) => {
      const words = ctx.view.page.words
      const longCode = (words[W_ENTRY_CONTROLS]! & EntryControl.IA32E_MODE) !== 0 && (words[W_GUEST_CS_AR]! & 0x2000) !== 0
      return longCode ? canonicalHi(words[W_GUEST_RIP + 1]!) : words[W_GUEST_RIP + 1] === 0
    },
    { highHalfOnly: [F.GUEST_RIP] },
  ),
  rule("guest.rflags", [F.VM_ENTRY_CONTROLS, F.GUEST_RFLAGS, F.GUEST_CR0, F.VM_ENTRY_INTR_INFO_FIELD], (ctx) => {
    const lo = ctx.view.lo(F.GUEST_RFLAGS)
    // Reserved: 63:22, 15, 5, 3; bit 1 must be 1.
    if (ctx.view.hi(F.GUEST_RFLAGS) !== 0 || (lo & 0xffc0_8028) !== 0 || (lo & 2) === 0) return false
    if ((lo & RFLAGS_VM) !== 0 && (ia32eGuest(ctx) || (ctx.view.lo(F.GUEST_CR0) & CR0_PE) === 0)) return false
    const injected = injectionInfo(ctx)
    return !(injectionValid(injected) && injectionType(injected) === 0 && (lo & RFLAGS_IF) === 0)
  }),
  rule("guest.activity-state", [F.GUEST_ACTIVITY_STATE, F.GUEST_SS_AR_BYTES], (ctx) => {
    const state = ctx.view.lo(F.GUEST_ACTIVITY_STATE) >>> 0
    if (state > 3) return false
    if (state !== 0 && (ctx.caps.activityStates & (1 << (state - 1))) === 0) return false
    return state !== 1 || arDpl(ctx.view.lo(F.GUEST_SS_AR_BYTES)) === 0
  }),
  rule("guest.interruptibility", [F.GUEST_INTERRUPTIBILITY_INFO, F.GUEST_RFLAGS, F.VM_ENTRY_INTR_INFO_FIELD], (ctx) => {
    const info = ctx.view.lo(F.GUEST_INTERRUPTIBILITY_INFO)
    if ((info & 0xffff_ffe0) !== 0 || (info & 4) !== 0) return false
    if ((info & 3) === 3) return false
    if ((info & 1) !== 0 && (ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_IF) === 0) return false
    const injected = injectionInfo(ctx)
    const valid = injectionValid(injected)
    const type = injectionType(injected)
    if (valid && type === 0 && (info & 3) !== 0) return false
    if (valid && type === 2 && (info & 1) !== 0) return false
    return true
  }),
  rule(
    "guest.pending-debug-exceptions",
    [F.GUEST_PENDING_DBG_EXCEPTIONS, F.GUEST_INTERRUPTIBILITY_INFO, F.GUEST_ACTIVITY_STATE, F.GUEST_RFLAGS, F.GUEST_IA32_DEBUGCTL],
    (ctx) => {
      const lo = ctx.view.lo(F.GUEST_PENDING_DBG_EXCEPTIONS)
      // Defined: B3-B0 (3:0), enabled breakpoint (12), BS (14), RTM (16).
      if (ctx.view.hi(F.GUEST_PENDING_DBG_EXCEPTIONS) !== 0 || (lo & ~0x1500f) !== 0) return false
      const blocked = (ctx.view.lo(F.GUEST_INTERRUPTIBILITY_INFO) & 3) !== 0 || ctx.view.lo(F.GUEST_ACTIVITY_STATE) === 1
      if (!blocked) return true
      const bs = (lo & (1 << 14)) !== 0
      const singleStep = (ctx.view.lo(F.GUEST_RFLAGS) & RFLAGS_TF) !== 0 && (ctx.view.lo(F.GUEST_IA32_DEBUGCTL) & 2) === 0
      return bs === singleStep
    },
  ),
  rule(
    "guest.vmcs-link-pointer",
    [...CTL, F.VMCS_LINK_POINTER],
    (ctx) => {
      const lo = ctx.view.lo(F.VMCS_LINK_POINTER)
      const hi = ctx.view.hi(F.VMCS_LINK_POINTER)
      if (lo === 0xffff_ffff && hi === 0xffff_ffff) return true
      if ((lo & 0xfff) !== 0 || !withinWidth(ctx, lo, hi)) return false
      const revision = ctx.memory.read32(hi * 0x1_0000_0000 + lo)
      if ((revision & 0x7fff_ffff) !== ctx.caps.revisionId) return false
      const shadow = (revision & 0x8000_0000) !== 0
      return shadow === ((secondary(ctx) & SecondaryControl.SHADOW_VMCS) !== 0)
    },
    // Only a link pointer other than all-ones makes the check read the region it points to.
    { memory: (ctx) => ctx.view.page.words[W_LINK_POINTER] !== 0xffff_ffff || ctx.view.page.words[W_LINK_POINTER + 1] !== 0xffff_ffff },
  ),
  rule(
    "guest.pdptes",
    [...CTL, F.VM_ENTRY_CONTROLS, F.GUEST_CR0, F.GUEST_CR4, F.GUEST_PDPTR0, F.GUEST_PDPTR1, F.GUEST_PDPTR2, F.GUEST_PDPTR3],
    (ctx) => {
      const paePaging = (ctx.view.lo(F.GUEST_CR0) & CR0_PG) !== 0 && (ctx.view.lo(F.GUEST_CR4) & CR4_PAE) !== 0 && !ia32eGuest(ctx)
      if (!paePaging || !ept(ctx)) return true
      for (const field of [F.GUEST_PDPTR0, F.GUEST_PDPTR1, F.GUEST_PDPTR2, F.GUEST_PDPTR3]) {
        const lo = ctx.view.lo(field)
        // Present PDPTEs: bits 2:1 and 8:5 reserved, and bits beyond the physical width.
        if ((lo & 1) !== 0 && ((lo & 0x1e6) !== 0 || !withinWidth(ctx, lo, ctx.view.hi(field)))) return false
      }
      return true
    },
  ),
]

function fixedOk(value: bigint, fixed0: bigint, fixed1: bigint): boolean {
  return (value & fixed0) === fixed0 && (value & ~fixed1) === 0n
}
