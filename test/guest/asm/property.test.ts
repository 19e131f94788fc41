import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { assemble, disassemble } from "../../../src/guest/asm/index.ts"
import { allForms } from "./forms.ts"

// Properties over random programs built from the generated forms plus labels and jumps between
// them: disassembling an assembled program and assembling the text again gives the same bytes,
// and every label lands on an instruction boundary the disassembler reports.

// RIP-relative forms are left out: their text names an absolute target, which NASM (and this
// assembler) encodes as an absolute address, one byte longer.
const forms = allForms.filter((f) => !f.source.includes("[rel ")).map((f) => f.source)

const line = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...forms) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("jmp", "jz", "jnz", "jb", "call", "jle"), fc.nat(7)).map(([op, l]) => `${op} L${l}`) },
  { weight: 1, arbitrary: fc.nat(60).map((n) => `times ${n} nop`) },
)
const program = fc.array(line, { minLength: 1, maxLength: 40 }).map((lines) => {
  // Eight labels spread over the program (all defined, so every jump resolves).
  const out: Array<string> = []
  lines.forEach((l, i) => {
    if (i % Math.max(1, Math.floor(lines.length / 8)) === 0 && out.filter((x) => x.startsWith("L")).length < 8) out.push(`L${out.filter((x) => x.startsWith("L")).length}:`)
    out.push(l)
  })
  for (let k = out.filter((x) => x.startsWith("L")).length; k < 8; k++) out.push(`L${k}:`)
  return out
})

describe("assembler/disassembler properties", () => {
  it("disassemble ∘ assemble is the identity on bytes for random programs", () => {
    fc.assert(
      fc.property(program, fc.constantFrom(0n, 0x1000n, 0x400000n, 0x7fff0000n), (lines, origin) => {
        const first = assemble(`BITS 64\n${lines.join("\n")}\n`, { origin })
        const text = disassemble(first.bytes, { origin }).map((l) => l.text)
        const again = assemble(`BITS 64\n${text.join("\n")}\n`, { origin })
        expect(Buffer.from(again.bytes).toString("hex")).toBe(Buffer.from(first.bytes).toString("hex"))
        const boundaries = new Set(disassemble(first.bytes, { origin }).map((l) => l.address))
        boundaries.add(origin + BigInt(first.bytes.length))
        for (let k = 0; k < 8; k++) expect(boundaries.has(first.symbols.get(`L${k}`)!)).toBe(true)
      }),
      { numRuns: 150 },
    )
  })
})
