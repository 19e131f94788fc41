import { Effect, Layer } from "effect"
import { ChildProcessSpawner } from "effect/process"

/**
 * effect/cli asks for a process spawner (for features such as opening a pager). kvmsim's
 * commands never spawn processes, so a spawn request is a bug in kvmsim: it dies saying so.
 */
export const layer: Layer.Layer<ChildProcessSpawner.ChildProcessSpawner> = Layer.succeed(
  ChildProcessSpawner.ChildProcessSpawner,
  ChildProcessSpawner.make(() => Effect.die(new Error("kvmsim does not spawn child processes"))),
)
