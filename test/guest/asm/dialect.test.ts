import { describe, expect, it } from "vitest"
import { assemble } from "../../../src/guest/asm/index.ts"

// One program using the NASM dialect the toolchain supports: %include, %define with parameters,
// %assign, %if/%elif/%else, %ifdef/%elifndef/%undef, %macro with %%local labels and {braced}
// arguments, default rel / rel / abs, segment overrides, local labels, $ and $$, equ, strings
// with backquote escapes, align/alignb, times, resb/resw, db/dw/dd/dq. The expected bytes are
// `nasm -f bin dialect.asm` (NASM 2.16.01).
const include = "; included file\n%define GREETING \"hi\", 0\nPORT equ 0xE9\n%macro outchar 1\n        mov al, %1\n        out PORT, al\n%endmacro\n"
const source = "BITS 64\ndefault rel\nORG 0x400000\n%include \"inc.inc\"\n%define SQUARE(x) ((x) * (x))\n%assign COUNT 3\n%ifndef MODE\n  %define MODE 2\n%endif\n%if MODE == 1\n        mov eax, 1\n%elif MODE == 2\n        mov eax, SQUARE(COUNT + 1)\n%else\n        mov eax, 3\n%endif\n%ifdef UNDEFINED_THING\n        ud2\n%elifndef ALSO_UNDEFINED\n        nop\n%endif\n%undef MODE\n%ifdef MODE\n        ud2\n%endif\n%macro spin 0\n%%again:\n        pause\n        jmp %%again\n%endmacro\nstart:\n        outchar 'A'\n        outchar {'B'}\n        lea rsi, [msg]\n        mov rcx, msg_len\n        mov rdx, [fs:0x28]\n        mov qword [gs:rbx+8], 0\n        mov al, byte [rel table + 2]\n        mov bx, word [abs table]\n        cmp dword [rsi + rcx*4 - 4], -1\n.loop:  dec rcx\n        jnz .loop\n        jmp short .done\n.done:\n        mov eax, $ - start\n        mov ebx, $$\n        spin\n        spin\nmsg:    db GREETING, `\\n\\t`, 'x'\nmsg_len equ $ - msg\n        align 8\ntable:  dw 1, 2, 0x1234\n        dd table - start, 'abcd'\n        dq start, -1\n        times 3 db 0x90\nbuf:    resb 5\n        resw 2\n        alignb 16\ntail:   db 0xff\n"
const nasmBytes = "b81000000090b041e6e9b042e6e9488d3543000000b90600000064488b1425280000006548c74308000000008a0530000000668b1c2560004000837c8efcff48ffc975fbeb00b840000000bb00004000f390ebfcf390ebfc6869000a097890900100020034125a000000616263640600400000000000ffffffffffffffff909090000000000000000000000000000000ff"

describe("the NASM dialect", () => {
  it("assembles to NASM's bytes", () => {
    const result = assemble(source, {
      fileName: "dialect.asm",
      includeResolver: (path, from) => (path === "inc.inc" && from === "dialect.asm" ? { fileName: "inc.inc", source: include } : undefined),
    })
    expect(Buffer.from(result.bytes).toString("hex")).toBe(nasmBytes)
    expect(result.origin).toBe(0x400000n)
    expect(result.symbols.get("start")).toBe(0x400006n)
    expect(result.symbols.get("start.loop")).toBe(0x40003fn)
    expect(result.symbols.get("msg_len")).toBe(6n)
    expect(result.symbols.get("PORT")).toBe(0xe9n)
    expect(result.symbols.get("tail")).toBe(0x400090n)
  })

  it("defines from options act like nasm -D", () => {
    const one = assemble(source, { fileName: "dialect.asm", defines: { MODE: "1" }, includeResolver: () => ({ fileName: "inc.inc", source: include }) })
    // MODE=1 selects `mov eax, 1` instead of `mov eax, SQUARE(COUNT + 1)` = 16.
    expect(Buffer.from(one.bytes.subarray(0, 5)).toString("hex")).toBe("b801000000")
    expect(Buffer.from(one.bytes.subarray(5)).toString("hex")).toBe(nasmBytes.slice(10))
  })

  it("%define and %macro names are case-sensitive, %idefine and %imacro names are not (as in NASM)", () => {
    const source = ["BITS 64", "%idefine Val 5", "%define Exact 7", "%macro Twice 1", "db %1, %1", "%endmacro", "%imacro once 1", "db %1", "%endmacro", "mov eax, VAL", "mov eax, val", "mov eax, Exact", "Twice 1", "ONCE 2", "Once 3"].join("\n")
    expect(Buffer.from(assemble(source).bytes).toString("hex")).toBe("b805000000b805000000b80700000001010203")
    expect(() => assemble("BITS 64\n%macro Twice 1\ndb %1\n%endmacro\ntwice 1\n")).toThrow("unknown instruction `twice`")
  })
})
