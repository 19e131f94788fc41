// Every example in the catalog runs with the command `kvmsim examples list` prints, ends with
// the status it documents, and shows what its seed scenario is about.
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { exampleCatalog } from "../../src/cli/examples-catalog.ts"
import { kvmsim, repoRoot, splitCommand } from "./cli-support.ts"

const expectations: Record<string, (out: string, err: string) => void> = {
  "vcpu-info": (out) => {
    expect(out.startsWith("system call sys_vcpu_info result 0\n")).toBe(true)
    expect([...out.matchAll(/vcpu id: (\d+)$/gm)].map((m) => m[1])).toEqual(["0", "1", "2", "3"])
  },
  "vcpu-info-c": (out) => {
    expect(out.startsWith("system call sys_vcpu_info result 0\n")).toBe(true)
    expect([...out.matchAll(/vcpu id: (\d+)$/gm)].map((m) => m[1])).toEqual(["0", "1", "2", "3"])
  },
  "vmcsctl-tour": (out) => {
    expect(out).toContain("vmcs12398\n")
    // VM_EXIT_REASON after an OUT, then GUEST_RIP written and read back (decimal 0x100030).
    expect(out).toContain("\n30\n")
    expect(out).toContain("\n1048624\n")
    expect(out).toContain("guest ended: every vCPU executed HLT with interrupts disabled")
  },
  "legacy-vmcs": (out) => {
    expect(out).toContain("g_rip_a\ng_rsp_b\n")
    expect(out).toMatch(/\n\d+\n/)
  },
  "fault-injection": (out, err) => {
    expect(out).toBe("tic")
    expect(err).toContain("KVM_EXIT_FAIL_ENTRY: hardware_entry_failure_reason 0x80000021")
  },
  "vmm-error8": (out) => {
    expect(out).toContain("VMLAUNCH: VMfailValid, VM-instruction error 8 (VM entry with invalid host-state field(s))")
    expect(out).toContain("host CR4.VMXE must be 1")
  },
  "hypercall-module": (out) => expect(out).toContain("kvm_emulate_hypercall: my_hc_add: 20 + 22 from vcpu 0"),
}

describe("examples", () => {
  it("every example has its files and an expectation here", () => {
    for (const e of exampleCatalog) {
      for (const f of e.files) expect(existsSync(join(repoRoot, "examples", f))).toBe(true)
      expect(expectations[e.name]).toBeDefined()
    }
  })

  for (const example of exampleCatalog) {
    it(`${example.name}: ${example.command}`, () => {
      const { args, stdinFile } = splitCommand(example.command)
      const r = kvmsim(args, stdinFile === undefined ? {} : { input: readFileSync(join(repoRoot, stdinFile), "utf8") })
      expect({ status: r.status, stderr: example.status === 0 ? r.stderr : "" }).toEqual({ status: example.status, stderr: "" })
      expectations[example.name]!(r.stdout, r.stderr)
    })
  }

  it("kvmsim examples list and copy", () => {
    const list = kvmsim(["examples", "list"])
    for (const e of exampleCatalog) expect(list.stdout).toContain(`$ ${e.command}`)
    const dir = mkdtempSync(join(tmpdir(), "kvmsim-examples-"))
    const copy = kvmsim(["examples", "copy", "fault-injection", "--to", dir])
    expect(copy.status).toBe(0)
    expect(readFileSync(join(dir, "fault-injection.asm"), "utf8")).toBe(readFileSync(join(repoRoot, "examples/fault-injection.asm"), "utf8"))
    expect(kvmsim(["examples", "copy", "fault-injection", "--to", dir]).status).toBe(1)
    expect(kvmsim(["examples", "copy", "hypercall-module", "--to", dir]).status).toBe(0)
    expect(readFileSync(join(dir, "hypercall-module.ts"), "utf8")).toContain('from "kvmsim"')
    expect(kvmsim(["examples", "copy", "nope"]).status).toBe(2)
  })
})
