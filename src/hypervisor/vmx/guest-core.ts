// The guest core as VMX uses it: the hot loop, and event injection at VM entry (SDM 26.5).
import { ActivityState as ActivityStateImport, Interruptibility as InterruptibilityImport, type CpuState } from "../../guest/cpu/state.ts"
import { EXIT as EXITImport } from "../../guest/exec/engine.ts"
import { InterruptionType as InterruptionTypeImport, type Intercepts } from "../../guest/intercept.ts"
import { engineOf as engineOfImport } from "../../guest/run.ts"

// Local copies of imported bindings: some module loaders (tsx, vitest) turn every use of an
// import into a getter call, which the hot path cannot afford. The bindings never change.
const ActivityState = ActivityStateImport
const Interruptibility = InterruptibilityImport
const EXIT = EXITImport
const InterruptionType = InterruptionTypeImport
const engineOf = engineOfImport

export { runBatch, RunOutcome } from "../../guest/run.ts"

/** An intercept policy that can let one exception delivery bypass the exception bitmap. */
export interface InjectionAware extends Intercepts {
  bypassExceptionBitmapOnce: boolean
}

/**
 * Delivers an injected event through the guest IDT as VM entry does: the injected event itself
 * is not subject to the exception bitmap (faults during its delivery are). Software interrupts
 * and exceptions push RIP + the VM-entry instruction length. Returns false when the delivery
 * caused a VM exit (the exit record is filled), true when the guest can run.
 */
export const injectEvent = (cpu: CpuState, vector: number, type: number, errorCode: number, length: number): boolean => {
  const engine = engineOf(cpu)
  const ic = cpu.intercepts as InjectionAware | null
  const softwareEvent =
    type === InterruptionType.SOFTWARE_INTERRUPT || type === InterruptionType.SOFTWARE_EXCEPTION || type === InterruptionType.PRIVILEGED_SOFTWARE_EXCEPTION
  const returnRip = softwareEvent ? cpu.rip + length : cpu.rip
  cpu.activityState = ActivityState.ACTIVE
  if (ic !== null) ic.bypassExceptionBitmapOnce = true
  try {
    engine.deliver(vector, type === 7 ? InterruptionType.HARDWARE_EXCEPTION : type, errorCode, returnRip, length)
  } catch (e) {
    if (e === EXIT) return false
    throw e
  } finally {
    if (ic !== null) ic.bypassExceptionBitmapOnce = false
  }
  if (type === InterruptionType.NMI) cpu.interruptibility |= Interruptibility.NMI
  cpu.attention = 1
  return true
}
