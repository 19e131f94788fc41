import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from "iced-x86"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { assemble, disassemble } from "../../../src/guest/asm/index.ts"
import { elfImage } from "../../../src/guest/loader/index.ts"
import { gcc } from "../c/gcc.ts"
import { allForms, ORIGIN } from "./forms.ts"

// Round trip over every generated form: NASM's bytes → our disassembler (on the guest core's
// decoder) → our assembler must give the same bytes. Where the printed source legitimately
// encodes differently (a RIP-relative operand is printed with its absolute target, which NASM
// encodes as an absolute address), the two byte strings must mean the same instruction: iced
// decodes both to the same mnemonic, operands and effective address.

const recorded = JSON.parse(readFileSync(new URL("./nasm-forms.json", import.meta.url), "utf8")) as { bytes: Record<string, string> }
const sources = [...new Set(allForms.map((f) => f.source))]

const icedView = (bytes: Uint8Array, ip = ORIGIN): string => {
  const decoder = new Decoder(64, bytes, DecoderOptions.None)
  decoder.ip = ip
  const inst = decoder.decode()
  const formatter = new Formatter(FormatterSyntax.Nasm)
  formatter.ripRelativeAddresses = false
  // iced prints a RIP-relative operand as `[rel <absolute address>]`: the same effective address.
  return formatter.format(inst).replace("[rel ", "[")
}

describe("disassemble → assemble round trip (Intel syntax)", () => {
  it(`gives back the same instruction for all ${sources.length} forms`, () => {
    const problems: Array<string> = []
    for (const source of sources) {
      const bytes = Uint8Array.from(Buffer.from(recorded.bytes[source]!, "hex"))
      const lines = disassemble(bytes, { origin: ORIGIN })
      if (lines.length !== 1 || !lines[0]!.valid) {
        problems.push(`${source}: disassembled as ${lines.map((l) => l.text).join(" | ")}`)
        continue
      }
      const text = lines[0]!.text
      let again: Uint8Array
      try {
        again = assemble(`BITS 64\n${text}\n`, { origin: ORIGIN }).bytes
      } catch (e) {
        problems.push(`${source}: disassembly \`${text}\` does not assemble: ${(e as Error).message.split("\n")[0]}`)
        continue
      }
      const a = Buffer.from(bytes).toString("hex")
      const b = Buffer.from(again).toString("hex")
      if (a === b) continue
      if (icedView(bytes) !== icedView(again) || !text.includes("[rel ")) problems.push(`${source}: \`${text}\` reassembles to ${b}, not ${a} (${icedView(bytes)} vs ${icedView(again)})`)
    }
    expect(problems).toEqual([])
  })

  it("prints what the core cannot decode as data", () => {
    // 0F 0B is UD2 (decoded); 0F 04 is an undefined opcode: the core raises #UD on it.
    const lines = disassemble(Uint8Array.of(0x0f, 0x04), { origin: ORIGIN })
    expect(lines[0]).toMatchObject({ valid: false, text: "db 0x0f" })
  })

  it("gives back the same instructions for code gcc generates (its encodings are not always NASM's)", () => {
    const program = gcc(`
      #include "kvmsim.h"
      struct node { struct node *next; long value; unsigned char tag; };
      static struct node nodes[32];
      long table[256];
      static long mix(long a, long b) { return (a * 2654435761L) ^ (b >> 3) ^ (a << 7); }
      __attribute__((noinline)) long walk(struct node *n, int k) {
        long s = 0;
        for (; n; n = n->next) { s += n->value * k; if (n->tag & 4) s -= mix(s, n->tag); else s ^= (unsigned)n->tag << (k & 31); }
        return s;
      }
      __attribute__((noinline)) int cmp(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return (unsigned char)*a - (unsigned char)*b; }
      __attribute__((noinline)) void fill(char *p, int n, char c) { for (int i = 0; i < n; i++) p[i] = c; }
      void _start(void) {
        char buf[64];
        fill(buf, 63, 'x'); buf[63] = 0;
        for (int i = 0; i < 32; i++) { nodes[i].next = i + 1 < 32 ? &nodes[i + 1] : 0; nodes[i].value = i * 3 - 40; nodes[i].tag = (unsigned char)i; }
        for (int i = 0; i < 256; i++) table[i] = mix(i, table[(i * 7) & 255]) / (i + 1) % 1000;
        long r = walk(nodes, 5) + table[17] + cmp(buf, "xxy");
        unsigned int cpu, node;
        if (getcpu(&cpu, &node) == 0) r += cpu;
        outl(0xe9, (unsigned)r); outw(0xe9, (unsigned short)r); outb(0xe9, (unsigned char)inb(0x61));
        kvm_hypercall4(KVM_HC_VCPU_INFO, 1, 2, 3, 4);
        exit_group((int)r);
      }
    `)
    const text = elfImage(program.bytes).segments[0]!
    const lines = disassemble(text.data, { origin: text.address })
    expect(lines.every((l) => l.valid)).toBe(true)
    const problems: Array<string> = []
    for (const line of lines) {
      // Each instruction is reassembled at its own address, so branch targets stay the same.
      const again = assemble(`BITS 64\n${line.text}\n`, { origin: line.address }).bytes
      if (icedView(line.bytes, line.address) !== icedView(again, line.address)) problems.push(`${line.text}: ${icedView(line.bytes, line.address)} vs ${icedView(again, line.address)}`)
    }
    expect(problems).toEqual([])
  })
})
