import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { assemble } from "../../src/guest/asm/index.ts"
import type { Thread } from "../../src/host/scheduler.ts"
import { Machine } from "../../src/hypervisor/vmm/machine.ts"
import { bootHost } from "../../src/hypervisor/vmm/system.ts"
import type { PseudoFs } from "../../src/sysfs/pseudo-fs.ts"
import { makeMachineSysfs } from "../../src/sysfs/machine.ts"
import { vmcsctlForKvm } from "../../src/sysfs/vmcsctl/kvm-adapter.ts"

// A user's shell (a host process on the other CPU) edits a running guest's VMCS through
// /sys/kernel/vmcsctl while the guest runs; each change shows at the vCPU's next VM entry.

interface Shell {
  readonly fs: PseudoFs
  readonly thread: Thread
  readonly machine: Machine
  /** The running vCPU's directory, once it exists. */
  readonly dir: () => string | undefined
  /** Gives the CPU away for a while (virtual time passes, the guest runs). */
  readonly pause: Effect.Effect<void>
}

const runWithShell = (source: string, shell: (sh: Shell) => Effect.Effect<void>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootHost({ cpus: 2, nsPerInstruction: 100 })
        const sysfs = makeMachineSysfs({ tasks: sim.host.tasks, tracefs: sim.trace.tracefs })
        yield* sim.host.modules.insmod(vmcsctlForKvm(sysfs, sim.kvm))
        const created = Machine.create(sim.kvm, sim.host, { image: assemble(`BITS 64\n${source}`).bytes, registers: { rsp: 0x80000n } })
        if (!created.ok) throw new Error(created.error.message)
        const machine = created.value
        let shellDone = false
        const bash = sim.host.tasks.spawnProcess("bash")
        yield* sim.host.scheduler.spawn(bash, (thread) =>
          Effect.ensuring(
            shell({
              fs: sysfs.fs,
              thread,
              machine,
              dir: () => {
                const vcpuThread = machine.threads[0]
                if (vcpuThread === undefined || machine.vcpus[0] === undefined) return undefined
                const path = `/sys/kernel/vmcsctl/vmcs${vcpuThread.task.pid}`
                return sysfs.fs.ls(path) === -2 ? undefined : path
              },
              pause: Effect.suspend(() => {
                thread.charge(200_000)
                return thread.yieldCpu
              }),
            }),
            Effect.sync(() => (shellDone = true)),
          ),
        )
        yield* machine.start()
        const exited = () => machine.threads.every((t) => t.task.state === "exited")
        yield* sim.host.scheduler.run({ until: () => machine.finished && exited() && shellDone })
        const exits = { ...machine.vcpus[0]!.stats.exitsByReason }
        const haltExits = machine.vcpus[0]!.stats.get("halt_exits")
        machine.close()
        return { machine, exits, haltExits, end: machine.end }
      }),
    ),
  )

/** Waits (giving the guest time) until `ready` holds; fails the test after many rounds. */
const waitFor = (sh: Shell, what: string, ready: () => boolean) =>
  Effect.gen(function* () {
    for (let round = 0; round < 10_000; round++) {
      if (ready()) return
      yield* sh.pause
    }
    throw new Error(`shell: gave up waiting for ${what}`)
  })

const cat = (sh: Shell, name: string): bigint => {
  const text = sh.fs.readFile(`${sh.dir()!}/${name}`)
  if (typeof text === "number") throw new Error(`cat ${name}: errno ${-text}`)
  return BigInt(text.trim())
}

const echo = (sh: Shell, name: string, value: bigint): void => {
  const text = `0x${value.toString(16)}\n`
  expect(sh.fs.writeFile(`${sh.dir()!}/${name}`, text)).toBe(text.length)
}

const HLT_EXITING = 1n << 7n

describe("vmcsctl: writes change the running guest", () => {
  it("clearing HLT exiting makes guest HLT stop exiting (it halts in VMX non-root until the shell wakes it)", async () => {
    let sawHaltedWithoutExit = false
    const result = await runWithShell(
      `
        mov ecx, 300000
      .spin:
        dec ecx
        jnz .spin
        mov dx, 0xe9
        mov al, 'a'
        out dx, al
        hlt
        mov al, 'b'
        out dx, al
        hlt
      `,
      (sh) =>
        Effect.gen(function* () {
          yield* waitFor(sh, "the vCPU's directory", () => sh.dir() !== undefined)
          const controls = cat(sh, "CPU_BASED_VM_EXEC_CONTROL")
          expect(controls & HLT_EXITING).toBe(HLT_EXITING)
          echo(sh, "CPU_BASED_VM_EXEC_CONTROL", controls & ~HLT_EXITING)
          // The guest reaches its first HLT and halts inside VMX non-root: activity state 1 (HLT).
          yield* waitFor(sh, "the guest halted", () => cat(sh, "GUEST_ACTIVITY_STATE") === 1n)
          sawHaltedWithoutExit = sh.machine.debugOutput === "a" && sh.machine.vcpus[0]!.stats.get("halt_exits") === 0
          // Turn HLT exiting back on and wake the guest: it goes on after its HLT.
          echo(sh, "CPU_BASED_VM_EXEC_CONTROL", controls)
          echo(sh, "GUEST_ACTIVITY_STATE", 0n)
        }),
    )
    expect(sawHaltedWithoutExit).toBe(true)
    expect(result.machine.debugOutput).toBe("ab")
    expect(result.end).toEqual({ kind: "halted" })
    // Only the second HLT exited.
    expect(result.exits[ExitReason.HLT]).toBe(1)
    expect(result.haltExits).toBe(1)
  })

  it("writing VM_ENTRY_INTR_INFO_FIELD injects an exception the guest handles", async () => {
    let validBitCleared = false
    const result = await runWithShell(
      `
        lea rax, [rel divide_error]
        lea rdi, [rel idt]
        mov [rdi], ax
        mov bx, cs
        mov [rdi+2], bx
        mov word [rdi+4], 0x8e00
        shr rax, 16
        mov [rdi+6], ax
        shr rax, 16
        mov [rdi+8], eax
        mov dword [rdi+12], 0
        lea rax, [rel idtr]
        mov word [rax], 16*32-1
        mov [rax+2], rdi
        lidt [rax]
        mov ecx, 100000
      .spin:
        dec ecx
        jnz .spin
        mov dx, 0xe9
        mov al, 'z'
        out dx, al
        hlt
      divide_error:
        push rax
        push rdx
        mov dx, 0xe9
        mov al, 'E'
        out dx, al
        pop rdx
        pop rax
        iretq
      align 16
      idt:
        times 32*16 db 0
      idtr:
        dw 0
        dq 0
      `,
      (sh) =>
        Effect.gen(function* () {
          yield* waitFor(sh, "the vCPU's directory", () => sh.dir() !== undefined)
          // Valid, type 3 (hardware exception), vector 0 (#DE): delivered at the next VM entry.
          echo(sh, "VM_ENTRY_INTR_INFO_FIELD", 0x8000_0300n)
          // The VM exit after the injection clears the valid bit (SDM 27.2.3).
          yield* waitFor(sh, "the injection", () => cat(sh, "VM_ENTRY_INTR_INFO_FIELD") === 0x300n)
          validBitCleared = true
        }),
    )
    expect(validBitCleared).toBe(true)
    expect(result.machine.debugOutput).toBe("Ez")
    expect(result.end).toEqual({ kind: "halted" })
  })

  it("changing CR0_READ_SHADOW changes what the guest reads from CR0", async () => {
    let expected = 0n
    const result = await runWithShell(
      `
        mov rbx, cr0
      .wait:
        mov rax, cr0
        cmp rax, rbx
        je .wait
        mov dx, 0xe9
        mov ecx, 8
      .byte:
        out dx, al
        shr rax, 8
        dec ecx
        jnz .byte
        hlt
      `,
      (sh) =>
        Effect.gen(function* () {
          yield* waitFor(sh, "the vCPU's directory", () => sh.dir() !== undefined)
          yield* sh.pause
          const mask = cat(sh, "CR0_GUEST_HOST_MASK")
          const shadow = cat(sh, "CR0_READ_SHADOW")
          const guestCr0 = cat(sh, "GUEST_CR0")
          // Flip CR0.AM (bit 18) in the shadow: KVM owns it (it is in the mask), so the guest reads
          // the shadow's bit there and its real CR0 elsewhere.
          const AM = 1n << 18n
          expect(mask & AM).toBe(AM)
          echo(sh, "CR0_READ_SHADOW", shadow ^ AM)
          expected = (guestCr0 & ~mask) | ((shadow ^ AM) & mask)
        }),
    )
    const bytes = Buffer.from(result.machine.debugOutput, "latin1")
    expect(bytes.length).toBe(8)
    expect(bytes.readBigUInt64LE(0)).toBe(expected)
    expect(result.end).toEqual({ kind: "halted" })
  })

  it("writing GUEST_RIP moves a spinning guest to other code at its next VM entry", async () => {
    const result = await runWithShell(
      `
        jmp short main
      escape:
        mov dx, 0xe9
        mov al, 'r'
        out dx, al
        hlt
      main:
        jmp main
      `,
      (sh) =>
        Effect.gen(function* () {
          yield* waitFor(sh, "the vCPU's directory", () => sh.dir() !== undefined)
          yield* sh.pause
          // The guest spins at main (0x10000a); escape is the instruction after the 2-byte jmp.
          expect(cat(sh, "GUEST_RIP")).toBe(0x10000an)
          echo(sh, "GUEST_RIP", 0x100002n)
        }),
    )
    expect(result.machine.debugOutput).toBe("r")
    expect(result.end).toEqual({ kind: "halted" })
  })
})
