// KVM's exit hook: a module or tool (the CLI's --max-exits and --inject, the shell's `run until`)
// subscribes an observer that KVM calls synchronously on the vCPU thread at every VM exit of
// every VM — after the exit is counted and traced (kvm_exit), before its handler runs — and, if
// the observer asks, before every VM entry. Its answer can stop the run. Like the VMCS hooks,
// subscribing returns the function that unsubscribes. With nobody subscribed the run loop pays
// one length test per exit and per entry. An observer that throws is a bug in the VM's kernel
// path: KVM marks that VM dead (KVM_BUG_ON) and every other VM goes on.

import { Effect } from "effect"
import type { Scope } from "effect"
import type { Vcpu } from "./vcpu.ts"

/** What KVM does after an exit observer has seen the exit. */
export const ExitVerdict = {
  /** Handle the exit and go on. */
  Continue: 0,
  /**
   * Handle the exit, then leave the run loop at the next scheduling point: the vCPU thread gives
   * up its CPU (the scheduler's `until` sees the world stopped right after this exit) and KVM_RUN
   * goes on when the thread runs again.
   */
  Yield: 1,
  /**
   * Handle the exit, then return from KVM_RUN to user space with EINTR and KVM_EXIT_INTR (as
   * immediate_exit does) before the next entry; a HLT that blocks the thread blocks first.
   */
  Userspace: 2,
} as const
export type ExitVerdict = (typeof ExitVerdict)[keyof typeof ExitVerdict]

export interface ExitObserver {
  /**
   * At every VM exit. `reason` is VM_EXIT_REASON (bit 31 set for a failed VM entry), the exit
   * qualification comes as unsigned 32-bit halves; the vCPU's VMCS is current on `cpu` and its
   * registers are as the exit left them. Returning nothing means Continue.
   */
  readonly exit: (vcpu: Vcpu, cpu: number, reason: number, qualificationLo: number, qualificationHi: number) => ExitVerdict | void
  /**
   * Before every VM entry, after KVM has programmed the VMCS for it (injected events, the
   * preemption timer): a VMWRITE here to the VMCS current on `cpu` takes effect at this entry.
   */
  readonly entry?: (vcpu: Vcpu, cpu: number) => void
}

type EntryCallback = (vcpu: Vcpu, cpu: number) => void

export class ExitHook {
  /** The observers, in subscription order; replaced (never mutated) so a call in progress is undisturbed. */
  exitObservers: ReadonlyArray<ExitObserver> = []
  /** The entry callbacks of the observers that have one. */
  entryCallbacks: ReadonlyArray<EntryCallback> = []

  /** Adds an observer; the returned function removes it (idempotent). */
  subscribe(observer: ExitObserver): () => void {
    this.exitObservers = [...this.exitObservers, observer]
    const entry = observer.entry
    if (entry !== undefined) this.entryCallbacks = [...this.entryCallbacks, entry]
    let subscribed = true
    return () => {
      if (!subscribed) return
      subscribed = false
      this.exitObservers = this.exitObservers.filter((o) => o !== observer)
      if (entry !== undefined) this.entryCallbacks = this.entryCallbacks.filter((e) => e !== entry)
    }
  }

  /** Subscribes for the lifetime of the current Scope (a module's load/unload). */
  subscribeScoped(observer: ExitObserver): Effect.Effect<void, never, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.sync(() => this.subscribe(observer)),
      (unsubscribe) => Effect.sync(unsubscribe),
    ).pipe(Effect.asVoid)
  }

  get observerCount(): number {
    return this.exitObservers.length
  }

  /** Calls every observer; the strongest verdict wins (Userspace over Yield over Continue). Throws what an observer throws. */
  notifyExit(vcpu: Vcpu, cpu: number, reason: number, qualificationLo: number, qualificationHi: number): ExitVerdict {
    const observers = this.exitObservers
    let verdict: ExitVerdict = ExitVerdict.Continue
    for (let i = 0; i < observers.length; i++) {
      const answer = observers[i]!.exit(vcpu, cpu, reason, qualificationLo, qualificationHi)
      if (answer !== undefined && answer > verdict) verdict = answer
    }
    return verdict
  }

  /** Calls every entry callback. Throws what a callback throws. */
  notifyEntry(vcpu: Vcpu, cpu: number): void {
    const callbacks = this.entryCallbacks
    for (let i = 0; i < callbacks.length; i++) callbacks[i]!(vcpu, cpu)
  }
}
