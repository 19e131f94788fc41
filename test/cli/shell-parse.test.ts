// The shell's grammar (a subset of bash): words, quoting, pipes, redirections, lists, and
// bash's syntax-error wording; the run options' parsers.
import { describe, expect, it } from "vitest"
import { parseLine } from "../../src/cli/shell/parse.ts"
import { parseInjection, parseSize } from "../../src/cli/commands/run-options.ts"
import { VmcsField } from "../../src/arch/vmx/vmcs-fields.ts"

describe("shell grammar", () => {
  it("splits words with quotes and escapes as bash does", () => {
    expect(parseLine(`echo 'a  b' "c \\"d\\"" e\\ f # comment`)).toEqual([{ joiner: ";", commands: [{ argv: ["echo", "a  b", 'c "d"', "e f"] }] }])
  })

  it("pipelines, redirections and lists", () => {
    expect(parseLine("cat x | grep y > out; echo z >> log && pwd || ls")).toEqual([
      { joiner: ";", commands: [{ argv: ["cat", "x"] }, { argv: ["grep", "y"], redirect: { append: false, file: "out" } }] },
      { joiner: ";", commands: [{ argv: ["echo", "z"], redirect: { append: true, file: "log" } }] },
      { joiner: "&&", commands: [{ argv: ["pwd"] }] },
      { joiner: "||", commands: [{ argv: ["ls"] }] },
    ])
    expect(parseLine("echo 1>f")).toEqual([{ joiner: ";", commands: [{ argv: ["echo", "1"], redirect: { append: false, file: "f" } }] }])
  })

  it("reports syntax errors in bash's words", () => {
    expect(parseLine("| ls")).toBe("syntax error near unexpected token `|'")
    expect(parseLine("echo >")).toBe("syntax error near unexpected token `newline'")
    expect(parseLine("echo 'open")).toBe("unexpected EOF while looking for matching `''")
    expect(parseLine("ls |")).toBe("syntax error: unexpected end of line")
    expect(parseLine("sleep 1 &")).toBe("background jobs (&) are not supported")
  })
})

describe("run options", () => {
  it("--mem sizes", () => {
    expect(parseSize("16M")).toBe(16 << 20)
    expect(parseSize("64MiB")).toBe(64 << 20)
    expect(parseSize("1G")).toBe(1 << 30)
    expect(parseSize("0x200000")).toBe(2 << 20)
    expect(parseSize("1000")).toContain("not a multiple of 4 KiB")
    expect(parseSize("lots")).toContain("is not a size")
    expect(parseSize("8G")).toContain("outside 1M..4G")
  })

  it("--inject FIELD=VALUE@exit:N by vmcsctl file name, with the field's encoding from the SDM table", () => {
    expect(parseInjection("GUEST_RIP=0x100030@exit:2")).toEqual({ field: "GUEST_RIP", encoding: VmcsField.GUEST_RIP, value: 0x100030n, atExit: 2 })
    expect(parseInjection("guest_cr0=-1@exit:1")).toEqual({ field: "GUEST_CR0", encoding: 0x6800, value: 0xffffffffffffffffn, atExit: 1 })
    expect(parseInjection("GUEST_RIP=1@exit:0")).toBe("--inject: exits are counted from 1")
    expect(parseInjection("GUEST_RIP=zz@exit:1")).toBe("--inject: 'zz' is not a number")
    expect(parseInjection("GUEST_RIP=1")).toContain("is not FIELD=VALUE@exit:N")
  })
})
