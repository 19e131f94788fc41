// Builds C guest programs with the machine's gcc and the flags docs/toolchain.md documents.
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const includeDir = fileURLToPath(new URL("../../../src/guest/kernel/include", import.meta.url))
export const linkerScript = join(includeDir, "kvmsim.ld")

/** The documented flags for a freestanding, static, non-PIE guest without SSE or a red zone. */
export const guestCflags = [
  "-O2",
  "-ffreestanding",
  "-fno-builtin",
  "-nostdlib",
  "-static",
  "-fno-pie",
  "-no-pie",
  "-mno-red-zone",
  "-mno-sse",
  "-mno-mmx",
  "-mno-80387",
  "-fno-stack-protector",
  "-fcf-protection=none",
  "-fno-asynchronous-unwind-tables",
  "-Wl,--build-id=none",
]

/** Compiles `source` with gcc; `flags` replace the documented ones when given. Returns the output file's bytes and path. */
export const gcc = (source: string, options: { flags?: ReadonlyArray<string>; linkerScript?: boolean; compileOnly?: boolean } = {}): { bytes: Uint8Array; path: string } => {
  const dir = mkdtempSync(join(tmpdir(), "kvmsim-gcc-"))
  const c = join(dir, "prog.c")
  const out = join(dir, options.compileOnly ? "prog.o" : "prog")
  writeFileSync(c, source)
  const args = [...(options.flags ?? guestCflags), "-I", includeDir]
  if (options.linkerScript ?? true) args.push("-T", linkerScript)
  if (options.compileOnly) args.push("-c")
  execFileSync("gcc", [...args, "-o", out, c], { stdio: ["ignore", "pipe", "pipe"] })
  return { bytes: new Uint8Array(readFileSync(out)), path: out }
}
