import { createInterface, emitKeypressEvents } from "node:readline"
import { Cause, Effect, Layer, Option, Queue, Terminal } from "effect"
import * as PlatformError from "effect/PlatformError"

const currentSize = (): Terminal.Size => ({ columns: process.stdout.columns ?? 80, rows: process.stdout.rows ?? 24 })

/** The terminal on process.stdin/stdout: size (with resize events), key input, lines, output. */
export const nodeTerminal: Terminal.Terminal = Terminal.make({
  columns: Effect.sync(() => currentSize().columns),
  rows: Effect.sync(() => currentSize().rows),
  size: Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Terminal.Size, Cause.Done>()
    Queue.offerUnsafe(queue, currentSize())
    const onResize = (): void => void Queue.offerUnsafe(queue, currentSize())
    yield* Effect.acquireRelease(
      Effect.sync(() => process.stdout.on("resize", onResize)),
      () => Effect.sync(() => void process.stdout.off("resize", onResize)),
    )
    return queue
  }),
  readInput: Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Terminal.UserInput, Cause.Done>()
    const onKey = (input: string | undefined, key: { name?: string; ctrl?: boolean; meta?: boolean; shift?: boolean } | undefined): void => {
      Queue.offerUnsafe(queue, {
        input: Option.fromNullishOr(input),
        key: { name: key?.name ?? input ?? "", ctrl: key?.ctrl ?? false, meta: key?.meta ?? false, shift: key?.shift ?? false },
      })
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        emitKeypressEvents(process.stdin)
        if (process.stdin.isTTY) process.stdin.setRawMode(true)
        process.stdin.on("keypress", onKey)
      }),
      () =>
        Effect.sync(() => {
          process.stdin.off("keypress", onKey)
          if (process.stdin.isTTY) process.stdin.setRawMode(false)
          process.stdin.pause()
        }),
    )
    return queue
  }),
  readLine: Effect.callback<string, Terminal.QuitError>((resume) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: false })
    let answered = false
    rl.once("line", (line) => {
      answered = true
      rl.close()
      resume(Effect.succeed(line))
    })
    rl.once("close", () => {
      if (!answered) resume(Effect.fail(new Terminal.QuitError()))
    })
    return Effect.sync(() => rl.close())
  }),
  display: (text) =>
    Effect.callback<void, PlatformError.PlatformError>((resume) => {
      process.stdout.write(text, (e) => resume(e ? Effect.fail(PlatformError.systemError({ _tag: "Unknown", module: "Terminal", method: "display", description: e.message, cause: e })) : Effect.void))
    }),
})

export const layer: Layer.Layer<Terminal.Terminal> = Layer.succeed(Terminal.Terminal, nodeTerminal)
