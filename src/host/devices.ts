// Character devices under /dev (misc_register): a module registers a name and an open function;
// opening an absent device fails with ENOENT as open(2) does. The opened object's type is the
// module's business, so the registry is generic over it.

import { Errno } from "./errno.ts"
import type { Task } from "./task.ts"

export type DeviceOpenResult<F> = { readonly ok: true; readonly file: F } | { readonly ok: false; readonly errno: number }

export interface CharDevice<F> {
  /** Path under /dev, e.g. "kvm". */
  readonly name: string
  readonly open: (opener: Task) => DeviceOpenResult<F>
}

export class DeviceRegistry {
  private readonly devices = new Map<string, CharDevice<unknown>>()

  /** misc_register; EBUSY if the name is taken. Returns the deregistration function. */
  register<F>(device: CharDevice<F>): { readonly ok: true; readonly deregister: () => void } | { readonly ok: false; readonly errno: number } {
    if (this.devices.has(device.name)) return { ok: false, errno: Errno.EBUSY }
    this.devices.set(device.name, device as CharDevice<unknown>)
    return { ok: true, deregister: () => void this.devices.delete(device.name) }
  }

  /** open("/dev/<name>"). The caller knows what the device hands out. */
  open<F>(name: string, opener: Task): DeviceOpenResult<F> {
    const device = this.devices.get(name)
    if (device === undefined) return { ok: false, errno: Errno.ENOENT }
    return device.open(opener) as DeviceOpenResult<F>
  }

  has(name: string): boolean {
    return this.devices.has(name)
  }

  names(): Array<string> {
    return [...this.devices.keys()].sort()
  }
}
