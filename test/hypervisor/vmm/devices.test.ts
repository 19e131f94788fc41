import { describe, expect, it } from "vitest"
import { DebugConsole, IsaDebugExit, Serial16550 } from "../../../src/hypervisor/vmm/devices.ts"
import { PortIoBus } from "../../../src/hypervisor/vmm/io-bus.ts"
import { BootLayout, longModeSregs, writeBootStructures } from "../../../src/hypervisor/vmm/long-mode.ts"
import type { KvmSregs } from "../../../src/hypervisor/kvm/uapi.ts"

const outOf = (bus: PortIoBus, port: number, size: number, ...values: Array<number>): void => {
  const data = new Uint8Array(values.length * size)
  values.forEach((v, i) => {
    for (let b = 0; b < size; b++) data[i * size + b] = (v >> (8 * b)) & 0xff
  })
  bus.dispatch(true, port, size, values.length, data)
}
const inOf = (bus: PortIoBus, port: number, size: number): number => {
  const data = new Uint8Array(size)
  bus.dispatch(false, port, size, 1, data)
  return data.reduceRight((acc, b) => acc * 256 + b, 0)
}

describe("VMM port devices", () => {
  it("16550 at 0x3f8: THR output, LSR idle value, divisor latch, loopback, receive", () => {
    const out: Array<number> = []
    const bus = new PortIoBus()
    const uart = new Serial16550(0x3f8, (b) => out.push(b))
    bus.claim(0x3f8, 8, uart)
    expect(inOf(bus, 0x3fd, 1)).toBe(0x60) // THRE | TEMT, nothing received
    outOf(bus, 0x3f8, 1, 0x48, 0x69) // string OUT of two bytes
    expect(String.fromCharCode(...out)).toBe("Hi")
    outOf(bus, 0x3fb, 1, 0x83) // DLAB on, 8N1
    outOf(bus, 0x3f8, 1, 0x01)
    outOf(bus, 0x3f9, 1, 0x00)
    expect(inOf(bus, 0x3f8, 1)).toBe(1) // divisor low byte (115200 baud)
    outOf(bus, 0x3fb, 1, 0x03)
    uart.input("k")
    expect(inOf(bus, 0x3fd, 1) & 1).toBe(1)
    expect(inOf(bus, 0x3f8, 1)).toBe(0x6b)
    expect(inOf(bus, 0x3fd, 1) & 1).toBe(0)
    outOf(bus, 0x3fc, 1, 0x10) // loopback
    outOf(bus, 0x3f8, 1, 0x55)
    expect(inOf(bus, 0x3f8, 1)).toBe(0x55)
    expect(out).toHaveLength(2)
  })

  it("0xE9 debug console and isa-debug-exit at 0xf4", () => {
    const out: Array<number> = []
    let status = -1
    const bus = new PortIoBus()
    bus.claim(0xe9, 1, new DebugConsole((b) => out.push(b)))
    bus.claim(0xf4, 4, new IsaDebugExit((s) => (status = s)))
    outOf(bus, 0xe9, 1, 0x41)
    expect(inOf(bus, 0xe9, 1)).toBe(0xe9)
    expect(out).toEqual([0x41])
    outOf(bus, 0xf4, 1, 0)
    expect(status).toBe(1)
    outOf(bus, 0xf4, 4, 0x21)
    expect(status).toBe(0x43)
    expect(inOf(bus, 0x80, 2)).toBe(0xffff) // nothing there: all-ones
    expect(() => bus.claim(0xf6, 1, new DebugConsole(() => {}))).toThrow(/overlaps/)
  })
})

describe("bare-mode long-mode setup", () => {
  it("identity-maps the first 1 GiB with 2 MiB pages and loads a 64-bit code segment", () => {
    const mem = new Uint8Array(4 << 20)
    writeBootStructures(mem)
    const view = new DataView(mem.buffer)
    expect(view.getBigUint64(BootLayout.pml4, true)).toBe(0x2003n)
    expect(view.getBigUint64(BootLayout.pdpt, true)).toBe(0x3003n)
    expect(view.getBigUint64(BootLayout.pd, true)).toBe(0x83n)
    expect(view.getBigUint64(BootLayout.pd + 511 * 8, true)).toBe(0x3fe00083n)
    const seg = { base: 0n, limit: 0, selector: 0, type: 0, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 }
    const blank: KvmSregs = { cs: seg, ds: seg, es: seg, fs: seg, gs: seg, ss: seg, tr: seg, ldt: seg, gdt: { base: 0n, limit: 0 }, idt: { base: 0n, limit: 0 }, cr0: 0n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apic_base: 0n }
    const s = longModeSregs(blank)
    expect(s.cs.l).toBe(1)
    expect(s.cs.dpl).toBe(0)
    expect(s.cr0 & 0x80000001n).toBe(0x80000001n)
    expect(s.efer & 0x500n).toBe(0x500n)
    expect(s.cr3).toBe(0x1000n)
  })
})

import { Effect } from "effect"
import { Host, HostLive } from "../../../src/hypervisor/vmm/system.ts"
import { runWith } from "../../support/effect.ts"

describe("the simulated host as a service", () => {
  it("HostLive provides a host with kvm and kvm_intel loaded", async () => {
    const exit = await runWith(
      HostLive({ profile: "linux-6.x", cpus: 2 }),
      Effect.gen(function* () {
        const { host, kvm } = yield* Host
        return { modules: host.modules.lsmod().map((m) => m.name), cpus: host.cpuCount, vcpuInfo: kvm.vcpuInfoHypercall }
      }),
    )
    expect(exit._tag === "Success" && exit.value).toEqual({ modules: ["kvm_intel", "kvm"], cpus: 2, vcpuInfo: 13 })
  })
})
