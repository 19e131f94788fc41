import { Effect, Layer, Sink, Stdio, Stream } from "effect"
import * as PlatformError from "effect/PlatformError"

const writer = (stream: NodeJS.WriteStream, name: string) => () =>
  Sink.forEach((chunk: string | Uint8Array) =>
    Effect.callback<void, PlatformError.PlatformError>((resume) => {
      stream.write(chunk, (e) => resume(e ? Effect.fail(PlatformError.systemError({ _tag: "Unknown", module: "Stdio", method: name, description: e.message, cause: e })) : Effect.void))
    }),
  )

/** The process's arguments and standard streams. `args` is what follows the script name. */
export const makeNodeStdio = (args: ReadonlyArray<string>): Stdio.Stdio =>
  Stdio.make({
    args: Effect.succeed(args),
    stdinIsTerminal: Effect.sync(() => process.stdin.isTTY === true),
    stdoutIsTerminal: Effect.sync(() => process.stdout.isTTY === true),
    stderrIsTerminal: Effect.sync(() => process.stderr.isTTY === true),
    stdout: writer(process.stdout, "stdout"),
    stderr: writer(process.stderr, "stderr"),
    stdin: Stream.fromAsyncIterable(process.stdin as AsyncIterable<Uint8Array>, (e) => PlatformError.systemError({ _tag: "Unknown", module: "Stdio", method: "stdin", description: String(e), cause: e })),
  })

export const layer = (args: ReadonlyArray<string>): Layer.Layer<Stdio.Stdio> => Layer.succeed(Stdio.Stdio, makeNodeStdio(args))
