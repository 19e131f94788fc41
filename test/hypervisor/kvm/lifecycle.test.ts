import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { Reg } from "../../../src/guest/cpu/state.ts"
import { ModuleInitError } from "../../../src/host/modules.ts"
import type { KernelModule } from "../../../src/host/modules.ts"
import { Errno } from "../../../src/host/errno.ts"
import { KvmHcError } from "../../../src/hypervisor/kvm/uapi.ts"
import { longModeSregs } from "../../../src/hypervisor/vmm/long-mode.ts"
import { runMachine, runMachines } from "../../../src/hypervisor/vmm/machine.ts"
import type { MachineOptions } from "../../../src/hypervisor/vmm/machine.ts"
import { bootHost, catTrace } from "../../../src/hypervisor/vmm/system.ts"
import { asm } from "./harness.ts"

describe("a user's hypercall module loaded at run time", () => {
  it("adds a hypercall with access to registers, trace_printk, statistics and the VMCS; rmmod removes it", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost()
          const program = asm("mov eax, 0x100\nmov ebx, 20\nmov ecx, 22\nvmcall\nmov r8, rax\nhlt")
          const before = yield* runMachine(sim.kvm, sim.host, { image: program, memoryBytes: 4 << 20 })
          // The homework's extension point, as a module: insmod registers, rmmod unregisters.
          const homework: KernelModule = {
            name: "my_hypercalls",
            dependsOn: ["kvm_intel"],
            init: () =>
              Effect.gen(function* () {
                const r = sim.kvm.registerHypercall({
                  nr: 0x100,
                  name: "MY_HC_ADD",
                  handle: (call) => {
                    const [a, b] = call.args
                    const rip = call.vmread(0x681e) // GUEST_RIP
                    call.printf("add %lu + %lu at rip 0x%lx after %llu exits\n", a, b, rip, BigInt(call.caller.stats.get("exits")))
                    return a + b
                  },
                })
                if (!r.ok) return yield* Effect.fail(new ModuleInitError({ errno: Errno.EEXIST, message: r.reason }))
                yield* Effect.addFinalizer(() => Effect.sync(r.unregister))
              }),
          }
          yield* sim.host.modules.insmod(homework)
          const busy = yield* Effect.exit(sim.host.modules.rmmod("kvm_intel"))
          const during = yield* runMachine(sim.kvm, sim.host, { image: program, memoryBytes: 4 << 20 })
          yield* sim.host.modules.rmmod("my_hypercalls")
          const after = yield* runMachine(sim.kvm, sim.host, { image: program, memoryBytes: 4 << 20 })
          return {
            before: before.vcpus[0]!.regs.getReg(Reg.R8),
            during: during.vcpus[0]!.regs.getReg(Reg.R8),
            after: after.vcpus[0]!.regs.getReg(Reg.R8),
            busy: Exit.isFailure(busy),
            trace: catTrace(sim.trace),
          }
        }),
      ),
    )
    const enosys = BigInt.asUintN(64, BigInt(-KvmHcError.ENOSYS))
    expect(out.before).toBe(enosys)
    expect(out.during).toBe(42n)
    expect(out.after).toBe(enosys)
    expect(out.busy).toBe(true) // kvm_intel is in use by my_hypercalls
    expect(out.trace).toContain("kvm_emulate_hypercall: add 20 + 22 at rip 0x10000f after 1 exits\n")
  })
})

describe("HLT, kicks and migration", () => {
  const smp = (program: string, vcpus: number): MachineOptions => ({
    image: asm(program),
    memoryBytes: 4 << 20,
    vcpus,
    configureVcpu: (vcpu) => {
      const s = vcpu.getSregs()
      if (!s.ok) return s.error.message
      vcpu.setSregs(longModeSregs(s.value))
      const r = vcpu.getRegs()
      if (!r.ok) return r.error.message
      // IF=1: HLT blocks the vCPU thread in the kernel until a kick.
      vcpu.setRegs({ ...r.value, r13: BigInt(vcpu.id), rip: 0x100000n, rflags: 0x202n })
      return undefined
    },
  })

  it("a HLT with interrupts on blocks the vCPU thread until KVM_HC_KICK_CPU wakes it", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost({ events: ["kvm_vcpu_wakeup"] })
          // vCPU 1 halts (IF=1) then reports; vCPU 0 spins a while, kicks vCPU 1, reports, stops.
          const program = `
            test r13, r13
            jnz .second
            mov ecx, 20000
          .spin: dec ecx
            jnz .spin
            mov eax, 5
            xor ebx, ebx
            mov ecx, 1
            vmcall
            mov dx, 0xe9
            mov al, 'k'
            out dx, al
            cli
            hlt
          .second:
            hlt
            mov dx, 0xe9
            mov al, 'w'
            out dx, al
            cli
            hlt`
          const m = yield* runMachine(sim.kvm, sim.host, smp(program, 2))
          return { m, trace: catTrace(sim.trace) }
        }),
      ),
    )
    expect(out.m.end).toEqual({ kind: "halted" })
    expect(out.m.debugOutput.split("").sort().join("")).toBe("kw")
    expect(out.m.vcpus[1]!.stats.get("halt_wakeup")).toBe(1)
    expect(out.trace).toMatch(/kvm_vcpu_wakeup: wait time \d+ ns, polling valid/)
  })

  it("vCPU threads that migrate between host CPUs keep running (VMCLEAR on the old CPU, VMPTRLD on the new)", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost({ cpus: 2, seed: 3, nsPerInstruction: 100, tuning: { latencyNs: 300_000, minGranularityNs: 100_000 } })
          const program = "mov r12, 30\n.o: mov ecx, 300\n.i: dec ecx\njnz .i\nxor eax, eax\ncpuid\ndec r12\njnz .o\ncli\nhlt"
          const machines = yield* runMachines(sim.kvm, sim.host, [smp(program, 3), smp(program, 2)])
          return { machines, migrations: sim.host.scheduler.migrations, pages: sim.kvm.hostMemory.allocatedPages }
        }),
      ),
    )
    expect(out.migrations).toBeGreaterThan(0)
    for (const m of out.machines) {
      expect(m.end, JSON.stringify(m.end, (_k, v) => (typeof v === "bigint" ? v.toString() : v))).toEqual({ kind: "halted" })
      for (const v of m.vcpus) expect(v.stats.exitsByReason[10]).toBe(30)
    }
  })
})

describe("leaks", () => {
  // Whole QEMU-like lifecycles: process, RCU thread, /dev/kvm, VM, vCPU thread fiber, KVM_RUN, teardown.
  // A 64 KiB guest keeps each cycle near a millisecond.
  it("10,000 VM lifecycles with a running vCPU thread leave tasks, VMCSs, host memory and fibers at baseline", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sim = yield* bootHost()
          const image = asm("hlt")
          const baseline = { tasks: sim.host.tasks.size, threads: sim.host.scheduler.threadCount, pages: sim.kvm.hostMemory.allocatedPages, active: sim.kvm.platform.activeCount, vmxon: sim.kvm.hardwareEnabled }
          for (let i = 0; i < 10_000; i++) {
            const m = yield* runMachine(sim.kvm, sim.host, { image, memoryBytes: 64 << 10, loadAddress: 0x8000n })
            if (m.end.kind !== "halted") throw new Error(JSON.stringify(m.end))
          }
          return {
            baseline,
            now: { tasks: sim.host.tasks.size, threads: sim.host.scheduler.threadCount, pages: sim.kvm.hostMemory.allocatedPages, active: sim.kvm.platform.activeCount, vmxon: sim.kvm.hardwareEnabled },
            vms: sim.kvm.vmCount,
          }
        }),
      ),
    )
    expect(out.now).toEqual(out.baseline)
    expect(out.vms).toBe(0)
  }, 180_000)
})
