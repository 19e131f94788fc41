import { Code, Decoder, DecoderOptions, Encoder, Formatter, FormatterSyntax, Instruction, MemoryOperand, Register, RepPrefixKind } from "iced-x86"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { assemble } from "../../../src/guest/asm/index.ts"
import { allForms, ORIGIN, type Form, type MemSpec, type OpSpec } from "./forms.ts"

// Every generated instruction form is assembled and compared with (1) NASM 2.16's bytes,
// recorded by record-nasm.ts, and (2) iced-x86's encoder given the same instruction. Forms
// with `nasmChoice` are the places where several encodings are valid: the iced instruction
// there describes the encoding NASM picks, and the note says what NASM does.

const recorded = JSON.parse(readFileSync(new URL("./nasm-forms.json", import.meta.url), "utf8")) as { bytes: Record<string, string> }

const icedRegister = (name: string): Register => {
  const upper = name.toUpperCase().replace(/^(R\d+)B$/, "$1L")
  const r = (Register as unknown as Record<string, Register>)[upper]
  if (r === undefined) throw new Error(`no iced register ${name}`)
  return r
}

const icedMemory = (m: MemSpec): MemoryOperand => {
  if (m.ripTarget !== undefined) return new MemoryOperand(Register.RIP, Register.None, 1, m.ripTarget, 8, false, Register.None)
  const base = m.base === undefined ? Register.None : icedRegister(m.base)
  const index = m.index === undefined ? Register.None : icedRegister(m.index)
  const disp = m.disp ?? 0n
  // 8: a 64-bit address (4 would mean a 32-bit address with a 67 prefix in iced).
  const displSize = m.base === undefined ? 8 : disp === 0n ? 0 : 1
  return new MemoryOperand(base, index, m.scale ?? 1, disp, displSize, false, m.seg === undefined ? Register.None : icedRegister(m.seg))
}

const firstThatWorks = (attempts: ReadonlyArray<() => Instruction>): Instruction => {
  let last: unknown
  for (const a of attempts) {
    try {
      return a()
    } catch (e) {
      last = e
    }
  }
  throw last
}

const stringCreators: Record<string, (rep: RepPrefixKind) => Instruction> = {}
for (const kind of ["movs", "lods", "cmps", "outs"]) {
  for (const s of ["b", "w", "d", "q"]) {
    const f = (Instruction as unknown as Record<string, ((a: number, seg: Register, rep: RepPrefixKind) => Instruction) | undefined>)[`create${kind[0]!.toUpperCase()}${kind.slice(1)}${s}`]
    if (f !== undefined) stringCreators[`${kind}${s}`] = (rep) => f(64, Register.None, rep)
  }
}
for (const kind of ["stos", "scas", "ins"]) {
  for (const s of ["b", "w", "d", "q"]) {
    const f = (Instruction as unknown as Record<string, ((a: number, rep: RepPrefixKind) => Instruction) | undefined>)[`create${kind[0]!.toUpperCase()}${kind.slice(1)}${s}`]
    if (f !== undefined) stringCreators[`${kind}${s}`] = (rep) => f(64, rep)
  }
}

const icedInstruction = (form: Form): Instruction => {
  const code = (Code as unknown as Record<string, Code>)[form.code]
  if (code === undefined) throw new Error(`no iced Code ${form.code}`)
  const mnemonic = form.source.split(" ").filter((w) => !["lock", "rep", "repne"].includes(w))[0]!
  const rep = form.prefix === "rep" ? RepPrefixKind.Repe : form.prefix === "repne" ? RepPrefixKind.Repne : RepPrefixKind.None
  const stringCreate = stringCreators[mnemonic]
  if (stringCreate !== undefined && form.ops.length === 0) return stringCreate(rep)
  if (mnemonic === "xlatb") return Instruction.createMem(code, new MemoryOperand(Register.RBX, Register.AL, 1, 0n, 0, false, Register.None))
  const base = form.icedOps ?? form.ops
  const ops: ReadonlyArray<OpSpec> = form.icedMem === undefined ? base : base.map((o) => ("m" in o ? { m: form.icedMem! } : o))
  const pattern = ops.map((o) => ("r" in o ? "R" : "m" in o ? "M" : "i" in o ? "I" : "B")).join("")
  const reg = (k: number): Register => icedRegister((ops[k] as { r: string }).r)
  const mem = (k: number): MemoryOperand => icedMemory((ops[k] as { m: MemSpec }).m)
  const imm = (k: number): bigint => (ops[k] as { i: bigint }).i
  const n = (k: number): number => Number(imm(k))
  let inst: Instruction
  switch (pattern) {
    case "":
      inst = Instruction.create(code)
      break
    case "R":
      inst = Instruction.createReg(code, reg(0))
      break
    case "M":
      inst = Instruction.createMem(code, mem(0))
      break
    case "I":
      inst = firstThatWorks([() => Instruction.createI32(code, n(0)), () => Instruction.createU32(code, n(0))])
      break
    case "B":
      inst = Instruction.createBranch(code, (ops[0] as { branch: bigint }).branch)
      break
    case "RR":
      inst = Instruction.createRegReg(code, reg(0), reg(1))
      break
    case "RM":
      inst = Instruction.createRegMem(code, reg(0), mem(1))
      break
    case "MR":
      inst = Instruction.createMemReg(code, mem(0), reg(1))
      break
    case "RI":
      inst = firstThatWorks([() => Instruction.createRegI64(code, reg(0), imm(1)), () => Instruction.createRegU64(code, reg(0), BigInt.asUintN(64, imm(1))), () => Instruction.createRegI32(code, reg(0), n(1)), () => Instruction.createRegU32(code, reg(0), n(1))])
      break
    case "MI":
      inst = firstThatWorks([() => Instruction.createMemI32(code, mem(0), n(1)), () => Instruction.createMemU32(code, mem(0), n(1))])
      break
    case "IR":
      inst = firstThatWorks([() => Instruction.createI32Reg(code, n(0), reg(1)), () => Instruction.createU32Reg(code, n(0), reg(1))])
      break
    case "II":
      inst = Instruction.createU32U32(code, n(0), n(1))
      break
    case "RRI":
      inst = firstThatWorks([() => Instruction.createRegRegI32(code, reg(0), reg(1), n(2)), () => Instruction.createRegRegU32(code, reg(0), reg(1), n(2))])
      break
    case "RMI":
      inst = firstThatWorks([() => Instruction.createRegMemI32(code, reg(0), mem(1), n(2)), () => Instruction.createRegMemU32(code, reg(0), mem(1), n(2))])
      break
    case "MRI":
      inst = firstThatWorks([() => Instruction.createMemRegI32(code, mem(0), reg(1), n(2)), () => Instruction.createMemRegU32(code, mem(0), reg(1), n(2))])
      break
    case "RRR":
      inst = Instruction.createRegRegReg(code, reg(0), reg(1), reg(2))
      break
    case "MRR":
      inst = Instruction.createMemRegReg(code, mem(0), reg(1), reg(2))
      break
    default:
      throw new Error(`no iced constructor for operand pattern ${pattern}`)
  }
  if (form.prefix === "lock") inst.hasLockPrefix = true
  if (form.prefix === "rep") inst.hasRepePrefix = true
  if (form.prefix === "repne") inst.hasRepnePrefix = true
  return inst
}

const icedBytes = (form: Form): string => {
  const encoder = new Encoder(64)
  encoder.encode(icedInstruction(form), ORIGIN)
  return Buffer.from(encoder.takeBuffer()).toString("hex")
}

const decodedText = (hex: string): string => {
  const decoder = new Decoder(64, Uint8Array.from(Buffer.from(hex, "hex")), DecoderOptions.None)
  decoder.ip = ORIGIN
  const formatter = new Formatter(FormatterSyntax.Nasm)
  const inst = decoder.decode()
  return `${Code[inst.code]} ${formatter.format(inst)} (${inst.length} bytes)`
}

const ours = (source: string): string => Buffer.from(assemble(`BITS 64\n${source}\n`, { origin: ORIGIN }).bytes).toString("hex")

describe("every instruction form matches NASM 2.16 and iced-x86's encoder", () => {
  it("covers the forms the core executes", () => {
    expect(allForms.length).toBeGreaterThan(1500)
    expect(Object.keys(recorded.bytes).length).toBe(new Set(allForms.map((f) => f.source)).size)
  })
  const groups = new Map<string, Array<Form>>()
  for (const f of allForms) {
    const key = f.source.split(" ").filter((w) => !["lock", "rep", "repne"].includes(w))[0]!
    groups.set(key, [...(groups.get(key) ?? []), f])
  }
  for (const [mnemonic, forms] of groups) {
    it(`${mnemonic} (${forms.length} forms)`, () => {
      const mismatches: Array<string> = []
      for (const form of forms) {
        const nasm = recorded.bytes[form.source]
        const mine = ours(form.source)
        if (mine !== nasm) mismatches.push(`${form.source}: ours ${mine}, nasm ${nasm}`)
        let iced: string
        try {
          iced = icedBytes(form)
        } catch (e) {
          iced = `(iced error: ${String(e)})`
        }
        if (form.icedDiffers !== undefined) {
          // A legitimate difference: other bytes, same instruction.
          if (iced === nasm) mismatches.push(`${form.source}: iced now matches NASM; drop icedDiffers`)
          else if (decodedText(iced) !== decodedText(nasm!)) mismatches.push(`${form.source}: iced ${decodedText(iced)} is not nasm's ${decodedText(nasm!)}`)
        } else if (iced !== nasm) mismatches.push(`${form.source}: iced ${iced}, nasm ${nasm}${form.nasmChoice ? ` (${form.nasmChoice})` : ""}`)
      }
      expect(mismatches).toEqual([])
    })
  }
})
