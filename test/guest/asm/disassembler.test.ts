import { describe, expect, it } from "vitest"
import { assemble, disassemble, disassembleOne, formatDisassembly } from "../../../src/guest/asm/index.ts"

const bytesOf = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, "hex"))

describe("disassembler", () => {
  it("prints NASM syntax that keeps NASM's encoding choices when reassembled", () => {
    // 83 C0 FF: add eax, imm8 -1; 48 B8 imm64 with a small value; EB: short jump; 48 C7 C0: mov rax, -1.
    const code = bytesOf("83c0ff" + "48b80500000000000000" + "ebfe" + "48c7c0ffffffff" + "66f3a5")
    const lines = disassemble(code, { origin: 0x2000n })
    expect(lines.map((l) => l.text)).toEqual(["add eax, -0x1", "mov rax, strict qword 0x5", "jmp short 0x200d", "mov rax, -0x1", "rep movsw"])
    const text = lines.map((l) => l.text).join("\n")
    expect(Buffer.from(assemble(`BITS 64\n${text}\n`, { origin: 0x2000n }).bytes).toString("hex")).toBe(Buffer.from(code).toString("hex").replace("66f3a5", "f366a5"))
  })

  it("names branch and RIP-relative targets from a symbol map", () => {
    const program = assemble("BITS 64\nORG 0x1000\nstart: lea rsi, [rel msg]\ncall print\njmp start\nprint: ret\nmsg: db 'hi'\n")
    const names = new Map([...program.symbols].map(([name, address]) => [address, name] as const))
    const lines = disassemble(program.bytes.subarray(0, program.bytes.length - 2), { origin: 0x1000n, symbols: names })
    expect(lines.map((l) => l.text)).toEqual(["lea rsi, [rel msg]", "call print", "jmp short start", "ret"])
    expect(disassemble(program.bytes.subarray(7, 12), { origin: 0x1007n, syntax: "att", symbols: names })[0]!.text).toBe("call print")
  })

  it("prints bytes the core cannot decode as data, one byte at a time", () => {
    expect(disassembleOne(bytesOf("0f0b"), 0, 0n)).toMatchObject({ length: 2, text: "ud2", valid: true })
    expect(disassembleOne(bytesOf("0fff"), 0, 0n)).toEqual({ length: 1, text: "db 0x0f", valid: false })
    expect(disassembleOne(bytesOf("0fff"), 0, 0n, "att")).toEqual({ length: 1, text: ".byte 0x0f", valid: false })
    // A truncated instruction at the end of the buffer is data too.
    expect(disassemble(bytesOf("90b8"), { origin: 0n }).map((l) => l.text)).toEqual(["nop", "db 0xb8"])
  })

  it("formats a listing like ndisasm: address, bytes, text", () => {
    expect(formatDisassembly(disassemble(bytesOf("4885ff7505f4"), { origin: 0x7c00n }))).toBe(
      "00007C00  4885FF                test rdi, rdi\n00007C03  7505                  jne short 0x7c0a\n00007C05  F4                    hlt\n",
    )
  })
})
