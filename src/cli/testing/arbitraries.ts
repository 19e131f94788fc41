// fast-check arbitraries for users' own properties: VMX control settings the capability MSRs
// allow, VMCS configurations (field writes), and small bare guest programs.

import fc from "fast-check"
import { VmcsField } from "../../arch/vmx/vmcs-fields.ts"
import type { VmcsFieldName } from "../../arch/vmx/vmcs-fields.ts"
import type { ControlAllowed } from "../../hypervisor/vmx/capabilities.ts"
import { VmxCapabilities } from "../../hypervisor/vmx/capabilities.ts"
import { assemble } from "../../guest/asm/index.ts"

/** A 32-bit control value with every allowed-0 bit set and any subset of the allowed-1 bits. */
export const controlValueArbitrary = (allowed: ControlAllowed): fc.Arbitrary<number> =>
  fc.integer({ min: 0, max: 0xffffffff }).map((bits) => ((bits & allowed.allowed1) | allowed.allowed0) >>> 0)

export interface ControlSettings {
  readonly pin: number
  readonly primary: number
  readonly secondary: number
  readonly exit: number
  readonly entry: number
}

/** Control settings VM entry accepts as far as the capability MSRs go (IA32_VMX_*_CTLS). */
export const controlSettingsArbitrary = (caps: VmxCapabilities = new VmxCapabilities()): fc.Arbitrary<ControlSettings> =>
  fc.record({
    pin: controlValueArbitrary(caps.pin),
    primary: controlValueArbitrary(caps.primary),
    secondary: controlValueArbitrary(caps.secondary),
    exit: controlValueArbitrary(caps.exit),
    entry: controlValueArbitrary(caps.entry),
  })

export interface FieldWrite {
  readonly name: VmcsFieldName
  readonly encoding: number
  readonly value: bigint
}

const fieldNames = Object.keys(VmcsField) as Array<VmcsFieldName>

/** Width of a field from its encoding (SDM Appendix B): 16, 64, 32 or natural (64 here). */
export const fieldWidthBits = (encoding: number): number => {
  const width = (encoding >> 13) & 3
  const high = (encoding & 1) === 1 && width === 1
  return width === 0 ? 16 : width === 2 || high ? 32 : 64
}

/** A VMCS configuration: writes of values that fit each field's width. */
export const vmcsConfigurationArbitrary = (maxWrites = 20): fc.Arbitrary<Array<FieldWrite>> =>
  fc.array(
    fc.constantFrom(...fieldNames).chain((name) => {
      const encoding = VmcsField[name]
      const bits = fieldWidthBits(encoding)
      return fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n }).map((value) => ({ name, encoding, value }))
    }),
    { maxLength: maxWrites },
  )

const registers = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9"] as const
const instruction: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom(...registers), fc.integer({ min: 0, max: 0x7fffffff })).map(([r, v]) => `mov ${r}, ${v}`),
  fc.tuple(fc.constantFrom("add", "sub", "xor", "and", "or"), fc.constantFrom(...registers), fc.constantFrom(...registers)).map(([op, a, b]) => `${op} ${a}, ${b}`),
  fc.constantFrom("nop", "cpuid", "out 0xe9, al", "inc rax", "dec rbx"),
)

export interface GuestProgram {
  readonly source: string
  readonly bytes: Uint8Array
}

/** A bare guest program (64-bit, CPL0, at 0x100000) of simple instructions that ends in `cli; hlt`. */
export const guestProgramArbitrary = (maxInstructions = 30): fc.Arbitrary<GuestProgram> =>
  fc.array(instruction, { maxLength: maxInstructions }).map((lines) => {
    const source = `BITS 64\nORG 0x100000\n${lines.join("\n")}\ncli\nhlt\n`
    return { source, bytes: assemble(source).bytes }
  })
