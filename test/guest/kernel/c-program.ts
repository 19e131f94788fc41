// Builds a freestanding C user program (examples/vcpu-info.c) with the machine's gcc, the
// toolchain's header and linker script, and the flags docs/toolchain.md documents; loads the
// static ELF64 with the toolchain's loader.
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type UserProgram, userProgramFromImage } from "../../../src/guest/kernel/index.ts"
import { elfImage } from "../../../src/guest/loader/index.ts"

const include = fileURLToPath(new URL("../../../src/guest/kernel/include", import.meta.url))

export const gccFlags = [
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
  "-I",
  include,
  "-T",
  join(include, "kvmsim.ld"),
]

export const buildC = (source: URL): Uint8Array => {
  const dir = mkdtempSync(join(tmpdir(), "kvmsim-c-"))
  const out = join(dir, "a.out")
  execFileSync("gcc", [...gccFlags, "-o", out, fileURLToPath(source)])
  return new Uint8Array(readFileSync(out))
}

/** gcc's static ELF64 as the kernel's user program. */
export const cProgram = (source: URL): UserProgram => userProgramFromImage(elfImage(buildC(source), fileURLToPath(source)))
