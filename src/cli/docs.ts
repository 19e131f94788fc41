// docs/cli.md, generated from the command definitions: each command's help document (what
// `--help` prints) is captured through effect/cli's Presenter and rendered as Markdown.
// Also docs/run-document.schema.json, the --json document's JSON Schema. Regenerate both with
// `npx tsx src/cli/docs.ts` (test/cli/docs.test.ts checks they are current).

import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect, Layer, Option, Schema } from "effect"
import { CliOutput, Command } from "effect/cli"
import type { HelpDoc } from "effect/cli/HelpDoc"
import { kvmsim } from "./app.ts"
import { RunDocumentSchema } from "./report/run-document.ts"
import { nodeEnvironment } from "./platform/index.ts"

/** Every command path documented, in reading order. */
export const commandPaths: ReadonlyArray<ReadonlyArray<string>> = [
  [],
  ["run"],
  ["shell"],
  ["stat"],
  ["trace", "show"],
  ["trace", "report"],
  ["check", "vmcs-lifecycle"],
  ["examples", "list"],
  ["examples", "copy"],
  ["asm"],
  ["disasm"],
]

/** The help document `kvmsim PATH --help` shows. */
export const helpDocFor = (path: ReadonlyArray<string>): Promise<HelpDoc> => {
  let captured: HelpDoc | undefined
  const presenter: CliOutput.Presenter = {
    present: (event) =>
      Effect.sync(() => {
        if (event._tag === "Help" || event._tag === "InvalidInvocation") captured = event.helpDoc
      }),
  }
  const program = Command.run(kvmsim, { version: "0.1.0" }).pipe(Effect.provide(Layer.merge(nodeEnvironment([...path, "--help"]), CliOutput.layerPresenter(presenter))))
  return Effect.runPromiseExit(program).then(() => {
    if (captured === undefined) throw new Error(`no help for kvmsim ${path.join(" ")}`)
    return captured
  })
}

const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

export const renderHelpDoc = (path: ReadonlyArray<string>, doc: HelpDoc): string => {
  // Indented description lines (the exit statuses) become a Markdown list.
  const description = doc.description
    .split("\n")
    .map((l, i, all) => (l.startsWith("  ") ? `- ${l.trim()}` : l.endsWith(":") && all[i + 1]?.startsWith("  ") === true ? `${l}\n` : l))
    .join("\n")
  const lines = [`## kvmsim${path.length > 0 ? ` ${path.join(" ")}` : ""}`, "", description, "", "```", doc.usage, "```", ""]
  if (doc.args !== undefined && doc.args.length > 0) {
    lines.push("| argument | description |", "|---|---|")
    for (const a of doc.args) lines.push(`| \`${a.name}\`${a.required ? "" : " (optional)"}${a.variadic ? " …" : ""} | ${cell(Option.getOrElse(a.description, () => ""))} |`)
    lines.push("")
  }
  if (doc.flags.length > 0) {
    lines.push("| option | value | description |", "|---|---|---|")
    for (const f of doc.flags) {
      const names = [`--${f.name}`, ...f.aliases.map((a) => (a.startsWith("-") ? a : a.length === 1 ? `-${a}` : `--${a}`))].map((n) => `\`${n}\``).join(", ")
      lines.push(`| ${names} | ${f.type === "boolean" ? "" : `\`${f.type}\``} | ${cell(Option.getOrElse(f.description, () => ""))} |`)
    }
    lines.push("")
  }
  for (const group of doc.subcommands ?? []) {
    lines.push("| command | what it does |", "|---|---|")
    for (const c of group.commands) lines.push(`| \`kvmsim ${[...path, c.name].join(" ")}\` | ${cell(c.shortDescription ?? c.description)} |`)
    lines.push("")
  }
  return lines.join("\n")
}

export const generateCliReference = async (): Promise<string> => {
  const parts = [
    "# kvmsim command-line reference",
    "",
    "Generated from the command definitions by `npx tsx src/cli/docs.ts`; do not edit by hand.",
    "Every command also prints this with `--help`. See docs/guide.md for walkthroughs.",
    "",
  ]
  for (const path of commandPaths) parts.push(renderHelpDoc(path, await helpDocFor(path)))
  return parts.join("\n").replace(/\n+$/, "\n")
}

export const cliReferencePath = fileURLToPath(new URL("../../docs/cli.md", import.meta.url))

/** The `kvmsim run --json` document as a JSON Schema (draft 2020-12), for graders' own tools. */
export const runDocumentJsonSchema = (): string => {
  const doc = Schema.toJsonSchemaDocument(RunDocumentSchema) as { schema: Record<string, unknown>; definitions?: Record<string, unknown> }
  const definitions = doc.definitions !== undefined && Object.keys(doc.definitions).length > 0 ? { $defs: doc.definitions } : {}
  return JSON.stringify({ $schema: "https://json-schema.org/draft/2020-12/schema", title: "kvmsim run --json", ...doc.schema, ...definitions }, null, 2) + "\n"
}

export const runDocumentSchemaPath = fileURLToPath(new URL("../../docs/run-document.schema.json", import.meta.url))

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(cliReferencePath, await generateCliReference())
  writeFileSync(runDocumentSchemaPath, runDocumentJsonSchema())
}
