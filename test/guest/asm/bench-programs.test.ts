import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { assemble } from "../../../src/guest/asm/index.ts"

// The benchmark guests, assembled by `nasm -f bin [-D…] FILE` (NASM 2.16.01) on the
// development machine; NASM is not installed on CI, so its output is recorded here.
const nasm: ReadonlyArray<{ file: string; defines: Record<string, string>; hex: string }> = [
  { file: "loop.asm", defines: {}, hex: "4885ff7505bf00e1f5054889f931c0bb45230100ba5a5a000031f64801c84831c24829d348ffc648ffc975ef4831d84831d04801f0f4" },
  { file: "loop.asm", defines: { ITERS: "1000" }, hex: "4885ff7505bfe80300004889f931c0bb45230100ba5a5a000031f64801c84831c24829d348ffc648ffc975ef4831d84831d04801f0f4" },
  { file: "loop.asm", defines: { NATIVE: "" }, hex: "534885ff7505bf00e1f5054889f931c0bb45230100ba5a5a000031f64801c84831c24829d348ffc648ffc975ef4831d84831d04801f05bc3" },
  { file: "hypercall.asm", defines: {}, hex: "4885ff7505bf809698004989fcbae90000004489e1b80b00000089cb0f01c149ffcc75eef4" },
  { file: "hypercall.asm", defines: { EXIT_CPUID: "" }, hex: "4885ff7505bf809698004989fcbae90000004489e1b80b00000089cb0fa2bae900000049ffcc75eaf4" },
  { file: "hypercall.asm", defines: { EXIT_OUT: "" }, hex: "4885ff7505bf809698004989fcbae90000004489e1b80b00000089cbee49ffcc75f0f4" },
  { file: "hypercall.asm", defines: { N: "5" }, hex: "4885ff7505bf050000004989fcbae90000004489e1b80b00000089cb0f01c149ffcc75eef4" },
]

const benchSource = (file: string): string => readFileSync(new URL(`../../../../shared/bench/${file}`, import.meta.url), "utf8")
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

describe("benchmark guest programs assemble to NASM's bytes", () => {
  for (const { file, defines, hex } of nasm) {
    const flags = Object.entries(defines).map(([k, v]) => (v === "" ? `-D${k}` : `-D${k}=${v}`)).join(" ")
    it(`${file} ${flags || "(no -D)"}`, () => {
      const result = assemble(benchSource(file), { fileName: file, defines })
      expect(toHex(result.bytes)).toBe(hex)
    })
  }

  it("reports label addresses in the symbol map (local labels under their scope)", () => {
    // Offsets from nasm -l: .have_count at 0x0A, .top at 0x12.
    const result = assemble(benchSource("hypercall.asm"), { fileName: "hypercall.asm", origin: 0x1000n })
    expect(result.origin).toBe(0x1000n)
    expect(result.symbols.get(".have_count")).toBe(0x100an)
    expect(result.symbols.get(".top")).toBe(0x1012n)
  })

  it("lists every line with its offset and bytes like nasm -l", () => {
    const result = assemble(benchSource("hypercall.asm"), { fileName: "hypercall.asm" })
    // Lines 16-36 of `nasm -l` for this file, verbatim (the listing shows offsets, not addresses).
    const nasmListing = [
      "    16 00000000 4885FF                          test    rdi, rdi",
      "    17 00000003 7505                            jnz     .have_count",
      "    18 00000005 BF80969800                      mov     rdi, N",
      "    19                                  .have_count:",
      "    20 0000000A 4989FC                          mov     r12, rdi",
      "    21 0000000D BAE9000000                      mov     edx, 0xE9",
      "    22                                  .top:",
      "    23 00000012 4489E1                          mov     ecx, r12d",
      "    24 00000015 B80B000000                      mov     eax, 11",
      "    25 0000001A 89CB                            mov     ebx, ecx",
      "    26                                  %ifdef EXIT_CPUID",
      "    27                                          cpuid",
      "    28                                          mov     edx, 0xE9",
      "    29                                  %elifdef EXIT_OUT",
      "    30                                          out     dx, al",
      "    31                                  %else",
      "    32 0000001C 0F01C1                          vmcall",
      "    33                                  %endif",
      "    34 0000001F 49FFCC                          dec     r12",
      "    35 00000022 75EE                            jnz     .top",
      "    36 00000024 F4                              hlt",
    ]
    const lines = result.listing.split("\n")
    const from = lines.findIndex((l) => l.startsWith("    16 "))
    expect(lines.slice(from, from + nasmListing.length)).toEqual(nasmListing)
  })
})
