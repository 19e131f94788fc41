// What all logical processors of one host share: host physical memory and the record of which
// VMCS is active on which logical processor (SDM 24.1: a VMCS is active on at most one).
import { EntryCheckState } from "./entry-check-engine.ts"
import type { HostPhysicalMemory } from "./host-memory.ts"
import type { CpuState } from "../../guest/cpu/state.ts"

/** Guest-state fields entry can reload one by one; anything else forces a full load. */
export const GuestWrites = { RIP: 1, RSP: 2, RFLAGS: 4, INTERRUPTIBILITY: 8, OTHER: 16 } as const

/**
 * What a VM exit of a VMCS does beyond recording the exit and saving the volatile guest state,
 * decided by its controls: the next entry reloads the whole guest-state area (an entry "load"
 * control whose register no exit control saves), the exit saves the VMX-preemption timer, stores
 * or loads an MSR list.
 */
export const ExitWork = { RELOAD_GUEST_STATE: 1, SAVE_PREEMPTION_TIMER: 2, STORE_MSRS: 4, LOAD_MSRS: 8 } as const

/** Bookkeeping for a VMCS while it is active: which processor holds it, incremental-check state. */
export class ActiveVmcs {
  readonly address: number
  readonly ownerId: number
  readonly checks = new EntryCheckState()
  /**
   * What VMWRITEs touched since the last VM exit saved guest state (GuestWrites bits), so entry
   * reloads only those into the register file the exit saved from. Starts as "everything".
   */
  guestWrites: number = GuestWrites.OTHER
  /** A control field was written since the intercept policy was last configured from this VMCS. */
  controlsWritten = true
  /**
   * ExitWork bits from the controls as the last VM entry that configured the intercept policy
   * from this VMCS read them. Controls change only by VMWRITE, which sets controlsWritten and so
   * makes the next entry read them again; no VMWRITE runs between an entry and its exit.
   */
  exitWork = 0
  /**
   * The register file this VMCS's guest-state area was last fully loaded into or saved from
   * (null: none), and that register file's systemGeneration at the last full save (-1 after a
   * full load: the next exit saves everything, since a load is not exactly a save's inverse —
   * DR7/EFER/PAT depend on separate entry and exit controls). While the generation is unchanged,
   * an exit saves only the volatile fields.
   */
  syncedCore: CpuState | null = null
  /** A VMWRITE changed a host-state field since a VM exit last loaded the host state from here. */
  hostWritten = true
  savedGeneration = -1
  /**
   * The translation context syncedCore's TLB was filled under at this VMCS's last entry: the EPT
   * pointer (-1 with EPT off) and the platform's INVEPT/INVVPID count. Each register file keeps
   * its own TLB (tagged by VPID/EPTP on real hardware), so switching VMCSs on a processor keeps
   * the other vCPUs' translations; only a change of this context (or of the pair) flushes.
   */
  translationEpt = -2
  translationInvalidations = -1

  constructor(address: number, ownerId: number) {
    this.address = address
    this.ownerId = ownerId
  }
}

export class VmxPlatform {
  readonly memory: HostPhysicalMemory
  private readonly active = new Map<number, ActiveVmcs>()
  private sessions = 0
  /** INVEPT/INVVPID executed on any processor: every register file flushes at its next entry. */
  translationInvalidations = 0

  constructor(memory: HostPhysicalMemory) {
    this.memory = memory
  }

  /** The logical processor a VMCS is active on, or undefined (inactive). */
  activeOn(vmcsAddress: bigint): number | undefined {
    return this.active.get(Number(vmcsAddress))?.ownerId
  }

  /** Number of active VMCSs over all processors (leak checks). */
  get activeCount(): number {
    return this.active.size
  }

  /** @internal */ lookup(address: number): ActiveVmcs | undefined {
    return this.active.get(address)
  }
  /** @internal */ activate(address: number, ownerId: number): ActiveVmcs {
    const record = new ActiveVmcs(address, ownerId)
    this.active.set(address, record)
    return record
  }
  /** @internal */ deactivate(address: number): void {
    this.active.delete(address)
  }
  /** @internal A fresh identifier for each VMXON (detects VMRESUME after VMXOFF/VMXON). */
  nextSession(): number {
    return ++this.sessions
  }
}
