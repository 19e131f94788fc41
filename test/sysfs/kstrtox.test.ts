import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { EINVAL, ERANGE } from "../../src/sysfs/errno.ts"
import { kstrtoull, kstrtouWidth } from "../../src/sysfs/kstrtox.ts"

// Cases follow lib/kstrtox.c (_parse_integer_fixup_radix, _parse_integer, _kstrtoull, kstrtoull)
// and the kernel's own lib/test-kstrtox.c conventions.
describe("kstrtoull(base 0) acceptance rules", () => {
  const ok: Array<[string, bigint]> = [
    ["0", 0n],
    ["1", 1n],
    ["5\n", 5n],
    ["+5", 5n],
    ["+0x10", 16n],
    ["0x10", 16n],
    ["0X1f", 31n],
    ["0xFFFFFFFFFFFFFFFF", 0xffffffffffffffffn],
    ["18446744073709551615", 18446744073709551615n],
    ["010", 8n],
    ["00", 0n],
    ["0\n", 0n],
    ["0777", 511n],
    ["0x1e3", 0x1e3n],
    ["5\0garbage", 5n],
    ["9007199254740993", 9007199254740993n],
  ]
  const fail: Array<[string, number]> = [
    ["", EINVAL],
    ["\n", EINVAL],
    ["\n\n", EINVAL],
    ["+", EINVAL],
    ["-1", EINVAL],
    ["-0", EINVAL],
    ["++5", EINVAL],
    [" 5", EINVAL],
    ["5 ", EINVAL],
    ["5\n\n", EINVAL],
    ["0x", EINVAL],
    ["0xg", EINVAL],
    ["08", EINVAL],
    ["1e3", EINVAL],
    ["12abc", EINVAL],
    ["0\n0", EINVAL],
    ["abc", EINVAL],
    ["18446744073709551616", ERANGE],
    ["0x10000000000000000", ERANGE],
    ["99999999999999999999999x", ERANGE],
  ]
  it.each(ok)("accepts %j", (text, value) => expect(kstrtoull(text)).toBe(value))
  it.each(fail)("rejects %j", (text, errno) => expect(kstrtoull(text)).toBe(-errno))

  it("round-trips every u64 in decimal and 0x hex, with or without echo's newline", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.boolean(), (v, nl) => {
        const end = nl ? "\n" : ""
        expect(kstrtoull(v.toString() + end)).toBe(v)
        expect(kstrtoull("0x" + v.toString(16) + end)).toBe(v)
        expect(kstrtoull("0" + v.toString(8) + end)).toBe(v)
      }),
    )
  })

  it("never throws and always returns a u64 or -EINVAL/-ERANGE", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const r = kstrtoull(s)
        if (typeof r === "number") expect([-EINVAL, -ERANGE]).toContain(r)
        else expect(r >= 0n && r < 1n << 64n).toBe(true)
      }),
    )
  })

  it("width-checks like kstrtou16/kstrtouint", () => {
    expect(kstrtouWidth("65535", 16)).toBe(65535n)
    expect(kstrtouWidth("65536", 16)).toBe(-ERANGE)
    expect(kstrtouWidth("0xffffffff", 32)).toBe(0xffffffffn)
    expect(kstrtouWidth("0x100000000", 32)).toBe(-ERANGE)
    expect(kstrtouWidth("x", 32)).toBe(-EINVAL)
  })
})
