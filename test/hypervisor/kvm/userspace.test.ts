import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../../src/arch/exit-reasons.ts"
import { Reg } from "../../../src/guest/cpu/state.ts"
import { Errno } from "../../../src/host/errno.ts"
import { kvmRun } from "../../../src/hypervisor/kvm/run.ts"
import { KvmCap, KvmExit, KvmHc, KvmInternalError } from "../../../src/hypervisor/kvm/uapi.ts"
import { longModeSregs, writeBootStructures } from "../../../src/hypervisor/vmm/long-mode.ts"
import { bootHost } from "../../../src/hypervisor/vmm/system.ts"
import { asm, exitsByReason, runBare } from "./harness.ts"

describe("exits KVM hands to user space", () => {
  it("without KVM_CAP_EXIT_HYPERCALL, MAP_GPA_RANGE answers -KVM_ENOSYS; the cap takes only the valid mask, and only in linux-6.x", async () => {
    const { machine, sim } = await runBare("mov eax, 12\nmov ebx, 0x200000\nmov ecx, 16\nvmcall\nmov r8, rax\nhlt", {}, { profile: "linux-6.x" })
    expect(BigInt.asIntN(64, machine.vcpus[0]!.regs.getReg(Reg.R8))).toBe(-1000n)
    expect(sim.kvm.checkExtension(KvmCap.EXIT_HYPERCALL)).toBe(1 << KvmHc.MAP_GPA_RANGE)
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const six = yield* bootHost({ profile: "linux-6.x" })
          const five = yield* bootHost({ profile: "linux-5.0" })
          const vm6 = six.kvm.createVm(six.host.tasks.spawnProcess("qemu-system-x86_64"))
          const vm5 = five.kvm.createVm(five.host.tasks.spawnProcess("qemu-system-x86_64"))
          if (!vm6.ok || !vm5.ok) throw new Error("createVm")
          const bad = vm6.value.enableCap(KvmCap.EXIT_HYPERCALL, 1n << 5n)
          const old = vm5.value.enableCap(KvmCap.EXIT_HYPERCALL, 1n << 12n)
          return { bad: !bad.ok && bad.error.errno, old: !old.ok && old.error.errno, cap5: five.kvm.checkExtension(KvmCap.EXIT_HYPERCALL) }
        }),
      ),
    )
    expect(out).toEqual({ bad: Errno.EINVAL, old: Errno.EINVAL, cap5: 0 })
  })

  it("KVM_EXIT_HYPERCALL with the cap enabled before the run: user space answers, RIP advances after", async () => {
    const out = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { host, kvm } = yield* bootHost({ profile: "linux-6.x" })
          const qemu = host.tasks.spawnProcess("qemu-system-x86_64")
          const vm = kvm.createVm(qemu)
          if (!vm.ok) throw new Error(vm.error.message)
          expect(vm.value.enableCap(KvmCap.EXIT_HYPERCALL, 1n << 12n).ok).toBe(true)
          const ram = new Uint8Array(2 << 20)
          writeBootStructures(ram)
          ram.set(asm("mov eax, 12\nmov ebx, 0x200000\nmov ecx, 16\nxor edx, edx\nvmcall\nmov r8, rax\nmov eax, 12\nmov ebx, 0x200001\nmov ecx, 1\nvmcall\nmov r10, rax\nhlt"), 0x100000)
          vm.value.setUserMemoryRegion({ slot: 0, flags: 0, guest_phys_addr: 0n, memory_size: BigInt(ram.length), userspace: ram })
          const log: Array<string> = []
          yield* host.scheduler.spawn(host.tasks.spawnThread(qemu), (thread) =>
            Effect.gen(function* () {
              const v = vm.value.createVcpu(thread.task, 0)
              if (!v.ok) throw new Error(v.error.message)
              const vcpu = v.value
              const s = vcpu.getSregs()
              if (!s.ok) throw new Error(s.error.message)
              vcpu.setSregs(longModeSregs(s.value))
              const r = vcpu.getRegs()
              if (!r.ok) throw new Error(r.error.message)
              vcpu.setRegs({ ...r.value, rip: 0x100000n, rflags: 2n })
              for (;;) {
                const reason = yield* Effect.orDie(kvmRun(vcpu, thread))
                const exit = vcpu.run.exit!
                if (exit.reason === KvmExit.HYPERCALL) {
                  log.push(`hypercall nr ${exit.nr} gpa 0x${exit.args[0]!.toString(16)} pages ${exit.args[1]} attrs ${exit.args[2]}`)
                  exit.ret = 7n
                  continue
                }
                log.push(`exit ${reason}`)
                break
              }
              log.push(`r8 ${vcpu.regs.getReg(Reg.R8)} r10 ${BigInt.asIntN(64, vcpu.regs.getReg(Reg.R10))} hypercalls ${vcpu.stats.get("hypercalls")}`)
            }),
          )
          yield* host.scheduler.run()
          return log
        }),
      ),
    )
    expect(out).toEqual(["hypercall nr 12 gpa 0x200000 pages 16 attrs 0", `exit ${KvmExit.HLT}`, "r8 7 r10 -22 hypercalls 2"])
  })

  it("KVM_INTERRUPT: the interrupt waits for an interrupt window, then goes through the guest IDT", async () => {
    // IDT at 0x8000 with vector 0x30 -> handler that sets R10; the guest enables interrupts late.
    const program = `
      lea rax, [rel handler]
      mov rdi, 0x8000 + 0x30 * 16
      mov [rdi], ax
      mov word [rdi + 2], 0x08
      mov word [rdi + 4], 0x8e00
      shr rax, 16
      mov [rdi + 6], ax
      shr rax, 16
      mov [rdi + 8], eax
      mov dword [rdi + 12], 0
      lidt [rel idtr]
      mov rsp, 0x90000
      xor eax, eax
      cpuid
      sti
      nop
      nop
      cli
      hlt
    handler:
      mov r10, 0xabc
      iretq
    idtr:
      dw 0xfff
      dq 0x8000`
    const { machine, trace } = await runBare(program, {
      configureVcpu: (vcpu) => {
        const s = vcpu.getSregs()
        if (!s.ok) return s.error.message
        vcpu.setSregs(longModeSregs(s.value))
        const r = vcpu.getRegs()
        if (!r.ok) return r.error.message
        vcpu.setRegs({ ...r.value, rip: 0x100000n, rflags: 2n })
        const i = vcpu.interrupt(0x30)
        return i.ok ? undefined : i.error.message
      },
    }, { events: ["kvm_inj_virq"] })
    const v = machine.vcpus[0]!
    expect(v.regs.getReg(Reg.R10)).toBe(0xabcn)
    expect(exitsByReason(machine)[ExitReason.INTERRUPT_WINDOW]).toBe(1)
    expect(v.stats.get("irq_injections")).toBe(1)
    expect(trace).toContain("kvm_inj_virq: irq 48")
  })

  it("string I/O needs KVM's instruction emulator: KVM_EXIT_INTERNAL_ERROR, suberror EMULATION", async () => {
    const { machine } = await runBare("mov dx, 0xe9\nmov rsi, 0x100000\nmov ecx, 4\nrep outsb\nhlt")
    expect(machine.end).toMatchObject({ kind: "error", exitReason: KvmExit.INTERNAL_ERROR })
    const exit = machine.vcpus[0]!.run.exit
    expect(exit?.reason === KvmExit.INTERNAL_ERROR && exit.suberror).toBe(KvmInternalError.EMULATION)
  })
})
