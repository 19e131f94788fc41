// How a run ended, as kvmsim's exit status and the `exit` object of the JSON document.

import { exitReasonName } from "../../arch/exit-reasons.ts"
import { vmInstructionErrorMeaning } from "../../arch/vmx/instruction-errors.ts"
import { KvmExit, kvmExitName } from "../../hypervisor/kvm/uapi.ts"
import type { KvmRunExit } from "../../hypervisor/kvm/uapi.ts"
import type { MachineEnd } from "../../hypervisor/vmm/machine.ts"
import type { Limit } from "./session.ts"

/** kvmsim's exit statuses (listed in --help). */
export const ExitStatus = {
  /** The guest finished normally: HLT at the end of a bare program, or exit status 0. */
  Ok: 0,
  /** The guest's exit status was non-zero, or a check failed. */
  Failed: 1,
  /** Usage: bad options, or GUEST could not be read, assembled or loaded. */
  Usage: 2,
  /** Guest fault: FAIL_ENTRY, INTERNAL_ERROR, triple fault, a killed user program, a hung guest. */
  GuestFault: 3,
  /** A step or exit limit was reached. */
  Limit: 4,
} as const

export const exitStatusHelp = [
  "0  the guest finished normally (HLT at the end of a bare program, exit status 0)",
  "1  the guest's exit status was non-zero, or a check failed",
  "2  usage error (bad option, GUEST cannot be read, assembled or loaded)",
  "3  guest fault (FAIL_ENTRY, INTERNAL_ERROR, triple fault, a killed user program, every vCPU stuck)",
  "4  a step or exit limit was reached (--max-steps, --max-exits)",
]

export type OutcomeReason = "halted" | "exit" | "killed" | "triple-fault" | "fail-entry" | "internal-error" | "stuck" | "error" | "step-limit" | "exit-limit"

export interface Outcome {
  readonly reason: OutcomeReason
  /** kvmsim's process exit status. */
  readonly code: number
  /** What happened, in words (for stderr and the JSON document). */
  readonly detail: string
  /** The guest's own exit status (exit_group / isa-debug-exit), when it gave one. */
  readonly guestStatus?: number
}

const signalNames: Record<number, string> = { 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 5: "SIGTRAP" }

const hex = (v: bigint | number): string => `0x${v.toString(16)}`

const failEntryDetail = (value: bigint): string => {
  if ((value & 0x80000000n) !== 0n) {
    const basic = Number(value & 0xffffn)
    const name = exitReasonName(basic)
    return `KVM_EXIT_FAIL_ENTRY: hardware_entry_failure_reason ${hex(value)} (VM-entry failure, exit reason ${basic}${name === undefined ? "" : ` ${name}`})`
  }
  const meaning = vmInstructionErrorMeaning[Number(value)]
  return `KVM_EXIT_FAIL_ENTRY: hardware_entry_failure_reason ${hex(value)} (VMfail, VM-instruction error ${value}${meaning === undefined ? "" : `: ${meaning}`})`
}

export const classify = (end: MachineEnd, limit: Limit | undefined, bare: boolean): Outcome => {
  if (limit === "steps") return { reason: "step-limit", code: ExitStatus.Limit, detail: end.kind === "error" ? end.message : "the step limit was reached" }
  if (limit === "exits") return { reason: "exit-limit", code: ExitStatus.Limit, detail: end.kind === "error" ? end.message : "the exit limit was reached" }
  switch (end.kind) {
    case "running":
      return { reason: "error", code: ExitStatus.GuestFault, detail: "the guest did not finish" }
    case "halted":
      return { reason: "halted", code: ExitStatus.Ok, detail: bare ? "every vCPU executed HLT with interrupts disabled" : "every vCPU halted" }
    case "exit": {
      const status = end.status >> 1
      if (!bare && status > 128 && status < 160) {
        const signal = status - 128
        return { reason: "killed", code: ExitStatus.GuestFault, detail: `the user program was killed by ${signalNames[signal] ?? `signal ${signal}`} (exit status ${status})`, guestStatus: status }
      }
      return { reason: "exit", code: status === 0 ? ExitStatus.Ok : ExitStatus.Failed, detail: `the guest exited with status ${status}`, guestStatus: status }
    }
    case "shutdown":
      return { reason: "triple-fault", code: ExitStatus.GuestFault, detail: "KVM_EXIT_SHUTDOWN: triple fault" }
    case "error": {
      const exit = end.detail as KvmRunExit | undefined
      if (exit?.reason === KvmExit.FAIL_ENTRY) return { reason: "fail-entry", code: ExitStatus.GuestFault, detail: failEntryDetail(exit.hardwareEntryFailureReason) }
      if (exit?.reason === KvmExit.INTERNAL_ERROR) {
        return { reason: "internal-error", code: ExitStatus.GuestFault, detail: `KVM_EXIT_INTERNAL_ERROR: suberror ${exit.suberror}${exit.data.length > 0 ? `, data ${exit.data.map(hex).join(" ")}` : ""}` }
      }
      if (end.message.startsWith("every vCPU is halted")) return { reason: "stuck", code: ExitStatus.GuestFault, detail: end.message }
      if (end.exitReason !== undefined) return { reason: "error", code: ExitStatus.GuestFault, detail: `${kvmExitName(end.exitReason)}: ${end.message}` }
      if (/dead|internal error/.test(end.message)) return { reason: "internal-error", code: ExitStatus.GuestFault, detail: end.message }
      return { reason: "error", code: ExitStatus.GuestFault, detail: end.message }
    }
  }
}
