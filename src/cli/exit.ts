// A command's exit status other than 0, carried as a typed failure to main (which sets
// process.exitCode). Messages were already printed by the command.
import { Data } from "effect"

export class CliExit extends Data.TaggedError("CliExit")<{ readonly code: number }> {}
