// Determinism and containment of the whole host: scheduler, KVM, VMX, guest core and ftrace.
import { createHash } from "node:crypto"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Reg } from "../../src/guest/cpu/state.ts"
import { Errno } from "../../src/host/errno.ts"
import { runMachines } from "../../src/hypervisor/vmm/machine.ts"
import type { Machine, MachineOptions } from "../../src/hypervisor/vmm/machine.ts"
import { bootHost, catTrace } from "../../src/hypervisor/vmm/system.ts"
import type { SimulatedHost } from "../../src/hypervisor/vmm/system.ts"
import { asm } from "../hypervisor/kvm/harness.ts"

const EVENTS = ["kvm_entry", "kvm_exit", "kvm_hypercall", "kvm_pio", "kvm_cpuid", "kvm_userspace_exit"]

// Each vCPU: a compute loop, hypercalls asking for vCPU (id ^ 1), CPUID, console output.
const program = asm(`
  mov r12, 4
.outer:
  mov ecx, 150
.spin:
  add rax, rcx
  dec ecx
  jnz .spin
  mov eax, 11
  mov rbx, r13
  xor ebx, 1
  vmcall
  xor eax, eax
  cpuid
  mov dx, 0xe9
  mov al, 'x'
  out dx, al
  dec r12
  jnz .outer
  hlt`)

const machineOptions = (tag: number): MachineOptions => ({
  image: program,
  memoryBytes: 4 << 20,
  vcpus: 2,
  configureVcpu: (vcpu) => {
    const s = vcpu.getSregs()
    if (!s.ok) return s.error.message
    const { longModeSregs } = longMode
    vcpu.setSregs(longModeSregs(s.value))
    const r = vcpu.getRegs()
    if (!r.ok) return r.error.message
    vcpu.setRegs({ ...r.value, r13: BigInt(vcpu.id), r14: BigInt(tag), rip: 0x100000n, rflags: 2n })
    return undefined
  },
})
import * as longMode from "../../src/hypervisor/vmm/long-mode.ts"

const stateHash = (machines: ReadonlyArray<Machine>): string => {
  const h = createHash("sha256")
  for (const m of machines) {
    for (const v of m.vcpus) {
      for (let r = 0; r < 16; r++) h.update(v.regs.getReg(r).toString(16) + ",")
      h.update(`${v.regs.ripValue} ${v.regs.rflags} ${v.regs.instructionsRetired}|`)
      h.update(Buffer.from(v.stats.counters.buffer))
      h.update(Buffer.from(v.stats.exitsByReason.buffer))
    }
    h.update(m.debugOutput)
    h.update(JSON.stringify(m.end))
  }
  return h.digest("hex")
}

const scenario = (seed: number) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        // Short slices and slow virtual instructions: ticks, preemptions and migrations happen.
        const sim = yield* bootHost({ seed, cpus: 3, nsPerInstruction: 50, tuning: { latencyNs: 200_000, minGranularityNs: 100_000 }, events: EVENTS })
        const machines = yield* runMachines(sim.kvm, sim.host, [machineOptions(1), machineOptions(2)])
        return { trace: catTrace(sim.trace), state: stateHash(machines), migrations: sim.host.scheduler.migrations, ends: machines.map((m) => m.end.kind) }
      }),
    ),
  )

describe("determinism", () => {
  it("100 seeds, each run twice, give identical trace bytes and final-state hashes", async () => {
    const traces = new Set<string>()
    let migrations = 0
    for (let seed = 0; seed < 100; seed++) {
      const a = await scenario(seed)
      const b = await scenario(seed)
      expect(a.ends).toEqual(["halted", "halted"])
      expect(b.trace).toBe(a.trace)
      expect(b.state).toBe(a.state)
      traces.add(a.trace)
      migrations += a.migrations
    }
    // The seeds do matter: they choose different placements and interleavings.
    expect(traces.size).toBeGreaterThan(1)
    expect(migrations).toBeGreaterThan(0)
  }, 300_000)
})

describe("containment", () => {
  const contained = (inject: boolean) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim: SimulatedHost = yield* bootHost({ seed: 7, events: EVENTS })
          let injected = false
          // A module's hypercall that, in the injected run, clobbers KVM's state for the calling VM:
          // it VMCLEARs the caller's VMCS behind KVM's back (the kind of bug KVM_BUG_ON catches).
          sim.kvm.registerHypercall({
            nr: 0x4242,
            name: "TEST_CORRUPT",
            handle: (call) => {
              if (inject && call.caller.regs.getReg(Reg.R14) === 1n) {
                const vcpu = (call.caller as unknown as { lp: { vmclear(a: bigint): number }; vmcs: bigint })
                vcpu.lp.vmclear(vcpu.vmcs)
                injected = true
              }
              return 0
            },
          })
          const corruptible = asm(`
            mov r12, 5
          .again:
            mov eax, 0x4242
            vmcall
            mov eax, 11
            xor ebx, ebx
            vmcall
            mov dx, 0xe9
            mov al, 'y'
            out dx, al
            dec r12
            jnz .again
            hlt`)
          const options = (tag: number): MachineOptions => ({
            image: corruptible,
            memoryBytes: 4 << 20,
            configureVcpu: (vcpu) => {
              const s = vcpu.getSregs()
              if (!s.ok) return s.error.message
              vcpu.setSregs(longMode.longModeSregs(s.value))
              const r = vcpu.getRegs()
              if (!r.ok) return r.error.message
              vcpu.setRegs({ ...r.value, r14: BigInt(tag), rip: 0x100000n, rflags: 2n })
              return undefined
            },
          })
          const [a, b] = yield* runMachines(sim.kvm, sim.host, [options(1), options(2)])
          const bPid = b!.threads[0]!.task.pid
          const bLines = catTrace(sim.trace)
            .split("\n")
            .filter((l) => l.includes(`-${bPid} `))
            .join("\n")
          return { a: a!, b: b!, bLines, injected, sim }
        }),
      ),
    )

  it("an inconsistency in one VM kills only that VM (EIO from then on); the other's trace is byte-identical", async () => {
    const clean = await contained(false)
    const hurt = await contained(true)
    expect(clean.a.end).toEqual({ kind: "halted" })
    expect(hurt.injected).toBe(true)
    expect(hurt.a.end.kind).toBe("error")
    expect(hurt.a.vm.dead).toBe(true)
    expect(hurt.b.end).toEqual({ kind: "halted" })
    expect(hurt.b.vm.dead).toBe(false)
    expect(hurt.bLines.length).toBeGreaterThan(0)
    expect(hurt.bLines).toBe(clean.bLines)
    expect(hurt.b.debugOutput).toBe("yyyyy")
  })

  it("every call on a dead VM returns EIO", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost()
          const qemu = sim.host.tasks.spawnProcess("qemu-system-x86_64")
          const t = sim.host.tasks.spawnThread(qemu)
          const vm = sim.kvm.createVm(qemu)
          if (!vm.ok) throw new Error(vm.error.message)
          const vcpu = vm.value.createVcpu(t, 0)
          if (!vcpu.ok) throw new Error(vcpu.error.message)
          vm.value.bug("injected by the test")
          const results = [
            vm.value.createVcpu(t, 1),
            vm.value.setUserMemoryRegion({ slot: 0, flags: 0, guest_phys_addr: 0n, memory_size: 4096n, userspace: new Uint8Array(4096) }),
            vcpu.value.getRegs(),
            vcpu.value.setSregs({} as never),
            vcpu.value.getMsrs([0x10]),
            vcpu.value.interrupt(32),
          ]
          vm.value.destroy()
          return results.map((r) => (r.ok ? "ok" : `${r.error.call} ${r.error.errno}`))
        }),
      ),
    )
    expect(out).toEqual([
      `KVM_CREATE_VCPU ${Errno.EIO}`,
      `KVM_SET_USER_MEMORY_REGION ${Errno.EIO}`,
      `KVM_GET_REGS ${Errno.EIO}`,
      `KVM_SET_SREGS ${Errno.EIO}`,
      `KVM_GET_MSRS ${Errno.EIO}`,
      `KVM_INTERRUPT ${Errno.EIO}`,
    ])
  })
})
