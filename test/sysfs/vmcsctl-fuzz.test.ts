import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ModuleRegistry } from "../../src/host/modules.ts"
import { EINVAL, ERANGE } from "../../src/sysfs/errno.ts"
import { makeSysfs } from "../../src/sysfs/service.ts"
import { kstrtouWidth } from "../../src/sysfs/kstrtox.ts"
import { fieldMode, vmcsctlFields } from "../../src/sysfs/vmcsctl/fields.ts"
import { vmcsctlModule } from "../../src/sysfs/vmcsctl/module.ts"
import { makeRig } from "./vmx-rig.ts"

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
      fc.stringMatching(/^[ +\-0-9a-fxX\n]{1,12}$/).map((text): Case => ({ text, expect: "parse" })),
    ),
    { numRuns: INPUTS_PER_FIELD - cases.length, seed },
  )
  return [...cases, ...random]
}

describe("vmcsctl: every writable field takes 1,000 inputs", () => {
  it("each is rejected with the right errno and the field unchanged, or accepted and read back equal", async () => {
    const rig = makeRig(1)
    rig.vmxon(0)
    const sysfs = makeSysfs()
    const fs = sysfs.fs
    await Effect.runPromise(new ModuleRegistry().insmod(vmcsctlModule({ sysfs, cpus: rig.cpus, events: rig.events, dependsOn: [] }), { unsafe_writes: "Y" }))
    const vmcs = rig.allocVmcs(4242)
    rig.load(vmcs, 0)
    const writable = vmcsctlFields.filter((f) => (fieldMode(f, true) & 0o200) !== 0)
    expect(writable.length).toBe(176 - 12)
    let total = 0
    const failures: Array<Record<string, unknown>> = []
    writable.forEach((field, index) => {
      const path = `/sys/kernel/vmcsctl/vmcs4242/${field.name}`
      for (const c of casesFor(field.bits, index + 1)) {
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
      }
    })
    expect(failures.slice(0, 5)).toEqual([])
    expect(total).toBe(writable.length * INPUTS_PER_FIELD)
  }, 120_000)
})
