// Root-mode (host) register state of a logical processor: the TypeScript host kernel does not
// run x86 code, so these are values VMX instructions check and VM exits load.

/** Slots of the 64-bit root-mode registers in `RootState.words` (lo, hi pairs). */
export const RootReg = {
  CR0: 0,
  CR3: 1,
  CR4: 2,
  EFER: 3,
  RIP: 4,
  RSP: 5,
  FS_BASE: 6,
  GS_BASE: 7,
  TR_BASE: 8,
  GDTR_BASE: 9,
  IDTR_BASE: 10,
  SYSENTER_ESP: 11,
  SYSENTER_EIP: 12,
  PAT: 13,
  PERF_GLOBAL_CTRL: 14,
} as const
const ROOT_REGS = 15

/**
 * Host (root-mode) register state that VM exits load from the VMCS host-state area. The 64-bit
 * registers live as halves in `words` (a VM exit copies them without allocating); the bigint
 * properties are the boundary view.
 */
export class RootState {
  readonly words = new Uint32Array(ROOT_REGS * 2)
  cpl = 0
  /** Blocking by MOV SS in effect at the VMX instruction (VMLAUNCH/VMRESUME fail with error 26). */
  movSsBlocking = false
  readonly selectors = { es: 0, cs: 0x10, ss: 0x18, ds: 0, fs: 0, gs: 0, tr: 0x40 }
  sysenterCs = 0
  /**
   * Bumped by every write through `set` (and the bigint setters). A VM exit whose VMCS's host
   * state is already what the root state holds (same version since it loaded it) skips the copy.
   * Code writing `words`, `selectors` or `sysenterCs` directly must bump it.
   */
  version = 0

  constructor() {
    this.cr0 = 0x8005_0033n // PE MP ET NE WP AM PG: a running 64-bit Linux
    this.cr3 = 0x1_0000n
    this.cr4 = 0x0036_06e0n // PAE MCE PGE OSFXSR OSXMMEXCPT PCIDE OSXSAVE SMEP SMAP; VMXE clear until KVM sets it
    this.efer = 0xd01n // SCE LME LMA NXE
    this.pat = 0x0007_0406_0007_0406n
  }

  get(reg: number): bigint {
    return (BigInt(this.words[reg * 2 + 1]!) << 32n) | BigInt(this.words[reg * 2]!)
  }
  set(reg: number, value: bigint): void {
    this.words[reg * 2] = Number(value & 0xffff_ffffn)
    this.words[reg * 2 + 1] = Number((value >> 32n) & 0xffff_ffffn)
    this.version++
  }

  get cr0(): bigint { return this.get(RootReg.CR0) }
  set cr0(v: bigint) { this.set(RootReg.CR0, v) }
  get cr3(): bigint { return this.get(RootReg.CR3) }
  set cr3(v: bigint) { this.set(RootReg.CR3, v) }
  get cr4(): bigint { return this.get(RootReg.CR4) }
  set cr4(v: bigint) { this.set(RootReg.CR4, v) }
  get efer(): bigint { return this.get(RootReg.EFER) }
  set efer(v: bigint) { this.set(RootReg.EFER, v) }
  get rip(): bigint { return this.get(RootReg.RIP) }
  set rip(v: bigint) { this.set(RootReg.RIP, v) }
  get rsp(): bigint { return this.get(RootReg.RSP) }
  set rsp(v: bigint) { this.set(RootReg.RSP, v) }
  get fsBase(): bigint { return this.get(RootReg.FS_BASE) }
  get gsBase(): bigint { return this.get(RootReg.GS_BASE) }
  get trBase(): bigint { return this.get(RootReg.TR_BASE) }
  get gdtrBase(): bigint { return this.get(RootReg.GDTR_BASE) }
  get idtrBase(): bigint { return this.get(RootReg.IDTR_BASE) }
  get sysenterEsp(): bigint { return this.get(RootReg.SYSENTER_ESP) }
  get sysenterEip(): bigint { return this.get(RootReg.SYSENTER_EIP) }
  get pat(): bigint { return this.get(RootReg.PAT) }
  set pat(v: bigint) { this.set(RootReg.PAT, v) }
  get perfGlobalCtrl(): bigint { return this.get(RootReg.PERF_GLOBAL_CTRL) }

  /** IA32_EFER.LMA: the processor is in IA-32e mode. */
  get longMode(): boolean {
    return (this.words[RootReg.EFER * 2]! & 0x400) !== 0
  }
}
