// The decoder against iced-x86 (an independent, fuzzed x86 decoder): same length and the same
// valid/#UD verdict for every instruction the core implements, on random 15-byte windows and
// exhaustively over the one-byte, 0F, 0F38 and 0F3A maps × every ModRM byte (with and without
// the 66, REX.W, F2 and F3 prefixes). Differences are allowed only where `allowedDifference`
// names a reason.

import { Code, Decoder, DecoderOptions, Instruction, Mnemonic } from "iced-x86"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { DecodedInstruction, decodeInstruction } from "../../src/guest/decode/decoder.ts"

/** iced mnemonics of the instructions this core executes. */
const implemented = new Set(
  `Add Or Adc Sbb And Sub Xor Cmp Test Inc Dec Neg Not Mul Imul Div Idiv Shl Shr Sar Sal Rol Ror Rcl Rcr Shld Shrd
   Bt Bts Btr Btc Bsf Bsr Tzcnt Lzcnt Popcnt Mov Movzx Movsx Movsxd Lea Xchg Cmpxchg Cmpxchg8b Cmpxchg16b Xadd Bswap
   Cbw Cwde Cdqe Cwd Cdq Cqo Seto Setno Setb Setae Sete Setne Setbe Seta Sets Setns Setp Setnp Setl Setge Setle Setg
   Cmovo Cmovno Cmovb Cmovae Cmove Cmovne Cmovbe Cmova Cmovs Cmovns Cmovp Cmovnp Cmovl Cmovge Cmovle Cmovg
   Jo Jno Jb Jae Je Jne Jbe Ja Js Jns Jp Jnp Jl Jge Jle Jg Jmp Call Ret Loop Loope Loopne Jrcxz Jecxz
   Push Pop Pushf Pushfq Popf Popfq Enter Leave Movsb Movsw Movsd Movsq Stosb Stosw Stosd Stosq Lodsb Lodsw Lodsd Lodsq
   Scasb Scasw Scasd Scasq Cmpsb Cmpsw Cmpsd Cmpsq Insb Insw Insd Outsb Outsw Outsd
   Clc Stc Cmc Cld Std Cli Sti Lahf Sahf Nop Endbr64 Pause Ud2 Int Int3 Int1 Iretq Iret Iretd Syscall Sysretq Sysretd Sysret
   Hlt Cpuid Rdmsr Wrmsr Rdtsc Rdtscp Rdpmc In Out Lgdt Lidt Sgdt Sidt Lldt Ltr Sldt Str Smsw Lmsw Clts Invlpg
   Vmcall Vmlaunch Vmresume Vmxoff Vmxon Vmclear Vmptrld Vmptrst Vmread Vmwrite Monitor Mwait Invd Wbinvd Wbnoinvd Swapgs Xlatb
   Clac Stac Lfence Mfence Sfence`
    .split(/\s+/)
    .filter((s) => s !== ""),
)

/** Hint-NOP space (0F 0D, 0F 18–0F 1F): executed as NOPs here, as by processors without those features. */
const hintNops = new Set(
  `Prefetchnta Prefetcht0 Prefetcht1 Prefetcht2 Prefetch Prefetchw Prefetchwt1 Reservednop Bndldx Bndstx Bndmov Bndcl
   Bndcu Bndcn Bndmk Cldemote Rdsspd Rdsspq Endbr32 Nop Prefetchit0 Prefetchit1 Prefetchreserved3
   Prefetchreserved4 Prefetchreserved5 Prefetchreserved6 Prefetchreserved7`
    .split(/\s+/)
    .filter((s) => s !== ""),
)

const simdOperand = /(xmm|ymm|zmm|_mm|mm_|_k\d|bnd|_st|tmm)/i

/** Classifies iced's reading of a window: "invalid", "ours" (we must agree) or "foreign" (not simulated). */
const classify = (ins: Instruction): "invalid" | "ours" | "hint" | "foreign" => {
  if (ins.code === Code.INVALID) return "invalid"
  const name = Mnemonic[ins.mnemonic] ?? ""
  const codeName = Code[ins.code] ?? ""
  if (hintNops.has(name)) return "hint"
  if (!implemented.has(name)) return "foreign"
  if (simdOperand.test(codeName)) return "foreign" // e.g. SSE MOVSD/CMPSD share string mnemonics
  if (codeName.startsWith("VEX_") || codeName.startsWith("EVEX_") || codeName.startsWith("XOP_")) return "foreign"
  // Far forms (JMP/CALL m16:64, RETF, LSS/LFS/LGS-like) are not simulated.
  if (/^(Jmp|Call)_m16|^(Jmp|Call)_ptr|^Retf/.test(codeName)) return "foreign"
  return "ours"
}

/**
 * Known differences, each with its reason. Returns a reason string when the difference is
 * allowed, else undefined.
 */
const allowedDifference = (ins: Instruction, d: DecodedInstruction, kind: string): string | undefined => {
  const codeName = Code[ins.code] ?? ""
  if (kind === "hint" && !d.valid) return undefined
  if (kind === "invalid" && d.valid && d.op !== 0) {
    // 0F 18–1F with register forms or odd prefixes: iced reports some as invalid; processors
    // execute the whole hint-NOP space as NOP.
    if (d.map === 1 && d.opcode >= 0x18 && d.opcode <= 0x1f) return "hint-NOP space"
  }
  void codeName
  return undefined
}

const mismatch = (bytes: Uint8Array, ins: Instruction, d: DecodedInstruction, kind: string): string =>
  `${Array.from(bytes.subarray(0, 15), (b) => b.toString(16).padStart(2, "0")).join(" ")}: iced ${Code[ins.code]} len ${ins.length} (${kind}); ours ${d.valid ? d.mnemonic : "#UD"} len ${d.length}`

/** Compares our decoder with iced on every 15-byte window of `buffer`; returns mismatch descriptions. */
const compareWindows = (buffer: Uint8Array, count: number, stats: Record<string, number>): Array<string> => {
  const decoder = new Decoder(64, buffer, DecoderOptions.None)
  const ins = new Instruction()
  const d = new DecodedInstruction()
  const failures: Array<string> = []
  for (let w = 0; w < count; w++) {
    const at = w * 15
    decoder.position = at
    decoder.ip = 0n
    decoder.decodeOut(ins)
    decodeInstruction(buffer, at, 15, d)
    const kind = classify(ins)
    stats[kind] = (stats[kind] ?? 0) + 1
    let ok: boolean
    switch (kind) {
      case "invalid":
        ok = !d.valid
        break
      case "ours":
      case "hint":
        ok = d.valid && d.length === ins.length
        break
      default:
        // Not simulated: must raise #UD.
        ok = !d.valid
        break
    }
    if (!ok) {
      const reason = allowedDifference(ins, d, kind)
      if (reason !== undefined) {
        stats[`allowed: ${reason}`] = (stats[`allowed: ${reason}`] ?? 0) + 1
        continue
      }
      if (failures.length < 40) failures.push(mismatch(buffer.subarray(at, at + 15), ins, d, kind))
      else failures.length++
    }
  }
  return failures
}

describe("decoder agrees with iced-x86 (64-bit mode)", () => {
  it("on 1,000,000 random 15-byte windows", () => {
    const stats: Record<string, number> = {}
    const failures: Array<string> = []
    // Seeded for reproducibility; biased so prefixes, REX and 0F escapes are common.
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        let s = seed >>> 0 || 1
        const rand = (): number => {
          s ^= s << 13
          s ^= s >>> 17
          s ^= s << 5
          return (s >>> 0) / 4294967296
        }
        const count = 100_000
        const buffer = new Uint8Array(count * 15)
        const prefixes = [0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x64, 0x65, 0x48, 0x41, 0x4c, 0x0f]
        for (let w = 0; w < count; w++) {
          for (let j = 0; j < 15; j++) buffer[w * 15 + j] = (rand() * 256) | 0
          // A third of the windows start with a prefix or escape byte.
          if (rand() < 0.33) buffer[w * 15] = prefixes[(rand() * prefixes.length) | 0]!
        }
        failures.push(...compareWindows(buffer, count, stats))
      }),
      { numRuns: 10, seed: 0x5eed, endOnFailure: true },
    )
    expect(failures).toEqual([])
    expect((stats.ours ?? 0) + (stats.hint ?? 0)).toBeGreaterThan(300_000)
  })

  it("exhaustively on the one-byte, 0F, 0F38 and 0F3A maps × every ModRM, with 66/REX.W/F2/F3 variants", () => {
    const escapes: Array<Array<number>> = [[], [0x0f], [0x0f, 0x38], [0x0f, 0x3a]]
    const prefixSets: Array<Array<number>> = [[], [0x66], [0x48], [0xf3], [0xf2], [0x41]]
    const tail = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa]
    const windows: Array<number> = []
    let count = 0
    for (const prefix of prefixSets)
      for (const esc of escapes)
        for (let opcode = 0; opcode < 256; opcode++) {
          if (esc.length === 0 && (opcode === 0x0f || (opcode >= 0x40 && opcode <= 0x4f))) continue
          for (let modrm = 0; modrm < 256; modrm++) {
            const w = [...prefix, ...esc, opcode, modrm, ...tail].slice(0, 15)
            while (w.length < 15) w.push(0)
            windows.push(...w)
            count++
          }
        }
    const buffer = Uint8Array.from(windows)
    const stats: Record<string, number> = {}
    const failures = compareWindows(buffer, count, stats)
    expect(failures).toEqual([])
  })
})
