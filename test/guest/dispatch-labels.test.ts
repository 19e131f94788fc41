// The interpreter's switches use literal case labels (V8 builds a jump table only for literal
// labels) annotated with the handler's name: `case /* Op.ADD_RR64 */ 119:`, and literal flag
// operations annotated `F.op = 3 // FlagOp.SUB`, record offsets `D[i + /* F_LEN */ 2]`. This test keeps every annotation honest
// against the tables in decode/ops.ts and cpu/flags.ts, so renumbering a table cannot silently
// send an instruction to the wrong handler.

import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { FlagOp } from "../../src/guest/cpu/flags.ts"
import * as recordFields from "../../src/guest/decode/cache.ts"
import { Alu, Op } from "../../src/guest/decode/ops.ts"

const tables: Record<string, Record<string, number>> = { Op, Alu, FlagOp }

const files = ["run.ts", "exec/execute.ts", "exec/alu.ts", "exec/string.ts", "cpu/flags.ts"]

const source = (f: string): string => readFileSync(new URL(`../../src/guest/${f}`, import.meta.url), "utf8")

describe("literal dispatch labels", () => {
  for (const f of files) {
    it(`${f}: every annotated literal equals its table entry`, () => {
      const s = source(f)
      const checked: string[] = []
      for (const m of s.matchAll(/\/\* (Op|Alu|FlagOp)\.(\w+) \*\/ (\d+)/g)) {
        expect(tables[m[1]!]![m[2]!], `${m[1]}.${m[2]} in ${f}`).toBe(Number(m[3]))
        checked.push(m[2]!)
      }
      for (const m of s.matchAll(/= (\d+) \/\/ (Op|Alu|FlagOp)\.(\w+)/g)) {
        expect(tables[m[2]!]![m[3]!], `${m[2]}.${m[3]} in ${f}`).toBe(Number(m[1]))
        checked.push(m[3]!)
      }
      for (const m of s.matchAll(/\/\* (F_\w+) \*\/ (\d+)/g)) {
        expect((recordFields as unknown as Record<string, number>)[m[1]!], `${m[1]} in ${f}`).toBe(Number(m[2]))
        checked.push(m[1]!)
      }
      expect(checked.length).toBeGreaterThan(0)
      // No case label may still be a property access (that would defeat the jump table).
      expect(s).not.toMatch(/case (Op|Alu|FlagOp)\./)
    })
  }

  it("execute.ts handles each handler number at most once", () => {
    const seen = new Set<number>()
    for (const m of source("exec/execute.ts").matchAll(/case \/\* Op\.\w+ \*\/ (\d+):/g)) {
      const v = Number(m[1])
      expect(seen.has(v), `Op ${v} twice`).toBe(false)
      seen.add(v)
    }
  })
})
