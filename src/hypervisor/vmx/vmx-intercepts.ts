// The execution controls of the current VMCS as the guest core's intercept policy. VM entry
// copies the controls into plain numbers here (what a real processor caches at entry), so the
// per-instruction questions are a few bit tests; bitmaps are read from host physical memory
// where the VMCS points, as the hardware reads them.
import { VmcsField as FImport } from "../../arch/vmx/vmcs-fields.ts"
import { ExitControl as ExitControlImport, PinControl as PinControlImport, PrimaryControl as PrimaryControlImport, SecondaryControl as SecondaryControlImport } from "../../arch/vmx/control-bits.ts"
import type { GuestPhysicalTranslator, Intercepts } from "../../guest/intercept.ts"
import type { HostPhysicalMemory } from "./host-memory.ts"
import { EptWalker } from "./ept.ts"
import type { VmcsView } from "./vmcs-view.ts"
import { byteOffset as byteOffsetImport } from "./vmcs-layout.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const F = FImport
const ExitControl = ExitControlImport
const PinControl = PinControlImport
const PrimaryControl = PrimaryControlImport
const SecondaryControl = SecondaryControlImport
const byteOffset = byteOffsetImport

const TWO32 = 4294967296
/** Word index of VMX_PREEMPTION_TIMER_VALUE (32-bit), re-read at every entry. */
const W_PREEMPTION_TIMER_VALUE = byteOffset[F.VMX_PREEMPTION_TIMER_VALUE]! >>> 2

export class VmxIntercepts implements Intercepts {
  cr0GuestHostMask = 0
  cr0ReadShadow = 0
  cr4GuestHostMask = 0
  cr4ReadShadow = 0
  tscOffset = 0n
  interruptWindowExiting = false
  nmiWindowExiting = false
  monitorTrapFlag = false
  externalInterruptExiting = false
  acknowledgeInterruptOnExit = false
  nmiExiting = false
  virtualNmis = false
  preemptionTimerRemaining = -1
  guestPhysical: GuestPhysicalTranslator | null = null
  /** The VMCS bookkeeping and capabilities the policy was last configured from (skip unchanged re-reads). */
  configuredFrom: object | null = null
  configuredCaps: object | null = null
  /** Secondary control "enable RDTSCP": RDTSCP is #UD in non-root operation without it. */
  rdtscpEnabled = false

  pin = 0
  primary = 0
  secondary = 0
  exceptionBitmap = 0
  pfecMask = 0
  pfecMatch = 0
  ioBitmapA = 0
  ioBitmapB = 0
  msrBitmap = 0
  cr3TargetCount = 0
  readonly cr3Targets = new Float64Array(4)
  readonly cr3TargetsHi = new Uint32Array(4)
  private tscOffsetLo = -1
  private tscOffsetHi = -1
  private readonly memory: HostPhysicalMemory
  readonly ept: EptWalker
  /** The EPT pointer in force as one number, or -1 with EPT off. */
  eptPointer = -1

  constructor(memory: HostPhysicalMemory) {
    this.memory = memory
    this.ept = new EptWalker(memory)
  }

  /**
   * Reads the controls from the VMCS at VM entry. Whether the core's cached translations survive
   * is VM entry's question (eptPointer against the VMCS's own record), not this policy's.
   */
  configure(view: VmcsView, preemptionShift: number, executeOnlyEpt: boolean): void {
    const pin = view.lo(F.PIN_BASED_VM_EXEC_CONTROL)
    const primary = view.lo(F.CPU_BASED_VM_EXEC_CONTROL)
    const secondary = (primary & PrimaryControl.ACTIVATE_SECONDARY_CONTROLS) !== 0 ? view.lo(F.SECONDARY_VM_EXEC_CONTROL) : 0
    this.pin = pin
    this.primary = primary
    this.secondary = secondary
    this.rdtscpEnabled = (secondary & SecondaryControl.ENABLE_RDTSCP) !== 0
    this.externalInterruptExiting = (pin & PinControl.EXT_INTR_MASK) !== 0
    this.nmiExiting = (pin & PinControl.NMI_EXITING) !== 0
    this.virtualNmis = (pin & PinControl.VIRTUAL_NMIS) !== 0
    this.acknowledgeInterruptOnExit = (view.lo(F.VM_EXIT_CONTROLS) & ExitControl.ACK_INTR_ON_EXIT) !== 0
    this.preemptionTimerRemaining =
      (pin & PinControl.VMX_PREEMPTION_TIMER) !== 0 ? (view.lo(F.VMX_PREEMPTION_TIMER_VALUE) >>> 0) * 2 ** preemptionShift : -1
    this.interruptWindowExiting = (primary & PrimaryControl.INTR_WINDOW_EXITING) !== 0
    this.nmiWindowExiting = (primary & PrimaryControl.NMI_WINDOW_EXITING) !== 0
    this.monitorTrapFlag = (primary & PrimaryControl.MONITOR_TRAP_FLAG) !== 0
    if ((primary & PrimaryControl.USE_TSC_OFFSETTING) !== 0) {
      const lo = view.lo(F.TSC_OFFSET)
      const hi = view.hi(F.TSC_OFFSET)
      if (lo !== this.tscOffsetLo || hi !== this.tscOffsetHi) {
        this.tscOffsetLo = lo
        this.tscOffsetHi = hi
        this.tscOffset = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo))
      }
    } else {
      this.tscOffset = 0n
      this.tscOffsetLo = this.tscOffsetHi = -1
    }
    this.exceptionBitmap = view.lo(F.EXCEPTION_BITMAP)
    this.pfecMask = view.lo(F.PAGE_FAULT_ERROR_CODE_MASK)
    this.pfecMatch = view.lo(F.PAGE_FAULT_ERROR_CODE_MATCH)
    this.cr0GuestHostMask = view.lo(F.CR0_GUEST_HOST_MASK) | 0
    this.cr0ReadShadow = view.lo(F.CR0_READ_SHADOW) | 0
    this.cr4GuestHostMask = view.lo(F.CR4_GUEST_HOST_MASK) | 0
    this.cr4ReadShadow = view.lo(F.CR4_READ_SHADOW) | 0
    this.ioBitmapA = view.hi(F.IO_BITMAP_A) * TWO32 + view.lo(F.IO_BITMAP_A)
    this.ioBitmapB = view.hi(F.IO_BITMAP_B) * TWO32 + view.lo(F.IO_BITMAP_B)
    this.msrBitmap = view.hi(F.MSR_BITMAP) * TWO32 + view.lo(F.MSR_BITMAP)
    this.cr3TargetCount = view.lo(F.CR3_TARGET_COUNT)
    const targets = [F.CR3_TARGET_VALUE0, F.CR3_TARGET_VALUE1, F.CR3_TARGET_VALUE2, F.CR3_TARGET_VALUE3]
    for (let i = 0; i < this.cr3TargetCount && i < 4; i++) {
      this.cr3Targets[i] = view.lo(targets[i]!)
      this.cr3TargetsHi[i] = view.hi(targets[i]!)
    }
    if ((secondary & SecondaryControl.ENABLE_EPT) !== 0) {
      const lo = view.lo(F.EPT_POINTER)
      const hi = view.hi(F.EPT_POINTER)
      this.ept.setEptp(lo, hi)
      this.ept.executeOnly = executeOnlyEpt
      this.guestPhysical = this.ept
      this.eptPointer = (hi >>> 0) * TWO32 + (lo >>> 0)
    } else {
      this.eptPointer = -1
      this.guestPhysical = null
    }
  }

  /** Re-arms the VMX-preemption timer from the VMCS (every entry reads it). */
  reloadPreemptionTimer(view: VmcsView, preemptionScale: number): void {
    this.preemptionTimerRemaining =
      (this.pin & PinControl.VMX_PREEMPTION_TIMER) !== 0 ? view.page.words[W_PREEMPTION_TIMER_VALUE]! * preemptionScale : -1
  }

  exitsOnHlt(): boolean {
    return (this.primary & PrimaryControl.HLT_EXITING) !== 0
  }
  exitsOnInvlpg(): boolean {
    return (this.primary & PrimaryControl.INVLPG_EXITING) !== 0
  }
  exitsOnRdtsc(): boolean {
    return (this.primary & PrimaryControl.RDTSC_EXITING) !== 0
  }
  exitsOnRdtscp(): boolean {
    return (this.primary & PrimaryControl.RDTSC_EXITING) !== 0 && (this.secondary & SecondaryControl.ENABLE_RDTSCP) !== 0
  }
  exitsOnRdpmc(): boolean {
    return (this.primary & PrimaryControl.RDPMC_EXITING) !== 0
  }
  exitsOnPause(): boolean {
    return (this.primary & PrimaryControl.PAUSE_EXITING) !== 0
  }
  exitsOnMwait(): boolean {
    return (this.primary & PrimaryControl.MWAIT_EXITING) !== 0
  }
  exitsOnMonitor(): boolean {
    return (this.primary & PrimaryControl.MONITOR_EXITING) !== 0
  }

  exitsOnIo(port: number, size: number, _isIn: boolean, _isString: boolean, _isRep: boolean): boolean {
    if ((this.primary & PrimaryControl.USE_IO_BITMAPS) === 0) return (this.primary & PrimaryControl.UNCOND_IO_EXITING) !== 0
    for (let p = port; p < port + size; p++) {
      // An access that wraps past port 0xffff always exits (SDM 25.1.3).
      if (p > 0xffff) return true
      const exits = p < 0x8000 ? this.memory.testBit(this.ioBitmapA, p) : this.memory.testBit(this.ioBitmapB, p - 0x8000)
      if (exits) return true
    }
    return false
  }

  private msrBit(index: number, writeOffset: number): boolean {
    if ((this.primary & PrimaryControl.USE_MSR_BITMAPS) === 0) return true
    const u = index >>> 0
    if (u <= 0x1fff) return this.memory.testBit(this.msrBitmap + writeOffset, u)
    if (u >= 0xc000_0000 && u <= 0xc000_1fff) return this.memory.testBit(this.msrBitmap + writeOffset + 1024, u - 0xc000_0000)
    return true
  }
  exitsOnRdmsr(index: number): boolean {
    return this.msrBit(index, 0)
  }
  exitsOnWrmsr(index: number): boolean {
    return this.msrBit(index, 2048)
  }

  exitsOnCrRead(cr: 3 | 8): boolean {
    if (cr === 3) return (this.primary & PrimaryControl.CR3_STORE_EXITING) !== 0
    return (this.primary & PrimaryControl.CR8_STORE_EXITING) !== 0
  }

  exitsOnCrWrite(cr: 3 | 8, value: bigint): boolean {
    if (cr === 8) return (this.primary & PrimaryControl.CR8_LOAD_EXITING) !== 0
    if ((this.primary & PrimaryControl.CR3_LOAD_EXITING) === 0) return false
    // A load of one of the first CR3_TARGET_COUNT target values does not exit.
    const lo = Number(value & 0xffff_ffffn)
    const hi = Number((value >> 32n) & 0xffff_ffffn)
    for (let i = 0; i < this.cr3TargetCount && i < 4; i++) {
      if (this.cr3Targets[i] === lo && this.cr3TargetsHi[i] === hi) return false
    }
    return true
  }

  /** MOV to/from DR0-DR7 with "MOV-DR exiting" (exit reason 29). */
  exitsOnDrAccess(): boolean {
    return (this.primary & PrimaryControl.MOV_DR_EXITING) !== 0
  }

  /** "WBINVD exiting" (secondary bit 6): WBINVD/WBNOINVD exit with reason 54. */
  exitsOnWbinvd(): boolean {
    return (this.secondary & SecondaryControl.WBINVD_EXITING) !== 0
  }

  /** "Descriptor-table exiting" (secondary bit 2): LGDT/LIDT/SGDT/SIDT exit (46), LLDT/LTR/SLDT/STR (47). */
  exitsOnDescriptorTable(): boolean {
    return (this.secondary & SecondaryControl.DESC) !== 0
  }

  exitsOnException(vector: number, errorCode: number): boolean {
    const inBitmap = (this.exceptionBitmap & (1 << vector)) !== 0
    if (vector !== 14) return inBitmap
    // #PF: with bit 14 set, exit iff (PFEC & mask) == match; with it clear, iff they differ.
    const matches = ((errorCode & this.pfecMask) >>> 0) === this.pfecMatch >>> 0
    return inBitmap ? matches : !matches
  }
}
