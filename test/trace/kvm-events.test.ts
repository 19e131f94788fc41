// The KVM tracepoints against ftrace.md: record sizes (§3.3), field layout (§4.3), the exit
// reason names (§4.1) and the text of every event in both eras.

import { describe, expect, it } from "vitest"
import { ExitReason } from "../../src/arch/exit-reasons.ts"
import { IRQS_OFF_CONTEXT, TASK_CONTEXT } from "../../src/trace/context.ts"
import { EventCursor } from "../../src/trace/ring-buffer.ts"
import { kvmEvents, vmxExitReasonTable, type KvmEventName } from "../../src/trace/kvm-events.ts"
import { recordLength } from "../../src/trace/ring-buffer.ts"
import type { TraceEra } from "../../src/trace/events.ts"
import { reference, testTrace, type TestTrace } from "./support.ts"

const md = reference("ftrace.md")

/** Rows of the §3.3 table: label → [payload bytes, record bytes] (pairs like `12 / 16` split by era). */
const sizeTable = (): Map<string, Array<[number, number]>> => {
  const section = md.slice(md.indexOf("### 3.3"), md.indexOf("### 3.4"))
  const rows = new Map<string, Array<[number, number]>>()
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim())
    if (cells.length < 4 || !/\d/.test(cells[2] ?? "") || cells[1] === "record") continue
    const payloads = cells[2]!.split("/").map((p) => Number(p.split("=").pop()!.trim()))
    const records = cells[3]!.split("/").map((p) => Number(p.trim()))
    rows.set(cells[1]!, payloads.map((p, i) => [p, records[i]!]))
  }
  return rows
}

/** Writes one event through `write` and returns its text after `name: `. */
const textOf = (t: TestTrace, name: KvmEventName, write: () => boolean): string => {
  t.tracer.setEventEnabled(t.tracer.eventIndex(name), true)
  t.tracer.clear()
  expect(write()).toBe(true)
  const ring = t.tracer.rings[0]!
  const cursor = new EventCursor()
  expect(ring.peek(cursor)).toBe(true)
  const text = t.tracer.eventText(ring.words, ring.bytes, cursor)
  expect(text.startsWith(`${name}: `)).toBe(true)
  expect(text.endsWith("\n")).toBe(true)
  return text.slice(name.length + 2, -1)
}

describe("KVM tracepoints", () => {
  it("have the payload and record sizes of ftrace.md §3.3", () => {
    const table = sizeTable()
    const row = (prefix: string): Array<[number, number]> => {
      const key = [...table.keys()].find((k) => k.startsWith(prefix))
      if (key === undefined) throw new Error(`no row ${prefix}`)
      return table.get(key)!
    }
    const cases: Array<[string, TraceEra, KvmEventName, number]> = [
      ["kvm_entry 5.0", "A", "kvm_entry", 0],
      ["kvm_entry 5.10", "D", "kvm_entry", 0],
      ["kvm_exit 5.0", "A", "kvm_exit", 0],
      ["kvm_exit 5.10", "D", "kvm_exit", 0],
      ["kvm_hypercall", "A", "kvm_hypercall", 0],
      ["kvm_pio", "A", "kvm_pio", 0],
      ["kvm_userspace_exit", "D", "kvm_userspace_exit", 0],
      ["kvm_msr", "A", "kvm_msr", 0],
      ["kvm_cr", "D", "kvm_cr", 0],
      ["kvm_vcpu_wakeup", "D", "kvm_vcpu_wakeup", 0],
      ["kvm_inj_virq", "A", "kvm_inj_virq", 0],
      ["kvm_inj_virq", "D", "kvm_inj_virq", 1],
    ]
    for (const [prefix, era, name, column] of cases) {
      const [payload, record] = row(prefix)[column]!
      expect(kvmEvents(era)[name].payloadBytes, `${name} ${era}`).toBe(payload)
      expect(recordLength(payload)).toBe(record)
    }
    // trace_printk records, measured in the ring itself.
    const t = testTrace()
    const withInt = t.tracer.registerPrintk("f", "vcpu id: %d\n")
    const noArgs = t.tracer.registerPrintk("f", "hello\n")
    if (withInt instanceof Error || noArgs instanceof Error) throw new Error("format")
    t.tracer.printkValues(0, 1, TASK_CONTEXT, withInt, [1])
    expect(t.tracer.rings[0]!.usedOnPage(t.tracer.rings[0]!.tail)).toBe(row("trace_printk with one int")[0]![1])
    t.tracer.printk(1, 1, TASK_CONTEXT, noArgs)
    expect(t.tracer.rings[1]!.usedOnPage(t.tracer.rings[1]!.tail)).toBe(row("trace_printk with no arguments")[0]![1])
  })

  it("lay out kvm_exit and kvm_entry as ftrace.md §4.3 says", () => {
    const para = md.slice(md.indexOf("kvm_exit in 5.10+/6.x:"), md.indexOf("The print fmt of kvm_exit"))
    const [newer, older, entries] = [para.slice(0, para.indexOf("5.0-era:")), para.slice(para.indexOf("5.0-era:"), para.indexOf("kvm_entry 5.0")), para.slice(para.indexOf("kvm_entry 5.0"))]
    const fields = (text: string): Array<[string, string, number, number]> =>
      [...text.matchAll(/(\w+) `([^`]+)` (\d+)\/(\d+)/g)].map((m) => [m[1]!, m[2]!, Number(m[3]), Number(m[4])])
    const ours = (era: TraceEra, name: KvmEventName): Array<[string, string, number, number]> =>
      kvmEvents(era)[name].fields.map((f) => [f.name, f.type, f.offset, f.size])
    expect(ours("D", "kvm_exit")).toEqual(fields(newer))
    const oldOffsets = [...older.matchAll(/(\w+) (\d+)\/(\d+)/g)].map((m) => [m[1], Number(m[2]), Number(m[3])])
    expect(kvmEvents("A").kvm_exit.fields.map((f) => [f.name, f.offset, f.size])).toEqual(oldOffsets)
    const newerEntry = entries.slice(entries.indexOf("5.10+:"), entries.indexOf("6.9+"))
    expect(kvmEvents("D").kvm_entry.fields.map((f) => [f.name, f.offset, f.size])).toEqual(
      [...newerEntry.matchAll(/(\w+)(?: `[^`]+`)? (\d+)\/(\d+)/g)].map((m) => [m[1], Number(m[2]), Number(m[3])]),
    )
    expect(ours("A", "kvm_entry")).toEqual(fields(entries.slice(0, entries.indexOf("5.10+:"))))
  })

  it("print the exit-reason names of §4.1 (PENDING_INTERRUPT in 5.0, INTERRUPT_WINDOW later)", () => {
    const para = md.slice(md.indexOf("Exit-reason names in kvm_exit"), md.indexOf("On AMD (SVM)"))
    const pairs = [...para.matchAll(/([A-Z_]+) \((\d+)/g)].map((m) => [m[1]!, Number(m[2])] as const)
    expect(pairs.length).toBeGreaterThan(15)
    const a = new Map(vmxExitReasonTable("A"))
    const d = new Map(vmxExitReasonTable("D"))
    for (const [name, n] of pairs) {
      expect(a.get(n)).toBe(name)
      expect(d.get(n)).toBe(n === 7 ? "INTERRUPT_WINDOW" : name)
    }
    for (const [name, n] of Object.entries(ExitReason)) if (n <= 64 && n !== 7 && ![3, 4, 6].includes(n)) expect(a.get(n)).toBe(name)
  })

  it("format every event as the kernel of each era prints it", () => {
    const a = testTrace({ era: "A" })
    const d = testTrace({ era: "D" })
    const hi = 0xffffffff
    // kvm_exit
    expect(textOf(a, "kvm_exit", () => a.kvm.exit(0, 1, TASK_CONTEXT, 0, 18, 0xa40b7d3a, hi, 0, 0, 0, 0, 0, 0))).toBe("reason VMCALL rip 0xffffffffa40b7d3a info 0 0")
    expect(textOf(a, "kvm_exit", () => a.kvm.exit(0, 1, TASK_CONTEXT, 0, 30, 0x1000, 0, 0x03f80000, 0, 0, 0, 0, 0))).toBe("reason IO_INSTRUCTION rip 0x1000 info 3f80000 0")
    expect(textOf(a, "kvm_exit", () => a.kvm.exit(0, 1, TASK_CONTEXT, 0, 7, 0x1000, 0, 0, 0, 0, 0, 0, 0))).toBe("reason PENDING_INTERRUPT rip 0x1000 info 0 0")
    expect(textOf(d, "kvm_exit", () => d.kvm.exit(0, 1, IRQS_OFF_CONTEXT, 2, 0x80000021, 0xfff0, 0, 0, 0, 0, 0, 0, 0))).toBe(
      "vcpu 2 reason INVALID_STATE FAILED_VMENTRY rip 0xfff0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000",
    )
    expect(textOf(d, "kvm_exit", () => d.kvm.exit(0, 1, IRQS_OFF_CONTEXT, 0, 99, 0, 0, 0, 0, 0, 0, 0x80000b0e, 0x18))).toBe(
      "vcpu 0 reason 0x63 rip 0x0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x80000b0e error_code 0x00000018",
    )
    // kvm_cpuid
    expect(textOf(a, "kvm_cpuid", () => a.kvm.cpuid(0, 1, TASK_CONTEXT, 0x40000000, 0, 0x40000001, 0, 0x4b4d564b, 0, 0x564b4d56, 0, 0x4d, 0, true, false))).toBe(
      "func 40000000 rax 40000001 rbx 4b4d564b rcx 564b4d56 rdx 4d, cpuid entry found",
    )
    expect(textOf(d, "kvm_cpuid", () => d.kvm.cpuid(0, 1, TASK_CONTEXT, 0x16, 0, 0, 0, 0, 0, 0, 0, 0, 0, false, true))).toBe(
      "func 16 idx 0 rax 0 rbx 0 rcx 0 rdx 0, cpuid entry not found, used max basic",
    )
    // kvm_msr, kvm_cr, kvm_pio, kvm_hypercall
    expect(textOf(a, "kvm_msr", () => a.kvm.msr(0, 1, TASK_CONTEXT, false, 0x1b, 0xfee00900, 0, false))).toBe("msr_read 1b = 0xfee00900")
    expect(textOf(d, "kvm_msr", () => d.kvm.msr(0, 1, TASK_CONTEXT, true, 0x12345, 1, 0, true))).toBe("msr_write 12345 = 0x1 (#GP)")
    expect(textOf(a, "kvm_cr", () => a.kvm.cr(0, 1, TASK_CONTEXT, true, 0, 0x80050033, 0))).toBe("cr_write 0 = 0x80050033")
    expect(textOf(d, "kvm_pio", () => d.kvm.pio(0, 1, TASK_CONTEXT, false, 0x60, 1, 1, 0xfa))).toBe("pio_read at 0x60 size 1 count 1 val 0xfa ")
    expect(textOf(d, "kvm_pio", () => d.kvm.pio(0, 1, TASK_CONTEXT, true, 0x3f8, 1, 12, 0x48))).toBe("pio_write at 0x3f8 size 1 count 12 val 0x48 (...)")
    expect(textOf(a, "kvm_hypercall", () => a.kvm.hypercall(0, 1, TASK_CONTEXT, 11, 0, 3, 0, 0, 0, 0, 0, 0xffffffff, 0xffffffff))).toBe(
      "nr 0xb a0 0x3 a1 0x0 a2 0x0 a3 0xffffffffffffffff",
    )
    // kvm_inj_exception, kvm_inj_virq
    expect(textOf(a, "kvm_inj_exception", () => a.kvm.injException(0, 1, TASK_CONTEXT, 13, true, 0, false))).toBe("#GP (0x0)")
    expect(textOf(a, "kvm_inj_exception", () => a.kvm.injException(0, 1, TASK_CONTEXT, 6, false, 0, false))).toBe("#UD (0x0)")
    expect(textOf(d, "kvm_inj_exception", () => d.kvm.injException(0, 1, TASK_CONTEXT, 14, true, 2, true))).toBe("#PF (0x2) [reinjected]")
    expect(textOf(d, "kvm_inj_exception", () => d.kvm.injException(0, 1, TASK_CONTEXT, 6, false, 0, false))).toBe("#UD")
    expect(textOf(a, "kvm_inj_virq", () => a.kvm.injVirq(0, 1, TASK_CONTEXT, 0xec, false, false))).toBe("irq 236")
    expect(textOf(d, "kvm_inj_virq", () => d.kvm.injVirq(0, 1, TASK_CONTEXT, 0x80, true, true))).toBe("Soft/INTn 0x80 [reinjected]")
    // kvm_userspace_exit, kvm_vcpu_wakeup, kvm_entry
    expect(textOf(a, "kvm_userspace_exit", () => a.kvm.userspaceExit(0, 1, TASK_CONTEXT, 2, 0))).toBe("reason KVM_EXIT_IO (2)")
    expect(textOf(a, "kvm_userspace_exit", () => a.kvm.userspaceExit(0, 1, TASK_CONTEXT, 10, 0))).toBe("reason KVM_EXIT_INTR (10)")
    expect(textOf(d, "kvm_userspace_exit", () => d.kvm.userspaceExit(0, 1, TASK_CONTEXT, 0, -4))).toBe("reason restart (4)")
    expect(textOf(d, "kvm_userspace_exit", () => d.kvm.userspaceExit(0, 1, TASK_CONTEXT, 0, -14))).toBe("reason error (14)")
    expect(textOf(d, "kvm_vcpu_wakeup", () => d.kvm.vcpuWakeup(0, 1, TASK_CONTEXT, 12345, false, false))).toBe("poll time 12345 ns, polling invalid")
    expect(textOf(a, "kvm_entry", () => a.kvm.entry(0, 1, IRQS_OFF_CONTEXT, 3, 0x1000, 0))).toBe("vcpu 3")
  })

  it("the generic emit writes the same records as the typed writers", () => {
    const t = testTrace({ era: "D" })
    const viaEmit = textOf(t, "kvm_exit", () =>
      t.tracer.emit("kvm_exit", 0, 1, IRQS_OFF_CONTEXT, { exit_reason: 12, guest_rip: 0xffffffffa48f0e6en, isa: 1, vcpu_id: 1 }),
    )
    const viaWriter = textOf(t, "kvm_exit", () => t.kvm.exit(0, 1, IRQS_OFF_CONTEXT, 1, 12, 0xa48f0e6e, 0xffffffff, 0, 0, 0, 0, 0, 0))
    expect(viaEmit).toBe(viaWriter)
    expect(() => t.tracer.emit("kvm_exit", 0, 1, 0, { nope: 1 })).toThrow(/no field nope/)
  })
})
