// The entry point bin/kvmsim.mjs loads: runs the command tree on the process arguments.
import { main } from "./app.ts"

process.exitCode = await main(process.argv.slice(2))
