// Reads kernel.asm's `equ` constants so tests can compare them with the TypeScript side.
import { readFileSync } from "node:fs"

export const kernelSourcePath = new URL("../../../src/guest/kernel/kernel.asm", import.meta.url)
export const kernelSource = (): string => readFileSync(kernelSourcePath, "utf8")

/** NAME -> value for every `NAME equ <expr>` whose expression uses numbers, names already seen, + - * | << and parentheses. */
export const kernelEquates = (): Map<string, bigint> => {
  const values = new Map<string, bigint>()
  for (const line of kernelSource().split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s+equ\s+([^;]+)/.exec(line)
    if (m === null) continue
    const expr = m[2]!.trim().replace(/0x[0-9a-fA-F]+|\d+|[A-Za-z_][A-Za-z0-9_]*/g, (token) => {
      if (/^(0x[0-9a-fA-F]+|\d+)$/.test(token)) return `${token}n`
      const v = values.get(token)
      if (v === undefined) throw new Error(`equ ${m[1]} uses unknown name ${token}`)
      return `(${v}n)`
    })
    values.set(m[1]!, Function(`"use strict"; return (${expr})`)() as bigint)
  }
  return values
}
