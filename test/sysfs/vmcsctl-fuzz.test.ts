import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { makeHostKernel } from "../../src/host/kernel.ts"
import { loadKvm } from "../../src/hypervisor/kvm/module.ts"
import { VmxStatus } from "../../src/hypervisor/vmx/outcome.ts"
import { vmExit } from "../../src/hypervisor/vmx/transitions.ts"
import type { PseudoFs } from "../../src/sysfs/pseudo-fs.ts"
import { EINVAL, ERANGE } from "../../src/sysfs/errno.ts"
import { makeSysfs } from "../../src/sysfs/service.ts"
import { kstrtouWidth } from "../../src/sysfs/kstrtox.ts"
import { fieldMode, vmcsctlFields } from "../../src/sysfs/vmcsctl/fields.ts"
import { vmcsctlForKvm } from "../../src/sysfs/vmcsctl/kvm-adapter.ts"

const INPUTS_PER_FIELD = 1000
const U64 = 1n << 64n

// expect: the value the field must then hold, a negative errno, or "parse" for random text whose
// outcome is kstrtoull's (itself checked against the kernel's rules in kstrtox.test.ts).
type Case = { text: string; expect: bigint | number | "parse" }

/** The inputs of the issue for a field of `bits` bits, with the outcome each must have. */
const casesFor = (bits: number, seed: number): Array<Case> => {
  const limit = 1n << BigInt(bits)
  const value = (v: bigint, text = `${v}\n`): Case => ({ text, expect: v < limit ? v : -ERANGE })
  const cases: Array<Case> = [
    value(0n),
    value(1n),
    value(limit - 1n),
    value(limit - 1n, `0x${(limit - 1n).toString(16)}\n`),
    value(limit),
    value(U64, `${U64}\n`),
    { text: `0x${U64.toString(16)}`, expect: -ERANGE },
    { text: "\n", expect: -EINVAL },
    { text: " ", expect: -EINVAL },
    { text: " 5\n", expect: -EINVAL },
    { text: "-1\n", expect: -EINVAL },
    { text: "+5\n", expect: 5n },
    { text: "0x\n", expect: -EINVAL },
    { text: "1e3\n", expect: -EINVAL },
    { text: "12abc\n", expect: -EINVAL },
    { text: "7\n\n", expect: -EINVAL },
    { text: "010\n", expect: 8n },
    { text: "09\n", expect: -EINVAL },
    { text: "1".repeat(5000), expect: -ERANGE }, // kernfs passes one page: 4096 digits, still too big
    { text: "a".repeat(5000), expect: -EINVAL },
  ]
  for (let bit = 0; bit < 64; bit++) {
    const v = 1n << BigInt(bit)
    cases.push(value(v, bit % 2 === 0 ? `${v}\n` : `0x${v.toString(16)}`))
  }
  const random = fc.sample(
    fc.oneof(
      fc.bigInt({ min: 0n, max: limit - 1n }).map((v) => value(v, `${v}\n`)),
      fc.bigInt({ min: 0n, max: limit - 1n }).map((v) => value(v, `0X${v.toString(16).toUpperCase()}`)),
      fc.bigInt({ min: limit, max: limit << 8n }).map((v) => value(v, `${v}`)),
      fc.string({ unit: fc.constantFrom(..." +-0123456789abcdefxX\n"), minLength: 1, maxLength: 12 }).map((text): Case => ({ text, expect: "parse" })),
    ),
    { numRuns: INPUTS_PER_FIELD - cases.length, seed },
  )
  return [...cases, ...random]
}

interface FieldMachine {
  readonly fs: PseudoFs
  readonly dir: string
  /** VMLAUNCH/VMRESUME of the vCPU's VMCS; the guest is sent back by an INIT signal if still running. */
  readonly enter: () => string
  readonly close: () => Promise<void>
}

/** A host with KVM, one VM with one vCPU, and vmcsctl loaded with unsafe_writes=Y. */
const fieldMachine = async (): Promise<FieldMachine> => {
  const scope = Effect.runSync(Scope.make())
  const { host, kvm, sysfs } = await Effect.runPromise(
    Scope.provide(
      Effect.gen(function* () {
        const host = yield* makeHostKernel({ cpus: 1 })
        const kvm = yield* loadKvm(host)
        const sysfs = makeSysfs()
        yield* host.modules.insmod(vmcsctlForKvm(sysfs, kvm), { unsafe_writes: "Y" })
        return { host, kvm, sysfs }
      }),
      scope,
    ),
  )
  const qemu = host.tasks.spawnProcess("qemu-system-x86")
  const vm = kvm.createVm(qemu)
  if (!vm.ok) throw new Error(vm.error.message)
  const thread = host.tasks.spawnThread(qemu)
  const vcpu = vm.value.createVcpu(thread, 0)
  if (!vcpu.ok) throw new Error(vcpu.error.message)
  const lp = vcpu.value.lp
  lp.core = vcpu.value.regs
  const enter = (): string => {
    let status = lp.currentLaunched ? lp.vmresume(1) : lp.vmlaunch(1)
    if (status === VmxStatus.GuestRunning) {
      // INIT signals always cause a VM exit from VMX non-root operation (SDM 25.2).
      lp.core!.exit.clear()
      lp.core!.exit.reason = ExitReason.INIT_SIGNAL
      status = vmExit(lp)
    }
    if (status === VmxStatus.VmExit) return (lp.lastExitReason & 0x8000_0000) !== 0 ? `failed-entry-${lp.lastExitReason & 0xffff}` : "exit"
    if (status === VmxStatus.FailValid) return `vmfail-${lp.lastError}`
    if (status === VmxStatus.Refused && lp.shutdown) return "vmx-abort"
    return `unexpected ${JSON.stringify(lp.outcome(status))}`
  }
  return {
    fs: sysfs.fs,
    dir: `/sys/kernel/vmcsctl/vmcs${thread.pid}`,
    enter,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

// VMfail errors VMLAUNCH/VMRESUME document (SDM "VM Instruction Error Numbers"): 4 VMLAUNCH with a
// non-clear VMCS, 5 VMRESUME with a non-launched one, 6 VMRESUME after VMXOFF, 7 invalid control
// field(s), 8 invalid host-state field(s), 26 events blocked by MOV SS.
const documentedVmfail = new Set([4, 5, 6, 7, 8, 26])

describe("vmcsctl: every writable field takes 1,000 inputs", () => {
  it("each is rejected with the right errno and the field unchanged, or accepted and read back equal; then a VM entry ends in success, a documented VMfail or a failed entry", async () => {
    const writable = vmcsctlFields.filter((f) => (fieldMode(f, true) & 0o200) !== 0)
    expect(writable.length).toBe(176 - 12)
    let total = 0
    const failures: Array<Record<string, unknown>> = []
    const outcomes = new Map<string, number>()
    for (const [index, field] of writable.entries()) {
      // A fresh machine per field: a VMX abort shuts its processor down (SDM 27.7).
      let machine = await fieldMachine()
      for (const c of casesFor(field.bits, index + 1)) {
        const path = `${machine.dir}/${field.name}`
        const fs = machine.fs
        const before = fs.readFile(path)
        const result = fs.writeFile(path, c.text)
        const after = fs.readFile(path)
        total++
        const expected = c.expect === "parse" ? kstrtouWidth(c.text, field.bits) : c.expect
        // Compared by hand (164,000 cases); a mismatch is collected with its input.
        const ok =
          c.text === ""
            ? result === 0 && after === before
            : typeof expected === "number"
              ? result === expected && after === before
              : result === Math.min(c.text.length, 4096) && after === `${expected}\n`
        if (!ok) failures.push({ field: field.name, text: c.text.slice(0, 40), result, before, after, expected: String(expected) })
        let entry: string
        try {
          entry = machine.enter()
        } catch (e) {
          entry = `threw ${(e as Error).message}`
        }
        const kind = entry.startsWith("vmfail-") ? (documentedVmfail.has(Number(entry.slice(7))) ? "vmfail" : entry) : entry
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1)
        if (!["exit", "vmfail", "failed-entry-33", "failed-entry-34", "vmx-abort"].includes(kind)) {
          failures.push({ field: field.name, text: c.text.slice(0, 40), entry })
        }
        if (kind === "vmx-abort") {
          await machine.close()
          machine = await fieldMachine()
        }
      }
      await machine.close()
    }
    expect(failures.slice(0, 5)).toEqual([])
    expect(total).toBe(writable.length * INPUTS_PER_FIELD)
    // The entries exercised both sides: guests that ran and entries that were refused.
    expect(outcomes.get("exit")).toBeGreaterThan(1000)
    expect((outcomes.get("vmfail") ?? 0) + (outcomes.get("failed-entry-33") ?? 0)).toBeGreaterThan(1000)
  }, 300_000)
})
