import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { checkBootParams, flatProgram, placeUserProgram, SegmentFlag, type UserProgram, userProgramFromImage } from "../../../src/guest/kernel/index.ts"
import { elfImage } from "../../../src/guest/loader/index.ts"
import { buildC } from "./c-program.ts"

const MiB = 1n << 20n

describe("placeUserProgram", () => {
  it("places a flat image at its load address, readable, writable and executable", () => {
    const bytes = new Uint8Array([0x90, 0xf4])
    const placed = placeUserProgram(flatProgram(bytes), 64n * MiB)
    if (typeof placed === "string") throw new Error(placed)
    expect(placed.entry).toBe(0x400000n)
    expect(placed.segments).toEqual([{ vaddr: 0x400000n, paddr: 0x400000n, filesz: 2n, memsz: 2n, flags: SegmentFlag.R | SegmentFlag.W | SegmentFlag.X }])
    expect(placed.writes).toEqual([{ gpa: 0x400000n, bytes }])
  })

  it("packs a program linked above guest memory into frames from 4 MiB, keeping page offsets", () => {
    const program: UserProgram = {
      entry: 0x10001000n,
      segments: [
        { vaddr: 0x10001000n, memsz: 0x1800n, flags: 5, data: new Uint8Array(0x1800) },
        { vaddr: 0x10003e10n, memsz: 0x400n, flags: 6, data: new Uint8Array(0x100) },
      ],
    }
    const placed = placeUserProgram(program, 16n * MiB)
    if (typeof placed === "string") throw new Error(placed)
    expect(placed.segments.map((s) => s.paddr)).toEqual([0x400000n, 0x402e10n])
  })

  it("takes gcc's static ELF64 through the toolchain's loader: one segment per PT_LOAD, permissions kept", () => {
    const program = userProgramFromImage(elfImage(buildC(new URL("../../../examples/vcpu-info.c", import.meta.url))))
    expect(program.entry).toBe(0x400000n) // kvmsim.ld puts _start's text first, at 0x400000
    const text = program.segments.find((s) => s.vaddr === 0x400000n)!
    expect(text.flags).toBe(SegmentFlag.R | SegmentFlag.X)
    expect(program.segments.every((s) => (s.flags & (SegmentFlag.W | SegmentFlag.X)) !== (SegmentFlag.W | SegmentFlag.X))).toBe(true)
    const placed = placeUserProgram(program, 16n * MiB)
    if (typeof placed === "string") throw new Error(placed)
    expect(placed.segments.map((s) => s.paddr)).toEqual(program.segments.map((s) => s.vaddr)) // identity fits
  })

  it("says why a program cannot fit", () => {
    const big: UserProgram = { entry: 0x400000n, segments: [{ vaddr: 0x400000n, memsz: 64n * MiB, flags: 6, data: new Uint8Array(0) }] }
    expect(placeUserProgram(big, 16n * MiB)).toMatch(/larger than guest memory|needs \d+ pages/)
    const bad: UserProgram = { entry: 0x400000n, segments: [{ vaddr: 0x400000n, memsz: 1n, flags: 6, data: new Uint8Array(2) }] }
    expect(placeUserProgram(bad, 16n * MiB)).toMatch(/file bytes exceed memsz/)
  })

  it("gives every virtual page one frame: shared pages share, segments stay contiguous, and the kernel accepts the result", () => {
    const segment = fc.record({
      page: fc.integer({ min: 0x400, max: 0x8000 }),
      offset: fc.integer({ min: 0, max: 0xfff }),
      filesz: fc.integer({ min: 0, max: 0x2800 }),
      bss: fc.integer({ min: 0, max: 0x2800 }),
      flags: fc.integer({ min: 0, max: 7 }),
      high: fc.boolean(),
    })
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), fc.constantFrom(16n * MiB, 64n * MiB), (segs, memSize) => {
        const program: UserProgram = {
          entry: 0x400000n,
          segments: segs.map((s) => ({
            vaddr: BigInt(s.page * 0x1000 + s.offset) + (s.high ? 0x7000_0000_0000n : 0n),
            memsz: BigInt(s.filesz + s.bss),
            flags: s.flags,
            data: new Uint8Array(s.filesz),
          })),
        }
        const placed = placeUserProgram(program, memSize)
        if (typeof placed === "string") return // too big for this memory: a message, checked above
        const frameOfPage = new Map<bigint, bigint>()
        for (const s of placed.segments) {
          expect(s.vaddr & 0xfffn).toBe(s.paddr & 0xfffn)
          if (s.memsz === 0n) continue
          for (let v = s.vaddr & ~0xfffn; v < s.vaddr + s.memsz; v += 0x1000n) {
            const frame = (s.paddr & ~0xfffn) + (v - (s.vaddr & ~0xfffn))
            const seen = frameOfPage.get(v)
            if (seen !== undefined) expect(frame).toBe(seen)
            frameOfPage.set(v, frame)
          }
        }
        const frames = [...frameOfPage.values()]
        expect(new Set(frames).size).toBe(frames.length)
        expect(checkBootParams({ nrCpus: 1, hypercallVcpuInfo: 11, memSize, entry: placed.entry, segments: placed.segments, comm: "p" })).toBeUndefined()
      }),
      { numRuns: 300 },
    )
  })
})
