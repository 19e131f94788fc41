// Writing to the process's streams: stdout for what the user asked for (guest console, trace,
// tables, JSON), stderr for kvmsim's own messages. Synchronous on purpose: the order of console
// text and messages must be the order things happened, and pipes and files are synchronous
// writes on Linux anyway.
import { Effect } from "effect"

export const writeStdout = (text: string): void => {
  if (text !== "") process.stdout.write(text)
}
export const writeStderr = (text: string): void => {
  if (text !== "") process.stderr.write(text)
}

export const stdout = (text: string): Effect.Effect<void> => Effect.sync(() => writeStdout(text))
export const stderr = (text: string): Effect.Effect<void> => Effect.sync(() => writeStderr(text))

/** Colour only on a terminal and unless NO_COLOR is set (https://no-color.org). */
export const colourEnabled = (stream: NodeJS.WriteStream): boolean => stream.isTTY === true && (process.env["NO_COLOR"] ?? "") === ""
