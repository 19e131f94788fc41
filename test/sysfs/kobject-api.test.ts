import { Effect } from "effect"
import { expect } from "vitest"
import { EINVAL, ENOENT } from "../../src/sysfs/errno.ts"
import { kstrtoull } from "../../src/sysfs/kstrtox.ts"
import { Sysfs, SysfsLive } from "../../src/sysfs/service.ts"
import { itEffect } from "../support/effect.ts"

// The example of docs/sysfs.md "Your own kobjects", as a user's module would write it.
itEffect("a user's kobject with an attribute group and a named group, removed with its scope", () =>
  Effect.gen(function* () {
    const sysfs = yield* Sysfs
    yield* Effect.scoped(
      Effect.gen(function* () {
        let threshold = 10n
        yield* sysfs.kobject(sysfs.kernelKobj, "mymod", [
          {
            attrs: [
              {
                name: "threshold",
                mode: 0o644,
                show: () => `${threshold}\n`,
                store: (text) => {
                  const v = kstrtoull(text)
                  if (typeof v === "number") return v
                  threshold = v
                  return text.length
                },
              },
            ],
          },
          { name: "stats", attrs: [{ name: "hits", mode: 0o444, show: () => "0\n" }] },
        ])
        expect(yield* sysfs.echo("/sys/kernel/mymod/threshold", "0x20\n")).toBe(5)
        expect(yield* sysfs.cat("/sys/kernel/mymod/threshold")).toBe("32\n")
        expect(yield* sysfs.ls("/sys/kernel/mymod")).toEqual(["stats", "threshold"])
        expect(yield* sysfs.cat("/sys/kernel/mymod/stats/hits")).toBe("0\n")
        const bad = yield* Effect.flip(sysfs.echo("/sys/kernel/mymod/threshold", "ten\n"))
        expect(bad.errno).toBe(EINVAL)
        expect(bad.message).toBe("write /sys/kernel/mymod/threshold: Invalid argument (EINVAL)")
        expect(yield* sysfs.cat("/sys/kernel/mymod/threshold")).toBe("32\n")
      }),
    )
    const gone = yield* Effect.flip(sysfs.ls("/sys/kernel/mymod"))
    expect(gone.errno).toBe(ENOENT)
    // A parent path that does not exist is refused, not created.
    const orphan = yield* Effect.flip(Effect.scoped(sysfs.kobject("/sys/nowhere", "x")))
    expect(orphan.errno).toBe(ENOENT)
    expect(yield* sysfs.ls("/sys")).not.toContain("nowhere")
  }).pipe(Effect.provide(SysfsLive)),
)
