import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { Reg } from "../../../src/guest/cpu/state.ts"
import { KvmExit } from "../../../src/hypervisor/kvm/uapi.ts"
import { longModeSregs, writeBootStructures } from "../../../src/hypervisor/vmm/long-mode.ts"
import { Machine } from "../../../src/hypervisor/vmm/machine.ts"
import { bootHost } from "../../../src/hypervisor/vmm/system.ts"
import { asm, exitsByReason, runBare } from "./harness.ts"

const rax = (m: Machine, i = 0): bigint => m.vcpus[i]!.regs.getReg(Reg.RAX)

describe("the exit loop of a minimal VMM, through the ioctl-shaped API", () => {
  it("creates a VM and a vCPU from the vCPU thread, runs it, and services KVM_EXIT_IO itself", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { host, kvm } = yield* bootHost()
          const qemu = host.tasks.spawnProcess("qemu-system-x86_64")
          const vm = kvm.createVm(qemu)
          if (!vm.ok) throw new Error(vm.error.message)
          const ram = new Uint8Array(4 << 20)
          writeBootStructures(ram)
          ram.set(asm("mov dx, 0xe9\nmov al, 'k'\nout dx, al\nin al, dx\nmov bl, al\nhlt"), 0x100000)
          expect(vm.value.setUserMemoryRegion({ slot: 0, flags: 0, guest_phys_addr: 0n, memory_size: BigInt(ram.length), userspace: ram }).ok).toBe(true)
          const seen: Array<string> = []
          const task = host.tasks.spawnThread(qemu, "qemu-system-x86_64")
          yield* host.scheduler.spawn(task, (thread) =>
            Effect.gen(function* () {
              const created = vm.value.createVcpu(thread.task, 0)
              if (!created.ok) throw new Error(created.error.message)
              const vcpu = created.value
              const sregs = vcpu.getSregs()
              if (!sregs.ok) throw new Error(sregs.error.message)
              vcpu.setSregs(longModeSregs(sregs.value))
              const regs = vcpu.getRegs()
              if (!regs.ok) throw new Error(regs.error.message)
              vcpu.setRegs({ ...regs.value, rip: 0x100000n, rflags: 2n })
              for (;;) {
                const reason = yield* kvmRunOrDie(vcpu, thread)
                const exit = vcpu.run.exit!
                if (exit.reason === KvmExit.IO) {
                  seen.push(`${exit.direction === 1 ? "out" : "in"} 0x${exit.port.toString(16)} ${exit.data[0]}`)
                  if (exit.direction === 0) exit.data[0] = 0x5a
                  continue
                }
                seen.push(`exit ${reason}`)
                break
              }
              seen.push(`bl=${vcpu.regs.lo[Reg.RBX]! & 0xff}`)
            }),
          )
          yield* host.scheduler.run()
          return seen
        }),
      ),
    )
    expect(out).toEqual(["out 0xe9 107", "in 0xe9 0", `exit ${KvmExit.HLT}`, "bl=90"])
  })
})

// The vCPU's own KVM_RUN, failing the test on an errno.
import { kvmRun } from "../../../src/hypervisor/kvm/run.ts"
import type { Vcpu } from "../../../src/hypervisor/kvm/vcpu.ts"
import type { Thread } from "../../../src/host/scheduler.ts"
const kvmRunOrDie = (vcpu: Vcpu, thread: Thread) => Effect.orDie(kvmRun(vcpu, thread))

describe("every exit reason KVM handles", () => {
  it("CPUID answers from KVM's table, including the KVMKVMKVM signature leaf", async () => {
    const { machine } = await runBare("mov eax, 0x40000000\ncpuid\nhlt")
    const r = machine.vcpus[0]!.regs
    expect([r.lo[Reg.RBX]! >>> 0, r.lo[Reg.RCX]! >>> 0, r.lo[Reg.RDX]! >>> 0]).toEqual([0x4b4d564b, 0x564b4d56, 0x4d])
    expect(exitsByReason(machine)).toEqual({ [ExitReason.CPUID]: 1, [ExitReason.HLT]: 1 })
  })

  it("HLT with interrupts off returns KVM_EXIT_HLT; I/O goes to user space (serial console)", async () => {
    const { machine } = await runBare("mov dx, 0x3f8\nmov al, 'h'\nout dx, al\nmov al, 'i'\nout dx, al\nhlt")
    expect(machine.console).toBe("hi")
    expect(machine.end).toEqual({ kind: "halted" })
    expect(machine.vcpus[0]!.stats.get("io_exits")).toBe(2)
    expect(machine.vcpus[0]!.stats.get("halt_exits")).toBe(1)
  })

  it("MSR read and write exits: emulated MSRs answer, unknown ones inject #GP", async () => {
    const { machine, trace } = await runBare("mov ecx, 0x1b\nrdmsr\nmov r8, rax\nmov ecx, 0xc0000080\nrdmsr\nmov r9, rax\nmov ecx, 0x277\nmov eax, 0x06060606\nmov edx, eax\nwrmsr\nhlt", {}, { events: ["kvm_msr"] })
    const r = machine.vcpus[0]!.regs
    expect(r.getReg(Reg.R8)).toBe(0xfee00900n) // xAPIC enabled, BSP
    expect(r.getReg(Reg.R9) & 0x500n).toBe(0x500n) // EFER.LME|LMA
    expect(exitsByReason(machine)[ExitReason.MSR_READ]).toBe(2)
    expect(exitsByReason(machine)[ExitReason.MSR_WRITE]).toBe(1)
    expect(trace).toContain("kvm_msr: msr_read 1b = 0xfee00900")
    expect(trace).toContain("kvm_msr: msr_write 277 = 0x606060606060606")
  })

  it("CR access: a guest write to a host-owned CR0 bit exits, KVM updates the shadow the guest reads", async () => {
    const { machine, trace } = await runBare("mov rax, cr0\nbts rax, 18\nmov cr0, rax\nmov rbx, cr0\nhlt", {}, { events: ["kvm_cr"] })
    expect(exitsByReason(machine)[ExitReason.CR_ACCESS]).toBe(1)
    expect(machine.vcpus[0]!.regs.getReg(Reg.RBX) & (1n << 18n)).toBe(1n << 18n)
    expect(trace).toMatch(/kvm_cr: cr_write 0 = 0x80050033/)
  })

  it("an EPT violation outside every memslot becomes KVM_EXIT_MMIO (user space answers the read)", async () => {
    const { machine } = await runBare("mov rbx, 0x20000000\nmov dword [rbx], 0x1234\nmov eax, [rbx]\nhlt")
    expect(exitsByReason(machine)[ExitReason.EPT_VIOLATION]).toBe(2)
    expect(machine.vcpus[0]!.stats.get("mmio_exits")).toBe(2)
    expect(rax(machine) & 0xffffffffn).toBe(0xffffffffn) // nothing is mapped there: all-ones
  })

  it("an exception KVM intercepts (#UD) is reflected; with no IDT it becomes a triple fault: KVM_EXIT_SHUTDOWN", async () => {
    const { machine } = await runBare("ud2\nhlt")
    expect(exitsByReason(machine)[ExitReason.EXCEPTION_NMI]).toBe(1)
    expect(exitsByReason(machine)[ExitReason.TRIPLE_FAULT]).toBe(1)
    expect(machine.end).toEqual({ kind: "shutdown" })
  })

  it("invalid guest state fails the entry: KVM_EXIT_FAIL_ENTRY with exit reason 33 | bit 31", async () => {
    let failure: unknown
    await runBare("hlt", {
      configureVcpu: (vcpu) => {
        const s = vcpu.getSregs()
        if (!s.ok) return s.error.message
        const lm = longModeSregs(s.value)
        vcpu.setSregs({ ...lm, cs: { ...lm.cs, db: 1 } }) // L and D/B both set: invalid
        const r = vcpu.getRegs()
        if (!r.ok) return r.error.message
        vcpu.setRegs({ ...r.value, rip: 0x100000n })
        return undefined
      },
    }).then((r) => {
      failure = r.machine.end
      expect(r.machine.vcpus[0]!.run.exit).toEqual({ reason: KvmExit.FAIL_ENTRY, hardwareEntryFailureReason: 0x80000021n, cpu: expect.any(Number) })
    })
    expect(failure).toMatchObject({ kind: "error", exitReason: KvmExit.FAIL_ENTRY })
  })

  it("host timer ticks cause external-interrupt exits and the preemption timer ends time slices", async () => {
    const { machine } = await runBare("mov ecx, 35000\n.l: dec ecx\njnz .l\nhlt", {}, { nsPerInstruction: 100 })
    const by = exitsByReason(machine)
    // 70,000 instructions at 100 ns each: one tick every 4 ms, one slice (6 ms, the thread alone on its CPU).
    expect(by[ExitReason.EXTERNAL_INTERRUPT]).toBe(1)
    expect(machine.vcpus[0]!.stats.get("irq_exits")).toBe(1)
    expect(by[ExitReason.PREEMPTION_TIMER]).toBe(1)
  })
})

describe("the hypercall ABI", () => {
  it("returns -KVM_ENOSYS (-1000) for an unknown number and advances RIP", async () => {
    const { machine } = await runBare("mov eax, 999\nvmcall\nmov rbx, rax\nhlt")
    expect(machine.vcpus[0]!.regs.getReg(Reg.RBX)).toBe(BigInt.asUintN(64, -1000n))
    expect(machine.vcpus[0]!.stats.get("hypercalls")).toBe(1)
  })

  it("returns -KVM_EPERM from CPL 3 without dispatching, RIP advanced", async () => {
    const { machine } = await runBare("mov eax, 11\nxor ebx, ebx\nvmcall\nmov rbx, rax\nmov dx, 0xf4\nmov al, 0\nout dx, al", {
      configureVcpu: (vcpu, _i, m) => {
        // User pages and a CPL3 code/stack segment; IOPL 3 so the guest can reach isa-debug-exit.
        const view = new DataView(m.memory.buffer)
        for (const at of [0x1000, 0x2000]) view.setBigUint64(at, view.getBigUint64(at, true) | 4n, true)
        for (let i = 0; i < 512; i++) view.setBigUint64(0x3000 + i * 8, view.getBigUint64(0x3000 + i * 8, true) | 4n, true)
        const s = vcpu.getSregs()
        if (!s.ok) return s.error.message
        const lm = longModeSregs(s.value)
        vcpu.setSregs({ ...lm, cs: { ...lm.cs, selector: 0x2b, dpl: 3 }, ss: { ...lm.ss, selector: 0x23, dpl: 3 }, ds: { ...lm.ds, selector: 0x23, dpl: 3 } })
        const r = vcpu.getRegs()
        if (!r.ok) return r.error.message
        vcpu.setRegs({ ...r.value, rip: 0x100000n, rflags: 0x3002n })
        return undefined
      },
    })
    expect(machine.end).toEqual({ kind: "exit", status: 1 })
    expect(machine.vcpus[0]!.regs.getReg(Reg.RBX)).toBe(0xffffffffffffffffn)
    expect(machine.vcpus[0]!.stats.get("hypercalls")).toBe(1)
  })

  it("KVM_HC_VCPU_INFO writes the requested vCPU's id, thread pid and registers, not the caller's", async () => {
    const { machine, trace } = await runBare("mov eax, 11\nmov ebx, 1\nmov r15, 0x77\nvmcall\nhlt", {
      vcpus: 2,
      configureVcpu: (vcpu, i, m) => {
        const s = vcpu.getSregs()
        if (!s.ok) return s.error.message
        vcpu.setSregs(longModeSregs(s.value))
        const r = vcpu.getRegs()
        if (!r.ok) return r.error.message
        // vCPU 1 parks on HLT with a recognisable R14 before vCPU 0 asks about it.
        vcpu.setRegs({ ...r.value, r14: BigInt(0x1400 + i), rip: i === 0 ? 0x100000n : 0x100000n + BigInt(asm("mov eax, 11\nmov ebx, 1\nmov r15, 0x77\nvmcall").length), rflags: 2n })
        void m
        return undefined
      },
    })
    const pid1 = machine.threads[1]!.task.pid
    expect(trace).toContain(`kvm_emulate_hypercall: vcpu id: 1\n`)
    expect(trace).toContain(`kvm_emulate_hypercall: pid: ${pid1}\n`)
    expect(trace).toMatch(/regs: r8=0, r9=0, r10=0, r11=0, r12=0, r13=0, r14=5121, r15=0\n/)
    expect(machine.vcpus[0]!.stats.get("hypercalls")).toBe(1)
  })

  it("an unknown vCPU id prints a line saying so and returns -KVM_EINVAL", async () => {
    const { machine, trace } = await runBare("mov eax, 11\nmov ebx, 7\nvmcall\nmov rbx, rax\nhlt")
    expect(trace).toContain("kvm_emulate_hypercall: unknown cpu id: 7\n")
    expect(machine.vcpus[0]!.regs.getReg(Reg.RBX)).toBe(BigInt.asUintN(64, -22n))
  })

  it("in linux-6.x, 11 is KVM_HC_SCHED_YIELD and VCPU_INFO has its own number", async () => {
    const { machine, trace, sim } = await runBare("mov eax, 11\nxor ebx, ebx\nvmcall\nmov r8, rax\nmov eax, 13\nxor ebx, ebx\nvmcall\nhlt", {}, { profile: "linux-6.x" })
    expect(sim.kvm.vcpuInfoHypercall).toBe(13)
    expect(machine.vcpus[0]!.regs.getReg(Reg.R8)).toBe(0n)
    expect(trace.match(/vcpu id: 0/g)).toHaveLength(1)
    expect(trace).toContain(" CPU 0/KVM-")
  })
})

describe("exits by reason are exactly what the guest program caused", () => {
  it("k CPUIDs add k CPUID exits, for random programs (fast-check)", async () => {
    const insn = fc.constantFrom("cpuid", "vmcall", "out", "rdmsr", "nop") // every one but nop exits once
    await fc.assert(
      fc.asyncProperty(fc.array(insn, { maxLength: 30 }), async (program) => {
        const body = program
          .map((i) =>
            i === "cpuid" ? "xor eax, eax\ncpuid" : i === "vmcall" ? "mov eax, 1\nvmcall" : i === "out" ? "mov dx, 0xe9\nout dx, al" : i === "rdmsr" ? "mov ecx, 0x10\nrdmsr" : "nop",
          )
          .join("\n")
        const { machine } = await runBare(`${body}\nhlt`)
        const count = (name: string) => program.filter((p) => p === name).length
        const expected: Record<number, number> = { [ExitReason.HLT]: 1 }
        if (count("cpuid") > 0) expected[ExitReason.CPUID] = count("cpuid")
        if (count("vmcall") > 0) expected[ExitReason.VMCALL] = count("vmcall")
        if (count("out") > 0) expected[ExitReason.IO_INSTRUCTION] = count("out")
        if (count("rdmsr") > 0) expected[ExitReason.MSR_READ] = count("rdmsr")
        expect(exitsByReason(machine)).toEqual(expected)
        expect(machine.vcpus[0]!.stats.get("exits")).toBe(program.filter((p) => p !== "nop").length + 1)
      }),
      { numRuns: 40 },
    )
  })
})
