// Every instruction form the guest core executes, generated: each register class, addressing
// mode, immediate size and prefix. Each form carries its NASM source and the same instruction
// described for iced-x86 (Code + operands), so the test can compare our bytes with iced's
// encoder, and with NASM 2.16's bytes recorded in nasm-forms.json (see record-nasm.ts).

export type MemSpec = {
  readonly size?: 8 | 16 | 32 | 64
  readonly base?: string
  readonly index?: string
  readonly scale?: 1 | 2 | 4 | 8
  readonly disp?: bigint
  readonly seg?: string
  /** RIP-relative to this absolute target. */
  readonly ripTarget?: bigint
}

export type OpSpec = { readonly r: string } | { readonly m: MemSpec } | { readonly i: bigint } | { readonly branch: bigint }

export interface Form {
  /** The line given to the assembler (placed at ORIGIN). */
  readonly source: string
  /** The iced-x86 Code name of the encoding NASM picks. */
  readonly code: string
  readonly ops: ReadonlyArray<OpSpec>
  /** Prefixes iced must add: lock, rep, repne. */
  readonly prefix?: "lock" | "rep" | "repne"
  /**
   * Set when NASM's source-to-encoding choice is not the literal reading of the source (e.g.
   * `mov rax, 1` becomes `mov eax, 1`): says what NASM does; the iced side describes NASM's choice.
   */
  readonly nasmChoice?: string
  /** The iced memory operand differs from the source's (NASM rewrites [rcx*2] as [rcx+rcx]). */
  readonly icedMem?: MemSpec
  /** The iced operands, when iced's operand order or register width differs from the source's. */
  readonly icedOps?: ReadonlyArray<OpSpec>
  /**
   * iced's encoder emits different bytes for the same instruction (both valid): says how. The
   * test then checks that both byte strings decode to the same instruction.
   */
  readonly icedDiffers?: string
}

export const ORIGIN = 0x1000n

const gpr64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
const gpr32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"]
const gpr16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"]
const gpr8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"]
const high8 = ["ah", "ch", "dh", "bh"]
const regsOf = (w: number): ReadonlyArray<string> => (w === 8 ? gpr8 : w === 16 ? gpr16 : w === 32 ? gpr32 : gpr64)
const sizes = [8, 16, 32, 64] as const
const sizeKw: Record<number, string> = { 8: "byte", 16: "word", 32: "dword", 64: "qword" }

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`)

export const memText = (m: MemSpec, withSize: boolean): string => {
  const size = withSize && m.size !== undefined ? `${sizeKw[m.size]} ` : ""
  // `$` makes the target section-relative, which is what NASM encodes RIP-relative.
  if (m.ripTarget !== undefined) return `${size}[rel $${m.ripTarget >= ORIGIN ? "+" : "-"}${hex(m.ripTarget >= ORIGIN ? m.ripTarget - ORIGIN : ORIGIN - m.ripTarget)}]`
  const parts: Array<string> = []
  if (m.base !== undefined) parts.push(m.base)
  if (m.index !== undefined) parts.push(`${m.index}*${m.scale ?? 1}`)
  let text = parts.join("+")
  if (m.disp !== undefined && m.disp !== 0n) text += text === "" ? hex(m.disp) : m.disp < 0n ? hex(m.disp) : `+${hex(m.disp)}`
  else if (text === "") text = "0"
  return `${size}[${m.seg !== undefined ? `${m.seg}:` : ""}${text}]`
}

const opText = (o: OpSpec, sized: boolean): string =>
  "r" in o ? o.r : "m" in o ? memText(o.m, sized) : "i" in o ? hex(o.i) : o.branch === ORIGIN ? "$" : `$${o.branch > ORIGIN ? "+" : "-"}${hex(o.branch > ORIGIN ? o.branch - ORIGIN : ORIGIN - o.branch)}`

const forms: Array<Form> = []
const add = (mnemonic: string, code: string, ops: ReadonlyArray<OpSpec>, extra: Partial<Form> = {}, sizedMem = true): void => {
  const prefix = extra.prefix === undefined ? "" : `${extra.prefix} `
  const source = `${prefix}${mnemonic}${ops.length ? " " : ""}${ops.map((o) => opText(o, sizedMem)).join(", ")}`
  forms.push({ source, code, ops, ...extra })
}

const r = (name: string): OpSpec => ({ r: name })
const m = (spec: MemSpec): OpSpec => ({ m: spec })
const i = (v: bigint): OpSpec => ({ i: v })
const cap = (s: string): string => s[0]!.toUpperCase() + s.slice(1)

// A few memory operands used across instruction groups.
const mems = (size?: 8 | 16 | 32 | 64): Array<MemSpec> => [
  { size, base: "rax" },
  { size, base: "rbx", index: "rsi", scale: 4, disp: 0x10n },
  { size, base: "r13", disp: -8n },
  { size, base: "rsp", disp: 0x200n },
  { size, base: "r12", index: "r15", scale: 8 },
  { size, ripTarget: 0x2000n },
]

// ---- Register classes: mov between every register of every width (REX.R/B, spl..dil, ah..bh).
for (const w of sizes) {
  const regs = regsOf(w)
  for (const d of regs) for (const s of [regs[0]!, regs[5]!, regs[9]!]) add("mov", `Mov_rm${w}_r${w}`, [r(d), r(s)])
  for (const s of regs) add("mov", `Mov_rm${w}_r${w}`, [r(regs[1]!), r(s)])
}
for (const d of high8) for (const s of ["al", "bl", "ah", "dh"]) add("mov", "Mov_rm8_r8", [r(d), r(s)])

// ---- Addressing modes (mov eax, [..] and mov [..], r8/r64).
const addressing: Array<MemSpec> = []
for (const base of gpr64) for (const disp of [undefined, 0x10n, -0x10n, 0x1000n, -0x80000000n]) addressing.push({ base, disp })
for (const index of gpr64.filter((x) => x !== "rsp")) {
  for (const scale of [1, 2, 4, 8] as const) addressing.push({ base: "rbx", index, scale })
  addressing.push({ base: "rbp", index, scale: 2 })
  addressing.push({ base: "r13", index, scale: 4, disp: 0x7fn })
  addressing.push({ index, scale: 8, disp: 0x40n })
}
addressing.push({ disp: 0x1000n }, { disp: 0x7ffffff0n }, { ripTarget: 0x2000n }, { ripTarget: 0x800n }, { ripTarget: ORIGIN })
for (const seg of ["fs", "gs", "es", "cs", "ss", "ds"]) addressing.push({ seg, base: "rax", disp: 0x28n }, { seg, disp: 0x28n })
for (const base of gpr32) addressing.push({ base }, { base, index: "ecx", scale: 4, disp: 8n })
addressing.push({ base: "r8d", index: "r9d", scale: 2, disp: -4n })
for (const a of addressing) add("mov", "Mov_r32_rm32", [r("eax"), m({ ...a, size: 32 })], {}, false)
for (const a of addressing.slice(0, 40)) {
  add("mov", "Mov_rm8_r8", [m({ ...a, size: 8 }), r("r10b")], {}, false)
  add("mov", "Mov_rm64_r64", [m({ ...a, size: 64 }), r("r11")], {}, false)
}
// NASM rewrites an index scaled by 2 (3, 5, 9) with no base into base+index.
for (const [scale, icedScale] of [[2, 1], [3, 2], [5, 4], [9, 8]] as const) {
  forms.push({
    source: `mov eax, [rcx*${scale}+0x10]`,
    code: "Mov_r32_rm32",
    ops: [r("eax"), m({ size: 32, index: "rcx", scale: 2, disp: 0x10n })],
    icedMem: { size: 32, base: "rcx", index: "rcx", scale: icedScale, disp: 0x10n },
    nasmChoice: `NASM splits [rcx*${scale}] into [rcx+rcx*${icedScale}] (no 32-bit displacement needed)`,
  })
}

// ---- Immediate sizes and the ALU group.
const aluOps = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]
const imm8s = [0n, 1n, -1n, 0x7fn, -0x80n]
const imm32s = [0x80n, -0x81n, 0x12345678n, -0x80000000n, 0x7fffffffn]
for (const op of aluOps) {
  const C = cap(op)
  for (const w of sizes) {
    const regs = regsOf(w)
    add(op, `${C}_rm${w}_r${w}`, [r(regs[3]!), r(regs[10]!)])
    add(op, `${C}_rm${w}_r${w}`, [m(mems(w as 8)[1]!), r(regs[2]!)], {}, false)
    add(op, `${C}_r${w}_rm${w}`, [r(regs[12]!), m(mems(w as 8)[2]!)], {}, false)
  }
  // 8-bit immediates: AL short form, r/m8 form.
  add(op, `${C}_AL_imm8`, [r("al"), i(0x5an)])
  add(op, `${C}_rm8_imm8`, [r("r9b"), i(-2n)])
  add(op, `${C}_rm8_imm8`, [m({ size: 8, base: "rdi" }), i(0xffn)])
  for (const w of [16, 32, 64] as const) {
    const regs = regsOf(w)
    const wide = w === 16 ? "imm16" : "imm32"
    for (const v of imm8s) add(op, `${C}_rm${w}_imm8`, [r(regs[0]!), i(v)], { nasmChoice: "NASM uses the sign-extended imm8 form (83 /n) even for the accumulator" })
    for (const v of imm8s.slice(1, 3)) add(op, `${C}_rm${w}_imm8`, [r(regs[14]!), i(v)])
    for (const v of imm32s.filter((x) => w !== 16 || (x >= -0x8000n && x <= 0x7fffn))) {
      add(op, `${C}_${w === 16 ? "AX" : w === 32 ? "EAX" : "RAX"}_${wide}`, [r(regs[0]!), i(v)])
      add(op, `${C}_rm${w}_${wide}`, [r(regs[6]!), i(v)])
    }
    add(op, `${C}_rm${w}_imm8`, [m({ size: w, base: "rcx", disp: 4n }), i(3n)])
    add(op, `${C}_rm${w}_${wide}`, [m({ size: w, base: "rcx", index: "r8", scale: 2 }), i(0x1234n)])
  }
  if (op !== "cmp") add(op, "Add_rm64_r64".replace("Add", C), [m({ size: 64, base: "rsi" }), r("rax")], { prefix: "lock" }, false)
}

// ---- test
for (const w of sizes) {
  const regs = regsOf(w)
  add("test", `Test_rm${w}_r${w}`, [r(regs[7]!), r(regs[7]!)])
  add("test", `Test_rm${w}_r${w}`, [m(mems(w as 8)[1]!), r(regs[11]!)], {}, false)
  const acc = w === 8 ? "AL_imm8" : w === 16 ? "AX_imm16" : w === 32 ? "EAX_imm32" : "RAX_imm32"
  add("test", `Test_${acc}`, [r(regs[0]!), i(1n)], { nasmChoice: "NASM uses the accumulator form (A8/A9); TEST has no imm8 form" })
  add("test", `Test_rm${w}_imm${w === 64 ? 32 : w}`, [r(regs[9]!), i(0x40n)])
  add("test", `Test_rm${w}_imm${w === 64 ? 32 : w}`, [m({ size: w, base: "rbp", disp: -0x20n }), i(0x7fn)])
}
forms.push({ source: "test rcx, [rdx]", code: "Test_rm64_r64", ops: [m({ size: 64, base: "rdx" }), r("rcx")], nasmChoice: "TEST reg, mem is encoded as TEST mem, reg (85 /r); the operation is symmetric" })

// ---- mov immediates (NASM shortens mov r64, imm)
for (const w of [8, 16, 32] as const) {
  for (const reg of [regsOf(w)[0]!, regsOf(w)[7]!, regsOf(w)[15]!]) add("mov", `Mov_r${w}_imm${w}`, [r(reg), i(w === 8 ? 0x7fn : 0x1234n)])
  add("mov", `Mov_rm${w}_imm${w}`, [m({ size: w, base: "rax", disp: 8n }), i(0x11n)])
}
for (const reg of ["rax", "rdi", "r15"]) {
  const r32 = gpr32[gpr64.indexOf(reg)]!
  for (const v of [0n, 1n, 0x7fffffffn, 0xffffffffn]) {
    forms.push({ source: `mov ${reg}, ${hex(v)}`, code: "Mov_r32_imm32", ops: [r(r32), i(v)], nasmChoice: "NASM encodes mov r64, imm that fits in 32 unsigned bits as mov r32, imm32 (zero-extends; 5 bytes instead of 10)" })
  }
  for (const v of [-1n, -0x80000000n]) {
    forms.push({ source: `mov ${reg}, ${hex(v)}`, code: "Mov_rm64_imm32", ops: [r(reg), i(v)], nasmChoice: "NASM encodes a negative 32-bit mov r64, imm as the sign-extended C7 /0 form" })
  }
  for (const v of [0x100000000n, -0x80000001n, 0x123456789abcdef0n]) add("mov", "Mov_r64_imm64", [r(reg), i(v)])
}
add("mov", "Mov_rm64_imm32", [m({ size: 64, base: "rsp", disp: 8n }), i(-5n)])

// ---- segment, control and debug registers
for (const s of ["es", "ss", "ds", "fs", "gs"]) {
  add("mov", "Mov_Sreg_r32m16", [r(s), r("eax")])
  add("mov", "Mov_Sreg_r32m16", [r(s), m({ size: 16, base: "rbx" })], {}, false)
  add("mov", "Mov_Sreg_r32m16", [r(s), r("rax")], { nasmChoice: "mov sreg, r64 has no REX.W in NASM", icedOps: [r(s), r("eax")] })
  add("mov", "Mov_r32m16_Sreg", [r("ecx"), r(s)])
  add("mov", "Mov_rm16_Sreg", [r("dx"), r(s)])
  add("mov", "Mov_r32m16_Sreg", [r("r9"), r(s)], { nasmChoice: "mov r64, sreg has no REX.W in NASM (the upper bits are zeroed either way)", icedOps: [r("r9d"), r(s)] })
  add("mov", "Mov_r32m16_Sreg", [m({ size: 16, base: "rdx" }), r(s)], {}, false)
}
for (const c of ["cr0", "cr2", "cr3", "cr4", "cr8"]) {
  add("mov", "Mov_cr_r64", [r(c), r("rax")])
  add("mov", "Mov_cr_r64", [r(c), r("r10")])
  add("mov", "Mov_r64_cr", [r("rbx"), r(c)])
}
for (const d of ["dr0", "dr3", "dr6", "dr7"]) {
  add("mov", "Mov_dr_r64", [r(d), r("rcx")])
  add("mov", "Mov_r64_dr", [r("r11"), r(d)])
}

// ---- extensions, lea, xchg
for (const [dw, sw] of [[16, 8], [32, 8], [64, 8], [32, 16], [64, 16]] as const) {
  for (const mn of ["movzx", "movsx"]) {
    add(mn, `${cap(mn)}_r${dw}_rm${sw}`, [r(regsOf(dw)[2]!), r(regsOf(sw)[sw === 8 ? 6 : 11]!)])
    add(mn, `${cap(mn)}_r${dw}_rm${sw}`, [r(regsOf(dw)[13]!), m({ size: sw, base: "rsi", disp: 1n })])
  }
}
add("movzx", "Movzx_r32_rm8", [r("eax"), r("ah")])
add("movsxd", "Movsxd_r64_rm32", [r("rax"), r("ecx")])
add("movsxd", "Movsxd_r64_rm32", [r("r8"), m({ size: 32, base: "rdi" })])
forms.push({ source: "movsx rdx, r9d", code: "Movsxd_r64_rm32", ops: [r("rdx"), r("r9d")], nasmChoice: "NASM accepts movsx r64, r/m32 as movsxd" })
for (const w of [16, 32, 64] as const) for (const a of mems().slice(0, 5)) add("lea", `Lea_r${w}_m`, [r(regsOf(w)[5]!), m(a)], {}, false)
add("lea", "Lea_r64_m", [r("rax"), m({ ripTarget: 0x1234n })], {}, false)
for (const w of [16, 32, 64] as const) {
  const regs = regsOf(w)
  const acc = w === 16 ? "AX" : w === 32 ? "EAX" : "RAX"
  for (const o of [regs[1]!, regs[9]!]) {
    const accForm = { nasmChoice: "NASM uses the one-byte 90+r form when one operand is the accumulator", icedOps: [r(o), r(regs[0]!)] }
    add("xchg", `Xchg_r${w}_${acc}`, [r(regs[0]!), r(o)], accForm)
    add("xchg", `Xchg_r${w}_${acc}`, [r(o), r(regs[0]!)], accForm)
  }
  add("xchg", `Xchg_rm${w}_r${w}`, [r(regs[2]!), r(regs[1]!)], { nasmChoice: "xchg a, b puts b in ModRM.rm and a in ModRM.reg", icedOps: [r(regs[1]!), r(regs[2]!)] })
  add("xchg", `Xchg_rm${w}_r${w}`, [m({ size: w, base: "rbx" }), r(regs[3]!)], {}, false)
}
forms.push({ source: "xchg edx, ecx", code: "Xchg_rm32_r32", ops: [r("ecx"), r("edx")], nasmChoice: "xchg a, b puts b in ModRM.rm and a in ModRM.reg" })
forms.push({ source: "xchg eax, eax", code: "Xchg_rm32_r32", ops: [r("eax"), r("eax")], nasmChoice: "xchg eax, eax is 87 C0, not 90 (which would not zero-extend)" })
add("xchg", "Xchg_rm8_r8", [r("cl"), r("dl")], { nasmChoice: "xchg a, b puts b in ModRM.rm", icedOps: [r("dl"), r("cl")] })

// ---- one-operand arithmetic, imul, shifts
for (const mn of ["inc", "dec", "not", "neg", "mul", "div", "idiv", "imul"]) {
  for (const w of sizes) {
    add(mn, `${cap(mn)}_rm${w}`, [r(regsOf(w)[w === 8 ? 1 : 13]!)])
    add(mn, `${cap(mn)}_rm${w}`, [m({ size: w, base: "rax", disp: 0x100n })])
  }
}
for (const w of [16, 32, 64] as const) {
  const regs = regsOf(w)
  add("imul", `Imul_r${w}_rm${w}`, [r(regs[0]!), r(regs[11]!)])
  add("imul", `Imul_r${w}_rm${w}`, [r(regs[9]!), m({ size: w, base: "rdx" })], {}, false)
  add("imul", `Imul_r${w}_rm${w}_imm8`, [r(regs[1]!), r(regs[2]!), i(10n)])
  add("imul", `Imul_r${w}_rm${w}_imm${w === 16 ? 16 : 32}`, [r(regs[1]!), m({ size: w, base: "r8" }), i(1000n)], {}, false)
}
forms.push({ source: "imul ecx, 7", code: "Imul_r32_rm32_imm8", ops: [r("ecx"), r("ecx"), i(7n)], nasmChoice: "imul reg, imm is imul reg, reg, imm" })
const shifts: Array<[string, string]> = [["rol", "Rol"], ["ror", "Ror"], ["rcl", "Rcl"], ["rcr", "Rcr"], ["shl", "Shl"], ["sal", "Shl"], ["shr", "Shr"], ["sar", "Sar"]]
for (const [mn, C] of shifts) {
  const note = mn === "sal" ? { nasmChoice: "NASM encodes SAL as /4 (SHL); /6 is an undocumented alias" } : {}
  for (const w of sizes) {
    const reg = regsOf(w)[w === 8 ? 3 : 10]!
    add(mn, `${C}_rm${w}_1`, [r(reg), i(1n)], { ...note, ...(mn !== "sal" ? { nasmChoice: "a count of 1 uses the D0/D1 form" } : {}) })
    add(mn, `${C}_rm${w}_CL`, [r(reg), r("cl")], note)
    add(mn, `${C}_rm${w}_imm8`, [r(reg), i(5n)], note)
    add(mn, `${C}_rm${w}_imm8`, [m({ size: w, base: "rbx", disp: 2n }), i(3n)], note)
  }
}
for (const [mn, C] of [["shld", "Shld"], ["shrd", "Shrd"]] as const) {
  for (const w of [16, 32, 64] as const) {
    add(mn, `${C}_rm${w}_r${w}_imm8`, [r(regsOf(w)[0]!), r(regsOf(w)[9]!), i(4n)])
    add(mn, `${C}_rm${w}_r${w}_CL`, [m({ size: w, base: "rsi" }), r(regsOf(w)[2]!), r("cl")], {}, false)
  }
}

// ---- stack
for (const reg of gpr64) {
  add("push", "Push_r64", [r(reg)])
  add("pop", "Pop_r64", [r(reg)])
}
add("push", "Push_r16", [r("ax")])
add("pop", "Pop_r16", [r("r9w")])
for (const v of [0n, 0x7fn, -0x80n]) add("push", "Pushq_imm8", [i(v)])
for (const v of [0x80n, 0x12345678n, -0x80000000n]) add("push", "Pushq_imm32", [i(v)])
add("push", "Push_rm64", [m({ size: 64, base: "rax", disp: 8n })])
add("pop", "Pop_rm64", [m({ size: 64, base: "rsp", disp: 16n })])
add("push", "Pushq_FS", [r("fs")])
add("push", "Pushq_GS", [r("gs")])
add("pop", "Popq_FS", [r("fs")])
add("pop", "Popq_GS", [r("gs")])

// ---- branches (targets relative to ORIGIN through `$`)
const ccs: Array<[string, string]> = [["o", "Jo"], ["no", "Jno"], ["b", "Jb"], ["ae", "Jae"], ["e", "Je"], ["ne", "Jne"], ["be", "Jbe"], ["a", "Ja"], ["s", "Js"], ["ns", "Jns"], ["p", "Jp"], ["np", "Jnp"], ["l", "Jl"], ["ge", "Jge"], ["le", "Jle"], ["g", "Jg"]]
const near = ORIGIN + 0x1000n
for (const [cc, C] of ccs) {
  add(`j${cc}`, `${C}_rel8_64`, [{ branch: ORIGIN + 0x10n }])
  add(`j${cc}`, `${C}_rel8_64`, [{ branch: ORIGIN - 0x7en }])
  add(`j${cc}`, `${C}_rel32_64`, [{ branch: near }])
  add(`set${cc}`, `Set${cc}_rm8`, [r("r8b")])
  add(`set${cc}`, `Set${cc}_rm8`, [m({ size: 8, base: "rax" })])
  add(`cmov${cc}`, `Cmov${cc}_r64_rm64`, [r("rax"), r("r12")])
  add(`cmov${cc}`, `Cmov${cc}_r32_rm32`, [r("ecx"), m({ size: 32, base: "rdx" })], {}, false)
  add(`cmov${cc}`, `Cmov${cc}_r16_rm16`, [r("dx"), r("si")])
}
add("jz", "Je_rel8_64", [{ branch: ORIGIN + 0x20n }])
add("jnz", "Jne_rel8_64", [{ branch: ORIGIN }])
add("jc", "Jb_rel8_64", [{ branch: ORIGIN + 0x7fn + 2n }])
add("jnc", "Jae_rel32_64", [{ branch: ORIGIN + 0x80n + 2n }])
add("jmp", "Jmp_rel8_64", [{ branch: ORIGIN + 2n }])
add("jmp", "Jmp_rel8_64", [{ branch: ORIGIN - 0x80n + 2n }])
add("jmp", "Jmp_rel32_64", [{ branch: ORIGIN - 0x81n + 2n }])
add("jmp", "Jmp_rel32_64", [{ branch: near }])
add("call", "Call_rel32_64", [{ branch: ORIGIN + 5n }])
add("call", "Call_rel32_64", [{ branch: ORIGIN - 0x100n }])
for (const [mn, C] of [["jmp", "Jmp"], ["call", "Call"]] as const) {
  add(mn, `${C}_rm64`, [r("rax")])
  add(mn, `${C}_rm64`, [r("r11")])
  add(mn, `${C}_rm64`, [m({ size: 64, base: "rbx", index: "rcx", scale: 8 })])
}
add("loop", "Loop_rel8_64_RCX", [{ branch: ORIGIN - 0x10n }])
add("loope", "Loope_rel8_64_RCX", [{ branch: ORIGIN + 0x10n }])
add("loopne", "Loopne_rel8_64_RCX", [{ branch: ORIGIN + 0x10n }])
add("jrcxz", "Jrcxz_rel8_64", [{ branch: ORIGIN + 0x10n }])
add("ret", "Retnq", [])
add("ret", "Retnq_imm16", [i(16n)])

// ---- bit operations and atomics
for (const [mn, C, _] of [["bt", "Bt", 4], ["bts", "Bts", 5], ["btr", "Btr", 6], ["btc", "Btc", 7]] as const) {
  void _
  for (const w of [16, 32, 64] as const) {
    add(mn, `${C}_rm${w}_r${w}`, [r(regsOf(w)[0]!), r(regsOf(w)[9]!)])
    add(mn, `${C}_rm${w}_imm8`, [m({ size: w, base: "rdi" }), i(5n)])
  }
}
for (const [mn, C] of [["bsf", "Bsf"], ["bsr", "Bsr"], ["tzcnt", "Tzcnt"], ["lzcnt", "Lzcnt"], ["popcnt", "Popcnt"]] as const) {
  for (const w of [16, 32, 64] as const) {
    add(mn, `${C}_r${w}_rm${w}`, [r(regsOf(w)[1]!), r(regsOf(w)[10]!)])
    add(mn, `${C}_r${w}_rm${w}`, [r(regsOf(w)[1]!), m({ size: w, base: "rax" })], {}, false)
  }
}
for (const w of sizes) {
  add("xadd", `Xadd_rm${w}_r${w}`, [m({ size: w, base: "rdi" }), r(regsOf(w)[1]!)], { prefix: "lock" }, false)
  add("cmpxchg", `Cmpxchg_rm${w}_r${w}`, [m({ size: w, base: "rdi" }), r(regsOf(w)[2]!)], { prefix: "lock" }, false)
  add("xadd", `Xadd_rm${w}_r${w}`, [r(regsOf(w)[3]!), r(regsOf(w)[1]!)])
}
add("cmpxchg8b", "Cmpxchg8b_m64", [m({ base: "rsi" })], { prefix: "lock" }, false)
add("cmpxchg16b", "Cmpxchg16b_m128", [m({ base: "rsi" })], {}, false)
for (const reg of ["eax", "r10d", "rbx", "r15"]) add("bswap", `Bswap_r${reg.startsWith("e") || reg.endsWith("d") ? 32 : 64}`, [r(reg)])

// ---- port I/O and interrupts
add("in", "In_AL_imm8", [r("al"), i(0x60n)])
add("in", "In_AX_imm8", [r("ax"), i(0x60n)])
add("in", "In_EAX_imm8", [r("eax"), i(0xe9n)])
add("in", "In_AL_DX", [r("al"), r("dx")])
add("in", "In_AX_DX", [r("ax"), r("dx")])
add("in", "In_EAX_DX", [r("eax"), r("dx")])
add("out", "Out_imm8_AL", [i(0xe9n), r("al")])
add("out", "Out_imm8_AX", [i(0x80n), r("ax")])
add("out", "Out_imm8_EAX", [i(0xf4n), r("eax")])
add("out", "Out_DX_AL", [r("dx"), r("al")])
add("out", "Out_DX_AX", [r("dx"), r("ax")])
add("out", "Out_DX_EAX", [r("dx"), r("eax")])
add("int", "Int_imm8", [i(0x80n)])
add("int", "Int_imm8", [i(3n)])
add("enter", "Enterq_imm16_imm8", [i(0x20n), i(0n)])

// ---- system instructions
for (const [mn, C] of [["lgdt", "Lgdt_m1664"], ["lidt", "Lidt_m1664"], ["sgdt", "Sgdt_m1664"], ["sidt", "Sidt_m1664"], ["invlpg", "Invlpg_m"], ["vmptrld", "Vmptrld_m64"], ["vmptrst", "Vmptrst_m64"], ["vmclear", "Vmclear_m64"], ["vmxon", "Vmxon_m64"]] as const) {
  add(mn, C, [m({ base: "rax" })], {}, false)
  add(mn, C, [m({ base: "r9", disp: 0x10n })], {}, false)
}
const no66 = "NASM writes no 66 prefix for a 16-bit selector/MSW operand (the operand is 16 bits either way)"
for (const [mn, C] of [["lldt", "Lldt_r32m16"], ["ltr", "Ltr_r32m16"], ["lmsw", "Lmsw_r32m16"]] as const) {
  add(mn, C, [r("ax")], { nasmChoice: no66, icedOps: [r("eax")] })
  add(mn, C, [m({ size: 16, base: "rbx" })], { nasmChoice: no66 })
}
for (const [mn, C] of [["sldt", "Sldt"], ["str", "Str"], ["smsw", "Smsw"]] as const) {
  add(mn, `${C}_rm16`, [r("cx")])
  add(mn, `${C}_r32m16`, [r("ecx")])
  if (mn === "sldt") add(mn, `${C}_r32m16`, [r("rcx")], { nasmChoice: "NASM writes sldt r64 without REX.W", icedOps: [r("ecx")] })
  else add(mn, `${C}_r64m16`, [r("rcx")])
  add(mn, `${C}_r32m16`, [m({ size: 16, base: "rbx" })], { nasmChoice: no66 })
}
add("vmread", "Vmread_rm64_r64", [r("rax"), r("rbx")])
add("vmread", "Vmread_rm64_r64", [m({ base: "rsp", disp: 8n }), r("r8")], {}, false)
add("vmwrite", "Vmwrite_r64_rm64", [r("rdx"), r("rcx")])
add("vmwrite", "Vmwrite_r64_rm64", [r("r9"), m({ base: "rdi" })], {}, false)

// ---- instructions without operands (and string instructions with their prefixes)
const fixed: Array<[string, string]> = [
  ["nop", "Nopd"], ["hlt", "Hlt"], ["cpuid", "Cpuid"], ["vmcall", "Vmcall"], ["vmlaunch", "Vmlaunch"], ["vmresume", "Vmresume"], ["vmxoff", "Vmxoff"],
  ["syscall", "Syscall"], ["sysret", "Sysretd"], ["iretq", "Iretq"], ["iretd", "Iretd"], ["cli", "Cli"], ["sti", "Sti"], ["clc", "Clc"], ["stc", "Stc"],
  ["cmc", "Cmc"], ["cld", "Cld"], ["std", "Std"], ["cqo", "Cqo"], ["cdq", "Cdq"], ["cwd", "Cwd"], ["cdqe", "Cdqe"], ["cwde", "Cwde"], ["cbw", "Cbw"],
  ["leave", "Leaveq"], ["int3", "Int3"], ["int1", "Int1"], ["rdtsc", "Rdtsc"], ["rdtscp", "Rdtscp"], ["rdmsr", "Rdmsr"], ["wrmsr", "Wrmsr"], ["rdpmc", "Rdpmc"],
  ["pause", "Pause"], ["ud2", "Ud2"], ["swapgs", "Swapgs"], ["pushfq", "Pushfq"], ["popfq", "Popfq"], ["pushf", "Pushfq"], ["popf", "Popfq"],
  ["lahf", "Lahf"], ["sahf", "Sahf"], ["mfence", "Mfence"], ["lfence", "Lfence"], ["sfence", "Sfence"], ["wbinvd", "Wbinvd"], ["invd", "Invd"],
  ["clts", "Clts"], ["monitor", "Monitorq"], ["mwait", "Mwait"], ["stac", "Stac"], ["clac", "Clac"], ["xlatb", "Xlat_m8"], ["endbr64", "Endbr64"],
]
for (const [mn, C] of fixed) add(mn, C, [])
const strings: Array<[string, string]> = [
  ["movsb", "Movsb_m8_m8"], ["movsw", "Movsw_m16_m16"], ["movsd", "Movsd_m32_m32"], ["movsq", "Movsq_m64_m64"],
  ["stosb", "Stosb_m8_AL"], ["stosw", "Stosw_m16_AX"], ["stosd", "Stosd_m32_EAX"], ["stosq", "Stosq_m64_RAX"],
  ["lodsb", "Lodsb_AL_m8"], ["lodsw", "Lodsw_AX_m16"], ["lodsd", "Lodsd_EAX_m32"], ["lodsq", "Lodsq_RAX_m64"],
  ["cmpsb", "Cmpsb_m8_m8"], ["cmpsw", "Cmpsw_m16_m16"], ["cmpsd", "Cmpsd_m32_m32"], ["cmpsq", "Cmpsq_m64_m64"],
  ["scasb", "Scasb_AL_m8"], ["scasw", "Scasw_AX_m16"], ["scasd", "Scasd_EAX_m32"], ["scasq", "Scasq_RAX_m64"],
  ["insb", "Insb_m8_DX"], ["insw", "Insw_m16_DX"], ["insd", "Insd_m32_DX"], ["outsb", "Outsb_DX_m8"], ["outsw", "Outsw_DX_m16"], ["outsd", "Outsd_DX_m32"],
]
for (const [mn, C] of strings) {
  add(mn, C, [])
  const compare = mn.startsWith("cmps") || mn.startsWith("scas")
  const order = mn.endsWith("w") ? { icedDiffers: "prefix order: NASM writes F3/F2 before 66, iced after (legacy prefixes may come in any order)" } : {}
  add(mn, C, [], { prefix: "rep", ...order })
  if (compare) add(mn, C, [], { prefix: "repne", ...order })
}

export const allForms: ReadonlyArray<Form> = forms
