#!/usr/bin/env node
// kvmsim's command. Runs dist/kvmsim.mjs (built by `npm run build`, which `npm ci` runs) when
// it is newer than every file under src/; otherwise runs the TypeScript sources through tsx.
// Commands that may import a user's TypeScript module (`--module`, `shell`'s insmod FILE.ts)
// always use the sources, so the user's module and kvmsim share one copy of every class.
import { existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const bundle = join(root, "dist", "kvmsim.mjs")

const newestMtime = (dir) => {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    const mtime = entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs
    if (mtime > newest) newest = mtime
  }
  return newest
}

const args = process.argv.slice(2)
const loadsUserTypeScript = args[0] === "shell" || args.some((a) => a === "--module" || a.startsWith("--module="))
const bundleIsCurrent =
  process.env.KVMSIM_FROM_SOURCE !== "1" &&
  !loadsUserTypeScript &&
  existsSync(bundle) &&
  statSync(bundle).mtimeMs >= newestMtime(join(root, "src"))

if (bundleIsCurrent) {
  await import(new URL("../dist/kvmsim.mjs", import.meta.url).href)
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/cli/main.ts")
}
