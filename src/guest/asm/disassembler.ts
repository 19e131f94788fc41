import { DecodedInstruction, decodeInstruction, NO_REG, RIP_BASE } from "../decode/decoder.ts"
import { OperandKind } from "../decode/ops.ts"

export type Syntax = "intel" | "att"

export interface DisassembledLine {
  readonly address: bigint
  readonly bytes: Uint8Array
  /** The instruction text, or `db 0x..` for bytes that do not decode. */
  readonly text: string
  readonly valid: boolean
}

export interface DisassembleOptions {
  /** Address of bytes[0]. Default 0. */
  readonly origin?: bigint
  /** Default "intel" (NASM syntax, reassemblable by `assemble`). */
  readonly syntax?: Syntax
  /** Names for addresses: branch targets and RIP-relative operands are printed as these. */
  readonly symbols?: ReadonlyMap<bigint, string>
}

const gpr: ReadonlyArray<ReadonlyArray<string>> = [
  [],
  ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b", "ah", "ch", "dh", "bh"],
  ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"],
  [],
  ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"],
  [],
  [],
  [],
  ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"],
]
const segments = ["es", "cs", "ss", "ds", "fs", "gs"]
const sizeWord: Readonly<Record<number, string>> = { 1: "byte", 2: "word", 4: "dword", 8: "qword" }
const attSuffix: Readonly<Record<number, string>> = { 1: "b", 2: "w", 4: "l", 8: "q" }

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`)
const mask = (v: bigint, bytes: number): bigint => BigInt.asUintN(bytes * 8, v)

/** The last segment-override prefix byte (the decoder keeps only FS/GS, which matter in 64-bit mode). */
const segmentOverride = (bytes: Uint8Array, start: number, length: number): number => {
  let seg = -1
  for (let i = start; i < start + length; i++) {
    const b = bytes[i]!
    const at = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65].indexOf(b)
    if (at >= 0) seg = at
    else if (!(b === 0x66 || b === 0x67 || b === 0xf0 || b === 0xf2 || b === 0xf3 || (b >= 0x40 && b <= 0x4f))) break
  }
  return seg
}

const stringOps = /^(movs|stos|lods|cmps|scas|ins|outs)[bwdq]$/

interface Context {
  readonly d: DecodedInstruction
  readonly address: bigint
  readonly seg: number
  readonly symbols: ReadonlyMap<bigint, string> | undefined
  readonly bytes: Uint8Array
  readonly start: number
}

const registerName = (size: number, reg: number): string => gpr[size]?.[reg] ?? `?r${reg}`

const isSignExtendedImmediate = (c: Context): boolean => {
  const d = c.d
  if (d.map === 0 && (d.opcode === 0x83 || d.opcode === 0x6b || d.opcode === 0x6a)) return true
  return d.osz === 8 && d.mnemonic !== "movabs"
}

/** The value of operand i as the assembler should read it back. */
const immediateValue = (c: Context, i: number): bigint => {
  const d = c.d
  const reg = d.operandReg[i]!
  if (reg === -2) return 1n
  if (reg === -3) return BigInt(d.imm2 & 0xff)
  const size = d.operandSize[i]!
  const raw = d.immediate
  if (size === 1 || d.mnemonic === "enter" || d.mnemonic === "ret" || d.mnemonic === "in" || d.mnemonic === "out" || d.mnemonic === "int") return mask(raw, size)
  // Sign-extended immediates read back as signed values (`add eax, -0x1` is 83 C0 FF again).
  if (isSignExtendedImmediate(c)) return BigInt.asIntN(64, raw)
  return mask(raw, size)
}

const branchTarget = (c: Context): bigint => BigInt.asUintN(64, c.address + BigInt(c.d.length) + BigInt.asIntN(64, c.d.immediate))

const symbolOr = (c: Context, address: bigint, fallback: string): string => c.symbols?.get(address) ?? fallback

const needsSize = (c: Context, i: number): boolean => {
  const d = c.d
  const size = d.operandSize[i]!
  if (sizeWord[size] === undefined) return false
  for (let k = 0; k < d.operandCount; k++) {
    if (k === i) continue
    const kind = d.operandKind[k]
    if ((kind === OperandKind.GPR || kind === OperandKind.GPR8_HIGH || kind === OperandKind.SEG) && d.operandSize[k] === size) return false
  }
  return true
}

// ---- Intel (NASM) syntax ----------------------------------------------------------------------

const intelMemory = (c: Context, i: number): string => {
  const d = c.d
  const size = needsSize(c, i) ? `${sizeWord[d.operandSize[i]!]} ` : ""
  const seg = c.seg >= 0 ? `${segments[c.seg]}:` : ""
  if (d.base === RIP_BASE) {
    const target = BigInt.asUintN(64, c.address + BigInt(d.length) + d.displacement)
    return `${size}[${seg}rel ${symbolOr(c, target, hex(target))}]`
  }
  const regSize = d.asz
  const parts: Array<string> = []
  if (d.base !== NO_REG) parts.push(registerName(regSize, d.base))
  if (d.index !== NO_REG) parts.push(d.scale === 1 ? registerName(regSize, d.index) : `${registerName(regSize, d.index)}*${d.scale}`)
  let text = parts.join("+")
  const disp = regSize === 4 && parts.length === 0 ? mask(d.displacement, 4) : d.displacement
  const dispBytes = d.hasModrm ? (d.modrm >> 6 === 1 ? 1 : d.modrm >> 6 === 2 || parts.length === 0 || (d.base === NO_REG && d.index !== NO_REG) ? 4 : 0) : 0
  if (text === "") text = hex(disp)
  else if (disp !== 0n || dispBytes > 0) text += disp < 0n ? hex(disp) : `+${hex(disp)}`
  return `${size}[${seg}${text}]`
}

const intelOperand = (c: Context, i: number): string => {
  const d = c.d
  const reg = d.operandReg[i]!
  switch (d.operandKind[i]) {
    case OperandKind.GPR:
    case OperandKind.GPR8_HIGH:
      return registerName(d.operandSize[i]!, reg)
    case OperandKind.SEG:
      return segments[reg] ?? `?seg${reg}`
    case OperandKind.CR:
      return `cr${reg}`
    case OperandKind.DR:
      return `dr${reg}`
    case OperandKind.MEM:
      return intelMemory(c, i)
    case OperandKind.IMM: {
      const v = immediateValue(c, i)
      // mov r64, imm64 whose value NASM would shorten: `strict qword` keeps the 10-byte form.
      if (d.mnemonic === "movabs" && ((v >= 0n && v <= 0xffffffffn) || v >= 0xffffffff80000000n)) return `strict qword ${hex(v)}`
      return hex(v)
    }
    case OperandKind.REL: {
      const target = branchTarget(c)
      const short = d.length - prefixCount(c) === 2 && d.mnemonic.startsWith("j")
      const name = symbolOr(c, target, hex(target))
      return short && !/^(jrcxz|jecxz|loop)/.test(d.mnemonic) ? `short ${name}` : name
    }
    default:
      return "?"
  }
}

const prefixCount = (c: Context): number => {
  let n = 0
  while (n < c.d.length) {
    const b = c.bytes[c.start + n]!
    if (b === 0x66 || b === 0x67 || b === 0xf0 || b === 0xf2 || b === 0xf3 || b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65 || (b >= 0x40 && b <= 0x4f)) n++
    else break
  }
  return n
}

const nasmMnemonic = (d: DecodedInstruction): string => {
  switch (d.mnemonic) {
    case "movabs":
      return "mov"
    case "sysretd":
      return "sysret"
    case "sysretq":
      return "o64 sysret"
    default:
      return d.mnemonic
  }
}

const repPrefix = (d: DecodedInstruction, att: boolean): string => {
  if (d.rep === 0 || !stringOps.test(d.mnemonic)) return ""
  const compare = /^(cmps|scas)/.test(d.mnemonic)
  if (d.rep === 2) return "repne "
  return compare ? (att ? "repz " : "repe ") : "rep "
}

const formatIntel = (c: Context): string => {
  const d = c.d
  const ops: Array<string> = []
  for (let i = 0; i < d.operandCount; i++) ops.push(intelOperand(c, i))
  // NASM reads `xchg a, b` with a in ModRM.reg; the decoder lists ModRM.rm first.
  if (d.mnemonic === "xchg" && d.hasModrm && !d.hasMem) ops.reverse()
  // Selector and MSW loads take a 16-bit register in NASM syntax whatever the operand size.
  if (/^(lldt|ltr|lmsw|verr|verw)$/.test(d.mnemonic) && d.operandKind[0] === OperandKind.GPR) ops[0] = registerName(2, d.operandReg[0]!)
  const lock = d.lock ? "lock " : ""
  const seg = c.seg >= 0 && !d.hasMem ? `${segments[c.seg]} ` : ""
  const text = `${lock}${repPrefix(d, false)}${seg}${nasmMnemonic(d)}`
  return ops.length === 0 ? text : `${text} ${ops.join(", ")}`
}

// ---- AT&T syntax (GNU as / objdump) --------------------------------------------------------------

const attMemory = (c: Context): string => {
  const d = c.d
  // ES/CS/SS/DS overrides do nothing in 64-bit mode: objdump shows them as a prefix word.
  const seg = c.seg >= 4 ? `%${segments[c.seg]}:` : ""
  if (d.base === RIP_BASE) return `${seg}${hex(d.displacement)}(%rip)`
  const regSize = d.asz
  const disp = d.displacement
  const base = d.base === NO_REG ? "" : `%${registerName(regSize, d.base)}`
  const index = d.index === NO_REG ? "" : `,%${registerName(regSize, d.index)},${d.scale}`
  if (base === "" && index === "") return `${seg}${hex(regSize === 4 ? mask(disp, 4) : disp)}`
  const dispText = disp === 0n && !(d.modrm >> 6 === 1 || d.modrm >> 6 === 2) && base !== "" ? "" : hex(disp)
  return `${seg}${dispText}(${base}${index})`
}

const attOperand = (c: Context, i: number): string => {
  const d = c.d
  const reg = d.operandReg[i]!
  switch (d.operandKind[i]) {
    case OperandKind.GPR:
    case OperandKind.GPR8_HIGH:
      return `%${registerName(d.operandSize[i]!, reg)}`
    case OperandKind.SEG:
      return `%${segments[reg] ?? "?"}`
    case OperandKind.CR:
      return `%cr${reg}`
    case OperandKind.DR:
      return `%db${reg}`
    case OperandKind.MEM:
      return attMemory(c)
    case OperandKind.IMM:
      return `$${hex(mask(immediateValue(c, i), Math.max(d.operandSize[i]!, 1)))}`
    case OperandKind.REL:
      return symbolOr(c, branchTarget(c), hex(branchTarget(c)))
    default:
      return "?"
  }
}

const attNames: Readonly<Record<string, string>> = {
  cbw: "cbtw",
  cwde: "cwtl",
  cdqe: "cltq",
  cwd: "cwtd",
  cdq: "cltd",
  cqo: "cqto",
  movsxd: "movslq",
  movabs: "movabs",
  sysretd: "sysretl",
  sysretq: "sysretq",
  iretd: "iret",
  pushfq: "pushf",
  popfq: "popf",
}

/** String instructions as objdump prints them, with their implicit operands. */
const attStrings: Readonly<Record<string, string>> = {
  movsb: "movsb %ds:(%rsi),%es:(%rdi)", movsw: "movsw %ds:(%rsi),%es:(%rdi)", movsd: "movsl %ds:(%rsi),%es:(%rdi)", movsq: "movsq %ds:(%rsi),%es:(%rdi)",
  stosb: "stos %al,%es:(%rdi)", stosw: "stos %ax,%es:(%rdi)", stosd: "stos %eax,%es:(%rdi)", stosq: "stos %rax,%es:(%rdi)",
  lodsb: "lods %ds:(%rsi),%al", lodsw: "lods %ds:(%rsi),%ax", lodsd: "lods %ds:(%rsi),%eax", lodsq: "lods %ds:(%rsi),%rax",
  cmpsb: "cmpsb %es:(%rdi),%ds:(%rsi)", cmpsw: "cmpsw %es:(%rdi),%ds:(%rsi)", cmpsd: "cmpsl %es:(%rdi),%ds:(%rsi)", cmpsq: "cmpsq %es:(%rdi),%ds:(%rsi)",
  scasb: "scas %es:(%rdi),%al", scasw: "scas %es:(%rdi),%ax", scasd: "scas %es:(%rdi),%eax", scasq: "scas %es:(%rdi),%rax",
  insb: "insb (%dx),%es:(%rdi)", insw: "insw (%dx),%es:(%rdi)", insd: "insl (%dx),%es:(%rdi)",
  outsb: "outsb %ds:(%rsi),(%dx)", outsw: "outsw %ds:(%rsi),(%dx)", outsd: "outsl %ds:(%rsi),(%dx)",
  xlatb: "xlat %ds:(%rbx)", monitor: "monitor %rax,%ecx,%edx", mwait: "mwait %eax,%ecx",
}

const attMnemonic = (c: Context): string => {
  const d = c.d
  const name = d.mnemonic
  if (name === "movzx" || name === "movsx") {
    const src = d.operandSize[1]!
    const dst = d.operandSize[0]!
    return `${name === "movzx" ? "movz" : "movs"}${attSuffix[src]}${attSuffix[dst]}`
  }
  const mapped = attNames[name]
  if (mapped !== undefined) return mapped
  // A suffix when no register operand fixes the operation size.
  for (let i = 0; i < d.operandCount; i++) {
    if (d.operandKind[i] === OperandKind.MEM && needsSize(c, i) && !/^(lgdt|lidt|sgdt|sidt|invlpg|vmptrld|vmptrst|vmclear|vmxon|cmpxchg8b|cmpxchg16b|lea|jmp|call|sldt|str|lldt|ltr|smsw|lmsw|push|pop|set[a-z]+)$/.test(name)) {
      return name + (attSuffix[d.operandSize[i]!] ?? "")
    }
  }
  return name
}

const formatAtt = (c: Context): string => {
  const d = c.d
  const ops: Array<string> = []
  const indirect = (d.mnemonic === "jmp" || d.mnemonic === "call") && d.operandKind[0] !== OperandKind.REL
  for (let i = d.operandCount - 1; i >= 0; i--) {
    // Shift by one: GNU writes `shl %eax` without the count.
    if (d.operandKind[i] === OperandKind.IMM && d.operandReg[i] === -2) continue
    const text = attOperand(c, i)
    ops.push(indirect ? `*${text}` : d.operandKind[i] === OperandKind.GPR && d.operandReg[i] === 2 && d.operandSize[i] === 2 && (d.mnemonic === "in" || d.mnemonic === "out") ? "(%dx)" : text)
  }
  if (d.mnemonic === "enter") ops.reverse()
  if (/^(lldt|ltr|lmsw|verr|verw)$/.test(d.mnemonic) && d.operandKind[0] === OperandKind.GPR) ops[0] = `%${registerName(2, d.operandReg[0]!)}`
  const lock = d.lock ? "lock " : ""
  const segWord = c.seg >= 0 && c.seg < 4 ? `${segments[c.seg]} ` : ""
  const implicit = attStrings[d.mnemonic]
  if (implicit !== undefined) return `${lock}${repPrefix(d, true).replace("repne", "repnz")}${segWord}${implicit}`
  const text = `${lock}${repPrefix(d, true)}${segWord}${attMnemonic(c)}`
  return ops.length === 0 ? text : `${text} ${ops.join(",")}`
}

// ---- Entry points --------------------------------------------------------------------------------

const shared = new DecodedInstruction()

/**
 * Disassembles the instruction at bytes[offset] (address `address`) with the guest core's
 * decoder. Returns its length and text; undecodable bytes give `db 0x..` (length 1).
 */
export const disassembleOne = (bytes: Uint8Array, offset: number, address: bigint, syntax: Syntax = "intel", symbols?: ReadonlyMap<bigint, string>): { length: number; text: string; valid: boolean } => {
  const d = shared
  decodeInstruction(bytes, offset, bytes.length - offset, d)
  // Truncated: the buffer ends inside the instruction (the decoder may still name it).
  if (!d.valid || d.truncated || d.tooLong) {
    const b = bytes[offset] ?? 0
    return { length: 1, text: syntax === "intel" ? `db 0x${b.toString(16).padStart(2, "0")}` : `.byte 0x${b.toString(16).padStart(2, "0")}`, valid: false }
  }
  const c: Context = { d, address, seg: segmentOverride(bytes, offset, d.length), symbols, bytes, start: offset }
  return { length: d.length, text: syntax === "intel" ? formatIntel(c) : formatAtt(c), valid: true }
}

/** Disassembles a whole buffer, one line per instruction. */
export const disassemble = (bytes: Uint8Array, options: DisassembleOptions = {}): Array<DisassembledLine> => {
  const origin = options.origin ?? 0n
  const syntax = options.syntax ?? "intel"
  const lines: Array<DisassembledLine> = []
  let offset = 0
  while (offset < bytes.length) {
    const address = origin + BigInt(offset)
    const one = disassembleOne(bytes, offset, address, syntax, options.symbols)
    lines.push({ address, bytes: bytes.subarray(offset, offset + one.length), text: one.text, valid: one.valid })
    offset += one.length
  }
  return lines
}

/** ndisasm-like text: address, bytes, instruction. */
export const formatDisassembly = (lines: ReadonlyArray<DisassembledLine>): string =>
  lines
    .map((l) => {
      const hexBytes = [...l.bytes].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join("")
      return `${l.address.toString(16).toUpperCase().padStart(8, "0")}  ${hexBytes.padEnd(20)}  ${l.text}`
    })
    .join("\n") + (lines.length > 0 ? "\n" : "")
