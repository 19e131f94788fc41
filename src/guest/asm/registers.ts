/** Register classes the assembler knows, as NASM names them. */
export type RegisterClass = "r8" | "r8h" | "r16" | "r32" | "r64" | "sreg" | "cr" | "dr" | "rip"

export interface Register {
  readonly name: string
  readonly cls: RegisterClass
  /** Encoding number 0..15 (REX extends 8..15). */
  readonly num: number
  /** spl/bpl/sil/dil: only reachable with a REX prefix. */
  readonly needsRex: boolean
}

const table = new Map<string, Register>()
const add = (name: string, cls: RegisterClass, num: number, needsRex = false): void => {
  table.set(name, { name, cls, num, needsRex })
}

const legacy64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"]
const legacy32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"]
const legacy16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"]
const low8 = ["al", "cl", "dl", "bl"]
legacy64.forEach((n, i) => add(n, "r64", i))
legacy32.forEach((n, i) => add(n, "r32", i))
legacy16.forEach((n, i) => add(n, "r16", i))
low8.forEach((n, i) => add(n, "r8", i))
;["spl", "bpl", "sil", "dil"].forEach((n, i) => add(n, "r8", i + 4, true))
;["ah", "ch", "dh", "bh"].forEach((n, i) => add(n, "r8h", i + 4))
for (let i = 8; i < 16; i++) {
  add(`r${i}`, "r64", i)
  add(`r${i}d`, "r32", i)
  add(`r${i}w`, "r16", i)
  add(`r${i}b`, "r8", i)
  add(`r${i}l`, "r8", i) // NASM accepts the Intel spelling too
}
;["es", "cs", "ss", "ds", "fs", "gs"].forEach((n, i) => add(n, "sreg", i))
for (const i of [0, 2, 3, 4, 8]) add(`cr${i}`, "cr", i)
for (const i of [0, 1, 2, 3, 6, 7]) add(`dr${i}`, "dr", i)
add("rip", "rip", 5)

/** Looks a register up by name, case-insensitively. */
export const registerNamed = (name: string): Register | undefined => table.get(name.toLowerCase())

/** Operand width in bits of a general-purpose register class. */
export const gprWidth = (cls: RegisterClass): 8 | 16 | 32 | 64 | undefined =>
  cls === "r8" || cls === "r8h" ? 8 : cls === "r16" ? 16 : cls === "r32" ? 32 : cls === "r64" ? 64 : undefined

export const isGpr = (r: Register): boolean => gprWidth(r.cls) !== undefined

/** Segment-override prefix bytes by segment register number (es cs ss ds fs gs). */
export const segmentPrefix: ReadonlyArray<number> = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]
