// The boundary between the processor core and whoever runs it in VMX non-root mode.
//
// The core knows nothing of VMX or KVM. Before it performs an instruction or delivers an event
// that VT-x can intercept, it asks the installed `Intercepts` object whether that exits. If it
// does, the core leaves the guest state exactly as the SDM says it is at a VM exit (for a
// fault-like exit: RIP at the instruction, nothing committed), fills the one preallocated
// `ExitRecord` of the CPU with the exit-information fields as the SDM defines them (Vol. 3C
// 28.2 "Recording VM-exit information"), and `runBatch` returns `RunOutcome.VmExit`.
//
// A CPU with `intercepts === null` (not in VMX non-root) runs everything natively; so does a CPU
// whose Intercepts answer "no" to everything (`NoIntercepts`). VMCALL, INVD, GETSEC and the VMX
// instructions always exit in non-root mode (they raise #UD when no intercepts are installed,
// as outside VMX operation).

/** Direction/type codes the core passes for guest-physical accesses (EPT and unmapped memory). */
export const AccessKind = {
  READ: 1,
  WRITE: 2,
  FETCH: 4,
} as const

/** Interruption types of the VM-exit interruption-information and IDT-vectoring fields (bits 10:8). */
export const InterruptionType = {
  EXTERNAL_INTERRUPT: 0,
  NMI: 2,
  HARDWARE_EXCEPTION: 3,
  SOFTWARE_INTERRUPT: 4,
  PRIVILEGED_SOFTWARE_EXCEPTION: 5,
  SOFTWARE_EXCEPTION: 6,
} as const

/**
 * The exit-information fields of one VM exit. One instance per CPU, reused: the core never
 * allocates on the exit path. 64-bit fields are held as unsigned 32-bit halves (`...Lo`,
 * `...Hi`) with bigint getters for the boundary.
 */
export class ExitRecord {
  /** Basic exit reason (bits 15:0 of the exit-reason field), numbers of src/arch/exit-reasons.ts. */
  reason = 0
  /** Exit qualification (SDM Vol. 3C 28.2.1), halves. */
  qualificationLo = 0
  qualificationHi = 0
  /** VM-exit instruction length: bytes of the instruction that exited (0 when not instruction-caused). */
  instructionLength = 0
  /** VM-exit instruction-information field (SDM 28.2.5): INS/OUTS, VMX instructions, INVLPG... */
  instructionInformation = 0
  /** Guest-linear address field (valid for INS/OUTS, EPT violations with bit 7 of the qualification). */
  guestLinearLo = 0
  guestLinearHi = 0
  /** Guest-physical address field (EPT violations and misconfigurations). */
  guestPhysicalLo = 0
  guestPhysicalHi = 0
  /** VM-exit interruption information (bit 31 valid, 11 error code valid, 10:8 type, 7:0 vector, 12 NMI unblocking). */
  interruptionInformation = 0
  interruptionErrorCode = 0
  /** IDT-vectoring information: the event whose delivery the exit interrupted (same layout). */
  idtVectoringInformation = 0
  idtVectoringErrorCode = 0
  /**
   * For EPT violations caused by a data access to guest-physical memory with no slot (what KVM
   * turns into an MMIO exit): the access size in bytes, and for writes the data (halves).
   * `mmioSize` is 0 for every other exit.
   */
  mmioSize = 0
  mmioDataLo = 0
  mmioDataHi = 0

  get qualification(): bigint {
    return (BigInt(this.qualificationHi >>> 0) << 32n) | BigInt(this.qualificationLo >>> 0)
  }
  get guestLinearAddress(): bigint {
    return (BigInt(this.guestLinearHi >>> 0) << 32n) | BigInt(this.guestLinearLo >>> 0)
  }
  get guestPhysicalAddress(): bigint {
    return (BigInt(this.guestPhysicalHi >>> 0) << 32n) | BigInt(this.guestPhysicalLo >>> 0)
  }
  get mmioData(): bigint {
    return (BigInt(this.mmioDataHi >>> 0) << 32n) | BigInt(this.mmioDataLo >>> 0)
  }

  /** Clears every field (the core calls this before filling a new exit). */
  clear(): void {
    this.reason = 0
    this.qualificationLo = 0
    this.qualificationHi = 0
    this.instructionLength = 0
    this.instructionInformation = 0
    this.guestLinearLo = 0
    this.guestLinearHi = 0
    this.guestPhysicalLo = 0
    this.guestPhysicalHi = 0
    this.interruptionInformation = 0
    this.interruptionErrorCode = 0
    this.idtVectoringInformation = 0
    this.idtVectoringErrorCode = 0
    this.mmioSize = 0
    this.mmioDataLo = 0
    this.mmioDataHi = 0
  }
}

/**
 * Optional guest-physical translation (EPT). Given a guest-physical address and the access kind
 * (AccessKind bits), returns the address in the memory's slot space to use, or a negative code:
 * -1 EPT violation, -2 EPT misconfiguration. On a violation `violationPermissions` holds bits 5:3
 * of the exit qualification (the R/W/X permissions of the translation, 0 when not present).
 * Results are cached in the core's TLB; call `cpu.flushTlb()` when the tables change (INVEPT).
 */
export interface GuestPhysicalTranslator {
  translate(gpa: number, access: number): number
  violationPermissions: number
}

/**
 * What VT-x's execution controls decide. Every method answers "does this exit?"; the core forms
 * the exit record itself. Numeric fields are read by the core at the points the SDM names.
 */
export interface Intercepts {
  /** CR0 guest/host mask and read shadow (low 32 bits hold every defined CR0 bit). */
  cr0GuestHostMask: number
  cr0ReadShadow: number
  /** CR4 guest/host mask and read shadow. */
  cr4GuestHostMask: number
  cr4ReadShadow: number
  /** Added to the TSC by RDTSC/RDTSCP/RDMSR(IA32_TSC) when "use TSC offsetting" is 1, else 0n. */
  tscOffset: bigint
  /** Interrupt-window exiting: exit at the first boundary where RFLAGS.IF=1 and no STI/MOV-SS blocking. */
  interruptWindowExiting: boolean
  /** NMI-window exiting: exit at the first boundary with no NMI blocking (and no MOV-SS blocking). */
  nmiWindowExiting: boolean
  /** Monitor trap flag: exit (reason 37) after every instruction / event delivery. */
  monitorTrapFlag: boolean
  /** Pin-based external-interrupt exiting: a pending external interrupt exits regardless of RFLAGS.IF. */
  externalInterruptExiting: boolean
  /** VM-exit control "acknowledge interrupt on exit": the vector goes in the interruption information. */
  acknowledgeInterruptOnExit: boolean
  /** Pin-based NMI exiting. */
  nmiExiting: boolean
  /** Pin-based virtual NMIs (NMI blocking is then "virtual-NMI blocking" in the interruptibility state). */
  virtualNmis: boolean
  /**
   * VMX-preemption timer, already converted to guest instructions by the VMX layer: the number of
   * instructions the guest may still retire before an exit with reason 52, or -1 when inactive.
   * runBatch counts it down and writes back the remainder.
   */
  preemptionTimerRemaining: number
  /** EPT or null. */
  guestPhysical: GuestPhysicalTranslator | null

  exitsOnHlt(): boolean
  exitsOnInvlpg(): boolean
  exitsOnRdtsc(): boolean
  exitsOnRdtscp(): boolean
  exitsOnRdpmc(): boolean
  exitsOnPause(): boolean
  exitsOnMwait(): boolean
  exitsOnMonitor(): boolean
  /** I/O instruction: port, size in bytes (1/2/4), direction, string (INS/OUTS) and REP. */
  exitsOnIo(port: number, size: number, isIn: boolean, isString: boolean, isRep: boolean): boolean
  /** RDMSR/WRMSR with ECX = index (MSR bitmaps: low 0..1FFF, high C0000000..C0001FFF, else always). */
  exitsOnRdmsr(index: number): boolean
  exitsOnWrmsr(index: number): boolean
  /** MOV from CR3 (store exiting) or CR8. CR0/CR4 reads never exit: the core applies the shadows. */
  exitsOnCrRead(cr: 3 | 8): boolean
  /**
   * MOV to CR3 (load exiting, CR3-target values) or CR8. CR0/CR4 writes are decided by the core
   * from the masks and shadows (a write exits iff it would change a masked bit from its shadow).
   */
  exitsOnCrWrite(cr: 3 | 8, value: bigint): boolean
  /**
   * Delivery of an exception (vector 0..31) with its error code (-1 when none): the exception
   * bitmap, and for #PF the page-fault error-code mask/match. INT n never asks; INT3/INTO do.
   */
  exitsOnException(vector: number, errorCode: number): boolean
  /** MOV to/from DR (the "MOV-DR exiting" control); absent means never. */
  exitsOnDrAccess?(): boolean
  /**
   * Secondary control "enable RDTSCP": when false, RDTSCP raises #UD in non-root mode (before
   * any exit). Absent means enabled. (INVPCID needs no such hook: the core does not simulate
   * INVPCID, which is #UD whatever "enable INVPCID" says, as on a processor without it.)
   */
  rdtscpEnabled?: boolean
  /** "WBINVD exiting": WBINVD and WBNOINVD exit with reason 54. Absent means never. */
  exitsOnWbinvd?(): boolean
  /**
   * "Descriptor-table exiting": LGDT/LIDT/SGDT/SIDT exit with reason 46, LLDT/LTR/SLDT/STR with
   * reason 47, after the privilege (CPL, UMIP) checks and before any memory access, with the
   * SDM's instruction-information layout. Absent means never.
   */
  exitsOnDescriptorTable?(): boolean
}

/** An Intercepts that exits on nothing: for tests and anything that wants native behaviour. */
export class NoIntercepts implements Intercepts {
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
  exitsOnHlt(): boolean {
    return false
  }
  exitsOnInvlpg(): boolean {
    return false
  }
  exitsOnRdtsc(): boolean {
    return false
  }
  exitsOnRdtscp(): boolean {
    return false
  }
  exitsOnRdpmc(): boolean {
    return false
  }
  exitsOnPause(): boolean {
    return false
  }
  exitsOnMwait(): boolean {
    return false
  }
  exitsOnMonitor(): boolean {
    return false
  }
  exitsOnIo(_port: number, _size: number, _isIn: boolean, _isString: boolean, _isRep: boolean): boolean {
    return false
  }
  exitsOnRdmsr(_index: number): boolean {
    return false
  }
  exitsOnWrmsr(_index: number): boolean {
    return false
  }
  exitsOnCrRead(_cr: 3 | 8): boolean {
    return false
  }
  exitsOnCrWrite(_cr: 3 | 8, _value: bigint): boolean {
    return false
  }
  exitsOnException(_vector: number, _errorCode: number): boolean {
    return false
  }
}
