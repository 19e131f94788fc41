import { describe, expect, it } from "vitest"
import { assemble } from "../../../src/guest/asm/index.ts"

// Multi-pass layout: sizes are re-chosen every pass like NASM does, so an early, pessimistic
// estimate (here: displacements using a constant defined later) does not leave a jump long.
// Bytes from nasm -f bin (NASM 2.16.01).
describe("multi-pass layout", () => {
  it("shrinks a forward jump once a later constant turns out to be zero", () => {
    const source = [
      "BITS 64",
      "ORG 0x100000",
      "start:",
      "        test eax, eax",
      "        jz .done",
      "        times 10 mov rcx, [rbx + FIELD]",
      "        times 90 nop",
      ".done:  jmp start",
      "FIELD   equ 0",
    ].join("\n")
    const result = assemble(source)
    expect(Buffer.from(result.bytes).toString("hex")).toBe("85c07478488b0b488b0b488b0b488b0b488b0b488b0b488b0b488b0b488b0b488b0b909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090909090eb82")
    expect(result.symbols.get("start.done")).toBe(0x100000n + 4n + 30n + 90n)
  })

  it("aligns with NOPs in code and zeros for alignb, relative to the section start", () => {
    // nasm -f bin of the same source
    const result = assemble("BITS 64\nORG 0x1000\nnop\nalign 8\ndb 1\nalignb 4\ndb 2\n")
    expect(Buffer.from(result.bytes).toString("hex")).toBe("90909090909090900100000002")
  })
})
