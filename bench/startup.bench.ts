// startup: milliseconds from the start of `kvmsim run --bare` (spawn of node bin/kvmsim.mjs) to
// its first guest instruction (the first VM entry, reported by the process itself on stderr
// when KVMSIM_STARTUP_PROBE=1), next to `node -e 0` spawned and waited for in the same run as
// calibration. Best of several spawns each.

import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Benchmark, result, verify } from "./harness.ts"
import { assemble } from "../src/guest/asm/index.ts"

const ROUNDS = 5
const bin = fileURLToPath(new URL("../bin/kvmsim.mjs", import.meta.url))
const epochNow = (): number => performance.timeOrigin + performance.now()

const nodeStartMs = (): number => {
  let best = Infinity
  for (let i = 0; i < ROUNDS; i++) {
    const start = epochNow()
    const r = spawnSync(process.execPath, ["-e", "0"])
    verify("startup", "node -e 0 status", 0, r.status)
    best = Math.min(best, epochNow() - start)
  }
  return best
}

const kvmsimStartMs = (): number => {
  const dir = mkdtempSync(join(tmpdir(), "kvmsim-startup-"))
  const guest = join(dir, "bare.bin")
  writeFileSync(guest, assemble("BITS 64\nORG 0x100000\ncli\nhlt\n").bytes)
  let best = Infinity
  for (let i = 0; i < ROUNDS; i++) {
    const start = epochNow()
    const r = spawnSync(process.execPath, [bin, "run", "--bare", guest], { encoding: "utf8", env: { ...process.env, KVMSIM_STARTUP_PROBE: "1" } })
    verify("startup", "kvmsim run status", 0, r.status)
    const m = /kvmsim-startup first-vm-entry-epoch-ms (\d+\.\d+)/.exec(r.stderr)
    verify("startup", "first VM entry reported", true, m !== null)
    best = Math.min(best, Number(m![1]) - start)
  }
  return best
}

const startup: Benchmark = {
  name: "startup",
  description: "ms from process start to the first guest instruction of a bare program (calibration: node -e 0 in the same run)",
  run: () => {
    const calibration = { name: "node -e 0 (spawn to exit)", unit: "ms", value: nodeStartMs() }
    return result("startup", "ms", kvmsimStartMs(), calibration)
  },
}

export default startup
