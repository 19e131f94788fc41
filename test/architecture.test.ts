import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

// The import table of ARCHITECTURE.md. A room may import itself and the rooms listed here;
// every other edge between rooms inside src/ is a violation.
const rooms = [
  "arch",
  "guest",
  "hypervisor/vmx",
  "hypervisor/kvm",
  "hypervisor/vmm",
  "host",
  "trace",
  "sysfs",
  "cli",
  "index.ts",
] as const
type Room = (typeof rooms)[number]

export const allowedImports: Record<Room, ReadonlyArray<Room>> = {
  arch: [],
  guest: ["arch"],
  "hypervisor/vmx": ["arch", "guest"],
  host: ["arch"],
  trace: ["arch", "host"],
  "hypervisor/kvm": ["arch", "guest", "hypervisor/vmx", "host", "trace"],
  "hypervisor/vmm": ["arch", "guest", "hypervisor/vmx", "hypervisor/kvm", "host", "trace"],
  sysfs: ["arch", "guest", "hypervisor/vmx", "hypervisor/kvm", "hypervisor/vmm", "host", "trace"],
  cli: ["arch", "guest", "hypervisor/vmx", "hypervisor/kvm", "hypervisor/vmm", "host", "trace", "sysfs", "index.ts"],
  "index.ts": ["arch", "guest", "hypervisor/vmx", "hypervisor/kvm", "hypervisor/vmm", "host", "trace", "sysfs", "cli"],
}

const srcRoot = fileURLToPath(new URL("../src", import.meta.url))

export const roomOf = (pathInSrc: string): Room | undefined => {
  const normalized = pathInSrc.split("\\").join("/")
  // Longest prefix first so hypervisor/vmx wins over a hypothetical "hypervisor".
  const sorted = [...rooms].sort((a, b) => b.length - a.length)
  return sorted.find((room) => normalized === room || normalized.startsWith(room + "/"))
}

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((entry) => {
    const full = join(dir, entry)
    if (statSync(full).isDirectory()) return sourceFiles(full)
    return /\.(ts|mts|js|mjs)$/.test(entry) ? [full] : []
  })

// Static imports, re-exports, dynamic import() and `import type`: all are dependencies.
const importPattern = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm

export const importsOf = (source: string): Array<string> =>
  [...source.matchAll(importPattern)].map((m) => m[1] ?? m[2] ?? m[3] ?? "").filter((s) => s !== "")

describe("architecture: import direction between rooms", () => {
  it("recognises every import form the guard relies on", () => {
    const sample = [
      `import { a } from "../arch/x.ts"`,
      `import type { B } from '../guest/y.ts'`,
      `export * from "./z.ts"`,
      `const m = await import("../host/w.ts")`,
      `import "../trace/side-effect.ts"`,
      `import {\n  c,\n  d,\n} from "../sysfs/multi.ts"`,
    ].join("\n")
    expect(importsOf(sample)).toEqual([
      "../arch/x.ts",
      "../guest/y.ts",
      "./z.ts",
      "../host/w.ts",
      "../trace/side-effect.ts",
      "../sysfs/multi.ts",
    ])
  })

  it("maps paths to rooms", () => {
    expect(roomOf("hypervisor/vmx/vmcs.ts")).toBe("hypervisor/vmx")
    expect(roomOf("guest/cpu/registers.ts")).toBe("guest")
    expect(roomOf("index.ts")).toBe("index.ts")
    expect(roomOf("elsewhere/x.ts")).toBeUndefined()
  })

  it("every file in src/ belongs to a room", () => {
    const strays = sourceFiles(srcRoot)
      .map((f) => relative(srcRoot, f))
      .filter((f) => roomOf(f) === undefined)
    expect(strays).toEqual([])
  })

  it("no import crosses the table in the forbidden direction", () => {
    const violations: Array<string> = []
    for (const file of sourceFiles(srcRoot)) {
      const from = roomOf(relative(srcRoot, file))!
      for (const spec of importsOf(readFileSync(file, "utf8"))) {
        if (!spec.startsWith(".")) continue // packages are not rooms
        const target = resolve(dirname(file), spec)
        const rel = relative(srcRoot, target)
        if (rel.startsWith("..")) {
          violations.push(`${relative(srcRoot, file)} imports ${spec}, outside src/`)
          continue
        }
        const to = roomOf(rel)
        if (to === undefined || to === from) continue
        if (!allowedImports[from].includes(to)) {
          violations.push(`${relative(srcRoot, file)} (${from}) imports ${spec} (${to})`)
        }
      }
    }
    expect(violations).toEqual([])
  })
})
