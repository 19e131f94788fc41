import { Effect, Exit, Layer, Scope } from "effect"
import { it } from "vitest"

// A small stand-in for @effect/vitest (which needs Node 22): runs an Effect as a vitest test
// inside a fresh Scope, so scoped resources are released when the test ends.
export const itEffect = <A, E>(name: string, body: () => Effect.Effect<A, E, Scope.Scope>, timeout?: number): void => {
  it(name, () => Effect.runPromise(Effect.scoped(body())).then(() => undefined), timeout)
}

/** Runs an Effect that needs `layer`'s services, in a fresh scope, and returns its Exit. */
export const runWith = <A, E, ROut, E2>(
  layer: Layer.Layer<ROut, E2>,
  effect: Effect.Effect<A, E, ROut | Scope.Scope>,
): Promise<Exit.Exit<A, E | E2>> => Effect.runPromiseExit(Effect.scoped(Effect.provide(effect, layer)))
