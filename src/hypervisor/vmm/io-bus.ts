// The VMM's port-I/O bus: devices claim port ranges, and a KVM_EXIT_IO is dispatched to the
// device owning the port, one access per element of a string/REP access. An unclaimed port reads
// as all-ones and ignores writes, as on a PC's ISA bus.

export interface PortDevice {
  readonly name: string
  /** Reads `size` bytes (1, 2, 4) at `port`; returns the value zero-extended. */
  read(port: number, size: number): number
  write(port: number, size: number, value: number): void
}

interface Claim {
  readonly first: number
  readonly last: number
  readonly device: PortDevice
}

export class PortIoBus {
  private readonly claims: Array<Claim> = []

  /** Claims [first, first + count); refuses overlaps. */
  claim(first: number, count: number, device: PortDevice): void {
    const last = first + count - 1
    for (const c of this.claims) {
      if (first <= c.last && c.first <= last) {
        throw new Error(`port range 0x${first.toString(16)}-0x${last.toString(16)} of ${device.name} overlaps ${c.device.name}`)
      }
    }
    this.claims.push({ first, last, device })
  }

  deviceAt(port: number): PortDevice | undefined {
    for (const c of this.claims) if (port >= c.first && port <= c.last) return c.device
    return undefined
  }

  /**
   * Performs KVM_EXIT_IO: `data` holds `count` elements of `size` bytes (little-endian), which an
   * OUT reads and an IN fills.
   */
  dispatch(isOut: boolean, port: number, size: number, count: number, data: Uint8Array): void {
    const device = this.deviceAt(port)
    for (let i = 0; i < count; i++) {
      const at = i * size
      if (isOut) {
        let value = 0
        for (let b = size - 1; b >= 0; b--) value = value * 256 + data[at + b]!
        device?.write(port, size, value)
      } else {
        const value = device === undefined ? 2 ** (size * 8) - 1 : device.read(port, size)
        for (let b = 0; b < size; b++) data[at + b] = Math.floor(value / 2 ** (8 * b)) & 0xff
      }
    }
  }
}
