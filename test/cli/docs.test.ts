// docs/cli.md is generated from the command definitions; the committed file must be current.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { cliReferencePath, commandPaths, generateCliReference, runDocumentJsonSchema, runDocumentSchemaPath } from "../../src/cli/docs.ts"

describe("docs/cli.md", () => {
  it("is what `npx tsx src/cli/docs.ts` generates from the command definitions", async () => {
    expect(readFileSync(cliReferencePath, "utf8")).toBe(await generateCliReference())
  })

  it("documents every command and the run options of the issue", async () => {
    const text = await generateCliReference()
    for (const path of commandPaths) expect(text).toContain(`## kvmsim${path.length > 0 ? ` ${path.join(" ")}` : ""}\n`)
    for (const option of ["--vcpus", "--mem", "--define", "--profile", "--seed", "--max-steps", "--max-exits", "--trace", "--trace-out", "--events", "--module", "--inject", "--stat", "--json", "--bare", "--load-addr", "--once", "--log", "--runs", "--path"]) {
      expect(text).toContain(`\`${option}\``)
    }
  })

  it("docs/run-document.schema.json is the JSON Schema of the --json document", () => {
    expect(readFileSync(runDocumentSchemaPath, "utf8")).toBe(runDocumentJsonSchema())
    const schema = JSON.parse(runDocumentJsonSchema()) as { required: Array<string> }
    expect(schema.required).toEqual(expect.arrayContaining(["schemaVersion", "exit", "console", "vcpus", "steps", "virtualTimeNs"]))
  })
})
