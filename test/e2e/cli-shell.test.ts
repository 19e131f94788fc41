// `kvmsim shell` without a terminal (scripts on stdin, -c) and with one (a tmux session): the
// prompt, completion and history; NO_COLOR; bash-like errors; stop at the first failing command.
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { kvmsim, repoRoot } from "./cli-support.ts"

describe("kvmsim shell without a terminal", () => {
  it("runs a script: filesystem verbs, pipes, redirections, globs; no prompt and no colour", () => {
    const script = [
      "cd /sys/kernel/tracing",
      "pwd",
      "echo 1 > events/kvm/kvm_exit/enable",
      "cat events/kvm/kvm_exit/enable",
      "boot examples/fault-injection.asm --bare",
      "run until exit:IO_INSTRUCTION",
      "info cpus",
      "grep -c kvm_exit trace",
      "ls /sys/kernel/debug/kvm | head -n 3",
      "echo hello | grep hell",
      "info registers 0 | grep RIP",
      "run",
      "stat | head -2",
    ].join("\n")
    const r = kvmsim(["shell"], { input: script })
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout).not.toContain("root@kvmsim")
    expect(r.stdout).not.toContain("\x1b[")
    const lines = r.stdout.split("\n")
    expect(lines[0]).toBe("/sys/kernel/tracing")
    expect(lines[1]).toBe("1")
    expect(r.stdout).toContain("t\nstopped after VM exit 30 (IO_INSTRUCTION) on vCPU 0\n")
    expect(r.stdout).toContain("* CPU #0: thread_id=12398\n")
    expect(r.stdout).toContain("\n1\n") // one kvm_exit line in the trace so far
    expect(r.stdout).toContain("hello\n")
    expect(r.stdout).toMatch(/RIP=00000000001000[0-9a-f]{2} RFL=/)
    expect(r.stdout).toContain("ick\ntick\n")
    expect(r.stdout).toMatch(/ kvm_exit\(IO_INSTRUCTION\)\s+50/)
  })

  it("stops at the first failing command with its status; errors read like bash's", () => {
    const r = kvmsim(["shell"], { input: "insmod vmcsctl.ko\nboot examples/fault-injection.asm --bare\nrun until io\necho 5 > /sys/kernel/vmcsctl/vmcs12398/VM_EXIT_REASON\necho never\n" })
    expect(r.status).toBe(1)
    expect(r.stderr).toBe("kvmsim: /sys/kernel/vmcsctl/vmcs12398/VM_EXIT_REASON: Permission denied\n")
    expect(r.stdout).not.toContain("never")
    const w = kvmsim(["shell", "-c", "insmod vmcsctl.ko; boot examples/fault-injection.asm --bare; run until io; echo nonsense > /sys/kernel/vmcsctl/vmcs12398/GUEST_RIP"])
    expect(w).toMatchObject({ status: 1, stderr: "kvmsim: echo: write error: Invalid argument\n" })
    expect(kvmsim(["shell", "-c", "cat /sys/nope"])).toMatchObject({ status: 1, stderr: "cat: /sys/nope: No such file or directory\n" })
    expect(kvmsim(["shell", "-c", "frobnicate"])).toMatchObject({ status: 127, stderr: "kvmsim: frobnicate: command not found\n" })
    // A guest that ends badly ends the script with run's exit status (3: guest fault).
    expect(kvmsim(["shell", "-c", "boot examples/fault-injection.asm --bare --inject GUEST_CR0=0x20@exit:3; run; echo after"]).status).toBe(3)
    expect(kvmsim(["shell", "-c", "quit 7"]).status).toBe(7)
  })

  it("tree, tail, info vmcs, trace on|off, run N, help", () => {
    const r = kvmsim(["shell", "--events", "kvm_hypercall"], {
      input: [
        "tree /sys/kernel/tracing/events/kvm/kvm_exit",
        "trace on",
        "cat /sys/kernel/tracing/events/kvm/kvm_entry/enable",
        "boot examples/vcpu-info.asm --vcpus 1",
        "run until exit",
        "run 20",
        "info vmcs 0 | grep -E '^(VM_EXIT_REASON|GUEST_RIP) '",
        "trace off",
        "cat /sys/kernel/tracing/events/kvm/kvm_exit/enable",
        "run",
        "tail -n 1 /sys/kernel/tracing/trace",
        "help | head -1",
      ].join("\n"),
    })
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("/sys/kernel/tracing/events/kvm/kvm_exit\n├── enable\n")
    expect(r.stdout).toMatch(/\d+ directories, \d+ files\n1\n/)
    expect(r.stdout).toMatch(/stopped after \d+ instructions at VM exit \d+ \(\w+\) on vCPU 0\n/)
    expect(r.stdout).toMatch(/^GUEST_RIP\s+0x[0-9a-f]+$/m)
    expect(r.stdout).toMatch(/^VM_EXIT_REASON\s+0x[0-9a-f]+$/m)
    expect(r.stdout).toContain("system call sys_vcpu_info result 0\nguest ended: the guest exited with status 0\n")
    expect(r.stdout).toMatch(/kvm_emulate_hypercall: exits by reason: .*\nFilesystem/)
  })

  it("insmod and rmmod of a user module; lsmod; ps lists the vCPU threads", () => {
    const r = kvmsim(["shell", "-c", "insmod examples/hypercall-module.ts; lsmod | grep my_hypercalls; cat /sys/kernel/my_hypercalls/calls; boot --bare examples/hypercall.asm; run; cat /sys/kernel/my_hypercalls/calls; ps | grep -c qemu; rmmod my_hypercalls; ls /sys/kernel/my_hypercalls"])
    expect(r.stdout).toMatch(/^my_hypercalls\s/m)
    expect(r.stdout).toContain("0\n")
    // The module counted the guest's one call; after the guest ended QEMU's main and RCU threads remain.
    expect(r.stdout).toContain("guest ended: the guest exited with status 0\n1\n2\n")
    expect(r.stderr).toBe("ls: cannot access '/sys/kernel/my_hypercalls': No such file or directory\n")
    expect(r.status).toBe(2)
  })
})

const tmux = spawnSync("tmux", ["-V"]).status === 0

describe("kvmsim shell on a terminal (tmux)", () => {
  // .ci/run installs tmux; without it this test fails and says so instead of passing silently.
  it("prompt, Tab completion of paths and verbs, history with the Up key, colour unless NO_COLOR; run's progress bar", async () => {
    expect(tmux, "tmux is needed to drive a terminal session: apt-get install tmux").toBe(true)
    const socket = `kvmsim-e2e-${process.pid}`
    const session = "colour"
    const plain = "plain"
    const bin = fileURLToPath(new URL("../../bin/kvmsim.mjs", import.meta.url))
    // A private tmux server (-L), so nothing touches the user's own sessions.
    const t = (...args: Array<string>) => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })
    const screen = (name = session) => t("capture-pane", "-p", "-t", name)
    const waitFor = async (text: string | RegExp, name = session) => {
      for (let i = 0; i < 600; i++) {
        const s = screen(name)
        if (typeof text === "string" ? s.includes(text) : text.test(s)) return s
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error(`timed out waiting for ${String(text)}; screen:\n${screen(name)}`)
    }
    try {
      t("new-session", "-d", "-s", session, "-x", "160", "-y", "50", "-c", repoRoot, `env -u NO_COLOR TERM=xterm-256color ${process.execPath} ${bin} shell; sleep 60`)
      t("new-session", "-d", "-s", plain, "-x", "120", "-y", "20", "-c", repoRoot, `env NO_COLOR=1 TERM=xterm-256color ${process.execPath} ${bin} shell; sleep 60`)
      await waitFor("root@kvmsim:/#") // capture-pane drops trailing spaces
      expect(t("capture-pane", "-p", "-e", "-t", session)).toContain("\x1b[")
      // Completion of a verb and of path components. Each Tab is sent once the typed text is on
      // the screen: readline treats a Tab arriving in the same chunk as other keys as pasted text.
      const typeThenTab = async (text: string, completed: RegExp) => {
        t("send-keys", "-t", session, "-l", text)
        await waitFor(new RegExp(`${text.replace(/[/.]/g, "\\$&")}$`, "m"))
        t("send-keys", "-t", session, "Tab")
        await waitFor(completed)
      }
      await typeThenTab("ec", /# echo ?$/m) // capture-pane drops the trailing space
      t("send-keys", "-t", session, "-l", "hi")
      t("send-keys", "-t", session, "Enter")
      await waitFor(/^hi$/m)
      await typeThenTab("cd /sys/kern", /# cd \/sys\/kernel\/$/m)
      await typeThenTab("trac", /# cd \/sys\/kernel\/tracing\/$/m)
      t("send-keys", "-t", session, "Enter")
      await waitFor("root@kvmsim:/sys/kernel/tracing#")
      // History: Up brings back the last line.
      t("send-keys", "-t", session, "-l", "pwd")
      t("send-keys", "-t", session, "Enter")
      await waitFor(/^\/sys\/kernel\/tracing$/m)
      t("send-keys", "-t", session, "Up")
      t("send-keys", "-t", session, "Enter")
      await waitFor(/# pwd\n\/sys\/kernel\/tracing\n.*# pwd\n\/sys\/kernel\/tracing\n/)
      // A long run shows a progress bar on the terminal's stderr (and erases it at the end).
      const spin = join(mkdtempSync(join(tmpdir(), "kvmsim-progress-")), "spin.asm")
      writeFileSync(spin, "BITS 64\nORG 0x100000\n.l: jmp .l\n")
      t("new-session", "-d", "-s", "progress", "-x", "150", "-y", "10", "-c", repoRoot, `${process.execPath} ${bin} run --bare ${spin} --max-steps 80000000; sleep 60`)
      await waitFor(/\[[#-]{24}\] \d+% [\d,]+ instructions, \d+ exits, [\d.]+ ms virtual/, "progress")
      await waitFor("kvmsim: the step limit (80000000) was reached", "progress")
      // NO_COLOR: the same prompt without escape sequences.
      await waitFor("root@kvmsim:/#", plain)
      const raw = t("capture-pane", "-p", "-e", "-t", plain)
      expect(raw).toContain("root@kvmsim:/#")
      expect(raw).not.toContain("\x1b[1;31m")
    } finally {
      spawnSync("tmux", ["-L", socket, "kill-server"])
    }
  }, 120_000)
})
