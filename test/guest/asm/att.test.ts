import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { disassemble } from "../../../src/guest/asm/index.ts"
import { elfImage } from "../../../src/guest/loader/index.ts"
import { gcc } from "../c/gcc.ts"
import { allForms, ORIGIN } from "./forms.ts"

// AT&T output is compared with GNU objdump (binutils ships with gcc, so it is on CI too), line
// by line, over every generated form and over code gcc generates.

const recorded = JSON.parse(readFileSync(new URL("./nasm-forms.json", import.meta.url), "utf8")) as { bytes: Record<string, string> }

/** objdump's instruction texts, with its `# target` comments and `<symbol>` annotations removed. */
const objdump = (args: ReadonlyArray<string>, file: string): Array<{ address: bigint; text: string }> =>
  execFileSync("objdump", [...args, file], { encoding: "utf8", maxBuffer: 1 << 26 })
    .split("\n")
    .map((l) => l.split("\t"))
    .filter((f) => f.length >= 3 && /^\s*[0-9a-f]+:$/.test(f[0]!))
    .map((f) => ({
      address: BigInt(`0x${f[0]!.trim().slice(0, -1)}`),
      text: f.slice(2).join(" ").replace(/\s+#.*$/, "").replace(/\s*<[^>]*>$/, "").replace(/\s+/g, " ").trim(),
    }))

describe("AT&T syntax matches objdump", () => {
  it("for every generated form", () => {
    const sources = [...new Set(allForms.map((f) => f.source))]
    const bytes = Buffer.concat(sources.map((s) => Buffer.from(recorded.bytes[s]!, "hex")))
    const file = join(mkdtempSync(join(tmpdir(), "kvmsim-att-")), "forms.bin")
    writeFileSync(file, bytes)
    const theirs = objdump(["-D", "-b", "binary", "-m", "i386:x86-64", `--adjust-vma=0x${ORIGIN.toString(16)}`], file)
    const ours = disassemble(new Uint8Array(bytes), { origin: ORIGIN, syntax: "att" })
    expect(ours.map((l) => `${l.address.toString(16)} ${l.text}`)).toEqual(theirs.map((l) => `${l.address.toString(16)} ${l.text}`))
  })

  it("for code gcc generates", () => {
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
      void _start(void) {
        for (int i = 0; i < 32; i++) { nodes[i].next = i + 1 < 32 ? &nodes[i + 1] : 0; nodes[i].value = i * 3 - 40; nodes[i].tag = (unsigned char)i; }
        for (int i = 0; i < 256; i++) table[i] = mix(i, table[(i * 7) & 255]) / (i + 1) % 1000;
        long r = walk(nodes, 5) + table[17];
        unsigned int cpu, node;
        if (getcpu(&cpu, &node) == 0) r += cpu;
        outl(0xe9, (unsigned)r); outw(0xe9, (unsigned short)r); outb(0xe9, (unsigned char)inb(0x61));
        kvm_hypercall4(KVM_HC_VCPU_INFO, 1, 2, 3, 4);
        exit_group((int)r);
      }
    `)
    const text = elfImage(program.bytes).segments[0]!
    // With symbols objdump prints branch targets as bare hex (`je 400068 <walk+0x68>`).
    const theirs = objdump(["-d", "-j", ".text"], program.path).map((l) => ({ ...l, text: l.text.replace(/^((?:j[a-z]+|call|loop[a-z]*) )([0-9a-f]+)$/, "$10x$2") }))
    const ours = disassemble(text.data, { origin: text.address, syntax: "att" }).slice(0, theirs.length)
    expect(theirs.length).toBeGreaterThan(50)
    expect(ours.map((l) => `${l.address.toString(16)} ${l.text}`)).toEqual(theirs.map((l) => `${l.address.toString(16)} ${l.text}`))
  })
})
