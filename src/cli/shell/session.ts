// The live simulated host behind `kvmsim shell`: bash-like verbs over the pseudo-filesystem
// (/sys, /proc, tracefs, debugfs) and monitor verbs that boot and step a guest. Each command
// produces its standard output as text (so pipes and redirections work), writes its errors in
// bash's words, and returns an exit status.

import { Effect, Option } from "effect"
import { exitReasonName, ExitReason } from "../../arch/exit-reasons.ts"
import { VmcsField } from "../../arch/vmx/vmcs-fields.ts"
import { VmxStatus } from "../../hypervisor/vmx/outcome.ts"
import { strerror } from "../../sysfs/errno.ts"
import { legacyVmcsForKvm, vmcsctlForKvm } from "../../sysfs/vmcsctl/kvm-adapter.ts"
import { guestOptions, loadUserModule, type GuestFlagValues } from "../commands/run-options.ts"
import { formatStatTable, statRows, sumByReason } from "../report/stat-table.ts"
import { classify, type Outcome } from "../sim/outcome.ts"
import type { SimHost } from "../sim/session.ts"
import { parseLine, type SimpleCommand } from "./parse.ts"

export interface CommandResult {
  readonly out: string
  readonly status: number
}

export interface ShellIo {
  /** Standard error (bash-like messages). */
  readonly err: (text: string) => void
  /** Output that must appear as it happens (guest console during `run`). */
  readonly out: (text: string) => void
}

export const shellVerbs = [
  "ls", "cat", "echo", "cd", "pwd", "tree", "head", "tail", "grep", "boot", "run", "info", "ps", "stat", "insmod", "rmmod", "lsmod", "trace", "help", "quit", "exit",
] as const

const O_WRONLY = 1
const O_CREAT_APPEND = 0o2000 | O_WRONLY
const O_TRUNC = 0o1000 | O_WRONLY

const hex16 = (v: bigint | undefined): string => BigInt.asUintN(64, v ?? 0n).toString(16).padStart(16, "0")

export class ShellSession {
  cwd = "/"
  lastOutcome: Outcome | undefined
  quitRequested = false
  quitStatus = 0

  constructor(
    readonly sim: SimHost,
    readonly defaults: GuestFlagValues,
    readonly io: ShellIo,
  ) {
    sim.alwaysObserve = true
  }

  absolute(path: string): string {
    const joined = path.startsWith("/") ? path : `${this.cwd === "/" ? "" : this.cwd}/${path}`
    const parts: Array<string> = []
    for (const p of joined.split("/")) {
      if (p === "" || p === ".") continue
      if (p === "..") parts.pop()
      else parts.push(p)
    }
    return `/${parts.join("/")}`
  }

  /** Runs one line; returns the status of the last pipeline run (bash's $?); `stopOnError` as `set -e`. */
  executeLine(line: string, stopOnError = false): Effect.Effect<number> {
    const self = this
    return Effect.gen(function* () {
      const parsed = parseLine(line)
      if (typeof parsed === "string") {
        self.io.err(`kvmsim: ${parsed}\n`)
        return 2
      }
      let status = 0
      for (const pipeline of parsed) {
        // A script stops at the first failing command (`a; b` runs b only if a succeeded there).
        if (stopOnError && pipeline.joiner === ";" && status !== 0) break
        if (pipeline.joiner === "&&" && status !== 0) continue
        if (pipeline.joiner === "||" && status === 0) continue
        let input: string | undefined
        for (let i = 0; i < pipeline.commands.length; i++) {
          const cmd = pipeline.commands[i]!
          const last = i === pipeline.commands.length - 1
          const result = yield* self.runCommand(cmd, input)
          status = result.status
          if (cmd.redirect !== undefined) {
            const path = self.absolute(cmd.redirect.file)
            // bash: a failed open is "FILE: strerror" (the command does not run); a failed write(2) is the command's "write error".
            const fs = self.sim.sysfs.fs
            const fd = fs.open(path, cmd.redirect.append ? O_CREAT_APPEND : O_TRUNC)
            if (fd < 0) {
              self.io.err(`kvmsim: ${cmd.redirect.file}: ${strerror(fd)}\n`)
              status = 1
            } else {
              const written = result.out === "" ? 0 : fs.write(fd, result.out)
              fs.close(fd)
              if (written < 0) {
                self.io.err(`kvmsim: ${cmd.argv[0]}: write error: ${strerror(written)}\n`)
                status = 1
              }
            }
            input = ""
          } else if (last) {
            self.io.out(result.out)
          } else {
            input = result.out
          }
        }
        if (self.quitRequested) break
      }
      return status
    })
  }

  /** Pathname expansion of `*`, `?` and `[...]` against the simulated filesystem (a word with no match stays as it is, as in bash). */
  expand(word: string): Array<string> {
    if (!/[*?[]/.test(word)) return [word]
    const absolute = word.startsWith("/")
    const parts = word.split("/").filter((p) => p !== "")
    let paths = [absolute ? "/" : this.cwd]
    let shown = [absolute ? "/" : ""]
    for (const part of parts) {
      const nextPaths: Array<string> = []
      const nextShown: Array<string> = []
      const pattern = /[*?[]/.test(part) ? globPattern(part) : undefined
      paths.forEach((dir, i) => {
        const join = (base: string, name: string) => (base === "/" ? `/${name}` : base === "" ? name : `${base}/${name}`)
        if (pattern === undefined) {
          nextPaths.push(join(dir, part))
          nextShown.push(join(shown[i]!, part))
          return
        }
        const names = this.sim.sysfs.fs.ls(dir)
        if (typeof names === "number") return
        for (const n of [...names].sort()) {
          if (!pattern.test(n) || (n.startsWith(".") && !part.startsWith("."))) continue
          nextPaths.push(join(dir, n))
          nextShown.push(join(shown[i]!, n))
        }
      })
      paths = nextPaths
      shown = nextShown
    }
    const existing = shown.filter((_, i) => typeof this.sim.sysfs.fs.lstat(paths[i]!) !== "number")
    return existing.length > 0 ? existing : [word]
  }

  private runCommand(cmd: SimpleCommand, input: string | undefined): Effect.Effect<CommandResult> {
    const [verb, ...args] = cmd.argv.flatMap((w, i) => (i === 0 ? [w] : this.expand(w)))
    const fail = (message: string, status = 1): CommandResult => {
      this.io.err(`${message}\n`)
      return { out: "", status }
    }
    switch (verb) {
      case "ls":
        return Effect.sync(() => this.ls(args, fail))
      case "cat":
        return Effect.sync(() => this.cat(args, input, fail))
      case "echo": {
        const noNewline = args[0] === "-n"
        const words = noNewline ? args.slice(1) : args
        return Effect.succeed({ out: words.join(" ") + (noNewline ? "" : "\n"), status: 0 })
      }
      case "cd":
        return Effect.sync(() => {
          const target = this.absolute(args[0] ?? "/")
          const st = this.sim.sysfs.fs.stat(target)
          if (typeof st === "number") return fail(`kvmsim: cd: ${args[0]}: ${strerror(st)}`)
          if (st.kind !== "dir") return fail(`kvmsim: cd: ${args[0]}: Not a directory`)
          this.cwd = target
          return { out: "", status: 0 }
        })
      case "pwd":
        return Effect.succeed({ out: `${this.cwd}\n`, status: 0 })
      case "tree":
        return Effect.sync(() => this.tree(args, fail))
      case "head":
      case "tail":
        return Effect.sync(() => this.headTail(verb, args, input, fail))
      case "grep":
        return Effect.sync(() => this.grep(args, input, fail))
      case "boot":
        return this.boot(args, fail)
      case "run":
        return this.run(args, fail)
      case "info":
        return Effect.sync(() => this.info(args, fail))
      case "ps":
        return Effect.sync(() => this.ps())
      case "stat":
        return Effect.sync(() => {
          const vcpus = this.sim.vcpuSnapshots()
          return { out: formatStatTable(statRows(sumByReason(vcpus.map((v) => v.exitsByReason)), this.sim.virtualTimeNs())), status: 0 }
        })
      case "insmod":
        return this.insmod(args, fail)
      case "rmmod":
        return Effect.gen({ self: this }, function* () {
          if (args[0] === undefined) return fail("rmmod: ERROR: missing module name.")
          const name = args[0].replace(/\.ko$/, "")
          const r = yield* Effect.result(this.sim.host.modules.rmmod(name))
          if (r._tag === "Failure") return fail(`rmmod: ERROR: could not remove module ${name}: ${strerror(r.failure.errno)}`)
          return { out: "", status: 0 }
        })
      case "lsmod":
        return Effect.sync(() => ({
          out: `Module                  Size  Used by\n${this.sim.host.modules
            .lsmod()
            .map((l) => `${l.name.padEnd(19)} ${String(16384).padStart(8)}  ${l.used}${l.usedBy.length > 0 ? ` ${l.usedBy.join(",")}` : ""}`)
            .join("\n")}\n`,
          status: 0,
        }))
      case "trace":
        return Effect.sync(() => {
          const on = args[0]
          if (on !== "on" && on !== "off") return fail("trace: usage: trace on|off  (kvm_entry and kvm_exit; finer control: echo 1 > /sys/kernel/tracing/events/kvm/NAME/enable)", 2)
          for (const name of ["kvm_entry", "kvm_exit"]) {
            const r = this.sim.sysfs.fs.writeFile(`/sys/kernel/tracing/events/kvm/${name}/enable`, on === "on" ? "1\n" : "0\n")
            if (r < 0) return fail(`trace: ${name}: ${strerror(r)}`)
          }
          return { out: "", status: 0 }
        })
      case "help":
        return Effect.succeed({ out: helpText, status: 0 })
      case "quit":
      case "exit":
        return Effect.sync(() => {
          this.quitRequested = true
          this.quitStatus = args[0] === undefined ? 0 : Number(args[0]) & 0xff
          return { out: "", status: this.quitStatus }
        })
      default:
        return Effect.succeed(fail(`kvmsim: ${verb}: command not found`, 127))
    }
  }

  private ls(args: ReadonlyArray<string>, fail: (m: string, s?: number) => CommandResult): CommandResult {
    const long = args.includes("-l")
    const paths = args.filter((a) => !a.startsWith("-"))
    const targets = paths.length === 0 ? ["."] : paths
    let out = ""
    let status = 0
    for (const p of targets) {
      const abs = this.absolute(p)
      const st = this.sim.sysfs.fs.stat(abs)
      if (typeof st === "number") {
        fail(`ls: cannot access '${p}': ${strerror(st)}`)
        status = 2
        continue
      }
      if (st.kind !== "dir") {
        out += long ? `${this.longLine(abs, p)}\n` : `${p}\n`
        continue
      }
      const names = this.sim.sysfs.fs.ls(abs)
      if (typeof names === "number") {
        fail(`ls: cannot open directory '${p}': ${strerror(names)}`)
        status = 2
        continue
      }
      if (targets.length > 1) out += `${p}:\n`
      const sorted = [...names].sort()
      out += long ? sorted.map((n) => `${this.longLine(`${abs === "/" ? "" : abs}/${n}`, n)}\n`).join("") : sorted.map((n) => `${n}\n`).join("")
    }
    return { out, status }
  }

  private longLine(abs: string, name: string): string {
    const st = this.sim.sysfs.fs.lstat(abs)
    if (typeof st === "number") return name
    const type = st.kind === "dir" ? "d" : st.kind === "link" ? "l" : "-"
    const bits = "rwxrwxrwx".split("").map((c, i) => ((st.mode >> (8 - i)) & 1 ? c : "-")).join("")
    const target = st.kind === "link" ? ` -> ${this.sim.sysfs.fs.readlink(abs)}` : ""
    return `${type}${bits} ${st.nlink} root root ${String(st.size).padStart(5)} ${name}${target}`
  }

  private cat(args: ReadonlyArray<string>, input: string | undefined, fail: (m: string, s?: number) => CommandResult): CommandResult {
    if (args.length === 0) return { out: input ?? "", status: 0 }
    let out = ""
    let status = 0
    for (const p of args) {
      const text = this.sim.sysfs.fs.readFile(this.absolute(p))
      if (typeof text === "number") {
        fail(`cat: ${p}: ${strerror(text)}`)
        status = 1
      } else out += text
    }
    return { out, status }
  }

  private tree(args: ReadonlyArray<string>, fail: (m: string, s?: number) => CommandResult): CommandResult {
    const root = args.find((a) => !a.startsWith("-")) ?? "."
    const abs = this.absolute(root)
    const st = this.sim.sysfs.fs.stat(abs)
    if (typeof st === "number") return fail(`${root} [error opening dir]`, 2)
    let dirs = 0
    let files = 0
    const lines = [root]
    const walk = (path: string, prefix: string, depth: number): void => {
      const names = this.sim.sysfs.fs.ls(path)
      if (typeof names === "number" || depth > 12) return
      const sorted = [...names].sort()
      sorted.forEach((name, i) => {
        const child = `${path === "/" ? "" : path}/${name}`
        const lastChild = i === sorted.length - 1
        const ls = this.sim.sysfs.fs.lstat(child)
        const link = typeof ls !== "number" && ls.kind === "link"
        lines.push(`${prefix}${lastChild ? "└── " : "├── "}${name}${link ? ` -> ${this.sim.sysfs.fs.readlink(child)}` : ""}`)
        if (typeof ls !== "number" && ls.kind === "dir") {
          dirs++
          walk(child, `${prefix}${lastChild ? "    " : "│   "}`, depth + 1)
        } else files++
      })
    }
    if (st.kind === "dir") walk(abs, "", 0)
    lines.push("", `${dirs} director${dirs === 1 ? "y" : "ies"}, ${files} file${files === 1 ? "" : "s"}`)
    return { out: lines.join("\n") + "\n", status: 0 }
  }

  private headTail(verb: "head" | "tail", args: ReadonlyArray<string>, input: string | undefined, fail: (m: string, s?: number) => CommandResult): CommandResult {
    let count = 10
    const files: Array<string> = []
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!
      if (a === "-n") {
        count = Number(args[++i])
      } else if (/^-n?\d+$/.test(a)) count = Number(a.replace(/^-n?/, ""))
      else files.push(a)
    }
    if (!Number.isInteger(count) || count < 0) return fail(`${verb}: invalid number of lines`)
    const take = (text: string): string => {
      const lines = text.split("\n")
      if (lines.at(-1) === "") lines.pop()
      const kept = verb === "head" ? lines.slice(0, count) : lines.slice(Math.max(0, lines.length - count))
      return kept.length === 0 ? "" : kept.join("\n") + "\n"
    }
    if (files.length === 0) return { out: take(input ?? ""), status: 0 }
    let out = ""
    let status = 0
    for (const f of files) {
      const text = this.sim.sysfs.fs.readFile(this.absolute(f))
      if (typeof text === "number") {
        fail(`${verb}: cannot open '${f}' for reading: ${strerror(text)}`)
        status = 1
      } else out += (files.length > 1 ? `==> ${f} <==\n` : "") + take(text)
    }
    return { out, status }
  }

  private grep(args: ReadonlyArray<string>, input: string | undefined, fail: (m: string, s?: number) => CommandResult): CommandResult {
    const flags = new Set<string>()
    const rest: Array<string> = []
    for (const a of args) {
      if (/^-[vicnE]+$/.test(a) && rest.length === 0) for (const c of a.slice(1)) flags.add(c)
      else rest.push(a)
    }
    const [pattern, ...files] = rest
    if (pattern === undefined) return fail("Usage: grep [-vicnE] PATTERN [FILE]...", 2)
    let re: RegExp
    try {
      // Basic and extended regular expressions both map to JavaScript's (close enough for these files).
      re = new RegExp(pattern, flags.has("i") ? "i" : "")
    } catch {
      return fail(`grep: Invalid regular expression`, 2)
    }
    const sources: Array<[string, string]> = []
    let status = 0
    if (files.length === 0) sources.push(["(standard input)", input ?? ""])
    for (const f of files) {
      const text = this.sim.sysfs.fs.readFile(this.absolute(f))
      if (typeof text === "number") {
        fail(`grep: ${f}: ${strerror(text)}`)
        status = 2
      } else sources.push([f, text])
    }
    let out = ""
    let matched = 0
    for (const [name, text] of sources) {
      const lines = text.split("\n")
      if (lines.at(-1) === "") lines.pop()
      let n = 0
      lines.forEach((line, i) => {
        if (re.test(line) === flags.has("v")) return
        n++
        if (!flags.has("c")) out += `${files.length > 1 ? `${name}:` : ""}${flags.has("n") ? `${i + 1}:` : ""}${line}\n`
      })
      if (flags.has("c")) out += `${files.length > 1 ? `${name}:` : ""}${n}\n`
      matched += n
    }
    return { out, status: status !== 0 ? status : matched > 0 ? 0 : 1 }
  }

  private boot(args: ReadonlyArray<string>, fail: (m: string, s?: number) => CommandResult): Effect.Effect<CommandResult> {
    const self = this
    return Effect.gen(function* () {
      const parsed = parseBootArgs(args, self.defaults)
      if (typeof parsed === "string") return fail(`boot: ${parsed}`, 2)
      const options = yield* Effect.result(guestOptions(parsed.file, parsed.flags))
      if (options._tag === "Failure") return fail(`boot: ${options.failure.message}`, 2)
      if (self.sim.machine !== undefined && !self.sim.machine.closed) {
        if (!self.sim.finished) return fail("boot: a guest is running; `run` it to its end first", 1)
        self.sim.close()
      }
      self.lastOutcome = undefined
      const booted = yield* Effect.result(self.sim.boot(options.success))
      if (booted._tag === "Failure") return fail(`boot: ${booted.failure}`, 1)
      const m = self.sim.machine!
      return { out: `qemu-system-x86_64: pid ${m.process.pid}, ${options.success.vcpus} vCPU thread(s); guest ${parsed.file}${options.success.bare ? " (bare)" : ""}\n`, status: 0 }
    })
  }

  private run(args: ReadonlyArray<string>, fail: (m: string, s?: number) => CommandResult): Effect.Effect<CommandResult> {
    const self = this
    return Effect.gen(function* () {
      const sim = self.sim
      if (sim.machine === undefined) return fail("run: no guest (boot GUEST first)", 1)
      if (sim.machine.closed || sim.finished) return fail("run: the guest has ended (boot it again)", 1)
      let stop: (() => boolean) | undefined
      sim.exitWatcher = undefined
      sim.watchedExit = undefined
      if (args[0] === "until") {
        const event = args[1] ?? ""
        const watcher = exitWatcher(event)
        if (watcher === undefined) return fail(`run: unknown event '${event}' (exit, exit:REASON, hypercall, io, hlt, end)`, 2)
        if (watcher !== "end") {
          sim.exitWatcher = watcher
          stop = () => sim.watchedExit !== undefined
        }
      } else if (args[0] !== undefined) {
        const n = Number(args[0])
        if (!Number.isInteger(n) || n < 1) return fail(`run: '${args[0]}' is not a number of instructions`, 2)
        // Checked at every VM exit (and scheduling point): the run stops at the first exit after N instructions.
        const target = sim.steps() + n
        sim.exitWatcher = () => sim.steps() >= target
        stop = () => sim.watchedExit !== undefined || sim.steps() >= target
      }
      let lastConsoleChar = "\n"
      sim.onConsole((text) => {
        self.io.out(text)
        lastConsoleChar = text.at(-1) ?? lastConsoleChar
      })
      yield* sim.advance(stop)
      sim.exitWatcher = undefined
      let out = lastConsoleChar === "\n" ? "" : "\n"
      const w = sim.watchedExit as SimHost["watchedExit"]
      if (w !== undefined && args[0] === "until") {
        out += `stopped after VM exit ${w.reason} (${exitReasonName(w.reason & 0xffff) ?? "?"}) on vCPU ${w.vcpuId}\n`
      }
      if (sim.finished) {
        const outcome = classify(sim.end, sim.limitHit, sim.guest?.bare ?? false)
        self.lastOutcome = outcome
        out += `guest ended: ${outcome.detail}\n`
        return { out, status: outcome.code }
      }
      if (args[0] !== "until") out += `stopped after ${sim.steps()} instructions${w === undefined ? "" : ` at VM exit ${w.reason} (${exitReasonName(w.reason & 0xffff) ?? "?"}) on vCPU ${w.vcpuId}`}\n`
      return { out, status: 0 }
    })
  }

  private info(args: ReadonlyArray<string>, fail: (m: string, s?: number) => CommandResult): CommandResult {
    const what = args[0]
    const sim = this.sim
    const m = sim.machine
    if (m === undefined || m.closed) return fail("info: no guest running", 1)
    const pick = args[1] === undefined ? undefined : Number(args[1])
    if (what === "cpus") {
      return { out: m.vcpus.map((v, i) => (v === undefined ? "" : `${i === 0 ? "*" : " "} CPU #${i}: thread_id=${m.threads[i]?.task.pid ?? v.pid}${v.halted ? " (halted)" : ""}\n`)).join(""), status: 0 }
    }
    if (what === "registers") {
      let out = ""
      for (const s of sim.vcpuSnapshots()) {
        if (pick !== undefined && s.id !== pick) continue
        const r = s.regs
        out +=
          `CPU#${s.id}\n` +
          `RAX=${hex16(r?.rax)} RBX=${hex16(r?.rbx)} RCX=${hex16(r?.rcx)} RDX=${hex16(r?.rdx)}\n` +
          `RSI=${hex16(r?.rsi)} RDI=${hex16(r?.rdi)} RBP=${hex16(r?.rbp)} RSP=${hex16(r?.rsp)}\n` +
          `R8 =${hex16(r?.r8)} R9 =${hex16(r?.r9)} R10=${hex16(r?.r10)} R11=${hex16(r?.r11)}\n` +
          `R12=${hex16(r?.r12)} R13=${hex16(r?.r13)} R14=${hex16(r?.r14)} R15=${hex16(r?.r15)}\n` +
          `RIP=${hex16(r?.rip)} RFL=${BigInt.asUintN(64, r?.rflags ?? 0n).toString(16).padStart(8, "0")}\n` +
          `CR0=${BigInt.asUintN(64, s.cr0 ?? 0n).toString(16).padStart(8, "0")} CR3=${hex16(s.cr3)} CR4=${BigInt.asUintN(64, s.cr4 ?? 0n).toString(16).padStart(8, "0")}\n`
      }
      return { out, status: 0 }
    }
    if (what === "vmcs") {
      const id = pick ?? 0
      const vcpu = m.vcpus[id]
      if (vcpu === undefined) return fail(`info vmcs: no vCPU ${id}`, 1)
      if (vcpu.loadedCpu < 0) return fail(`info vmcs: vCPU ${id}'s VMCS is not loaded on any CPU`, 1)
      const lp = sim.kvm.lp(vcpu.loadedCpu)
      if (lp.currentVmcsPointer !== vcpu.vmcs) return fail(`info vmcs: vCPU ${id}'s VMCS is not current on CPU ${vcpu.loadedCpu}; read it through /sys/kernel/vmcsctl`, 1)
      let out = `VMCS 0x${vcpu.vmcs.toString(16)} of vCPU ${id} (pid ${vcpu.pid}), current on CPU ${vcpu.loadedCpu}\n`
      for (const [name, encoding] of Object.entries(VmcsField)) {
        if (lp.vmread(encoding) !== VmxStatus.Succeed) continue
        out += `${name.padEnd(40)} 0x${lp.value.toString(16)}\n`
      }
      return { out, status: 0 }
    }
    return fail("info: usage: info registers [N] | cpus | vmcs [N]", 2)
  }

  private ps(): CommandResult {
    const tasks = this.sim.host.tasks.list().filter((t) => t.state !== "exited")
    const lines = ["  PID   LWP S CMD"]
    for (const t of tasks.sort((a, b) => a.tgid - b.tgid || a.pid - b.pid)) {
      const state = t.state === "running" ? "R" : t.state === "blocked" ? "S" : "R"
      lines.push(`${String(t.tgid).padStart(5)} ${String(t.pid).padStart(5)} ${state} ${t.comm}`)
    }
    return { out: lines.join("\n") + "\n", status: 0 }
  }

  private insmod(args: ReadonlyArray<string>, fail: (m: string, s?: number) => CommandResult): Effect.Effect<CommandResult> {
    const self = this
    return Effect.gen(function* () {
      const file = args[0]
      if (file === undefined) return fail("insmod: ERROR: missing filename.", 1)
      const params: Record<string, string> = {}
      for (const p of args.slice(1)) {
        const eq = p.indexOf("=")
        params[eq < 0 ? p : p.slice(0, eq)] = eq < 0 ? "" : p.slice(eq + 1)
      }
      const name = file.replace(/^.*\//, "").replace(/\.ko$/, "")
      const sim = self.sim
      const builtin = name === "vmcsctl" ? vmcsctlForKvm(sim.sysfs, sim.kvm) : name === "vmcs" || name === "vmcs_sysfs" ? legacyVmcsForKvm(sim.sysfs, sim.kvm) : undefined
      if (builtin !== undefined) {
        const r = yield* Effect.result(sim.host.modules.insmod(builtin, params))
        if (r._tag === "Failure") return fail(`insmod: ERROR: could not insert module ${file}: ${strerror(r.failure.errno)}`)
        return { out: "", status: 0 }
      }
      if (/\.(ts|mts|js|mjs)$/.test(file)) {
        const r = yield* Effect.result(loadUserModule(sim, file, params))
        if (r._tag === "Failure") return fail(`insmod: ERROR: could not insert module ${file}: ${r.failure.message}`)
        return { out: "", status: 0 }
      }
      return fail(`insmod: ERROR: could not load module ${file}: No such file or directory (built in: vmcsctl.ko, vmcs.ko; or a module FILE.ts)`)
    })
  }
}

const globPattern = (part: string): RegExp =>
  new RegExp(
    `^${part
      .split("")
      .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c === "[" || c === "]" ? c : c.replace(/[.+^${}()|\\]/g, "\\$&")))
      .join("")}$`,
  )

const exitWatcher = (event: string): ((reason: number, vcpuId: number) => boolean) | "end" | undefined => {
  const e = event.toLowerCase()
  if (e === "end") return "end"
  if (e === "exit") return () => true
  if (e === "hypercall" || e === "vmcall") return (r) => (r & 0xffff) === ExitReason.VMCALL
  if (e === "io") return (r) => (r & 0xffff) === ExitReason.IO_INSTRUCTION
  if (e === "hlt") return (r) => (r & 0xffff) === ExitReason.HLT
  const m = /^exit:(\w+)$/.exec(event)
  if (m !== null) {
    const name = m[1]!.toUpperCase()
    const number = /^\d+$/.test(name) ? Number(name) : (ExitReason as Record<string, number>)[name]
    if (number === undefined) return undefined
    return (r) => (r & 0xffff) === number
  }
  return undefined
}

/** `boot GUEST [--vcpus N] [--mem S] [--bare] [--load-addr A] [-D X=Y] [--max-steps N] [--max-exits N] [--inject F=V@exit:N]`. */
export const parseBootArgs = (args: ReadonlyArray<string>, defaults: GuestFlagValues): { file: string; flags: GuestFlagValues } | string => {
  let file: string | undefined
  const f = { ...defaults, define: [...defaults.define], inject: [...defaults.inject] }
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    const value = (): string | undefined => args[++i]
    const [name, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined]
    const take = (): string | undefined => inline ?? value()
    switch (name) {
      case "--vcpus": {
        const v = take()
        if (v === undefined || !/^\d+$/.test(v)) return `--vcpus needs a number`
        f.vcpus = Number(v)
        break
      }
      case "--mem": {
        const v = take()
        if (v === undefined) return "--mem needs a size"
        f.mem = v
        break
      }
      case "--bare":
        f.bare = true
        break
      case "--load-addr": {
        const v = take()
        if (v === undefined) return "--load-addr needs an address"
        f.loadAddr = Option.some(v)
        break
      }
      case "-D":
      case "--define": {
        const v = take()
        if (v === undefined) return "-D needs NAME=VALUE"
        f.define.push(v)
        break
      }
      case "--max-steps":
      case "--max-exits": {
        const v = take()
        if (v === undefined || !/^\d+$/.test(v)) return `${name} needs a number`
        if (name === "--max-steps") f.maxSteps = Option.some(Number(v))
        else f.maxExits = Option.some(Number(v))
        break
      }
      case "--inject": {
        const v = take()
        if (v === undefined) return "--inject needs FIELD=VALUE@exit:N"
        f.inject.push(v)
        break
      }
      default:
        if (a.startsWith("-D") && a.length > 2) f.define.push(a.slice(2))
        else if (a.startsWith("-")) return `unknown option '${a}'`
        else if (file === undefined) file = a
        else return `unexpected argument '${a}'`
    }
  }
  if (file === undefined) return "usage: boot GUEST [--vcpus N] [--mem SIZE] [--bare] [--load-addr ADDR] [-D NAME=VALUE] [--max-steps N] [--max-exits N] [--inject FIELD=VALUE@exit:N]"
  return { file, flags: f }
}

export const helpText = `Filesystem (the simulated host's /sys, /proc, /sys/kernel/tracing, /sys/kernel/debug):
  ls [-l] [PATH]   cat FILE...   echo [-n] TEXT [> FILE]   cd DIR   pwd   tree [DIR]
  head|tail [-n N] [FILE]   grep [-vicn] PATTERN [FILE...]   CMD | CMD   CMD > FILE   CMD >> FILE
Monitor:
  boot GUEST [--vcpus N] [--mem SIZE] [--bare] [-D NAME=VALUE] [--inject FIELD=VALUE@exit:N] ...
  run [N]                 run to the end, or until the first VM exit after N more guest instructions
  run until EVENT         exit, exit:REASON (exit:HLT, exit:12), hypercall, io, hlt, end
  info registers [N] | cpus | vmcs [N]
  ps   stat   lsmod   insmod vmcsctl.ko [unsafe_writes=Y] | vmcs.ko | FILE.ts   rmmod NAME
  trace on|off            kvm_entry and kvm_exit tracepoints
  quit [STATUS]
`
