import { execFileSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  BOOT_MAGIC,
  BOOT_PARAMS_GPA,
  BOOT_VERSION,
  BootOffset,
  type BootParams,
  BootParamsError,
  checkBootParams,
  encodeBootParams,
  Errno,
  KERNEL_PANIC_STATUS,
  KernelLayout,
  MAX_CPUS,
  MAX_SEGMENTS,
  SegmentOffset,
  Syscall,
  USER_PID,
} from "../../../src/guest/kernel/index.ts"
import { kernelEquates } from "./kernel-source.ts"

const equ = kernelEquates()
const get = (name: string): bigint => {
  const v = equ.get(name)
  if (v === undefined) throw new Error(`kernel.asm has no equ ${name}`)
  return v
}

describe("boot-parameter block: kernel.asm and the TypeScript encoder agree", () => {
  it("address, magic, version and limits", () => {
    expect(get("BOOT_PARAMS")).toBe(BOOT_PARAMS_GPA)
    expect(get("BOOT_MAGIC")).toBe(BigInt(BOOT_MAGIC))
    expect(get("BOOT_VERSION")).toBe(BigInt(BOOT_VERSION))
    expect(get("MAX_SEGMENTS")).toBe(BigInt(MAX_SEGMENTS))
    expect(get("MAX_CPUS")).toBe(BigInt(MAX_CPUS))
    expect(get("PANIC_STATUS")).toBe(BigInt(KERNEL_PANIC_STATUS))
    expect(get("USER_PID")).toBe(BigInt(USER_PID))
  })

  it("block and segment offsets", () => {
    const names: Record<keyof typeof BootOffset, string> = {
      MAGIC: "BP_MAGIC", VERSION: "BP_VERSION", NR_CPUS: "BP_NR_CPUS", HC_VCPU_INFO: "BP_HC_VCPU_INFO",
      MEM_SIZE: "BP_MEM_SIZE", ENTRY: "BP_ENTRY", NR_SEGMENTS: "BP_NR_SEGMENTS", FLAGS: "BP_FLAGS",
      COMM: "BP_COMM", SEGMENTS: "BP_SEGMENTS",
    }
    for (const [key, name] of Object.entries(names)) expect([name, get(name)]).toEqual([name, BigInt(BootOffset[key as keyof typeof BootOffset])])
    for (const key of Object.keys(SegmentOffset) as Array<keyof typeof SegmentOffset>) {
      expect([key, get(`SEG_${key}`)]).toEqual([key, BigInt(SegmentOffset[key])])
    }
  })

  it("memory layout", () => {
    expect(get("KERNEL_PML4")).toBe(KernelLayout.TABLES_BASE)
    expect(get("KSTACKS_BASE")).toBe(KernelLayout.KERNEL_STACKS_BASE)
    expect(get("PAGE_POOL_BASE")).toBe(KernelLayout.PAGE_POOL_BASE)
    expect(get("PAGE_POOL_END")).toBe(KernelLayout.PAGE_POOL_END)
    expect(get("USER_MIN")).toBe(KernelLayout.USER_MIN)
    expect(get("USER_STACK_TOP")).toBe(KernelLayout.USER_STACK_TOP)
    expect(get("USER_STACK_PAGES")).toBe(BigInt(KernelLayout.USER_STACK_PAGES))
    expect(get("DIRECT_MAP_LIMIT")).toBe(KernelLayout.DIRECT_MAP_LIMIT)
    // Kernel stacks for MAX_CPUS CPUs end where the page pool starts.
    expect(get("KSTACKS_BASE") + get("KSTACK_SIZE") * get("MAX_CPUS")).toBe(KernelLayout.PAGE_POOL_BASE)
  })
})

describe("system-call and errno numbers are Linux x86-64's", () => {
  // Oracle: the machine's own kernel headers, through gcc.
  const oracle = (() => {
    const dir = mkdtempSync(join(tmpdir(), "kvmsim-sysnr-"))
    const src = join(dir, "nr.c")
    writeFileSync(
      src,
      `#include <stdio.h>
#include <errno.h>
#include <sys/syscall.h>
int main(void) {
  printf("write %d\\nsched_yield %d\\ngetpid %d\\nexit %d\\nexit_group %d\\ngetcpu %d\\n",
    SYS_write, SYS_sched_yield, SYS_getpid, SYS_exit, SYS_exit_group, SYS_getcpu);
  printf("EBADF %d\\nEFAULT %d\\nENOSYS %d\\n", EBADF, EFAULT, ENOSYS);
  return 0;
}
`,
    )
    execFileSync("gcc", ["-o", join(dir, "nr"), src])
    const out = execFileSync(join(dir, "nr"), { encoding: "utf8" })
    return new Map(out.trim().split("\n").map((l) => { const [k, v] = l.split(" "); return [k!, Number(v)] as const }))
  })()

  it("Syscall table", () => {
    for (const name of ["write", "sched_yield", "getpid", "exit", "exit_group", "getcpu"] as const) {
      expect([name, Syscall[name]]).toEqual([name, oracle.get(name)])
      expect([name, get(`SYS_${name.toUpperCase()}`)]).toEqual([name, BigInt(oracle.get(name)!)])
    }
    expect(Syscall.vcpu_info).toBe(548) // the homework's syscall_64.tbl line
    expect(get("SYS_VCPU_INFO")).toBe(548n)
  })

  it("errno values", () => {
    for (const name of ["EBADF", "EFAULT", "ENOSYS"] as const) {
      expect([name, Errno[name]]).toEqual([name, oracle.get(name)])
      expect([name, get(name)]).toEqual([name, BigInt(oracle.get(name)!)])
    }
  })
})

const validParams = (over: Partial<BootParams> = {}): BootParams => ({
  nrCpus: 2,
  hypercallVcpuInfo: 11,
  memSize: 64n << 20n,
  entry: 0x400000n,
  segments: [{ vaddr: 0x400000n, paddr: 0x400000n, filesz: 100n, memsz: 200n, flags: 7 }],
  comm: "vcpu-info",
  ...over,
})

describe("encodeBootParams", () => {
  it("lays out every field little-endian where the kernel reads it", () => {
    const bytes = encodeBootParams(validParams())
    const view = new DataView(bytes.buffer)
    expect(view.getUint32(0, true)).toBe(BOOT_MAGIC)
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe("KSBP")
    expect(view.getUint32(BootOffset.NR_CPUS, true)).toBe(2)
    expect(view.getUint32(BootOffset.HC_VCPU_INFO, true)).toBe(11)
    expect(view.getBigUint64(BootOffset.MEM_SIZE, true)).toBe(64n << 20n)
    expect(view.getBigUint64(BootOffset.ENTRY, true)).toBe(0x400000n)
    expect(view.getUint32(BootOffset.NR_SEGMENTS, true)).toBe(1)
    expect(new TextDecoder().decode(bytes.subarray(BootOffset.COMM, BootOffset.COMM + 9))).toBe("vcpu-info")
    expect(bytes[BootOffset.COMM + 9]).toBe(0)
    const seg = BootOffset.SEGMENTS
    expect(view.getBigUint64(seg + SegmentOffset.VADDR, true)).toBe(0x400000n)
    expect(view.getBigUint64(seg + SegmentOffset.MEMSZ, true)).toBe(200n)
    expect(view.getUint32(seg + SegmentOffset.FLAGS, true)).toBe(7)
  })

  it("truncates comm to 15 characters plus NUL, as TASK_COMM_LEN", () => {
    const bytes = encodeBootParams(validParams({ comm: "a-very-long-program-name" }))
    expect(new TextDecoder().decode(bytes.subarray(BootOffset.COMM, BootOffset.COMM + 16))).toBe("a-very-long-pro\0")
  })

  it.each([
    [{ nrCpus: 0 }, "number of CPUs 0 is outside 1..64"],
    [{ nrCpus: 65 }, "number of CPUs 65 is outside 1..64"],
    [{ memSize: 1n << 20n }, "too small"],
    [{ segments: [] }, "the program has 0 segments"],
    [{ segments: [{ vaddr: 0x1000n, paddr: 0x400000n, filesz: 1n, memsz: 1n, flags: 5 }] }, "must lie between 0x400000"],
    [{ segments: [{ vaddr: 0x400010n, paddr: 0x400000n, filesz: 1n, memsz: 1n, flags: 5 }] }, "same offset within a 4 KiB page"],
    [{ segments: [{ vaddr: 0x400000n, paddr: 0x100000n, filesz: 1n, memsz: 1n, flags: 5 }] }, "inside the kernel's memory"],
    [{ segments: [{ vaddr: 0x400000n, paddr: 0x400000n, filesz: 2n, memsz: 1n, flags: 5 }] }, "filesz is larger than memsz"],
    [{ segments: [{ vaddr: 0x400000n, paddr: 0x3fff000n, filesz: 1n, memsz: 0x2000n, flags: 5 }] }, "beyond guest memory"],
  ] as const)("rejects %o with a message naming the problem", (over, message) => {
    const error = checkBootParams(validParams(over as Partial<BootParams>))
    expect(error).toBeInstanceOf(BootParamsError)
    expect(error!.message).toContain(message)
    expect(() => encodeBootParams(validParams(over as Partial<BootParams>))).toThrow(message)
  })

  it("round-trips any acceptable parameters", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.array(fc.record({ page: fc.integer({ min: 0x400, max: 0x3f00 }), offset: fc.integer({ min: 0, max: 0xfff }), filesz: fc.integer({ min: 0, max: 0x3000 }), bss: fc.integer({ min: 0, max: 0x3000 }), flags: fc.integer({ min: 0, max: 7 }) }), { minLength: 1, maxLength: 8 }),
        (nrCpus, hc, segs) => {
          const segments = segs.map((s) => {
            const vaddr = BigInt(s.page * 0x1000 + s.offset)
            return { vaddr, paddr: vaddr, filesz: BigInt(s.filesz), memsz: BigInt(s.filesz + s.bss), flags: s.flags }
          })
          const params = validParams({ nrCpus, hypercallVcpuInfo: hc, segments })
          const bytes = encodeBootParams(params)
          const view = new DataView(bytes.buffer)
          expect(view.getUint32(BootOffset.NR_CPUS, true)).toBe(nrCpus)
          expect(view.getUint32(BootOffset.HC_VCPU_INFO, true)).toBe(hc)
          expect(view.getUint32(BootOffset.NR_SEGMENTS, true)).toBe(segments.length)
          segments.forEach((s, i) => {
            const at = BootOffset.SEGMENTS + i * SegmentOffset.SIZE
            expect(view.getBigUint64(at + SegmentOffset.VADDR, true)).toBe(s.vaddr)
            expect(view.getBigUint64(at + SegmentOffset.PADDR, true)).toBe(s.paddr)
            expect(view.getBigUint64(at + SegmentOffset.FILESZ, true)).toBe(s.filesz)
            expect(view.getBigUint64(at + SegmentOffset.MEMSZ, true)).toBe(s.memsz)
            expect(view.getUint32(at + SegmentOffset.FLAGS, true)).toBe(s.flags)
          })
        },
      ),
      { numRuns: 200 },
    )
  })
})
