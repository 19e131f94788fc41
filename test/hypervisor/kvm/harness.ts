// Shared helpers for KVM tests: boot a simulated host, assemble a bare-mode guest, run it.
import { Effect } from "effect"
import { assemble } from "../../../src/guest/asm/index.ts"
import type { MachineOptions } from "../../../src/hypervisor/vmm/machine.ts"
import { Machine, runMachine } from "../../../src/hypervisor/vmm/machine.ts"
import { bootHost, catTrace } from "../../../src/hypervisor/vmm/system.ts"
import type { SimulatedHost, SimulatedHostOptions } from "../../../src/hypervisor/vmm/system.ts"

export const asm = (source: string): Uint8Array => assemble(`BITS 64\n${source}`).bytes

export interface BareRun {
  readonly sim: SimulatedHost
  readonly machine: Machine
  readonly trace: string
}

export const runBare = (source: string, machine: MachineOptions = {}, host: SimulatedHostOptions = {}): Promise<BareRun> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sim = yield* bootHost(host)
        const m = yield* runMachine(sim.kvm, sim.host, { image: asm(source), ...machine })
        return { sim, machine: m, trace: catTrace(sim.trace) }
      }),
    ),
  )

/** Exits by basic reason of vCPU `i`, as a plain object of the non-zero counts. */
export const exitsByReason = (m: Machine, i = 0): Record<number, number> => {
  const out: Record<number, number> = {}
  m.vcpus[i]!.stats.exitsByReason.forEach((n, reason) => {
    if (n > 0) out[reason] = n
  })
  return out
}
