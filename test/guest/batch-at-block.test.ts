// A batch that starts at a compiled block runs it outside the interpreter loop, and a VMCALL
// right after the block exits from there (the exit loop's usual batch: VM entry resumes at
// `dec r12; jnz top; mov ...` after the handler skipped the VMCALL). That path must be invisible:
// the same programs under the same random budgets and preemption-timer values, with compiled
// blocks on and with them off (the interpreter alone, the reference), give the same outcome,
// budget used, retired count, RIP, registers, RFLAGS, exit record and timer after every batch.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { NoIntercepts } from "../../src/guest/intercept.ts"
import { RunOutcome, engineOf, runBatch } from "../../src/guest/run.ts"
import { makeMachine, type Machine } from "./support/machine.ts"

const PROGRAMS: ReadonlyArray<{ name: string; source: string }> = [
  {
    name: "the hypercall loop",
    source: `start:
  mov r12, 400
top:
  mov ecx, r12d
  mov eax, 11
  mov ebx, ecx
  vmcall
  dec r12
  jnz top
  hlt
`,
  },
  {
    name: "a CPUID exit after the block",
    source: `start:
  mov r12, 400
top:
  mov ecx, r12d
  add rax, 3
  xor edx, edx
  cpuid
  dec r12
  jnz top
  hlt
`,
  },
  {
    name: "an interpreted instruction between the block and the VMCALL",
    source: `start:
  mov r12, 400
top:
  mov ecx, r12d
  inc rbx
  push rcx
  pop rdx
  vmcall
  dec r12
  jnz top
  hlt
`,
  },
]

const state = (m: Machine, outcome: number) => {
  const cpu = m.cpu
  const x = cpu.exit
  return {
    outcome,
    used: engineOf(cpu).used,
    retired: cpu.instructionsRetired,
    rip: cpu.ripValue,
    regs: Array.from({ length: 16 }, (_, r) => cpu.getReg(r)),
    rflags: cpu.getRflags32(),
    exit: outcome === RunOutcome.VM_EXIT ? [x.reason, x.instructionLength, x.qualificationLo, x.qualificationHi, x.instructionInformation] : [],
    timer: (cpu.intercepts as NoIntercepts).preemptionTimerRemaining,
  }
}

describe("batches that start at a compiled block", () => {
  for (const p of PROGRAMS) {
    it(`agree with the interpreter alone: ${p.name}`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.record({ budget: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constant(10_000)), timer: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 12 })) }), {
            minLength: 200,
            maxLength: 400,
          }),
          (batches) => {
            const fast = makeMachine(p.source, new NoIntercepts())
            const reference = makeMachine(p.source, new NoIntercepts())
            engineOf(reference.cpu).blocksEnabled = false
            for (const { budget, timer } of batches) {
              const outcomes = [fast, reference].map((m) => {
                ;(m.cpu.intercepts as NoIntercepts).preemptionTimerRemaining = timer
                return state(m, runBatch(m.cpu, budget))
              })
              expect(outcomes[0]).toEqual(outcomes[1])
              const { outcome, exit } = outcomes[0]!
              if (outcome === RunOutcome.HALTED) break
              // What the hypervisor does after an instruction exit: skip the instruction, resume.
              if (outcome === RunOutcome.VM_EXIT && exit[1]! > 0) for (const m of [fast, reference]) m.cpu.rip += exit[1]!
            }
            // The resumed batches did start at compiled blocks.
            expect(engineOf(fast.cpu).blocks.functions.length).toBeGreaterThan(1)
          },
        ),
        { numRuns: 30 },
      )
    })
  }
})
