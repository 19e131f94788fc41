// A bare long-mode machine for guest-core tests: 8 MiB of memory, the first GiB identity-mapped
// with 2 MiB pages (user-accessible), a 4 KiB page table for 0x400000–0x5fffff, an IDT built from
// the program's `isr_<n>` symbols (DPL 3 when a `dpl3_<n>` symbol exists, IST 1 when `ist1_<n>`
// exists), TSS.RSP0 and IST1 stacks, and the program loaded at 0x100000.

import { CpuState, MsrSlot } from "../../../src/guest/cpu/state.ts"
import type { Intercepts } from "../../../src/guest/intercept.ts"
import { assemble } from "../../../src/guest/asm/index.ts"
import { FlatSelectors, setupLongMode } from "../../../src/guest/longmode.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { RunOutcome, runBatch } from "../../../src/guest/run.ts"

export const TABLES = 0x10000n
export const PD = TABLES + 0x3000n
export const PDPT = TABLES + 0x2000n
export const PT_4K = 0x50000n // maps 0x400000..0x5fffff with 4 KiB pages
export const IDT = 0x90000n
export const KERNEL_STACK = 0x3f0000n
export const IST1_STACK = 0x3e0000n
export const CODE = 0x100000n

export interface Machine {
  readonly cpu: CpuState
  readonly memory: GuestMemory
  readonly symbols: Map<string, bigint>
  /** Runs until something other than the budget ends the batch (at most `limit` units). */
  run(limit?: number): number
  sym(name: string): bigint
}

export const makeMachine = (source: string, intercepts: Intercepts | null = null): Machine => {
  const { bytes, symbols } = assemble(`BITS 64\norg 0x100000\n${source}`)
  const memory = new GuestMemory()
  memory.setRegion(0, 0n, new Uint8Array(8 << 20))
  const cpu = new CpuState(memory)
  setupLongMode(cpu, { tablesAt: TABLES, user: true })
  memory.writeU64(PD + 2n * 8n, PT_4K | 7n)
  for (let i = 0n; i < 512n; i++) memory.writeU64(PT_4K + i * 8n, (0x400000n + i * 0x1000n) | 7n)
  memory.write(CODE, bytes)
  for (let v = 0; v < 256; v++) {
    const target = symbols.get(`isr_${v}`)
    if (target === undefined) continue
    const dpl = symbols.has(`dpl3_${v}`) ? 3n : 0n
    const ist = symbols.has(`ist1_${v}`) ? 1n : 0n
    const lo =
      (target & 0xffffn) |
      (BigInt(FlatSelectors.KERNEL_CODE) << 16n) |
      (ist << 32n) |
      ((0x8en | (dpl << 5n)) << 40n) |
      (((target >> 16n) & 0xffffn) << 48n)
    memory.writeU64(IDT + BigInt(v) * 16n, lo)
    memory.writeU64(IDT + BigInt(v) * 16n + 8n, target >> 32n)
  }
  cpu.setIdtr(IDT, 0xfff)
  const tss = TABLES + 0x100n
  memory.writeU64(tss + 4n, KERNEL_STACK)
  memory.writeU64(tss + 0x24n, IST1_STACK)
  memory.write(tss + 0x66n, Uint8Array.of(0x68, 0)) // I/O map base past the limit: CPL3 I/O needs IOPL
  cpu.setMsrSlot(MsrSlot.STAR, (0x13n << 48n) | (0x08n << 32n))
  cpu.setReg(4, KERNEL_STACK)
  cpu.setRip(symbols.get("start") ?? CODE)
  cpu.intercepts = intercepts
  return {
    cpu,
    memory,
    symbols,
    run(limit = 1_000_000) {
      let outcome: number = RunOutcome.BUDGET
      let used = 0
      while (outcome === RunOutcome.BUDGET && used < limit) {
        outcome = runBatch(cpu, Math.min(10_000, limit - used))
        used += 10_000
      }
      return outcome
    },
    sym(name: string) {
      const v = symbols.get(name)
      if (v === undefined) throw new Error(`no symbol ${name}`)
      return v
    },
  }
}

/** A standard exception recorder: `isr_<n>` stubs push the vector, `common_isr` saves the frame. */
export const recorder = (vectors: ReadonlyArray<number>): string => {
  const withError = new Set([8, 10, 11, 12, 13, 14, 17])
  const stubs = vectors
    .map((v) =>
      withError.has(v)
        ? `isr_${v}:\n  push ${v}\n  jmp common_isr\n`
        : `isr_${v}:\n  push 0\n  push ${v}\n  jmp common_isr\n`,
    )
    .join("")
  return `
${stubs}
common_isr:                 ; [rsp] vector, error, rip, cs, rflags, rsp, ss
  push rax
  mov rax, [rsp+8]
  mov [rel exc_vec], rax
  mov rax, [rsp+16]
  mov [rel exc_err], rax
  mov rax, cr2
  mov [rel exc_cr2], rax
  mov rax, [rsp+24]
  mov [rel exc_rip], rax
  mov rax, [rsp+32]
  mov [rel exc_cs], rax
  mov rax, [rsp+48]
  mov [rel exc_rsp], rax
  mov [rel exc_handler_rsp], rsp
  inc qword [rel exc_count]
  mov rax, [rel resume]
  test rax, rax
  jnz .resume
  mov rax, [rel skip]
  add [rsp+24], rax
  jmp .done
.resume:
  mov [rsp+24], rax
  mov qword [rel resume], 0
.done:
  pop rax
  add rsp, 16
  iretq
align 8
exc_vec: dq -1
exc_err: dq -1
exc_cr2: dq 0
exc_rip: dq 0
exc_cs: dq 0
exc_rsp: dq 0
exc_handler_rsp: dq 0
exc_count: dq 0
skip: dq 0
resume: dq 0
`
}
