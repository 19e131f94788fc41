// hypercall-module.ts: a host kernel module that adds hypercall 0x100 ("MY_HC_ADD") to KVM and a
// sysfs directory /sys/kernel/my_hypercalls with a counter. insmod registers both; rmmod (or the
// end of the run) removes them. Load it with `kvmsim run --module examples/hypercall-module.ts`
// or, in `kvmsim shell`, `insmod examples/hypercall-module.ts`.
import { Effect } from "effect"
import { defineModule, Errno, ModuleInitError } from "../src/index.ts"

export default defineModule(({ kvm, sysfs }) => {
  let calls = 0n
  return {
    name: "my_hypercalls",
    dependsOn: ["kvm_intel"],
    init: () =>
      Effect.gen(function* () {
        const registered = kvm.registerHypercall({
          nr: 0x100,
          name: "MY_HC_ADD",
          handle: (call) => {
            const [a, b] = call.args
            calls++
            // trace_printk from kvm_emulate_hypercall, like the homework's handler.
            call.printf("my_hc_add: %lu + %lu from vcpu %d\n", a, b, call.caller.id)
            return a + b
          },
        })
        if (!registered.ok) return yield* Effect.fail(new ModuleInitError({ errno: Errno.EEXIST, message: registered.reason }))
        yield* Effect.addFinalizer(() => Effect.sync(registered.unregister))
        // Removed with the module's scope at rmmod.
        yield* Effect.orDie(sysfs.kobject(sysfs.kernelKobj, "my_hypercalls", [{ attrs: [{ name: "calls", mode: 0o444, show: () => `${calls}\n` }] }]))
      }),
  }
})
