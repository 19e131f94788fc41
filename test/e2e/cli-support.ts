// Spawns the installed command as a user would: `node bin/kvmsim.mjs ARGS`, from the repository
// root, without a terminal; returns its exit status and both streams.
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
const bin = fileURLToPath(new URL("../../bin/kvmsim.mjs", import.meta.url))

export interface Spawned {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
}

export const kvmsim = (args: ReadonlyArray<string>, options: { input?: string; env?: Record<string, string>; cwd?: string } = {}): Spawned => {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? repoRoot,
    input: options.input ?? "",
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "", ...options.env },
    timeout: 120_000,
  })
  if (r.error !== undefined) throw r.error
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** Parses a shell command line of the examples catalog (words, single quotes, `< FILE`). */
export const splitCommand = (line: string): { args: Array<string>; stdinFile?: string } => {
  const words = [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!)
  if (words[0] !== "kvmsim") throw new Error(`not a kvmsim command: ${line}`)
  const lt = words.indexOf("<")
  if (lt < 0) return { args: words.slice(1) }
  return { args: [...words.slice(1, lt), ...words.slice(lt + 2)], stdinFile: words[lt + 1]! }
}
