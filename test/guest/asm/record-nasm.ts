// Records NASM 2.16's bytes for every generated form into nasm-forms.json. NASM is not on CI,
// so this runs by hand on a machine that has it:  npx tsx test/guest/asm/record-nasm.ts
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { allForms, ORIGIN } from "./forms.ts"

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), "nasm-forms-"))
const sources = [...new Set(allForms.map((f) => f.source))]
const out: Record<string, string> = {}
let next = 0
const worker = async (id: number): Promise<void> => {
  while (next < sources.length) {
    const source = sources[next++]!
    const asm = join(dir, `w${id}.asm`)
    const bin = join(dir, `w${id}.bin`)
    writeFileSync(asm, `BITS 64\norg 0x${ORIGIN.toString(16)}\n${source}\n`)
    try {
      await run("nasm", ["-f", "bin", asm, "-o", bin])
      out[source] = readFileSync(bin).toString("hex")
    } catch (e) {
      out[source] = `ERROR: ${String((e as { stderr?: string }).stderr ?? e).trim()}`
    }
  }
}
await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(worker))
const { stdout } = await run("nasm", ["-v"])
const sorted = Object.fromEntries(sources.map((s) => [s, out[s]!]))
writeFileSync(new URL("./nasm-forms.json", import.meta.url), JSON.stringify({ nasm: stdout.trim(), origin: `0x${ORIGIN.toString(16)}`, bytes: sorted }, null, 1) + "\n")
console.log(`recorded ${sources.length} forms`)
