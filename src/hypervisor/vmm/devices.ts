// The VMM's legacy devices: a 16550A UART (the guest console at 0x3f8), the 0xE9 debug console
// (Bochs/QEMU "debugcon") and QEMU's isa-debug-exit (a guest write of v ends QEMU with status
// (v << 1) | 1).

import type { PortDevice } from "./io-bus.ts"

// 16550 register offsets and bits (DLAB = LCR bit 7 selects the divisor latch at offsets 0 and 1).
const LCR_DLAB = 0x80
const LSR_DATA_READY = 0x01
const LSR_THR_EMPTY = 0x20
const LSR_TRANSMITTER_EMPTY = 0x40
const IIR_NO_INTERRUPT = 0x01
const IIR_FIFO_ENABLED = 0xc0

/** A 16550A UART without interrupts: transmitted bytes go to `output`, `input` feeds the receiver. */
export class Serial16550 implements PortDevice {
  readonly name = "serial0"
  private ier = 0
  private lcr = 0x03
  private mcr = 0
  private scr = 0
  private fcr = 0
  private divisor = 12 // 9600 baud
  private readonly pending: Array<number> = []

  constructor(
    readonly base: number,
    private readonly output: (byte: number) => void,
  ) {}

  /** Queues bytes for the guest to receive. */
  input(bytes: Uint8Array | string): void {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes
    for (const b of data) this.pending.push(b)
  }

  read(port: number, _size: number): number {
    switch (port - this.base) {
      case 0:
        if ((this.lcr & LCR_DLAB) !== 0) return this.divisor & 0xff
        return this.pending.shift() ?? 0
      case 1:
        return (this.lcr & LCR_DLAB) !== 0 ? (this.divisor >> 8) & 0xff : this.ier
      case 2:
        return IIR_NO_INTERRUPT | ((this.fcr & 1) !== 0 ? IIR_FIFO_ENABLED : 0)
      case 3:
        return this.lcr
      case 4:
        return this.mcr
      case 5:
        return LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY | (this.pending.length > 0 ? LSR_DATA_READY : 0)
      case 6:
        // Modem status: in loopback mode the outputs feed back; otherwise CTS, DSR and DCD asserted.
        return (this.mcr & 0x10) !== 0 ? ((this.mcr & 0x0c) << 4) | ((this.mcr & 0x03) << 4) : 0xb0
      default:
        return this.scr
    }
  }

  write(port: number, _size: number, value: number): void {
    const v = value & 0xff
    switch (port - this.base) {
      case 0:
        if ((this.lcr & LCR_DLAB) !== 0) this.divisor = (this.divisor & 0xff00) | v
        else if ((this.mcr & 0x10) !== 0) this.pending.push(v) // loopback
        else this.output(v)
        return
      case 1:
        if ((this.lcr & LCR_DLAB) !== 0) this.divisor = (this.divisor & 0xff) | (v << 8)
        else this.ier = v & 0x0f
        return
      case 2:
        this.fcr = v
        if ((v & 0x02) !== 0) this.pending.length = 0
        return
      case 3:
        this.lcr = v
        return
      case 4:
        this.mcr = v & 0x1f
        return
      case 7:
        this.scr = v
        return
      default:
        return // LSR and MSR are read-only
    }
  }
}

/** Port 0xE9: every byte written is console output; reads return 0xE9 (how guests detect it). */
export class DebugConsole implements PortDevice {
  readonly name = "debugcon"
  constructor(private readonly output: (byte: number) => void) {}
  read(): number {
    return 0xe9
  }
  write(_port: number, _size: number, value: number): void {
    this.output(value & 0xff)
  }
}

/** isa-debug-exit: a write of `v` ends the VMM with exit status (v << 1) | 1. */
export class IsaDebugExit implements PortDevice {
  readonly name = "isa-debug-exit"
  constructor(private readonly exit: (status: number) => void) {}
  read(): number {
    return 0xffffffff
  }
  write(_port: number, size: number, value: number): void {
    const v = size === 4 ? value >>> 0 : value & (2 ** (size * 8) - 1)
    this.exit(((v << 1) | 1) >>> 0)
  }
}
