// `kvmsim check vmcs-lifecycle`: the model-based property of the VMCS lifecycle, run with
// fast-check. On a failure it prints the minimal counterexample (after shrinking) and the
// command that replays exactly that case (--seed and --path). Exit status 1 when it fails.
// fast-check and the model are loaded only when this command runs (startup stays small).

import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { CliExit } from "../exit.ts"
import { stderr, stdout } from "../output.ts"
import { ExitStatus } from "../sim/outcome.ts"

const vmcsLifecycle = Command.make(
  "vmcs-lifecycle",
  {
    runs: Flag.Int("runs").pipe(Flag.withMetavar("N"), Flag.withDescription("number of generated lifecycles (default 1000)"), Flag.withDefault(1000)),
    seed: Flag.Int("seed").pipe(Flag.withMetavar("S"), Flag.withDescription("fast-check seed (default: random; printed so a run can be repeated)"), Flag.optional),
    path: Flag.String("path").pipe(Flag.withMetavar("P"), Flag.withDescription("replay one shrunk case: the path printed with a failure (needs its --seed)"), Flag.optional),
  },
  ({ runs, seed, path }) =>
    Effect.gen(function* () {
      if (runs < 1) {
        yield* stderr("kvmsim check: --runs must be at least 1\n")
        return yield* Effect.fail(new CliExit({ code: ExitStatus.Usage }))
      }
      const { default: fc } = yield* Effect.promise(() => import("fast-check"))
      const lifecycle = yield* Effect.promise(() => import("../testing/vmcs-lifecycle.ts"))
      const usedSeed = Option.getOrElse(seed, () => (Date.now() ^ (Math.random() * 0x7fffffff)) | 0)
      const result = fc.check(fc.property(lifecycle.vmcsLifecycleArbitrary(), (commands) => lifecycle.runLifecycle(commands) === undefined), {
        numRuns: runs,
        seed: usedSeed,
        ...(Option.isSome(path) ? { path: path.value } : {}),
      })
      if (!result.failed) {
        yield* stdout(`vmcs-lifecycle: OK, ${result.numRuns} lifecycles (seed ${usedSeed}): every VMX instruction's status, VM-instruction error and VMREAD value agreed with the SDM model\n`)
        return
      }
      const commands = result.counterexample?.[0]
      if (commands === undefined) {
        yield* stdout(`vmcs-lifecycle: FAILED (seed ${usedSeed}): ${result.errorInstance === undefined ? "" : String(result.errorInstance)}\n`)
        return yield* Effect.fail(new CliExit({ code: ExitStatus.Failed }))
      }
      const mismatch = lifecycle.runLifecycle(commands)
      yield* stdout(
        `vmcs-lifecycle: FAILED after ${result.numRuns} lifecycle(s), shrunk ${result.numShrinks} time(s) to this sequence:\n` +
          (mismatch === undefined ? commands.map((c) => `  ${lifecycle.formatCommand(c)}`).join("\n") : lifecycle.describeMismatch(commands, mismatch)) +
          `\nreplay: kvmsim check vmcs-lifecycle --seed ${result.seed} --path ${result.counterexamplePath ?? ""}\n`,
      )
      return yield* Effect.fail(new CliExit({ code: ExitStatus.Failed }))
    }),
).pipe(Command.withDescription("The model-based property test of the VMCS lifecycle (VMXON..VMRESUME against the SDM's pseudo-code); prints a minimal counterexample and how to replay it"))

export const checkCommand = Command.make("check").pipe(
  Command.withDescription("Property checks users run and extend (kvmsim/testing has the arbitraries and the model)"),
  Command.withSubcommands([vmcsLifecycle]),
)
