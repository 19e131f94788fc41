// kvm.ko and kvm_intel.ko as host kernel modules: insmod kvm, then insmod kvm_intel (which
// depends on it) creates the KVM instance and registers /dev/kvm; rmmod kvm_intel removes them
// (refused while a VM holds a reference). Opening /dev/kvm gives a KvmFile for the system ioctls.

import { Effect } from "effect"
import { Errno } from "../../host/errno.ts"
import type { HostKernelShape } from "../../host/kernel.ts"
import { ModuleInitError } from "../../host/modules.ts"
import type { KernelModule, ModuleError } from "../../host/modules.ts"
import type { Task } from "../../host/task.ts"
import { Kvm } from "./kvm.ts"
import type { KvmOptions } from "./kvm.ts"

/** An open /dev/kvm: the system ioctls, and KVM_CREATE_VM for the opening process. */
export class KvmFile {
  constructor(
    readonly kvm: Kvm,
    readonly owner: Task,
    readonly fd: number,
  ) {}
}

export interface LoadedKvm {
  /** The instance, valid until rmmod kvm_intel. */
  readonly kvm: Kvm
}

/** insmod kvm && insmod kvm_intel [vcpu_info_hypercall=N]. */
export const loadKvm = (host: HostKernelShape, options: KvmOptions = {}): Effect.Effect<Kvm, ModuleError> =>
  Effect.gen(function* () {
    let instance: Kvm | undefined
    if (!host.modules.isLoaded("kvm")) yield* host.modules.insmod({ name: "kvm" })
    const kvmIntel: KernelModule = {
      name: "kvm_intel",
      dependsOn: ["kvm"],
      init: (params) =>
        Effect.gen(function* () {
          const nr = params["vcpu_info_hypercall"]
          const vcpuInfoHypercall = nr === undefined ? options.vcpuInfoHypercall : Number(nr)
          if (vcpuInfoHypercall !== undefined && (!Number.isInteger(vcpuInfoHypercall) || vcpuInfoHypercall < 0)) {
            return yield* Effect.fail(new ModuleInitError({ errno: Errno.EINVAL, message: `vcpu_info_hypercall=${nr} is not a hypercall number` }))
          }
          let kvm: Kvm
          try {
            kvm = new Kvm(host, { ...options, ...(vcpuInfoHypercall === undefined ? {} : { vcpuInfoHypercall }) })
          } catch (e) {
            return yield* Effect.fail(new ModuleInitError({ errno: Errno.EINVAL, message: (e as Error).message }))
          }
          const registered = host.devices.register<KvmFile>({
            name: "kvm",
            open: (opener) => {
              const file = new KvmFile(kvm, opener, -1)
              const fd = opener.files.install(file)
              if (fd < 0) return { ok: false, errno: -fd }
              const withFd = new KvmFile(kvm, opener, fd)
              opener.files.close(fd)
              opener.files.install(withFd)
              return { ok: true, file: withFd }
            },
          })
          if (!registered.ok) return yield* Effect.fail(new ModuleInitError({ errno: registered.errno, message: "/dev/kvm is already registered" }))
          yield* Effect.addFinalizer(() => Effect.sync(registered.deregister))
          instance = kvm
        }),
    }
    yield* host.modules.insmod(kvmIntel, options.vcpuInfoHypercall === undefined ? {} : { vcpu_info_hypercall: String(options.vcpuInfoHypercall) })
    return instance!
  })

/** open("/dev/kvm") by `task`. */
export const openDevKvm = (host: HostKernelShape, task: Task): { ok: true; file: KvmFile } | { ok: false; errno: number } =>
  host.devices.open<KvmFile>("kvm", task)
