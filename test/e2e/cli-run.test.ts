// `kvmsim run` end to end, spawned as a user runs it: every option, the JSON document against its
// schema, and every exit status.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { assemble } from "../../src/guest/asm/index.ts"
import { decodeRunDocument } from "../../src/cli/report/run-document.ts"
import { kvmsim } from "./cli-support.ts"

const dir = mkdtempSync(join(tmpdir(), "kvmsim-cli-run-"))
const file = (name: string, text: string | Uint8Array): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const user = (name: string, body: string) => file(name, `BITS 64\nORG 0x400000\n${body}\n`)
const bare = (name: string, body: string, org = "0x100000") => file(name, `BITS 64\nORG ${org}\n${body}\n`)

const exit3 = user("exit3.asm", "mov edi, 3\nmov eax, 60\nsyscall")
const segv = user("segv.asm", "xor eax, eax\nmov rax, [rax]")
const spin = bare("spin.asm", ".l: jmp .l")
const tripleFault = bare("triple.asm", "ud2")
const defines = bare("defines.asm", "mov al, STATUS\nout 0xf4, al\ncli\nhlt")
const loop = bare("loop.asm", "mov ecx, 50\n.l: mov al, 0x2e\nout 0xe9, al\nloop .l\ncli\nhlt")

describe("kvmsim run", () => {
  it("the README's first command: console on stdout, then the trace with one block per vCPU", () => {
    const r = kvmsim(["run", "examples/vcpu-info.asm", "--vcpus", "4", "--trace"])
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    expect(r.stdout.startsWith("system call sys_vcpu_info result 0\n# tracer: nop\n")).toBe(true)
    const ids = [...r.stdout.matchAll(/kvm_emulate_hypercall: vcpu id: (\d+)$/gm)].map((m) => Number(m[1]))
    expect(ids).toEqual([0, 1, 2, 3])
    const pids = [...r.stdout.matchAll(/kvm_emulate_hypercall: pid: (\d+)$/gm)].map((m) => Number(m[1]))
    expect(new Set(pids).size).toBe(4)
  })

  it("--json: one document that conforms to the schema; registers as 0x strings; trace only with --trace", () => {
    const r = kvmsim(["run", "examples/vcpu-info.asm", "--vcpus", "2", "--profile", "linux-6.x", "--json"])
    expect(r.status).toBe(0)
    const doc = decodeRunDocument(JSON.parse(r.stdout))
    expect(doc.exit).toEqual({ reason: "exit", code: 0, detail: "the guest exited with status 0", guestStatus: 0 })
    expect(doc.console).toBe("system call sys_vcpu_info result 0\n")
    expect(doc.vcpus.map((v) => v.comm)).toEqual(["CPU 0/KVM", "CPU 1/KVM"])
    expect(doc.vcpus[1]!.exits.byReason["HLT"]).toBeGreaterThanOrEqual(1)
    for (const v of doc.vcpus) expect(v.exits.total).toBe(Object.values(v.exits.byReason).reduce((s, n) => s + n, 0))
    expect(doc.steps).toBeGreaterThan(0)
    expect(doc.trace).toBeUndefined()
    const withTrace = decodeRunDocument(JSON.parse(kvmsim(["run", "examples/vcpu-info.asm", "--json", "--trace"]).stdout))
    expect(withTrace.trace).toContain("kvm_emulate_hypercall: vcpu id: 0")
  })

  it("exit 1: the guest's exit status was non-zero", () => {
    const r = kvmsim(["run", exit3])
    expect(r.status).toBe(1)
    expect(r.stderr).toBe("kvmsim: the guest exited with status 3\n")
    const doc = decodeRunDocument(JSON.parse(kvmsim(["run", exit3, "--json"]).stdout))
    expect(doc.exit).toMatchObject({ reason: "exit", code: 1, guestStatus: 3 })
  })

  it("exit 2: usage errors (missing file, bad option values, unknown option, assembly errors)", () => {
    expect(kvmsim(["run", join(dir, "nope.asm")])).toMatchObject({ status: 2, stderr: `kvmsim run: ${join(dir, "nope.asm")}: No such file or directory\n` })
    expect(kvmsim(["run", exit3, "--mem", "lots"]).stderr).toContain("--mem: 'lots' is not a size")
    expect(kvmsim(["run", exit3, "--vcpus", "0"]).status).toBe(2)
    expect(kvmsim(["run", exit3, "--inject", "NOT_A_FIELD=1@exit:1"]).stderr).toContain("unknown VMCS field 'NOT_A_FIELD'")
    expect(kvmsim(["run", exit3, "--events", "kvm_nope"]).stderr).toContain("unknown event 'kvm_nope'")
    expect(kvmsim(["run", exit3, "--frobnicate"]).status).toBe(2)
    const bad = kvmsim(["run", user("bad.asm", "movz eax, 1")])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain("bad.asm:3")
  })

  it("exit 3: a killed user program, a triple fault", () => {
    const r = kvmsim(["run", segv])
    expect(r.status).toBe(3)
    expect(r.stdout).toMatch(/^segv\[1\]: segfault at 0 ip 0000000000400002 /)
    expect(r.stderr).toBe("kvmsim: the user program was killed by SIGSEGV (exit status 139)\n")
    const t = kvmsim(["run", "--bare", tripleFault, "--json"])
    expect(t.status).toBe(3)
    expect(decodeRunDocument(JSON.parse(t.stdout)).exit.reason).toBe("triple-fault")
  })

  it("exit 4: --max-exits and --max-steps", () => {
    const e = decodeRunDocument(JSON.parse(kvmsim(["run", "--bare", loop, "--max-exits", "5", "--json"]).stdout))
    expect(e.exit).toMatchObject({ reason: "exit-limit", code: 4 })
    expect(e.console).toBe(".....")
    expect(e.vcpus[0]!.exits.total).toBe(5)
    const s = kvmsim(["run", "--bare", spin, "--max-steps", "1000"])
    expect(s.status).toBe(4)
    expect(s.stderr).toBe("kvmsim: the step limit (1000) was reached\n")
  })

  it("-D defines, --load-addr for a flat binary, --mem, --seed determinism", () => {
    expect(kvmsim(["run", "--bare", defines, "-D", "STATUS=0"]).status).toBe(0)
    const five = kvmsim(["run", "--bare", defines, "-DSTATUS=5", "--json"])
    expect(decodeRunDocument(JSON.parse(five.stdout)).exit).toMatchObject({ code: 1, guestStatus: 5 })
    const bin = file("moved.bin", assemble("BITS 64\nORG 0x300000\nlea rax, [rel $]\nmov dx, 0xf4\nout dx, al\n").bytes)
    const moved = decodeRunDocument(JSON.parse(kvmsim(["run", "--bare", bin, "--load-addr", "0x300000", "--mem", "8M", "--json"]).stdout))
    // isa-debug-exit got the low byte of the code's own address: 0x300000 & 0xff = 0.
    expect(moved.exit).toMatchObject({ code: 0, guestStatus: 0 })
    const a = kvmsim(["run", "examples/vcpu-info.asm", "--vcpus", "3", "--seed", "7", "--events", "kvm_exit,kvm_entry", "--trace"])
    const b = kvmsim(["run", "examples/vcpu-info.asm", "--vcpus", "3", "--seed", "7", "--events", "kvm_exit,kvm_entry", "--trace"])
    expect(a.stdout).toBe(b.stdout)
    expect(a.stdout).toContain("kvm_exit: reason")
  })

  it("--inject writes a VMCS field before the entry after the Nth exit; --trace-out, trace show and report read the file", () => {
    const out = join(dir, "trace.txt")
    // loop.asm: mov ecx (5 bytes), mov al (2), out (2), loop (2): `cli` is at 0x10000b.
    const r = kvmsim(["run", "--bare", loop, "--inject", "GUEST_RIP=0x10000b@exit:2", "--events", "kvm_exit,kvm_entry", "--trace-out", out, "--json"])
    const doc = decodeRunDocument(JSON.parse(r.stdout))
    // After the 2nd OUT the guest resumes at `cli; hlt`: two characters, then the end.
    expect(doc.console).toBe("..")
    expect(doc.exit.code).toBe(0)
    expect(doc.injections).toEqual([{ field: "GUEST_RIP", value: "0x10000b", atExit: 2, vcpu: 0, vmInstructionError: 0 }])
    const trace = readFileSync(out, "utf8")
    expect(trace.match(/kvm_exit: reason IO_INSTRUCTION/g)).toHaveLength(2)
    const shown = kvmsim(["trace", "show", out, "--vcpu", "0", "--event", "kvm_exit"])
    expect(shown.status).toBe(0)
    expect(shown.stdout.split("\n").filter((l) => l.includes("kvm_exit:"))).toHaveLength(3)
    expect(kvmsim(["trace", "show", out, "--cpu", "99"]).stdout).not.toContain("kvm_exit:")
    const report = kvmsim(["trace", "report"], { input: trace })
    expect(report.stdout).toMatch(/^IO_INSTRUCTION\s+2\s+66\.7$/m)
    expect(report.stdout).toMatch(/^HLT\s+1\s+33\.3$/m)
    expect(report.stdout).toMatch(/^kvm_entry\s+3\s+50\.0$/m)
  })

  it("--stat and kvmsim stat (-1, --json): kvm_stat's per-exit-reason counts", () => {
    const r = kvmsim(["run", "--bare", loop, "--stat"])
    expect(r.stdout).toMatch(/^ Event\s+Total %Total CurAvg\/s$/m)
    expect(r.stdout).toMatch(/^ kvm_exit\(IO_INSTRUCTION\)\s+50\s+98\.0\s+\d+$/m)
    const once = kvmsim(["stat", "-1", "--bare", loop])
    expect(once.stdout.split("\n")[0]).toMatch(/^kvm_exit\(IO_INSTRUCTION\) {18}\s+50\s+\d+$/)
    const json = JSON.parse(kvmsim(["stat", "--json", "--bare", loop]).stdout) as Record<string, { total: number }>
    expect(json["kvm_exit(HLT)"]!.total).toBe(1)
    expect(json["kvm_exit(IO_INSTRUCTION)"]!.total).toBe(50)
  })

  it("--help lists the options and the exit statuses", () => {
    const top = kvmsim(["--help"])
    expect(top.status).toBe(0)
    for (const code of ["0  the guest finished normally", "1  the guest's exit status", "2  usage error", "3  guest fault", "4  a step or exit limit"]) expect(top.stdout).toContain(code)
    const run = kvmsim(["run", "--help"]).stdout
    for (const option of ["--vcpus", "--mem", "--define", "--profile", "--seed", "--max-steps", "--max-exits", "--trace", "--trace-out", "--events", "--module", "--inject", "--stat", "--json", "--bare", "--load-addr"]) {
      expect(run).toContain(option)
    }
  })
})

describe("kvmsim check vmcs-lifecycle", () => {
  it("runs the model-based property and says how many lifecycles agreed; bad --runs is a usage error", () => {
    const r = kvmsim(["check", "vmcs-lifecycle", "--runs", "200", "--seed", "5"])
    expect(r).toMatchObject({ status: 0, stdout: "vmcs-lifecycle: OK, 200 lifecycles (seed 5): every VMX instruction's status, VM-instruction error and VMREAD value agreed with the SDM model\n" })
    expect(kvmsim(["check", "vmcs-lifecycle", "--runs", "0"]).status).toBe(2)
  })
})
