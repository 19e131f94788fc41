import { execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { ActivityState, CpuState, MsrSlot, Reg } from "../../../src/guest/cpu/state.ts"
import { NoIntercepts } from "../../../src/guest/intercept.ts"
import { disassemble } from "../../../src/guest/asm/index.ts"
import { elfImage, placeIdentity } from "../../../src/guest/loader/index.ts"
import { setupLongMode } from "../../../src/guest/longmode.ts"
import { GuestMemory } from "../../../src/guest/mmu/memory.ts"
import { RunOutcome, runBatch } from "../../../src/guest/run.ts"
import { gcc } from "./gcc.ts"

// C guests built by the machine's gcc with the documented flags and linker script, loaded by
// the ELF loader, run bare-metal (CPL0, long mode) on the guest core. Port I/O, VMCALL and
// SYSCALL are intercepted by the test the way a VMM and a kernel would handle them.

const EXIT_VMCALL = 18
const EXIT_IO = 30

class VmmIntercepts extends NoIntercepts {
  override exitsOnIo(): boolean {
    return true
  }
}

/** The SYSCALL entry point the test installs: a HLT the harness recognises. */
const SYSCALL_ENTRY = 0x9000n

interface Run {
  console: string
  hypercalls: Array<{ nr: bigint; args: Array<bigint> }>
  syscalls: Array<{ nr: bigint; args: Array<bigint> }>
  instructions: number
}

const runBare = (bytes: Uint8Array, handlers: { inb?: (port: number) => number; hypercall?: (nr: bigint) => bigint; syscall?: (nr: bigint) => bigint } = {}): Run => {
  const memory = new GuestMemory()
  expect(memory.setRegion(0, 0n, new Uint8Array(16 << 20))).toBeUndefined()
  const cpu = new CpuState(memory)
  setupLongMode(cpu, { tablesAt: 0x10000n })
  const image = elfImage(bytes, "guest")
  placeIdentity(memory, image, "guest")
  const text = image.segments[0]!
  const syscallReturns = disassemble(text.data, { origin: text.address })
    .filter((l) => l.text === "syscall")
    .map((l) => l.address + BigInt(l.bytes.length))
  memory.write(SYSCALL_ENTRY, Uint8Array.of(0xf4))
  cpu.setMsrSlot(MsrSlot.LSTAR, SYSCALL_ENTRY)
  // STAR[47:32]: SYSCALL loads CS = 0x08 and SS = 0x10 (setupLongMode's flat GDT).
  cpu.setMsrSlot(MsrSlot.STAR, 0x08n << 32n)
  cpu.setRip(image.entry)
  // As after a call: RSP + 8 is 16-byte aligned at function entry (the psABI's rule).
  cpu.setReg(Reg.RSP, 0x800000n - 8n)
  cpu.intercepts = new VmmIntercepts()
  const run: Run = { console: "", hypercalls: [], syscalls: [], instructions: 0 }
  const reg = (r: number): bigint => cpu.getReg(r)
  for (let turns = 0; turns < 10_000; turns++) {
    const outcome = runBatch(cpu, 100_000)
    if (outcome === RunOutcome.BUDGET) continue
    if (outcome === RunOutcome.HALTED) {
      if (cpu.ripValue !== SYSCALL_ENTRY + 1n) break
      // SYSCALL landed on our HLT: record, answer in RAX, return to RCX like SYSRET.
      const nr = reg(Reg.RAX)
      run.syscalls.push({ nr, args: [Reg.RDI, Reg.RSI, Reg.RDX, Reg.R10].map(reg) })
      if (nr === 60n || nr === 231n) break // exit / exit_group do not return
      cpu.setReg(Reg.RAX, BigInt.asUintN(64, handlers.syscall?.(nr) ?? 0n))
      // Return after the k-th SYSCALL of the straight-line code (found by disassembling it)
      // rather than to RCX, so the test checks the wrappers, not the core's SYSCALL.
      cpu.setRip(syscallReturns[run.syscalls.length - 1] ?? 0n)
      cpu.activityState = ActivityState.ACTIVE
      // The core keeps the current code page across runBatch calls; a jump made from outside
      // to another page needs it dropped (as a VM entry does).
      cpu.flushTlb()
      continue
    }
    expect(outcome).toBe(RunOutcome.VM_EXIT)
    const exit = cpu.exit
    if (exit.reason === EXIT_IO) {
      const q = exit.qualificationLo
      const size = (q & 7) + 1
      const port = q >>> 16
      if ((q & 8) === 0) {
        const value = Number(reg(Reg.RAX) & ((1n << BigInt(size * 8)) - 1n))
        if (port === 0xe9) run.console += String.fromCharCode(value & 0xff)
      } else {
        cpu.setReg(Reg.RAX, (reg(Reg.RAX) & ~((1n << BigInt(size * 8)) - 1n)) | BigInt(handlers.inb?.(port) ?? 0xff))
      }
    } else if (exit.reason === EXIT_VMCALL) {
      const nr = reg(Reg.RAX)
      run.hypercalls.push({ nr, args: [Reg.RBX, Reg.RCX, Reg.RDX, Reg.RSI].map(reg) })
      cpu.setReg(Reg.RAX, BigInt.asUintN(64, handlers.hypercall?.(nr) ?? -1000n))
    } else {
      throw new Error(`unexpected exit ${exit.reason} at 0x${cpu.ripValue.toString(16)}`)
    }
    cpu.setRip(cpu.ripValue + BigInt(exit.instructionLength))
  }
  run.instructions = cpu.instructionsRetired
  return run
}

// The computation, shared by the guest and a native build that runs on the host CPU.
const compute = `
static unsigned long primes[1000];                 /* .bss */
static const char digits[] = "0123456789abcdef";  /* .rodata */
unsigned long seed = 0x12345;                      /* .data */
struct pair { unsigned int a; unsigned short b; signed char c; };
static struct pair pairs[64];
static unsigned long compute(void) {
	int n = 0;
	for (unsigned long c = 2; n < 1000; c++) {
		int prime = 1;
		for (int i = 0; i < n && primes[i] * primes[i] <= c; i++) if (c % primes[i] == 0) { prime = 0; break; }
		if (prime) primes[n++] = c;
	}
	unsigned long h = seed;
	for (int i = 0; i < n; i++) { h ^= primes[i]; h *= 0x100000001b3UL; h = (h << 13) | (h >> 51); }
	for (int i = 0; i < 64; i++) { pairs[i].a = (unsigned)(h >> (i % 32)); pairs[i].b = (unsigned short)(i * 977); pairs[i].c = (signed char)(i - 32); }
	long s = 0;
	for (int i = 0; i < 64; i++) s += (long)pairs[i].a / (pairs[i].b + 1) - pairs[i].c * (long)(i ^ 5) % 7;
	return h ^ (unsigned long)s;
}
static int format(unsigned long v, char *out) {
	int n = 0;
	for (int shift = 60; shift >= 0; shift -= 4) out[n++] = digits[(v >> shift) & 15];
	out[n++] = '\\n';
	return n;
}
`

describe("C guests built by gcc run on the guest core", () => {
  it("computes, writes with outb to port 0xE9 and halts — the same output as the host CPU", () => {
    const guest = gcc(`#include "kvmsim.h"
${compute}
void _start(void) {
	char buf[20];
	int n = format(compute(), buf);
	for (const char *p = "result="; *p; p++) outb(KVMSIM_DEBUG_PORT, *p);
	for (int i = 0; i < n; i++) outb(KVMSIM_DEBUG_PORT, buf[i]);
	for (;;) hlt();
}
`)
    const dir = mkdtempSync(join(tmpdir(), "kvmsim-native-"))
    writeFileSync(join(dir, "native.c"), `#include <stdio.h>\n${compute}\nint main(void) { char buf[20]; int n = format(compute(), buf); fputs("result=", stdout); fwrite(buf, 1, n, stdout); return 0; }\n`)
    execFileSync("gcc", ["-O2", "-o", join(dir, "native"), join(dir, "native.c")])
    const native = execFileSync(join(dir, "native"), { encoding: "utf8" })
    const run = runBare(guest.bytes)
    expect(native).toMatch(/^result=[0-9a-f]{16}\n$/)
    expect(run.console).toBe(native)
    expect(run.instructions).toBeGreaterThan(10_000)
  })

  it("kvm_hypercall0..4 put nr in RAX and arguments in RBX RCX RDX RSI, and return RAX", () => {
    const guest = gcc(`#include "kvmsim.h"
void _start(void) {
	long r = kvm_hypercall0(KVM_HC_FEATURES);
	r += kvm_hypercall1(KVM_HC_VCPU_INFO, 0x11);
	r += kvm_hypercall2(100, 0x21, 0x22);
	r += kvm_hypercall3(101, 0x31, 0x32, 0x33);
	r += kvm_hypercall4(102, 0x41, 0x42, 0x43, 0x44);
	outb(KVMSIM_DEBUG_PORT, (unsigned char)r);
	outw(0x80, (unsigned short)inw(0x60));
	outl(0x84, inl(0x64) + inb(0x61));
	for (;;) hlt();
}
`)
    const run = runBare(guest.bytes, { hypercall: (nr) => nr + 1n, inb: (port) => port })
    expect(run.hypercalls.map((h) => h.nr)).toEqual([3n, 11n, 100n, 101n, 102n])
    expect(run.hypercalls[1]!.args[0]).toBe(0x11n)
    expect(run.hypercalls[2]!.args.slice(0, 2)).toEqual([0x21n, 0x22n])
    expect(run.hypercalls[3]!.args.slice(0, 3)).toEqual([0x31n, 0x32n, 0x33n])
    expect(run.hypercalls[4]!.args).toEqual([0x41n, 0x42n, 0x43n, 0x44n])
    // Results: 4 + 12 + 101 + 102 + 103 = 322; the low byte is 0x42.
    expect(run.console).toBe("\\x42".replace("\\x42", String.fromCharCode(322 & 0xff)))
  })

  it("the syscall wrappers use the Linux numbers and registers (write=1, getpid=39, sched_yield=24, getcpu=309, vcpu_info=548, exit=60, exit_group=231)", () => {
    const guest = gcc(`#include "kvmsim.h"
static const char msg[] = "hi";
void _start(void) {
	unsigned int cpu, node;
	long r = write(1, msg, 2);
	r += getpid() + sched_yield() + vcpu_info();
	r += getcpu(&cpu, &node);
	exit_group((int)r);
}
void other(void) { exit(7); }
`)
    const run = runBare(guest.bytes, { syscall: (nr) => (nr === 1n ? 2n : nr === 231n ? 0n : 10n) })
    const image = elfImage(guest.bytes)
    const msg = image.segments.find((s) => (s.flags & 1) === 0)!.address
    expect(run.syscalls.map((s) => s.nr)).toEqual([1n, 39n, 24n, 548n, 309n, 231n])
    expect(run.syscalls[0]!.args.slice(0, 3)).toEqual([1n, msg, 2n])
    // getcpu(&cpu, &node, NULL): two stack pointers in RDI and RSI, the unused cache in R10.
    const [cpuPointer, nodePointer, , cache] = run.syscalls[4]!.args
    expect(cpuPointer! > 0x700000n && cpuPointer! < 0x800000n).toBe(true)
    expect(nodePointer! > 0x700000n && nodePointer! < 0x800000n).toBe(true)
    expect(cache).toBe(0n)
    expect(run.syscalls[5]!.args[0]).toBe(2n + 10n + 10n + 10n + 10n)
  })
})
