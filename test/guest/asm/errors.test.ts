import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import { assemble, assembleEffect, AsmError } from "../../../src/guest/asm/index.ts"

// Every error the assembler reports, with its whole message: file:line:column, the line with a
// caret under the column, and what was expected. Each source is assembled after a `BITS 64` line.
const resolver = (path: string) => (path === "self.asm" ? { fileName: "self.asm", source: `%include "self.asm"\n` } : undefined)

const messageOf = (source: string): string => {
  try {
    assemble(`BITS 64\n${source}\n`, { fileName: "t.asm", includeResolver: resolver })
  } catch (e) {
    if (e instanceof AsmError) return e.message
    throw e
  }
  throw new Error(`no error for ${JSON.stringify(source)}`)
}

const cases: ReadonlyArray<readonly [string, string, string]> = [
  ["invalid number", "mov eax, 0x1g", "t.asm:2:10: error: invalid number `0x1g`\n  mov eax, 0x1g\n           ^\nexpected a number such as 42, 0x2a, 2ah, 0b101010 or 52q"],
  ["bad \\x escape", "db `\\xzz`", "t.asm:2:5: error: invalid \\x escape\n  db `\\xzz`\n      ^\nexpected two hex digits after \\x"],
  ["unknown escape", "db `\\q`", "t.asm:2:5: error: unknown escape `\\q`\n  db `\\q`\n      ^\nexpected one of \\n \\t \\r \\0 \\\\ \\' \\\" \\` \\xNN"],
  ["unterminated string", "db 'abc", "t.asm:2:4: error: unterminated string\n  db 'abc\n     ^\nexpected a closing '"],
  ["floating point", "dd 1.5", "t.asm:2:4: error: floating-point constant `1.5` is not supported\n  dd 1.5\n     ^\nexpected an integer (the guest core has no floating point)"],
  ["unexpected character", "mov eax, 1 # 2", "t.asm:2:12: error: unexpected character `#`\n  mov eax, 1 # 2\n             ^\nexpected a label, instruction, operand or comment"],
  ["missing )", "mov eax, (1 + 2", "t.asm:2:16: error: expected `)` to close `(`, found end of line\n  mov eax, (1 + 2\n                 ^\nexpected `)`"],
  ["long character constant", "mov rax, 'abcdefghi'", "t.asm:2:10: error: character constant 'abcdefghi' is longer than 8 bytes\n  mov rax, 'abcdefghi'\n           ^\nexpected at most 8 characters"],
  ["register in constant", "times rax nop", "t.asm:2:7: error: register `rax` cannot be used in a constant expression\n  times rax nop\n        ^\nexpected a number, label or constant"],
  ["misplaced rel", "mov eax, rel", "t.asm:2:10: error: `rel` is misplaced\n  mov eax, rel\n           ^\nexpected `rel`/`abs` right after `[`"],
  ["expected expression", "mov eax, 1 +", "t.asm:2:13: error: expected an expression, found end of line\n  mov eax, 1 +\n              ^\nexpected a number, label, `$`, `$$` or `(`"],
  ["register not allowed", "mov eax, [rax*rbx]", "t.asm:2:14: error: this address expression is not base + index*scale + displacement\n  mov eax, [rax*rbx]\n               ^\nexpected an address like [base + index*scale + displacement] with scale 1, 2, 4 or 8"],
  ["undefined symbol", "jmp nowhere", "t.asm:2:5: error: symbol `nowhere` is not defined\n  jmp nowhere\n      ^\nexpected a label or `equ` constant defined somewhere in the program"],
  ["division by zero", "mov eax, 1/0", "t.asm:2:11: error: division by zero\n  mov eax, 1/0\n            ^\nexpected a non-zero divisor"],
  ["subtracted register", "mov eax, [rbx - rcx]", "t.asm:2:17: error: register `rcx` cannot be subtracted\n  mov eax, [rbx - rcx]\n                  ^\nexpected registers added, e.g. [rbx + rsi*4 - 8]"],
  ["not an address", "mov eax, [rbx * rcx]", "t.asm:2:15: error: this address expression is not base + index*scale + displacement\n  mov eax, [rbx * rcx]\n                ^\nexpected an address like [base + index*scale + displacement] with scale 1, 2, 4 or 8"],
  ["far jump", "jmp far [rax]", "t.asm:2:5: error: far jumps and calls are not supported\n  jmp far [rax]\n      ^\nexpected a near jump or call, or `jmp qword [mem]`"],
  ["rip register", "mov rax, rip", "t.asm:2:10: error: `rip` is not a register in NASM syntax\n  mov rax, rip\n           ^\nexpected [rel label] for RIP-relative addressing"],
  ["size keyword mismatch", "mov dword rax, 1", "t.asm:2:5: error: size keyword dword does not match register `rax`\n  mov dword rax, 1\n      ^\nexpected no size keyword on a register operand"],
  ["missing operand", "mov eax, ", "t.asm:2:10: error: expected an operand, found end of line\n  mov eax, \n           ^\nexpected a register, memory reference [..] or immediate value"],
  ["unclosed memory", "mov eax, [rax", "t.asm:2:14: error: expected `]` to close the memory operand, found end of line\n  mov eax, [rax\n               ^\nexpected `]`"],
  ["rip in address", "lea rax, [rip + 8]", "t.asm:2:11: error: `rip` is not a register in NASM syntax\n  lea rax, [rip + 8]\n            ^\nexpected [rel label] (or `default rel` and [label]) for RIP-relative addressing"],
  ["16-bit address", "mov eax, [bx]", "t.asm:2:11: error: register `bx` cannot be used in an address\n  mov eax, [bx]\n            ^\nexpected 64-bit address registers (or 32-bit ones with a 0x67 prefix)"],
  ["mixed widths", "mov eax, [rax + ecx]", "t.asm:2:17: error: 64-bit and 32-bit registers mixed in one address\n  mov eax, [rax + ecx]\n                  ^\nexpected all address registers of the same width"],
  ["too many registers", "mov eax, [rax + rbx + rcx]", "t.asm:2:10: error: too many registers in this address\n  mov eax, [rax + rbx + rcx]\n           ^\nexpected at most a base and one index*scale"],
  ["bad scale", "mov eax, [rbx + rcx*6]", "t.asm:2:17: error: scale 6 is not 1, 2, 4 or 8\n  mov eax, [rbx + rcx*6]\n                  ^\nexpected an index scale of 1, 2, 4 or 8"],
  ["rsp index", "mov eax, [rsp*2]", "t.asm:2:11: error: `rsp` cannot be an index register\n  mov eax, [rsp*2]\n            ^\nexpected rsp/esp only as a base register"],
  ["rel with registers", "mov eax, [rel rax]", "t.asm:2:11: error: `rel` cannot be used with base or index registers\n  mov eax, [rel rax]\n            ^\nexpected [rel label] with no registers"],
  ["invalid operands", "mov rax, rbx, rcx", "t.asm:2:1: error: invalid operands for `mov` (r64, r64, r64)\n  mov rax, rbx, rcx\n  ^\nexpected r/m, reg | reg, r/m | reg, imm | r/m, imm | sreg/creg/dreg forms"],
  ["size mismatch", "add eax, bx", "t.asm:2:10: error: operand sizes do not match (dword and word)\n  add eax, bx\n           ^\nexpected operands of the same size"],
  ["size not specified", "inc [rax]", "t.asm:2:1: error: operation size not specified for `inc`\n  inc [rax]\n  ^\nexpected a size keyword on the memory operand, e.g. `dword [rax]`"],
  ["unsupported size", "inc tword [rax]", "t.asm:2:11: error: tword operands are not supported by `inc`\n  inc tword [rax]\n            ^\nexpected byte, word, dword or qword operands"],
  ["mov cs", "mov cs, ax", "t.asm:2:5: error: `cs` cannot be loaded with mov\n  mov cs, ax\n      ^\nexpected a far jump or return to change cs"],
  ["movzx size", "movzx eax, [rax]", "t.asm:2:12: error: source size not specified for `movzx`\n  movzx eax, [rax]\n             ^\nexpected `byte [..]` or `word [..]`"],
  ["push es", "push es", "t.asm:2:6: error: `push es` is invalid in 64-bit mode\n  push es\n       ^\nexpected push fs or push gs"],
  ["pop ds", "pop ds", "t.asm:2:5: error: `pop ds` is invalid in 64-bit mode\n  pop ds\n      ^\nexpected pop fs or pop gs"],
  ["ah with rex", "mov ah, r8b", "t.asm:2:5: error: `ah` cannot be used in an instruction that needs a REX prefix\n  mov ah, r8b\n      ^\nexpected al/bl/cl/dl instead of ah/bh/ch/dh, or no r8-r15/spl/bpl/sil/dil/64-bit operand"],
  ["displacement too large", "mov eax, [rax + 0x100000000]", "t.asm:2:10: error: displacement 0x100000000 does not fit in 32 bits\n  mov eax, [rax + 0x100000000]\n           ^\nexpected a displacement that fits in a signed 32-bit value"],
  ["short jump out of range", "jmp short target\ntimes 200 nop\ntarget: ret", "t.asm:2:5: error: jump target is 200 bytes away, out of range for a short (8-bit) displacement\n  jmp short target\n      ^\nexpected a target within -128..127 bytes, or drop `short`"],
  ["immediate too large", "mov al, 300", "t.asm:2:9: error: immediate 0x12c does not fit in 8 bits\n  mov al, 300\n          ^\nexpected an 8-bit value"],
  ["imm32 sign-extended", "add rax, 0x80000000", "t.asm:2:10: error: immediate 0x80000000 does not fit in 32 bits\n  add rax, 0x80000000\n           ^\nexpected a signed 32-bit value (it is sign-extended to 64 bits)"],
  ["duplicate label", "x: nop\nx: nop", "t.asm:3:1: error: symbol `x` is already defined at t.asm:2\n  x: nop\n  ^\nexpected a name not used for another label or constant"],
  ["org twice", "org 0x1000\norg 0x2000", "t.asm:3:1: error: ORG given twice\n  org 0x2000\n  ^\nexpected a single ORG at the start of the program"],
  ["align not power of two", "align 3", "t.asm:2:1: error: alignment 3 is not a power of two\n  align 3\n  ^\nexpected a power of two, e.g. align 16"],
  ["negative times", "times 2-10 db 0", "t.asm:2:1: error: TIMES count -8 is negative\n  times 2-10 db 0\n  ^\nexpected a count of zero or more (is the code already past the target size?)"],
  ["huge times", "times 20000000 db 0", "t.asm:2:1: error: TIMES count 20000000 is too large\n  times 20000000 db 0\n  ^\nexpected at most 16000000 repetitions"],
  ["data out of range", "db 256", "t.asm:2:4: error: value 256 does not fit in 8 bits\n  db 256\n     ^\nexpected a value from -128 to 255"],
  ["reserve out of range", "resb -1", "t.asm:2:1: error: reserve count -1 is out of range\n  resb -1\n  ^\nexpected a count from 0 to 268435456"],
  ["junk after", "nop nop", "t.asm:2:5: error: invalid operands for `nop` (imm)\n  nop nop\n      ^\nexpected nothing | r/m16/32/64"],
  ["unclosed directive", "[bits 64", "t.asm:2:1: error: unclosed `[` directive\n  [bits 64\n  ^\nexpected `]`"],
  ["unknown instruction", "movz eax, ebx", "t.asm:2:1: error: unknown instruction `movz`\n  movz eax, ebx\n  ^\nexpected an x86-64 instruction, a directive, or a label followed by `:`"],
  ["times nothing", "times 4", "t.asm:2:8: error: `times` needs something to repeat\n  times 4\n         ^\nexpected an instruction or data after the count, e.g. times 4 db 0"],
  ["not an instruction", "123", "t.asm:2:1: error: expected an instruction or directive, found `123`\n  123\n  ^\nexpected an instruction, directive or label"],
  ["bits 32", "bits 32", "t.asm:2:6: error: BITS 32 is not supported\n  bits 32\n       ^\nexpected BITS 64 (the guest core runs 64-bit code; write 16/32-bit boot code is not needed)"],
  ["section .data", "section .data", "t.asm:2:9: error: section `.data` is not supported in a flat binary\n  section .data\n          ^\nexpected `section .text` (put data in the same section, after the code)"],
  ["default foo", "default foo", "t.asm:2:9: error: `default foo` is not supported\n  default foo\n          ^\nexpected `default rel` or `default abs`"],
  ["extern", "extern printf", "t.asm:2:1: error: `extern` symbols cannot be resolved in a flat binary\n  extern printf\n  ^\nexpected every symbol defined in this program (or its %include files)"],
  ["align fill", "align 8, int3", "t.asm:2:10: error: align fill `int3` is not supported\n  align 8, int3\n           ^\nexpected `align N` (nop fill) or `alignb N` (zero fill)"],
  ["equ without name", "equ 5", "t.asm:2:1: error: `equ` needs a name before it\n  equ 5\n  ^\nexpected NAME equ VALUE"],
  ["unsupported directive", "incbin 'x.bin'", "t.asm:2:1: error: `incbin` is not supported\n  incbin 'x.bin'\n  ^\nexpected db/dw/dd/dq, resb/resw/resd/resq, times, align, equ, org, bits, section .text, default rel"],
  ["empty data", "db", "t.asm:2:3: error: data directive needs at least one value\n  db\n    ^\nexpected values separated by commas, e.g. db 1, 2, 'text', 0"],
  ["prefix without instruction", "lock", "t.asm:2:5: error: expected an instruction, found end of line\n  lock\n      ^\nexpected an instruction mnemonic after the prefixes"],
  ["a32", "a32 nop", "t.asm:2:1: error: `a32` is not supported\n  a32 nop\n  ^\nexpected 64-bit or 32-bit address registers in the memory operand"],
  ["junk in operands", "mov eax ebx", "t.asm:2:9: error: expected `,` after register `eax`, found `ebx`\n  mov eax ebx\n          ^\nexpected `,` between operands"],
  ["unknown mnemonic after prefix", "rep movz", "t.asm:2:5: error: unknown instruction `movz`\n  rep movz\n      ^\nexpected an x86-64 instruction the guest core executes, a directive or a label followed by `:`"],
  ["unclosed %if", "%ifdef X\nnop", "t.asm:2:1: error: this conditional block is never closed\n  %ifdef X\n  ^\nexpected `%endif` before the end of the file"],
  ["unclosed %macro", "%macro m 0\nnop", "t.asm:2:1: error: this %macro block is never closed\n  %macro m 0\n  ^\nexpected `%endmacro`"],
  ["%ifdef without name", "%ifdef\n%endif", "t.asm:2:7: error: %ifdef needs a macro name\n  %ifdef\n        ^\nexpected a name after %ifdef, e.g. %ifdef DEBUG"],
  ["%elif without %if", "%elif 1", "t.asm:2:1: error: %elif without a matching %if\n  %elif 1\n  ^\nexpected an %if, %ifdef or %ifndef before it"],
  ["%elif after %else", "%if 1\n%else\n%elif 1\n%endif", "t.asm:4:1: error: %elif after %else\n  %elif 1\n  ^\nexpected %endif to close the block"],
  ["%else without %if", "%else", "t.asm:2:1: error: %else without a matching %if\n  %else\n  ^\nexpected an %if, %ifdef or %ifndef before it"],
  ["second %else", "%if 1\n%else\n%else\n%endif", "t.asm:4:1: error: a second %else in the same block\n  %else\n  ^\nexpected %endif to close the block"],
  ["%endif without %if", "%endif", "t.asm:2:1: error: %endif without a matching %if\n  %endif\n  ^\nexpected an %if, %ifdef or %ifndef before it"],
  ["junk after %if", "%if 1 2\n%endif", "t.asm:2:1: error: unexpected `2` after the %if expression\n  %if 1 2\n  ^\nexpected end of line"],
  ["undefined in %if", "%if FOO\n%endif", "t.asm:2:5: error: `FOO` is not a defined macro or number\n  %if FOO\n      ^\nexpected an expression of numbers and %define'd macros"],
  ["%define without name", "%define", "t.asm:2:9: error: %define needs a macro name\n  %define\n          ^\nexpected a name, e.g. %define ITERS 1000"],
  ["%define unclosed params", "%define f(a b", "t.asm:2:10: error: unclosed parameter list\n  %define f(a b\n           ^\nexpected `)` after the parameter names"],
  ["%undef without name", "%undef", "t.asm:2:8: error: %undef needs a macro name\n  %undef\n         ^\nexpected a name, e.g. %undef DEBUG"],
  ["%assign without name", "%assign", "t.asm:2:9: error: %assign needs a macro name\n  %assign\n          ^\nexpected a name and a value, e.g. %assign N 4*8"],
  ["malformed %macro", "%macro", "t.asm:2:8: error: malformed %macro line\n  %macro\n         ^\nexpected %macro NAME COUNT, e.g. %macro push2 2 or %macro say 1-3"],
  ["%endmacro alone", "%endmacro", "t.asm:2:1: error: %endmacro without a matching %macro\n  %endmacro\n  ^\nexpected a %macro before it"],
  ["%rep out of range", "%rep -1\n%endrep", "t.asm:2:6: error: %rep count -1 is out of range\n  %rep -1\n       ^\nexpected a count from 0 to 1000000"],
  ["%endrep alone", "%endrep", "t.asm:2:1: error: %endrep without a matching %rep\n  %endrep\n  ^\nexpected a %rep before it"],
  ["malformed %include", "%include kvmsim.inc", "t.asm:2:10: error: malformed %include\n  %include kvmsim.inc\n           ^\nexpected a quoted file name, e.g. %include \"kvmsim.inc\""],
  ["missing include", "%include \"nope.inc\"", "t.asm:2:10: error: cannot find include file `nope.inc`\n  %include \"nope.inc\"\n           ^\nexpected a file that exists, relative to the including file"],
  ["recursive include", "%include \"self.asm\"", "self.asm:1:1: error: %include nested too deeply (recursive include?)\n  %include \"self.asm\"\n  ^\nexpected at most 64 nested includes"],
  ["%error", "%error stop here", "t.asm:2:1: error: %error: stop here\n  %error stop here\n  ^\nexpected the condition that raised this %error to be fixed"],
  ["unknown directive", "%frobnicate", "t.asm:2:1: error: unknown preprocessor directive `%frobnicate`\n  %frobnicate\n  ^\nexpected %define %undef %assign %if %ifdef %ifndef %elif %elifdef %elifndef %else %endif %macro %endmacro %rep %endrep %include %error"],
  ["undefined in %assign", "%assign N FOO + 1", "t.asm:2:11: error: `FOO` is not a defined macro or number\n  %assign N FOO + 1\n            ^\nexpected a constant expression"],
  ["recursive define", "%define A B\n%define B A\nmov eax, A", "t.asm:4:10: error: symbol `A` is not defined\n  mov eax, A\n           ^\nexpected a label or `equ` constant defined somewhere in the program"],
  ["define chain too deep", "%define D1 D0\n%define D2 D1\n%define D3 D2\n%define D4 D3\n%define D5 D4\n%define D6 D5\n%define D7 D6\n%define D8 D7\n%define D9 D8\n%define D10 D9\n%define D11 D10\n%define D12 D11\n%define D13 D12\n%define D14 D13\n%define D15 D14\n%define D16 D15\n%define D17 D16\n%define D18 D17\n%define D19 D18\n%define D20 D19\n%define D21 D20\n%define D22 D21\n%define D23 D22\n%define D24 D23\n%define D25 D24\n%define D26 D25\n%define D27 D26\n%define D28 D27\n%define D29 D28\n%define D30 D29\n%define D31 D30\n%define D32 D31\n%define D33 D32\n%define D34 D33\n%define D35 D34\n%define D36 D35\n%define D37 D36\n%define D38 D37\n%define D39 D38\n%define D40 D39\n%define D41 D40\n%define D42 D41\n%define D43 D42\n%define D44 D43\n%define D45 D44\n%define D46 D45\n%define D47 D46\n%define D48 D47\n%define D49 D48\n%define D50 D49\n%define D51 D50\n%define D52 D51\n%define D53 D52\n%define D54 D53\n%define D55 D54\n%define D56 D55\n%define D57 D56\n%define D58 D57\n%define D59 D58\n%define D60 D59\n%define D61 D60\n%define D62 D61\n%define D63 D62\n%define D64 D63\n%define D65 D64\n%define D66 D65\n%define D67 D66\n%define D68 D67\n%define D69 D68\n%define D70 D69\nmov eax, D70", "t.asm:72:1: error: macro expansion nested too deeply (recursive %define?)\n  mov eax, D70\n  ^\nexpected at most 64 levels of expansion"],
  ["define arg count", "%define f(a, b) a + b\nmov eax, f(1)", "t.asm:3:10: error: macro `f` takes 2 argument(s), given 1\n  mov eax, f(1)\n           ^\nexpected f(a, b)"],
  ["macro arg count", "%macro two 2\nnop\n%endmacro\ntwo 1", "t.asm:5:1: error: macro `two` takes 2 argument(s), given 1\n  two 1\n  ^\nexpected 2 comma-separated argument(s)"],
  ["recursive macro", "%macro again 0\nagain\n%endmacro\nagain", "t.asm:3:1: error: macro calls nested too deeply (recursive macro?)\n  again\n  ^\nexpected at most 64 nested calls"],
  ["unclosed define args", "%define f(a) a\nmov eax, f(1", "t.asm:3:11: error: unclosed macro argument list\n  mov eax, f(1\n            ^\nexpected `)` to close the arguments"],
  ["error inside macro expansion", "%define REG rbx\nmov eax, [REG * rcx]", "t.asm:3:1: error: this address expression is not base + index*scale + displacement\n  mov eax, [REG * rcx]\n  ^\nexpected an address like [base + index*scale + displacement] with scale 1, 2, 4 or 8"],
  ["RIP-relative target too far", "mov eax, [rel $+0x100000000]", "t.asm:2:10: error: displacement 0xfffffffa does not fit in 32 bits\n  mov eax, [rel $+0x100000000]\n           ^\nexpected a RIP-relative target within ±2 GiB"],
  ["near jump out of range", "jmp $+0x100000000", "t.asm:2:5: error: jump target is 4294967291 bytes away, out of range for a 32-bit displacement\n  jmp $+0x100000000\n      ^\nexpected a target within ±2 GiB"],
  ["port number too large", "in al, 256", "t.asm:2:8: error: immediate 0x100 does not fit in 8 bits\n  in al, 256\n         ^\nexpected an 8-bit value"],
  ["%elifdef without %if", "%elifdef", "t.asm:2:1: error: %elifdef without a matching %if\n  %elifdef\n  ^\nexpected an %if, %ifdef or %ifndef before it"],
  ["32-bit address displacement", "mov eax, [eax+0x100000000]", "t.asm:2:10: error: displacement 0x100000000 does not fit in 32 bits\n  mov eax, [eax+0x100000000]\n           ^\nexpected a displacement that fits in a signed 32-bit value"],
  ["too many define arguments", "%define X(a) a\nmov eax, X(1, 2)", "t.asm:3:10: error: macro `X` takes 1 argument(s), given 2\n  mov eax, X(1, 2)\n           ^\nexpected X(a)"],
  ["junk after equ", "label: equ 5 6", "t.asm:2:14: error: unexpected `6` after the `equ` value\n  label: equ 5 6\n               ^\nexpected end of line (or a `;` comment)"],
]

describe("assembler errors", () => {
  for (const [name, source, message] of cases) {
    it(name, () => {
      expect(messageOf(source)).toBe(message)
    })
  }

  it("carries the position as fields, and fails the Effect variant with the same error", async () => {
    const exit = await Effect.runPromiseExit(assembleEffect("BITS 64\n  movz eax, ebx\n", { fileName: "f.asm" }))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")
      expect(error?._tag === "Fail" ? error.error : undefined).toMatchObject({ _tag: "AsmError", file: "f.asm", line: 2, column: 3, sourceLine: "  movz eax, ebx", problem: "unknown instruction `movz`" })
    }
  })
})
