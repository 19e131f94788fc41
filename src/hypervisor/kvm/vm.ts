// A VM (struct kvm): guest-physical memory slots, vCPUs, EPT tables, VM statistics, and the
// "bugged" state — an internal inconsistency detected in this VM (KVM_BUG_ON) marks it dead and
// every later call on it returns EIO, while other VMs go on untouched.

import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import { GuestMemory } from "../../guest/mmu/memory.ts"
import { Errno } from "../../host/errno.ts"
import type { Task } from "../../host/task.ts"
import { kvmError } from "./errors.ts"
import type { KvmError } from "./errors.ts"
import type { Kvm } from "./kvm.ts"
import { VM_STAT_COUNT } from "./stats.ts"
import { KVM_MAX_VCPUS, KVM_MEM_READONLY, KVM_USER_MEM_SLOTS, KvmCap } from "./uapi.ts"
import type { KvmUserspaceMemoryRegion } from "./uapi.ts"
import { Vcpu } from "./vcpu.ts"
import { vmwriteOrThrow } from "./vmcs-config.ts"

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: KvmError }
export const ok = <T>(value: T): Result<T> => ({ ok: true, value })
export const fail = <T = never>(call: string, errno: number, what: string): Result<T> => ({ ok: false, error: kvmError(call, errno, what) })

const EPT_RWX = 7n
const EPT_WB = 6n << 3n
const EPT_LARGE = 0x80n

export class Vm {
  readonly memory = new GuestMemory()
  readonly vcpus = new Map<number, Vcpu>()
  /** The same vCPUs indexed by id: kvm_get_vcpu_by_id on hypercall paths without hashing. */
  private readonly vcpusById: Array<Vcpu | undefined> = []
  readonly stats = new Float64Array(VM_STAT_COUNT)
  /** Set by KVM_BUG_ON: every later call returns EIO. */
  dead = false
  deadReason = ""
  destroyed = false
  /** The VM's file descriptor in the creating process. */
  fd = -1
  /** Whether this VM holds a reference on kvm_intel (taken when the module registry has it loaded). */
  holdsModuleRef = false
  /** EPT paging-structure pages (PML4, PDPT) in host physical memory, and the EPTP. */
  private readonly eptPages: Array<bigint> = []
  eptp = 0n
  private readonly slots = new Map<number, KvmUserspaceMemoryRegion>()
  /** KVM_CAP_EXIT_HYPERCALL: bit n set = hypercall n goes to user space as KVM_EXIT_HYPERCALL. */
  exitHypercalls = 0n

  constructor(
    readonly kvm: Kvm,
    readonly creatorPid: number,
  ) {}

  /** debugfs directory name: the creating process's pid, a dash, the VM's fd. */
  get name(): string {
    return `${this.creatorPid}-${this.fd}`
  }

  /**
   * Builds the EPT tables: the whole 512 GiB below the first PML4 entry identity-mapped with 1 GiB
   * pages, write-back, RWX. Addresses without a memslot then reach the core's "no slot" path and
   * exit as EPT violations carrying the access, which KVM turns into MMIO exits.
   */
  buildEpt(): boolean {
    const mem = this.kvm.hostMemory
    const pml4 = mem.allocPage()
    const pdpt = mem.allocPage()
    if (pml4 === undefined || pdpt === undefined) {
      if (pml4 !== undefined) mem.freePage(pml4)
      if (pdpt !== undefined) mem.freePage(pdpt)
      return false
    }
    this.eptPages.push(pml4, pdpt)
    mem.write64(pml4, pdpt | EPT_RWX)
    // 1 GiB leaves: frame i << 30 splits into a low dword (bits 31:30) and a high dword (i >> 2).
    const base = Number(pdpt)
    const low = Number(EPT_RWX | EPT_WB | EPT_LARGE)
    for (let i = 0; i < 512; i++) {
      mem.write32(base + i * 8, (((i & 3) << 30) | low) >>> 0)
      mem.write32(base + i * 8 + 4, i >>> 2)
    }
    // EPTP: write-back paging structures, 4-level walk (length - 1 = 3 in bits 5:3).
    this.eptp = pml4 | (3n << 3n) | 6n
    return true
  }

  /** KVM_BUG_ON: marks the VM dead; the vCPUs' threads leave KVM_RUN with EIO. */
  bug(reason: string): void {
    if (this.dead) return
    this.dead = true
    this.deadReason = reason
  }

  private check(call: string): Result<void> {
    if (this.destroyed) return fail(call, Errno.EBADF, "the VM file descriptor is closed")
    if (this.dead) return fail(call, Errno.EIO, `the VM is dead after an internal error (${this.deadReason}); destroy it`)
    return ok(undefined)
  }

  /** KVM_ENABLE_CAP on the VM; only KVM_CAP_EXIT_HYPERCALL (201) with a subset of the valid mask. */
  enableCap(cap: number, arg0: bigint): Result<void> {
    const call = "KVM_ENABLE_CAP"
    const c = this.check(call)
    if (!c.ok) return c
    const valid = BigInt(this.kvm.checkExtension(KvmCap.EXIT_HYPERCALL))
    if (cap !== KvmCap.EXIT_HYPERCALL || valid === 0n) return fail(call, Errno.EINVAL, `capability ${cap} cannot be enabled on a VM`)
    if ((arg0 & ~valid) !== 0n) return fail(call, Errno.EINVAL, `args[0] 0x${arg0.toString(16)} has bits outside KVM_EXIT_HYPERCALL_VALID_MASK 0x${valid.toString(16)}`)
    this.exitHypercalls = arg0
    return ok(undefined)
  }

  /** KVM_SET_USER_MEMORY_REGION. */
  setUserMemoryRegion(region: KvmUserspaceMemoryRegion): Result<void> {
    const call = "KVM_SET_USER_MEMORY_REGION"
    const c = this.check(call)
    if (!c.ok) return c
    if (region.slot < 0 || region.slot >= KVM_USER_MEM_SLOTS) return fail(call, Errno.EINVAL, `slot ${region.slot} is outside 0..${KVM_USER_MEM_SLOTS - 1}`)
    if ((region.flags & ~3) !== 0) return fail(call, Errno.EINVAL, `unknown flags 0x${region.flags.toString(16)}`)
    if (region.memory_size === 0n) {
      this.memory.setRegion(region.slot, region.guest_phys_addr, null)
      this.slots.delete(region.slot)
      this.flushTlbs()
      return ok(undefined)
    }
    if (region.userspace === null || BigInt(region.userspace.length) < region.memory_size) {
      return fail(call, Errno.EFAULT, "userspace_addr does not cover memory_size bytes")
    }
    if ((region.memory_size & 0xfffn) !== 0n || (region.guest_phys_addr & 0xfffn) !== 0n) {
      return fail(call, Errno.EINVAL, "guest_phys_addr and memory_size must be multiples of 4096")
    }
    if (region.guest_phys_addr + region.memory_size > 1n << 39n) return fail(call, Errno.EINVAL, "the region ends above the 39-bit guest-physical limit")
    const bytes = region.userspace.subarray(0, Number(region.memory_size))
    const error = this.memory.setRegion(region.slot, region.guest_phys_addr, bytes, (region.flags & KVM_MEM_READONLY) !== 0)
    if (error !== undefined) return fail(call, Errno.EEXIST, error)
    this.slots.set(region.slot, region)
    this.flushTlbs()
    return ok(undefined)
  }

  private flushTlbs(): void {
    for (const v of this.vcpus.values()) v.regs.flushTlb()
  }

  /** KVM_CREATE_VCPU from thread `caller`: allocates and sets up the vCPU's VMCS on the caller's CPU. */
  createVcpu(caller: Task, id: number): Result<Vcpu> {
    const call = "KVM_CREATE_VCPU"
    const c = this.check(call)
    if (!c.ok) return c
    if (caller.tgid !== this.creatorPid) return fail(call, Errno.EIO, "VM ioctls must come from the process that created the VM")
    if (!Number.isInteger(id) || id < 0 || id >= KVM_MAX_VCPUS) return fail(call, Errno.EINVAL, `vCPU id ${id} is outside 0..${KVM_MAX_VCPUS - 1}`)
    if (this.vcpus.has(id)) return fail(call, Errno.EEXIST, `vCPU ${id} already exists`)
    const created = this.kvm.createVcpu(this, caller, id)
    if (!created.ok) return created
    this.vcpus.set(id, created.value)
    while (this.vcpusById.length < id) this.vcpusById.push(undefined)
    this.vcpusById[id] = created.value
    return created
  }

  vcpuById(id: number): Vcpu | undefined {
    return id >= 0 && id < this.vcpusById.length ? this.vcpusById[id] : undefined
  }

  /** Closing the VM fd (after its vCPU fds): frees every vCPU, its VMCS and the EPT tables. */
  destroy(): void {
    if (this.destroyed) return
    for (const vcpu of [...this.vcpus.values()].sort((a, b) => a.id - b.id)) this.kvm.destroyVcpu(vcpu)
    this.vcpus.clear()
    this.vcpusById.length = 0
    for (const page of this.eptPages) this.kvm.hostMemory.freePage(page)
    this.eptPages.length = 0
    this.destroyed = true
    this.kvm.vmDestroyed(this)
  }

  /** Writes the EPT pointer of a vCPU's VMCS (its VMCS is current). */
  writeEptp(vcpu: Vcpu): void {
    vmwriteOrThrow(vcpu.lp, F.EPT_POINTER, this.eptp)
  }
}
