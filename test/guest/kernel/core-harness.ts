// Runs the mini kernel straight on the guest core, with the smallest "hypervisor" that can host
// it: every I/O instruction, HLT and VMCALL exits; OUT to 0x3f8 is the console, OUT to 0xf4 ends
// the run, VMCALL implements the Linux hypercall ABI with KVM_HC_SEND_IPI (the APs' wakeup of
// the BSP) and KVM_HC_VCPU_INFO recording what the host would trace. vCPUs take turns in fixed slices, so runs are deterministic. This tests the
// kernel without the KVM lane; the e2e tests run it through the real KVM module and VMM.

import { Cr0, Cr4, Efer } from "../../../src/arch/x86.ts"
import { CpuState, Reg, Seg } from "../../../src/guest/cpu/state.ts"
import { NoIntercepts } from "../../../src/guest/intercept.ts"
import { BOOT_PARAMS_GPA, BOOT_PARAMS_SIZE, installKernel, type UserProgram, vcpuEntry } from "../../../src/guest/kernel/index.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { RunOutcome, runBatch } from "../../../src/guest/run.ts"

const EXIT_IO = 30
const EXIT_VMCALL = 18
const EXIT_HLT = 12
const KVM_ENOSYS = -1000n
const KVM_EPERM = -1n
const KVM_EINVAL = -22n
const KVM_HC_SEND_IPI = 10n

/** Exits on I/O and HLT (VMCALL always exits under intercepts). */
class HostIntercepts extends NoIntercepts {
  override exitsOnHlt(): boolean {
    return true
  }
  override exitsOnIo(): boolean {
    return true
  }
}

export interface VcpuInfoRecord {
  /** The vCPU that issued the hypercall. */
  readonly caller: number
  /** RBX: the vCPU asked about. */
  readonly requested: bigint
  /** The requested vCPU's registers when the hypercall ran (undefined for an unknown id). */
  readonly regs?: { rbx: bigint; rcx: bigint; rdx: bigint; rsi: bigint; rip: bigint }
}

export interface KernelRun {
  readonly console: string
  /** The value written to isa-debug-exit, or undefined when the run stopped otherwise. */
  readonly exitStatus: number | undefined
  readonly vcpuInfo: ReadonlyArray<VcpuInfoRecord>
  /** Hypercalls issued at CPL3 (answered with -KVM_EPERM). */
  readonly userHypercalls: number
  readonly cpus: ReadonlyArray<CpuState>
  readonly halted: ReadonlyArray<boolean>
  readonly instructions: number
  readonly stoppedBy: "exit" | "shutdown" | "all-halted" | "budget"
}

const MiB = 1n << 20n

const writeIdentityTables = (memory: GuestMemory): void => {
  // Bare mode's tables: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000, 512 x 2 MiB, supervisor RW.
  memory.writeU64(0x1000n, 0x2000n | 3n)
  memory.writeU64(0x2000n, 0x3000n | 3n)
  for (let i = 0n; i < 512n; i++) memory.writeU64(0x3000n + i * 8n, (i << 21n) | 0x83n)
}

const longModeCpu = (memory: GuestMemory, id: number): CpuState => {
  const cpu = new CpuState(memory)
  cpu.cr0 = Cr0.PE | Cr0.ET | Cr0.NE | Cr0.PG
  cpu.cr4 = Cr4.PAE
  cpu.efer = Efer.LME | Efer.LMA
  cpu.cr3 = 0x1000n
  const flat = { base: 0n, limit: 0xffffffff }
  cpu.setSegment(Seg.CS, { ...flat, selector: 0x08, accessRights: 0xa09b })
  for (const s of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) cpu.setSegment(s, { ...flat, selector: 0x10, accessRights: 0xc093 })
  cpu.setSegment(Seg.TR, { selector: 0x18, base: 0x600n, limit: 0x67, accessRights: 0x8b })
  cpu.setSegment(Seg.LDTR, { selector: 0, base: 0n, limit: 0, accessRights: 0x10000 })
  const entry = vcpuEntry(id)
  cpu.setRip(entry.rip)
  cpu.setRflags(entry.rflags)
  cpu.setReg(Reg.RDI, entry.rdi)
  cpu.intercepts = new HostIntercepts()
  return cpu
}

export interface BootOptions {
  readonly program: UserProgram
  /** Online CPUs announced in the boot parameters. */
  readonly nrCpus?: number
  /** vCPUs actually created (default: nrCpus). */
  readonly vcpuCount?: number
  /** Edits the encoded boot-parameter block before it is written (to test the kernel's checks). */
  readonly patchBootParams?: (bytes: Uint8Array) => void
  readonly hypercallVcpuInfo?: number
  readonly memSize?: bigint
  readonly comm?: string
  /** Instructions per vCPU turn. */
  readonly slice?: number
  readonly maxInstructions?: number
  /** Called between turns; may request interrupts etc. Return true to stop. */
  readonly between?: (cpus: ReadonlyArray<CpuState>, halted: Array<boolean>) => boolean | void
}

export const bootOnCore = (options: BootOptions): KernelRun => {
  const nrCpus = options.nrCpus ?? 1
  const hcNumber = BigInt(options.hypercallVcpuInfo ?? 11)
  const memSize = options.memSize ?? 16n * MiB
  const ram = new Uint8Array(Number(memSize))
  const installError = installKernel(ram, { program: options.program, nrCpus, hypercallVcpuInfo: Number(hcNumber), comm: options.comm ?? "test" })
  if (installError !== undefined) throw installError
  options.patchBootParams?.(ram.subarray(Number(BOOT_PARAMS_GPA), Number(BOOT_PARAMS_GPA) + BOOT_PARAMS_SIZE))
  const memory = new GuestMemory()
  const regionError = memory.setRegion(0, 0n, ram, false)
  if (regionError !== undefined) throw new Error(regionError)
  writeIdentityTables(memory)
  const cpus = Array.from({ length: options.vcpuCount ?? nrCpus }, (_, id) => longModeCpu(memory, id))
  const halted = cpus.map(() => false)
  const slice = options.slice ?? 997
  const maxInstructions = options.maxInstructions ?? 20_000_000
  let console = ""
  let exitStatus: number | undefined
  let userHypercalls = 0
  const vcpuInfo: Array<VcpuInfoRecord> = []
  let instructions = 0
  let stoppedBy: KernelRun["stoppedBy"] = "budget"

  const advance = (cpu: CpuState): void => cpu.setRip(cpu.ripValue + BigInt(cpu.exit.instructionLength))

  outer: while (instructions < maxInstructions) {
    if (options.between?.(cpus, halted) === true) break
    if (halted.every((h) => h)) {
      stoppedBy = "all-halted"
      break
    }
    for (let id = 0; id < cpus.length; id++) {
      const cpu = cpus[id]!
      if (halted[id]) {
        if (cpu.highestPendingInterrupt() < 0 && !cpu.nmiPending) continue
        halted[id] = false // an interrupt wakes it, as KVM's vCPU block ends
      }
      const before = cpu.instructionsRetired
      const outcome = runBatch(cpu, slice)
      instructions += cpu.instructionsRetired - before
      if (outcome === RunOutcome.SHUTDOWN) {
        stoppedBy = "shutdown"
        break outer
      }
      if (outcome === RunOutcome.HALTED) {
        halted[id] = true
        continue
      }
      if (outcome !== RunOutcome.VM_EXIT) continue
      const exit = cpu.exit
      switch (exit.reason) {
        case EXIT_IO: {
          const q = exit.qualificationLo
          const size = (q & 7) + 1
          const isIn = (q & 8) !== 0
          const port = q >>> 16
          advance(cpu)
          if (isIn) {
            cpu.setReg(Reg.RAX, (cpu.getReg(Reg.RAX) & ~((1n << BigInt(size * 8)) - 1n)) | 0n)
          } else if (port === 0x3f8) {
            console += String.fromCharCode(cpu.lo[Reg.RAX]! & 0xff)
          } else if (port === 0xf4) {
            exitStatus = size === 4 ? cpu.lo[Reg.RAX]! >>> 0 : cpu.lo[Reg.RAX]! & ((1 << (size * 8)) - 1)
            stoppedBy = "exit"
            break outer
          }
          break
        }
        case EXIT_VMCALL: {
          advance(cpu)
          if (cpu.cpl !== 0) {
            userHypercalls++
            cpu.setReg(Reg.RAX, KVM_EPERM)
            break
          }
          const nr = cpu.getReg(Reg.RAX)
          if (nr === KVM_HC_SEND_IPI) {
            // a0/a1 = destination bitmap from APIC id a2, a3 = ICR (vector in bits 7:0).
            const [low, high, min, icr] = [Reg.RBX, Reg.RCX, Reg.RDX, Reg.RSI].map((r) => cpu.getReg(r))
            let delivered = 0n
            for (let bit = 0n; bit < 128n; bit++) {
              const target = cpus[Number(min! + bit)]
              if ((((bit < 64n ? low! : high!) >> (bit & 63n)) & 1n) === 1n && target !== undefined) {
                target.requestInterrupt(Number(icr! & 0xffn))
                delivered++
              }
            }
            cpu.setReg(Reg.RAX, delivered)
            break
          }
          if (nr !== hcNumber) {
            cpu.setReg(Reg.RAX, KVM_ENOSYS)
            break
          }
          const requested = cpu.getReg(Reg.RBX)
          const target = requested < BigInt(cpus.length) ? cpus[Number(requested)] : undefined
          if (target === undefined) {
            vcpuInfo.push({ caller: id, requested })
            cpu.setReg(Reg.RAX, KVM_EINVAL)
            break
          }
          vcpuInfo.push({
            caller: id,
            requested,
            regs: {
              rbx: target.getReg(Reg.RBX),
              rcx: target.getReg(Reg.RCX),
              rdx: target.getReg(Reg.RDX),
              rsi: target.getReg(Reg.RSI),
              rip: target.ripValue,
            },
          })
          cpu.setReg(Reg.RAX, 0n)
          break
        }
        case EXIT_HLT:
          advance(cpu)
          halted[id] = true
          break
        default:
          throw new Error(`unexpected exit reason ${exit.reason} on vCPU ${id} at 0x${cpu.ripValue.toString(16)}`)
      }
    }
  }
  return { console, exitStatus, vcpuInfo, userHypercalls, cpus, halted, instructions, stoppedBy }
}
