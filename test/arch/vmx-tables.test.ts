// Compares kvmsim's VMX tables with the reference TSVs in ../shared/reference/vmx (written from
// the SDM and Linux headers by someone else): names, encodings, derived widths/types/access,
// error numbers, control-bit masks, MSR indices and sample values, exit reasons.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { VmcsField } from "../../src/arch/vmx/vmcs-fields.ts"
import { typeName, widthName, fieldType, FieldType } from "../../src/arch/vmx/vmcs-encoding.ts"
import { VmInstructionError, vmInstructionErrorMeaning } from "../../src/arch/vmx/instruction-errors.ts"
import { EntryControl, ExitControl, PinControl, PrimaryControl, SecondaryControl, TertiaryControl, VmFunction } from "../../src/arch/vmx/control-bits.ts"
import { skylakeVmxMsrValues, VmxMsr } from "../../src/arch/vmx/msrs.ts"
import { ExitReason, exitReasonName } from "../../src/arch/exit-reasons.ts"
import { entryChecks } from "../../src/arch/vmx/entry-checks.ts"

const tsv = (name: string): Array<Record<string, string>> => {
  const text = readFileSync(new URL(`../../../shared/reference/vmx/${name}`, import.meta.url), "utf8")
  const [header, ...lines] = text.trim().split("\n")
  const columns = header!.split("\t")
  return lines.map((line) => Object.fromEntries(line.split("\t").map((cell, i) => [columns[i]!, cell])))
}

describe("VMCS field table", () => {
  const rows = tsv("vmcs-fields.tsv")
  it("has exactly the reference's fields with the same encodings", () => {
    const ours = Object.entries(VmcsField).map(([name, encoding]) => `${name}=${encoding}`).sort()
    const theirs = rows.map((r) => `${r.name}=${parseInt(r.encoding_hex!, 16)}`).sort()
    expect(ours).toEqual(theirs)
  })
  it("derives width, type and access from the encoding as the reference lists them", () => {
    for (const row of rows) {
      const encoding = VmcsField[row.name as keyof typeof VmcsField]
      expect({ name: row.name, width: widthName(encoding), type: typeName(encoding), access: fieldType(encoding) === FieldType.ReadOnly ? "ro" : "rw" }).toEqual({
        name: row.name,
        width: row.width,
        type: row.type,
        access: row.access,
      })
    }
  })
})

describe("VM-instruction errors", () => {
  const rows = tsv("vm-instruction-errors.tsv").filter((r) => r.linux_name !== "(none)")
  it("numbers and names match Linux's enum", () => {
    const ours = Object.entries(VmInstructionError).map(([name, n]) => `${n} VMXERR_${name}`).sort()
    expect(ours).toEqual(rows.map((r) => `${r.number} ${r.linux_name}`).sort())
  })
  it("every assigned number has a meaning", () => {
    for (const row of rows) expect(vmInstructionErrorMeaning[Number(row.number)]).toBeTruthy()
  })
})

describe("control bits", () => {
  const rows = tsv("control-bits.tsv")
  const groups: Record<string, [string, Record<string, number>]> = {
    pin: ["PIN_BASED_", PinControl],
    primary: ["CPU_BASED_", PrimaryControl],
    secondary: ["SECONDARY_EXEC_", SecondaryControl],
    tertiary: ["TERTIARY_EXEC_", TertiaryControl],
    exit: ["VM_EXIT_", ExitControl],
    entry: ["VM_ENTRY_", EntryControl],
    vmfunc: ["VMX_VMFUNC_", VmFunction],
  }
  it("every reference bit is in our tables with its mask and bit position", () => {
    for (const row of rows) {
      const [prefix, table] = groups[row.control!]!
      const mask = table[row.linux_macro!.slice(prefix.length)]
      expect({ macro: row.linux_macro, mask }).toEqual({ macro: row.linux_macro, mask: parseInt(row.mask_hex!, 16) })
      expect(mask).toBe(2 ** Number(row.bit) >>> 0)
    }
    const ourCount = Object.values(groups).reduce((n, [, t]) => n + Object.keys(t).length, 0)
    expect(ourCount).toBe(rows.length)
  })
})

describe("VMX MSRs", () => {
  const rows = tsv("vmx-msrs.tsv")
  it("indices and Skylake sample values match", () => {
    for (const row of rows) {
      if (row.name === "IA32_VMX_PROCBASED_CTLS3") continue // the sample CPU predates tertiary controls
      const name = row.name as keyof typeof VmxMsr
      expect(VmxMsr[name]).toBe(parseInt(row.msr_index!, 16))
      expect(skylakeVmxMsrValues[name]).toBe(BigInt(row.sample_i7_6700K!))
    }
    expect(Object.keys(VmxMsr).length).toBe(rows.length - 1)
  })
})

describe("exit reasons", () => {
  const rows = tsv("exit-reasons.tsv")
  it("every Linux-defined reason has its number and name; SDM-only ones are absent", () => {
    for (const row of rows) {
      const number = Number(row.number)
      if (row.name === "(none)") {
        expect(exitReasonName(number)).toBeUndefined()
      } else {
        expect(`EXIT_REASON_${exitReasonName(number)}`).toBe(row.name)
      }
    }
    expect(Object.keys(ExitReason).length).toBe(rows.filter((r) => r.name !== "(none)").length)
  })
})

describe("entry-check names", () => {
  it("are unique and every explanation is non-empty", () => {
    expect(new Set(entryChecks.map((c) => c.name)).size).toBe(entryChecks.length)
    for (const check of entryChecks) expect(check.explanation.length).toBeGreaterThan(10)
  })
  it("follow the SDM's order: controls, then host state, then guest state", () => {
    const order = entryChecks.map((c) => c.kind)
    const rank = { control: 0, host: 1, guest: 2 } as const
    expect(order.map((k) => rank[k])).toEqual([...order.map((k) => rank[k])].sort((a, b) => a - b))
  })
})
