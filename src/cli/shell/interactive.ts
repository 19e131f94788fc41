// The shell on a terminal: a prompt like root's on a Linux host (coloured unless NO_COLOR),
// line editing and history (up/down) from readline, and Tab completion of verbs, paths in the
// simulated filesystem, `info` topics and VMCS field names.

import { createInterface } from "node:readline"
import { Effect } from "effect"
import { VmcsField } from "../../arch/vmx/vmcs-fields.ts"
import { colourEnabled } from "../output.ts"
import { type ShellSession, shellVerbs } from "./session.ts"

const fieldNames = Object.keys(VmcsField)

export const prompt = (session: ShellSession, colour: boolean): string =>
  colour ? `\x1b[1;31mroot@kvmsim\x1b[0m:\x1b[1;34m${session.cwd}\x1b[0m# ` : `root@kvmsim:${session.cwd}# `

/** Candidates for the word being typed at the end of `line` (readline's completer contract). */
export const complete = (session: ShellSession, line: string): [Array<string>, string] => {
  const words = line.split(/\s+/)
  const word = words.at(-1) ?? ""
  if (words.length <= 1) return [shellVerbs.filter((v) => v.startsWith(word)).map((v) => `${v} `), word]
  const verb = words[0]
  if (verb === "info" && words.length === 2) return [["registers", "cpus", "vmcs"].filter((t) => t.startsWith(word)), word]
  if (verb === "run" && words.length === 3 && words[1] === "until") return [["exit", "hypercall", "io", "hlt", "end", ...fieldNames.length > 0 ? ["exit:HLT", "exit:VMCALL", "exit:IO_INSTRUCTION"] : []].filter((t) => t.startsWith(word)), word]
  if (words.at(-2) === "--inject" || /^[A-Za-z_0-9]+$/.test(word) && words.includes("--inject")) {
    return [fieldNames.filter((n) => n.startsWith(word.toUpperCase())).map((n) => `${n}=`), word]
  }
  // A path in the simulated filesystem: complete the last component in its directory.
  const slash = word.lastIndexOf("/")
  const dirPart = slash < 0 ? "" : word.slice(0, slash + 1)
  const base = word.slice(slash + 1)
  const dir = session.absolute(dirPart === "" ? "." : dirPart)
  const names = session.sim.sysfs.fs.ls(dir)
  if (typeof names === "number") return [[], word]
  const hits = names
    .filter((n) => n.startsWith(base))
    .sort()
    .map((n) => {
      const st = session.sim.sysfs.fs.stat(`${dir === "/" ? "" : dir}/${n}`)
      return `${dirPart}${n}${typeof st !== "number" && st.kind === "dir" ? "/" : ""}`
    })
  return [hits, word]
}

/** Reads lines until quit or end of input; returns the shell's exit status. */
export const interactiveShell = (session: ShellSession): Effect.Effect<number> =>
  Effect.callback<number>((resume) => {
    const colour = colourEnabled(process.stdout)
    const rl = createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: true,
      historySize: 1000,
      completer: (line: string) => complete(session, line),
    })
    let status = 0
    let busy = Promise.resolve()
    rl.setPrompt(prompt(session, colour))
    rl.prompt()
    rl.on("line", (line) => {
      busy = busy.then(async () => {
        rl.pause()
        status = await Effect.runPromise(session.executeLine(line))
        if (session.quitRequested) {
          status = session.quitStatus
          rl.close()
          return
        }
        rl.setPrompt(prompt(session, colour))
        rl.resume()
        rl.prompt()
      })
    })
    rl.on("close", () => {
      void busy.then(() => {
        if (!session.quitRequested) process.stdout.write("\n")
        resume(Effect.succeed(status))
      })
    })
  })
