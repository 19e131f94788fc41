// The KVM tracepoints (arch/x86/kvm/trace.h and include/trace/events/kvm.h) in the two eras
// kvmsim imitates, with the fields, print formats and texts of ftrace.md §3.3 and §4, and the
// exit-reason names of __print_symbolic(VMX_EXIT_REASONS).

import { ExitReason } from "../arch/exit-reasons.ts"
import { decS64, hex64, hex64Padded, layoutFields, symbolicTable, type RecordByteFormatter, type TraceEra, type TraceEventType } from "./events.ts"
import { latin1Bytes } from "./line-bytes.ts"

export const KVM_EVENT_NAMES = [
  "kvm_entry",
  "kvm_exit",
  "kvm_hypercall",
  "kvm_pio",
  "kvm_cpuid",
  "kvm_msr",
  "kvm_cr",
  "kvm_inj_exception",
  "kvm_inj_virq",
  "kvm_userspace_exit",
  "kvm_vcpu_wakeup",
] as const
export type KvmEventName = (typeof KVM_EVENT_NAMES)[number]

/** Event type ids: assigned at boot in the kernel; these are fixed so that output is reproducible. */
export const KVM_EVENT_IDS: Record<KvmEventName, number> = {
  kvm_userspace_exit: 1580,
  kvm_vcpu_wakeup: 1582,
  kvm_entry: 1616,
  kvm_hypercall: 1617,
  kvm_pio: 1620,
  kvm_cpuid: 1622,
  kvm_exit: 1625,
  kvm_inj_virq: 1626,
  kvm_inj_exception: 1627,
  kvm_msr: 1629,
  kvm_cr: 1630,
}

export const KVM_ISA_VMX = 1
export const KVM_ISA_SVM = 2

// Exit reasons the 5.0 kernel's VMX_EXIT_REASONS lists (later additions print as hex there).
const NOT_IN_5_0 = new Set<number>([3, 4, 6, 67, 68, 74, 75, 76, 77, 84, 85])
const NOT_IN_6_X = new Set<number>([76, 77, 84, 85])

/** The VMX exit-reason table of an era: [number, name] sorted by number. */
export const vmxExitReasonTable = (era: TraceEra): ReadonlyArray<readonly [number, string]> =>
  (Object.entries(ExitReason) as Array<[string, number]>)
    .filter(([, n]) => !(era === "A" ? NOT_IN_5_0 : NOT_IN_6_X).has(n))
    .map(([name, n]) => [n, era === "A" && n === ExitReason.INTERRUPT_WINDOW ? "PENDING_INTERRUPT" : name] as const)
    .sort((a, b) => a[0] - b[0])

/** The SVM names kvm_exit prints when isa is SVM (lower case, SVM_EXIT_REASONS). */
export const SVM_EXIT_REASONS: ReadonlyArray<readonly [number, string]> = [
  [0x060, "intr"],
  [0x061, "nmi"],
  [0x064, "vintr"],
  [0x072, "cpuid"],
  [0x077, "pause"],
  [0x078, "hlt"],
  [0x07b, "io"],
  [0x07c, "msr"],
  [0x07f, "shutdown"],
  [0x081, "vmmcall"],
  [0x400, "npf"],
]

/** KVM_EXIT_* names kvm_userspace_exit prints (kvm_trace_exit_reason). */
const KVM_EXIT_NAMES_5_0 = [
  "UNKNOWN", "EXCEPTION", "IO", "HYPERCALL", "DEBUG", "HLT", "MMIO", "IRQ_WINDOW_OPEN", "SHUTDOWN",
  "FAIL_ENTRY", "INTR", "SET_TPR", "TPR_ACCESS", "S390_SIEIC", "S390_RESET", "DCR", "NMI",
  "INTERNAL_ERROR", "OSI", "PAPR_HCALL", "S390_UCONTROL", "WATCHDOG", "S390_TSCH", "EPR",
  "SYSTEM_EVENT", "S390_STSI", "IOAPIC_EOI", "HYPERV",
]
const KVM_EXIT_NAMES_6_X = [...KVM_EXIT_NAMES_5_0, "ARM_NISV", "X86_RDMSR", "X86_WRMSR"]

/** Exception mnemonics of kvm_trace_sym_exc. */
const EXCEPTION_NAMES: ReadonlyArray<readonly [number, string]> = [
  [0, "#DE"], [1, "#DB"], [3, "#BP"], [4, "#OF"], [5, "#BR"], [6, "#UD"], [7, "#NM"], [8, "#DF"],
  [10, "#TS"], [11, "#NP"], [12, "#SS"], [13, "#GP"], [14, "#PF"], [16, "#MF"], [17, "#AC"], [18, "#MC"],
]

const lookupTable = (entries: ReadonlyArray<readonly [number, string]>): Array<string | undefined> => {
  const table: Array<string | undefined> = []
  for (const [n, s] of entries) table[n] = s
  return table
}

/** __print_symbolic: the name, or the value in hex when the table has none. */
const symbolic = (table: ReadonlyArray<string | undefined>, value: number): string =>
  table[value] ?? "0x" + value.toString(16)

const b = (bytes: Uint8Array, w: number, offset: number): number => bytes[w * 4 + offset]!
const u = (words: Uint32Array, w: number, offset: number): number => words[w + (offset >> 2)]!
const s32 = (words: Uint32Array, w: number, offset: number): number => words[w + (offset >> 2)]! | 0

type Decl = readonly [type: string, name: string, size: number]

const define = (
  name: KvmEventName,
  decls: ReadonlyArray<Decl>,
  printFmt: string,
  format: TraceEventType["format"],
  formatBytes?: RecordByteFormatter,
): TraceEventType => {
  const { fields, payloadBytes } = layoutFields(decls)
  const event = { system: "kvm", name, id: KVM_EVENT_IDS[name], fields, printFmt, payloadBytes, format }
  return formatBytes === undefined ? event : { ...event, formatBytes }
}

/** Latin-1 bytes of literal text used by the byte formatters. */
const lit = (text: string): Uint8Array => latin1Bytes(text)!
const VCPU = lit("vcpu ")
const COMMA_RIP = lit(", rip 0x")
const NR = lit("nr 0x")
const A0 = lit(" a0 0x")
const A1 = lit(" a1 0x")
const A2 = lit(" a2 0x")
const A3 = lit(" a3 0x")
const REASON = lit("reason ")
const SPACE_REASON = lit(" reason ")
const RIP = lit(" rip 0x")
const INFO = lit(" info ")
const INFO1 = lit(" info1 0x")
const INFO2 = lit(" info2 0x")
const INTR_INFO = lit(" intr_info 0x")
const ERROR_CODE = lit(" error_code 0x")

const hypercallEvent = define(
  "kvm_hypercall",
  [["unsigned long", "nr", 8], ["unsigned long", "a0", 8], ["unsigned long", "a1", 8], ["unsigned long", "a2", 8], ["unsigned long", "a3", 8]],
  `"nr 0x%lx a0 0x%lx a1 0x%lx a2 0x%lx a3 0x%lx", REC->nr, REC->a0, REC->a1, REC->a2, REC->a3`,
  (words, _bytes, w) =>
    `nr 0x${hex64(u(words, w, 8), u(words, w, 12))} a0 0x${hex64(u(words, w, 16), u(words, w, 20))}` +
    ` a1 0x${hex64(u(words, w, 24), u(words, w, 28))} a2 0x${hex64(u(words, w, 32), u(words, w, 36))}` +
    ` a3 0x${hex64(u(words, w, 40), u(words, w, 44))}`,
  (out, words, _bytes, w) => {
    out.raw(NR)
    out.hex64(u(words, w, 8), u(words, w, 12))
    out.raw(A0)
    out.hex64(u(words, w, 16), u(words, w, 20))
    out.raw(A1)
    out.hex64(u(words, w, 24), u(words, w, 28))
    out.raw(A2)
    out.hex64(u(words, w, 32), u(words, w, 36))
    out.raw(A3)
    out.hex64(u(words, w, 40), u(words, w, 44))
  },
)

const pioEvent = define(
  "kvm_pio",
  [["unsigned int", "rw", 4], ["unsigned int", "port", 4], ["unsigned int", "size", 4], ["unsigned int", "count", 4], ["unsigned int", "val", 4]],
  `"pio_%s at 0x%x size %d count %d val 0x%x %s", REC->rw ? "write" : "read", REC->port, REC->size, REC->count, REC->val, REC->count > 1 ? "(...)" : ""`,
  (words, _bytes, w) => {
    const count = u(words, w, 20)
    return (
      `pio_${u(words, w, 8) !== 0 ? "write" : "read"} at 0x${u(words, w, 12).toString(16)} size ${s32(words, w, 16)}` +
      ` count ${count | 0} val 0x${u(words, w, 24).toString(16)} ${count > 1 ? "(...)" : ""}`
    )
  },
)

const msrEvent = define(
  "kvm_msr",
  [["unsigned", "write", 4], ["u32", "ecx", 4], ["u64", "data", 8], ["u8", "exception", 1]],
  `"msr_%s %x = 0x%llx%s", REC->write ? "write" : "read", REC->ecx, REC->data, REC->exception ? " (#GP)" : ""`,
  (words, bytes, w) =>
    `msr_${u(words, w, 8) !== 0 ? "write" : "read"} ${u(words, w, 12).toString(16)} = 0x${hex64(u(words, w, 16), u(words, w, 20))}` +
    (b(bytes, w, 24) !== 0 ? " (#GP)" : ""),
)

const crEvent = define(
  "kvm_cr",
  [["unsigned int", "rw", 4], ["unsigned int", "cr", 4], ["unsigned long", "val", 8]],
  `"cr_%s %x = 0x%lx", REC->rw ? "write" : "read", REC->cr, REC->val`,
  (words, _bytes, w) =>
    `cr_${u(words, w, 8) !== 0 ? "write" : "read"} ${u(words, w, 12).toString(16)} = 0x${hex64(u(words, w, 16), u(words, w, 20))}`,
)

const wakeupEvent = define(
  "kvm_vcpu_wakeup",
  [["__u64", "ns", 8], ["bool", "waited", 1], ["bool", "valid", 1]],
  `"%s time %lld ns, polling %s", REC->waited ? "wait" : "poll", REC->ns, REC->valid ? "valid" : "invalid"`,
  (words, bytes, w) =>
    `${b(bytes, w, 16) !== 0 ? "wait" : "poll"} time ${decS64(u(words, w, 8), u(words, w, 12))} ns, polling ${b(bytes, w, 17) !== 0 ? "valid" : "invalid"}`,
)

const exceptionTable = lookupTable(EXCEPTION_NAMES)

const userspaceExitEvent = (era: TraceEra): TraceEventType => {
  const names = era === "A" ? KVM_EXIT_NAMES_5_0 : KVM_EXIT_NAMES_6_X
  const entries = names.map((n, i) => [i, `KVM_EXIT_${n}`] as const)
  const table = lookupTable(entries)
  return define(
    "kvm_userspace_exit",
    [["__u32", "reason", 4], ["int", "errno", 4]],
    `"reason %s (%d)", REC->errno < 0 ? (REC->errno == -4 ? "restart" : "error") : __print_symbolic(REC->reason, ${symbolicTable(entries)}), REC->errno < 0 ? -REC->errno : REC->reason`,
    (words, _bytes, w) => {
      const errno = s32(words, w, 12)
      const reason = u(words, w, 8)
      if (errno < 0) return `reason ${errno === -4 ? "restart" : "error"} (${-errno})`
      return `reason ${symbolic(table, reason)} (${reason | 0})`
    },
  )
}

const cpuidEvent = (era: TraceEra): TraceEventType =>
  era === "A"
    ? define(
        "kvm_cpuid",
        [["unsigned int", "function", 4], ["unsigned long", "rax", 8], ["unsigned long", "rbx", 8], ["unsigned long", "rcx", 8], ["unsigned long", "rdx", 8], ["bool", "found", 1]],
        `"func %x rax %lx rbx %lx rcx %lx rdx %lx, cpuid entry %s", REC->function, REC->rax, REC->rbx, REC->rcx, REC->rdx, REC->found ? "found" : "not found"`,
        (words, bytes, w) =>
          `func ${u(words, w, 8).toString(16)} rax ${hex64(u(words, w, 16), u(words, w, 20))} rbx ${hex64(u(words, w, 24), u(words, w, 28))}` +
          ` rcx ${hex64(u(words, w, 32), u(words, w, 36))} rdx ${hex64(u(words, w, 40), u(words, w, 44))}, cpuid entry ${b(bytes, w, 48) !== 0 ? "found" : "not found"}`,
      )
    : define(
        "kvm_cpuid",
        [["unsigned int", "function", 4], ["unsigned int", "index", 4], ["unsigned long", "rax", 8], ["unsigned long", "rbx", 8], ["unsigned long", "rcx", 8], ["unsigned long", "rdx", 8], ["bool", "found", 1], ["bool", "used_max_basic", 1]],
        `"func %x idx %x rax %lx rbx %lx rcx %lx rdx %lx, cpuid entry %s%s", REC->function, REC->index, REC->rax, REC->rbx, REC->rcx, REC->rdx, REC->found ? "found" : "not found", REC->used_max_basic ? ", used max basic" : ""`,
        (words, bytes, w) =>
          `func ${u(words, w, 8).toString(16)} idx ${u(words, w, 12).toString(16)} rax ${hex64(u(words, w, 16), u(words, w, 20))} rbx ${hex64(u(words, w, 24), u(words, w, 28))}` +
          ` rcx ${hex64(u(words, w, 32), u(words, w, 36))} rdx ${hex64(u(words, w, 40), u(words, w, 44))}, cpuid entry ${b(bytes, w, 48) !== 0 ? "found" : "not found"}` +
          (b(bytes, w, 49) !== 0 ? ", used max basic" : ""),
      )

const exitEvent = (era: TraceEra): TraceEventType => {
  const vmx = vmxExitReasonTable(era)
  const vmxTable = lookupTable(vmx)
  const svmTable = lookupTable(SVM_EXIT_REASONS)
  const reasonText = (reason: number, isa: number): string =>
    isa === KVM_ISA_VMX ? symbolic(vmxTable, era === "A" ? reason : reason & 0xffff) : symbolic(svmTable, reason)
  if (era === "A") {
    return define(
      "kvm_exit",
      [["unsigned int", "exit_reason", 4], ["unsigned long", "guest_rip", 8], ["u32", "isa", 4], ["u64", "info1", 8], ["u64", "info2", 8]],
      `"reason %s rip 0x%lx info %llx %llx", (REC->isa == 1) ? __print_symbolic(REC->exit_reason, ${symbolicTable(vmx)}) : __print_symbolic(REC->exit_reason, ${symbolicTable(SVM_EXIT_REASONS, true)}), REC->guest_rip, REC->info1, REC->info2`,
      (words, _bytes, w) =>
        `reason ${reasonText(u(words, w, 8), u(words, w, 24))} rip 0x${hex64(u(words, w, 16), u(words, w, 20))}` +
        ` info ${hex64(u(words, w, 32), u(words, w, 36))} ${hex64(u(words, w, 40), u(words, w, 44))}`,
      (out, words, _bytes, w) => {
        out.raw(REASON)
        out.latin1(reasonText(u(words, w, 8), u(words, w, 24)))
        out.raw(RIP)
        out.hex64(u(words, w, 16), u(words, w, 20))
        out.raw(INFO)
        out.hex64(u(words, w, 32), u(words, w, 36))
        out.byte(0x20)
        out.hex64(u(words, w, 40), u(words, w, 44))
      },
    )
  }
  return define(
    "kvm_exit",
    [
      ["unsigned int", "exit_reason", 4], ["unsigned long", "guest_rip", 8], ["u32", "isa", 4], ["u64", "info1", 8],
      ["u64", "info2", 8], ["u32", "intr_info", 4], ["u32", "error_code", 4], ["unsigned int", "vcpu_id", 4],
    ],
    `"vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x", REC->vcpu_id, ` +
      `(REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, ${symbolicTable(vmx)}) : __print_symbolic(REC->exit_reason, ${symbolicTable(SVM_EXIT_REASONS, true)}), ` +
      `(REC->isa == 1 && REC->exit_reason & ~0xffff) ? " " : "", (REC->isa == 1) ? __print_flags(REC->exit_reason & ~0xffff, " ", { 0x80000000, "FAILED_VMENTRY" }) : "", ` +
      `REC->guest_rip, REC->info1, REC->info2, REC->intr_info, REC->error_code`,
    (words, _bytes, w) => {
      const reason = u(words, w, 8)
      const isa = u(words, w, 24)
      const flags = isa === KVM_ISA_VMX ? (reason & 0xffff0000) >>> 0 : 0
      const flagText = flags === 0 ? "" : " " + printFlags(flags)
      return (
        `vcpu ${u(words, w, 56)} reason ${reasonText(reason, isa)}${flagText} rip 0x${hex64(u(words, w, 16), u(words, w, 20))}` +
        ` info1 0x${hex64Padded(u(words, w, 32), u(words, w, 36))} info2 0x${hex64Padded(u(words, w, 40), u(words, w, 44))}` +
        ` intr_info 0x${u(words, w, 48).toString(16).padStart(8, "0")} error_code 0x${u(words, w, 52).toString(16).padStart(8, "0")}`
      )
    },
    (out, words, _bytes, w) => {
      const reason = u(words, w, 8)
      const isa = u(words, w, 24)
      const flags = isa === KVM_ISA_VMX ? (reason & 0xffff0000) >>> 0 : 0
      out.raw(VCPU)
      out.uint(u(words, w, 56))
      out.raw(SPACE_REASON)
      out.latin1(reasonText(reason, isa))
      if (flags !== 0) out.latin1(" " + printFlags(flags))
      out.raw(RIP)
      out.hex64(u(words, w, 16), u(words, w, 20))
      out.raw(INFO1)
      out.hex32Padded(u(words, w, 36))
      out.hex32Padded(u(words, w, 32))
      out.raw(INFO2)
      out.hex32Padded(u(words, w, 44))
      out.hex32Padded(u(words, w, 40))
      out.raw(INTR_INFO)
      out.hex32Padded(u(words, w, 48))
      out.raw(ERROR_CODE)
      out.hex32Padded(u(words, w, 52))
    },
  )
}

/** __print_flags with the single known flag; unknown bits print in hex after a separator. */
const printFlags = (flags: number): string => {
  const parts: Array<string> = []
  let rest = flags
  if ((rest & 0x80000000) !== 0) {
    parts.push("FAILED_VMENTRY")
    rest = (rest & 0x7fffffff) >>> 0
  }
  if (rest !== 0) parts.push("0x" + rest.toString(16))
  return parts.join(" ")
}

const entryEvent = (era: TraceEra): TraceEventType =>
  era === "A"
    ? define(
        "kvm_entry",
        [["unsigned int", "vcpu_id", 4]],
        `"vcpu %u", REC->vcpu_id`,
        (words, _bytes, w) => `vcpu ${u(words, w, 8)}`,
        (out, words, _bytes, w) => {
          out.raw(VCPU)
          out.uint(u(words, w, 8))
        },
      )
    : define(
        "kvm_entry",
        [["unsigned int", "vcpu_id", 4], ["unsigned long", "rip", 8]],
        `"vcpu %u, rip 0x%lx", REC->vcpu_id, REC->rip`,
        (words, _bytes, w) => `vcpu ${u(words, w, 8)}, rip 0x${hex64(u(words, w, 16), u(words, w, 20))}`,
        (out, words, _bytes, w) => {
          out.raw(VCPU)
          out.uint(u(words, w, 8))
          out.raw(COMMA_RIP)
          out.hex64(u(words, w, 16), u(words, w, 20))
        },
      )

const injExceptionEvent = (era: TraceEra): TraceEventType =>
  era === "A"
    ? define(
        "kvm_inj_exception",
        [["u8", "exception", 1], ["u8", "has_error", 1], ["u32", "error_code", 4]],
        `"%s (0x%x)", __print_symbolic(REC->exception, ${symbolicTable(EXCEPTION_NAMES)}), REC->has_error ? REC->error_code : 0`,
        (words, bytes, w) =>
          `${symbolic(exceptionTable, b(bytes, w, 8))} (0x${(b(bytes, w, 9) !== 0 ? u(words, w, 12) : 0).toString(16)})`,
      )
    : define(
        "kvm_inj_exception",
        [["u8", "exception", 1], ["u8", "has_error", 1], ["u32", "error_code", 4], ["bool", "reinjected", 1]],
        `"%s%s%s%s%s", __print_symbolic(REC->exception, ${symbolicTable(EXCEPTION_NAMES)}), !REC->has_error ? "" : " (", !REC->has_error ? "" : __print_symbolic(REC->error_code, { }), !REC->has_error ? "" : ")", REC->reinjected ? " [reinjected]" : ""`,
        (words, bytes, w) =>
          symbolic(exceptionTable, b(bytes, w, 8)) +
          (b(bytes, w, 9) !== 0 ? ` (0x${u(words, w, 12).toString(16)})` : "") +
          (b(bytes, w, 16) !== 0 ? " [reinjected]" : ""),
      )

const injVirqEvent = (era: TraceEra): TraceEventType =>
  era === "A"
    ? define("kvm_inj_virq", [["unsigned int", "irq", 4]], `"irq %u", REC->irq`, (words, _bytes, w) => `irq ${u(words, w, 8)}`)
    : define(
        "kvm_inj_virq",
        [["unsigned int", "vector", 4], ["bool", "soft", 1], ["bool", "reinjected", 1]],
        `"%s 0x%x%s", REC->soft ? "Soft/INTn" : "IRQ", REC->vector, REC->reinjected ? " [reinjected]" : ""`,
        (words, bytes, w) =>
          `${b(bytes, w, 12) !== 0 ? "Soft/INTn" : "IRQ"} 0x${u(words, w, 8).toString(16)}${b(bytes, w, 13) !== 0 ? " [reinjected]" : ""}`,
      )

/** Every KVM event of an era, by name. */
export const kvmEvents = (era: TraceEra): Record<KvmEventName, TraceEventType> => ({
  kvm_entry: entryEvent(era),
  kvm_exit: exitEvent(era),
  kvm_hypercall: hypercallEvent,
  kvm_pio: pioEvent,
  kvm_cpuid: cpuidEvent(era),
  kvm_msr: msrEvent,
  kvm_cr: crEvent,
  kvm_inj_exception: injExceptionEvent(era),
  kvm_inj_virq: injVirqEvent(era),
  kvm_userspace_exit: userspaceExitEvent(era),
  kvm_vcpu_wakeup: wakeupEvent,
})

