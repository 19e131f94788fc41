// A typed event hook: the kernel's notifier chains, reduced to what modules need. The hypervisor
// announces events (VMCS allocated or freed, VMXON or VMXOFF on a CPU) and any loaded module may
// listen, in subscription order, synchronously on the announcing thread — so a listener sees the
// object before anything else can use it and before it is gone.

import { Effect } from "effect"
import type { Scope } from "effect"

export type HookListener<E> = (event: E) => void

export class Hook<E> {
  private listeners: Array<HookListener<E>> = []

  constructor(readonly name: string) {}

  /** Adds a listener; the returned function removes it (idempotent). */
  subscribe(listener: HookListener<E>): () => void {
    // Copy on write: a listener that unsubscribes during emit does not disturb the iteration.
    this.listeners = [...this.listeners, listener]
    let subscribed = true
    return () => {
      if (!subscribed) return
      subscribed = false
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  /** Subscribes for the lifetime of the current Scope (a module's load/unload). */
  subscribeScoped(listener: HookListener<E>): Effect.Effect<void, never, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.sync(() => this.subscribe(listener)),
      (unsubscribe) => Effect.sync(unsubscribe),
    ).pipe(Effect.asVoid)
  }

  emit(event: E): void {
    const listeners = this.listeners
    for (let i = 0; i < listeners.length; i++) listeners[i]!(event)
  }

  get listenerCount(): number {
    return this.listeners.length
  }
}
