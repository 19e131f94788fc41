// What a user's kernel module (`kvmsim run --module FILE.ts`, the shell's `insmod FILE.ts`) is:
// a default export made with defineModule, whose build function receives the simulated host's
// KVM, kernel core, pseudo-filesystem and trace, and returns a KernelModule (name, init in a
// scope that rmmod closes, exit). Hypercalls registered in init and kobjects created in its
// scope are removed by rmmod.

import type { HostKernelShape } from "../host/kernel.ts"
import type { KernelModule } from "../host/modules.ts"
import type { Kvm } from "../hypervisor/kvm/kvm.ts"
import type { SysfsShape } from "../sysfs/service.ts"
import type { TraceShape } from "../trace/service.ts"

export interface ModuleContext {
  readonly kvm: Kvm
  readonly host: HostKernelShape
  readonly sysfs: SysfsShape
  readonly trace: TraceShape
}

const userModuleTag = Symbol.for("kvmsim/UserModule")

export interface UserModule {
  readonly [userModuleTag]: true
  readonly build: (context: ModuleContext) => KernelModule
}

/** The default export of a module file: `export default defineModule((ctx) => ({ name, init }))`. */
export const defineModule = (build: (context: ModuleContext) => KernelModule): UserModule => ({ [userModuleTag]: true, build })

export const isUserModule = (value: unknown): value is UserModule =>
  typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[userModuleTag] === true && typeof (value as { build?: unknown }).build === "function"
