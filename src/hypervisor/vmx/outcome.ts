// Results of VMX instructions as the host sees them (SDM Vol. 3C 30.2 "Conventions"). The hot
// path returns a small number; `describeOutcome` turns it into a typed value for the boundary.
import { vmInstructionErrorMeaning } from "../../arch/vmx/instruction-errors.ts"

export const VmxStatus = {
  /** VMsucceed: CF, PF, AF, ZF, SF, OF cleared. */
  Succeed: 0,
  /** VMfailInvalid: CF = 1 (no current VMCS, nothing recorded). */
  FailInvalid: 1,
  /** VMfailValid(n): ZF = 1, n in VM_INSTRUCTION_ERROR of the current VMCS. */
  FailValid: 2,
  /** #UD raised instead of executing. */
  InvalidOpcode: 3,
  /** #GP(0) raised instead of executing. */
  GeneralProtection: 4,
  /** VMLAUNCH/VMRESUME entered the guest and control came back through a VM exit (or a failed entry, bit 31). */
  VmExit: 5,
  /** VMLAUNCH/VMRESUME/continueGuest: the guest is still in VMX non-root operation (instruction budget spent). */
  GuestRunning: 6,
  /** Something the SDM leaves undefined that kvmsim refuses instead of corrupting state; see `refusal`. */
  Refused: 7,
} as const
export type VmxStatus = (typeof VmxStatus)[keyof typeof VmxStatus]

export type VmxOutcome =
  | { readonly kind: "VMsucceed" }
  | { readonly kind: "VMfailInvalid" }
  | { readonly kind: "VMfailValid"; readonly error: number; readonly meaning: string }
  | { readonly kind: "#UD" }
  | { readonly kind: "#GP"; readonly errorCode: 0 }
  | { readonly kind: "VMExit"; readonly exitReason: number; readonly qualification: bigint }
  | { readonly kind: "GuestRunning" }
  | { readonly kind: "Refused"; readonly message: string }

export interface OutcomeSource {
  readonly lastError: number
  readonly refusal: string
  readonly lastExitReason: number
  readonly lastExitQualification: bigint
}

export const describeOutcome = (status: VmxStatus, source: OutcomeSource): VmxOutcome => {
  switch (status) {
    case VmxStatus.Succeed:
      return { kind: "VMsucceed" }
    case VmxStatus.FailInvalid:
      return { kind: "VMfailInvalid" }
    case VmxStatus.FailValid:
      return { kind: "VMfailValid", error: source.lastError, meaning: vmInstructionErrorMeaning[source.lastError] ?? "unknown error" }
    case VmxStatus.InvalidOpcode:
      return { kind: "#UD" }
    case VmxStatus.GeneralProtection:
      return { kind: "#GP", errorCode: 0 }
    case VmxStatus.VmExit:
      return { kind: "VMExit", exitReason: source.lastExitReason, qualification: source.lastExitQualification }
    case VmxStatus.GuestRunning:
      return { kind: "GuestRunning" }
    case VmxStatus.Refused:
      return { kind: "Refused", message: source.refusal }
  }
}
