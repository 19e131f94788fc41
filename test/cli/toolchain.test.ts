import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { beforeAll, describe, expect, it } from "vitest"
import { gcc } from "../guest/c/gcc.ts"

// The command as users run it: `node bin/kvmsim.mjs …` in a child process.
const repo = fileURLToPath(new URL("../..", import.meta.url))
const bench = fileURLToPath(new URL("../../../shared/bench", import.meta.url))
type Run = { status: number | null; stdout: string; stderr: string }
const run = (args: ReadonlyArray<string>): Promise<Run> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(repo, "bin/kvmsim.mjs"), ...args], { encoding: "utf8", cwd: repo }, (error, stdout, stderr) => {
      resolve({ status: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr })
    })
  })
const work = mkdtempSync(join(tmpdir(), "kvmsim-cli-"))

// Every invocation starts at once (each is a separate Node process); the tests read the results.
const invocations = new Map<string, Promise<Run>>()
const kvmsim = (...args: Array<string>): Promise<Run> => {
  const key = args.join("\0")
  let p = invocations.get(key)
  if (p === undefined) {
    p = run(args)
    invocations.set(key, p)
  }
  return p
}

// nasm -f bin output (NASM 2.16.01), as in test/guest/asm/bench-programs.test.ts.
const loopNasm = "4885ff7505bf00e1f5054889f931c0bb45230100ba5a5a000031f64801c84831c24829d348ffc648ffc975ef4831d84831d04801f0f4"
const outN5Nasm = "4885ff7505bf050000004989fcbae90000004489e1b80b00000089cbee49ffcc75f0f4"

const hypercallCopy = join(work, "hypercall.asm")
const badSource = join(work, "bad.asm")
const flatBinary = join(work, "out5.bin")
let elfPath = ""
const allInvocations = (): Array<Array<string>> => [
  ["asm", join(bench, "loop.asm"), "-o", join(work, "loop.bin")],
  ["asm", hypercallCopy, "-DEXIT_OUT", "-D", "N=5", "--listing"],
  ["asm", badSource, "-o", join(work, "bad.bin")],
  ["asm"],
  ["asm", join(work, "missing.asm")],
  ["disasm", flatBinary, "--org", "0x1000"],
  ["disasm", flatBinary, "--syntax", "att"],
  ["disasm", elfPath],
  ["disasm", "x.bin", "--syntax", "gas"],
  ["disasm", "x.bin", "--org", "zz"],
  ["--help"],
]

beforeAll(() => {
  writeFileSync(hypercallCopy, readFileSync(join(bench, "hypercall.asm")))
  writeFileSync(badSource, "BITS 64\n  mov rax, rbx, rcx\n")
  writeFileSync(flatBinary, Buffer.from(outN5Nasm, "hex"))
  elfPath = gcc(`#include "kvmsim.h"\nvoid _start(void) { outb(0xe9, 'A'); for (;;) hlt(); }\n`).path
  for (const args of allInvocations()) void kvmsim(...args)
})

describe("kvmsim asm", () => {
  it("writes NASM's bytes to -o OUT and exits 0", async () => {
    const out = join(work, "loop.bin")
    const r = await kvmsim("asm", join(bench, "loop.asm"), "-o", out)
    expect(r).toMatchObject({ status: 0, stderr: "" })
    expect(readFileSync(out).toString("hex")).toBe(loopNasm)
  })

  it("takes -D NAME=VALUE and nasm's -DNAME, prints --listing, and names the output like nasm", async () => {
    const r = await kvmsim("asm", hypercallCopy, "-DEXIT_OUT", "-D", "N=5", "--listing")
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("    30 0000001C EE                              out     dx, al")
    expect(readFileSync(join(work, "hypercall")).toString("hex")).toBe(outN5Nasm)
  })

  it("reports an assembly error with file:line:column, the line and what was expected; exit 1", async () => {
    const src = badSource
    const r = await kvmsim("asm", src, "-o", join(work, "bad.bin"))
    expect(r.status).toBe(1)
    expect(r.stderr).toBe(`${src}:2:3: error: invalid operands for \`mov\` (r64, r64, r64)\n    mov rax, rbx, rcx\n    ^\nexpected r/m, reg | reg, r/m | reg, imm | r/m, imm | sreg/creg/dreg forms\n`)
    expect(existsSync(join(work, "bad.bin"))).toBe(false)
  })

  it("says which file it cannot read; exit 1", async () => {
    const r = await kvmsim("asm", join(work, "missing.asm"))
    expect(r).toMatchObject({ status: 1, stderr: `kvmsim: ${join(work, "missing.asm")}: no such file or directory\n` })
  })

  it("prints usage and exits 2 on a usage error", async () => {
    const r = await kvmsim("asm")
    expect(r.status).toBe(2)
    expect(r.stdout).toContain("kvmsim asm [flags] <FILE>")
    expect(r.stderr).toContain("Missing required argument: FILE")
  })
})

describe("kvmsim disasm", () => {
  it("disassembles a flat binary at --org in Intel syntax, and in AT&T with --syntax att", async () => {
    const bin = flatBinary
    const intel = await kvmsim("disasm", bin, "--org", "0x1000")
    expect(intel.status).toBe(0)
    expect(intel.stdout.split("\n").slice(0, 3)).toEqual(["00001000  4885FF                test rdi, rdi", "00001003  7505                  jne short 0x100a", "00001005  BF05000000            mov edi, 0x5"])
    expect(intel.stdout).toContain("0000101C  EE                    out dx, al")
    const att = await kvmsim("disasm", bin, "--syntax", "att")
    expect(att.stdout).toContain("0000001C  EE                    out %al,(%dx)")
  })

  it("shows the code of an ELF executable at its addresses", async () => {
    const r = await kvmsim("disasm", elfPath)
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^00400000  /)
    expect(r.stdout).toContain("out 0xe9, al")
    expect(r.stdout).toContain("hlt")
  })

  it("rejects an invalid --syntax or --org with usage and exit 2; --help exits 0", async () => {
    const bad = await kvmsim("disasm", "x.bin", "--syntax", "gas")
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain('Invalid value for flag --syntax: "gas"')
    const org = await kvmsim("disasm", "x.bin", "--org", "zz")
    expect(org.status).toBe(2)
    expect(org.stderr).toContain("`zz` is not an address")
    const help = await kvmsim("--help")
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/asm\s+Assemble/)
    expect(help.stdout).toMatch(/disasm\s+Disassemble/)
  })
})
