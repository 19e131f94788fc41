// Small user programs for the kernel tests, assembled by kvmsim's assembler.
import { assemble } from "../../../src/guest/asm/index.ts"
import { flatProgram } from "../../../src/guest/kernel/index.ts"

/** A flat user program at 0x400000 from NASM source (BITS 64 / ORG added). */
export const userProgram = (body: string) => {
  const result = assemble(`BITS 64\nORG 0x400000\n${body}\n`, { fileName: "user.asm" })
  return { program: flatProgram(result.bytes), symbols: result.symbols }
}

/** Exits with status = the low byte of EAX. */
export const EXIT_WITH_AL = "mov edi, eax\nmov eax, 60\nsyscall\n"
