// trace_printk formatting against the host's C library: random formats (conversions d i u x X
// o c s, lengths hh h l ll, flags - + space 0, widths, precisions) and values go through the
// whole write/read path (vbin_printf packing into the ring, bstr_printf at read time) and must
// print exactly what gcc's printf prints. ('#' is left out: the kernel prints 0x0 for %#x of
// zero where glibc prints 0.)

import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { TASK_CONTEXT } from "../../src/trace/context.ts"
import { EventCursor } from "../../src/trace/ring-buffer.ts"
import { compileFormat, FormatError } from "../../src/trace/printf.ts"
import { testTrace } from "./support.ts"

interface Arg {
  readonly spec: string
  readonly ctype: string
  readonly value: bigint | string
}

const LENGTHS = ["hh", "h", "", "l", "ll"] as const
const SIGNED_TYPES: Record<string, string> = { hh: "signed char", h: "short", "": "int", l: "long", ll: "long long" }
const UNSIGNED_TYPES: Record<string, string> = { hh: "unsigned char", h: "unsigned short", "": "unsigned int", l: "unsigned long", ll: "unsigned long long" }
const BITS: Record<string, number> = { hh: 8, h: 16, "": 32, l: 64, ll: 64 }

const argArbitrary: fc.Arbitrary<Arg> = fc
  .record({
    conv: fc.constantFrom("d", "i", "u", "x", "X", "o", "c", "s"),
    length: fc.constantFrom(...LENGTHS),
    flags: fc.subarray(["-", "+", " ", "0"]),
    width: fc.option(fc.integer({ min: 0, max: 24 }), { nil: undefined }),
    precision: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
    raw: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    small: fc.bigInt({ min: -300n, max: 300n }),
    useSmall: fc.boolean(),
    text: fc.string({ unit: fc.constantFrom(..."abcXYZ 019_-"), maxLength: 20 }),
  })
  .map(({ conv, length, flags, width, precision, raw, small, useSmall, text }) => {
    const w = width === undefined ? "" : String(width)
    if (conv === "s") {
      const p = precision === undefined ? "" : `.${precision}`
      return { spec: `%${flags.includes("-") ? "-" : ""}${w}${p}s`, ctype: "const char *", value: text }
    }
    if (conv === "c") {
      return { spec: `%${flags.includes("-") ? "-" : ""}${w}c`, ctype: "int", value: 33n + (raw % 90n) }
    }
    const p = precision === undefined ? "" : `.${precision}`
    const signed = conv === "d" || conv === "i"
    const bits = BITS[length]!
    const value = BigInt.asUintN(bits, useSmall ? small : raw)
    return { spec: `%${flags.join("")}${w}${p}${length}${conv}`, ctype: (signed ? SIGNED_TYPES : UNSIGNED_TYPES)[length]!, value }
  })

const cLiteral = (a: Arg): string =>
  typeof a.value === "string" ? JSON.stringify(a.value) : `(${a.ctype})0x${a.value.toString(16)}ULL`

describe("trace_printk formatting", () => {
  it("matches the C library's printf for random formats and values", () => {
    const cases = fc.sample(fc.array(argArbitrary, { minLength: 1, maxLength: 4 }), { numRuns: 400, seed: 20261121 })
    const formats = cases.map((args, i) => `#${i}: ${args.map((a) => a.spec).join(" | ")}\n`)
    const dir = mkdtempSync(join(tmpdir(), "kvmsim-printf-"))
    let expected: string
    try {
      const body = cases
        .map((args, i) => `  printf(${JSON.stringify(formats[i]!)}${args.map((a) => ", " + cLiteral(a)).join("")});`)
        .join("\n")
      writeFileSync(join(dir, "p.c"), `#include <stdio.h>\nint main(void) {\n${body}\n  return 0;\n}\n`)
      execFileSync("gcc", ["-w", "-O0", "-o", join(dir, "p"), join(dir, "p.c")])
      expected = execFileSync(join(dir, "p"), { encoding: "latin1" })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const t = testTrace({ cpus: 1 })
    const cursor = new EventCursor()
    let actual = ""
    cases.forEach((args, i) => {
      const site = t.tracer.registerPrintk("f", formats[i]!)
      if (site instanceof FormatError) throw site
      t.tracer.clear()
      expect(t.tracer.printkValues(0, 1, TASK_CONTEXT, site, args.map((a) => a.value))).toBe(true)
      const ring = t.tracer.rings[0]!
      expect(ring.peek(cursor)).toBe(true)
      actual += t.tracer.eventText(ring.words, ring.bytes, cursor).slice("f: ".length)
    })
    expect(expected.split("\n")).toHaveLength(cases.length + 1)
    expect(actual.split("\n")).toEqual(expected.split("\n"))
  })

  it("refuses conversions it cannot format, with a message naming them", () => {
    const bad = compileFormat("ptr %p\n")
    expect(bad).toBeInstanceOf(FormatError)
    expect((bad as FormatError).message).toContain("%p")
    expect(compileFormat("100%%\n")).not.toBeInstanceOf(FormatError)
    const t = testTrace()
    expect(t.tracer.registerPrintk("f", "%f\n")).toBeInstanceOf(FormatError)
  })
})
