import { defineConfig } from "vitest/config"

// The JSON report feeds .ci/run's closing "N passed, N failed" line.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
})
