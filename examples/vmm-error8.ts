// vmm-error8.ts: seed 004's bare VMM as a host kernel module. Like the question's module, it
// reads the VMX capability MSRs, captures the host's CR0/CR3/CR4 into its "globals", and only
// then sets CR4.VMXE; VMXON, VMCLEAR, VMPTRLD, the VMWRITEs of its controls and state, and the
// first VMLAUNCH fails: VMfailValid with VM-instruction error 8 ("VM entry with invalid
// host-state field(s)"), because HOST_CR4 lacks VMXE. With `vmxe_first=Y` (the fix) the host-state
// checks pass and VMLAUNCH gets to the guest-state checks, which fail (exit reason 0x80000021):
// this module, like the question's, writes too little guest state.
// Needs a CPU out of VMX operation, so load it before any guest boots:
//   kvmsim shell -c 'insmod examples/vmm-error8.ts; cat /sys/kernel/vmm/result'
// The result files: /sys/kernel/vmm/{result,vm_instruction_error,explanation}.
import { Effect } from "effect"
import { defineModule, Errno, ModuleInitError, VmcsField as F, VmxStatus } from "../src/index.ts"

export default defineModule(({ kvm, sysfs }) => {
  let result = "not run"
  let error = 0n
  let explanation = ""
  return {
    name: "vmm",
    init: (params) =>
      Effect.gen(function* () {
        const lp = kvm.lp(0)
        const vmxeFirst = params["vmxe_first"] === "Y"
        const msr = (index: number): bigint => (lp.rdmsr(index) === VmxStatus.Succeed ? lp.value : 0n)
        const basic = msr(0x480)
        const vmxon = kvm.hostMemory.allocPage()
        const vmcs = kvm.hostMemory.allocPage()
        if (vmxon === undefined || vmcs === undefined) return yield* Effect.fail(new ModuleInitError({ errno: Errno.ENOMEM, message: "no pages" }))
        kvm.hostMemory.write32(Number(vmxon), Number(basic & 0x7fffffffn))
        kvm.hostMemory.write32(Number(vmcs), Number(basic & 0x7fffffffn))
        const VMXE = 1n << 13n
        if (vmxeFirst) lp.writeCr4(lp.root.cr4 | VMXE)
        const host = { cr0: lp.root.cr0, cr3: lp.root.cr3, cr4: lp.root.cr4 } // "mov %cr4, %rax; mov %rax, host_CR4"
        if (!vmxeFirst) lp.writeCr4(lp.root.cr4 | VMXE)
        if (lp.vmxon(vmxon) !== VmxStatus.Succeed) {
          lp.writeCr4(lp.root.cr4 & ~VMXE)
          return yield* Effect.fail(new ModuleInitError({ errno: Errno.EBUSY, message: "VMXON failed: is a VM running? load this module before booting a guest" }))
        }
        lp.vmclear(vmcs)
        lp.vmptrld(vmcs)
        const low = (v: bigint): bigint => v & 0xffffffffn
        const w = (field: number, value: bigint | number) => lp.vmwrite(field, BigInt(value))
        w(F.PIN_BASED_VM_EXEC_CONTROL, low(msr(0x481)) | 1n | 8n) // external-interrupt and NMI exiting
        w(F.CPU_BASED_VM_EXEC_CONTROL, low(msr(0x482)) | (1n << 7n)) // HLT exiting
        w(F.VM_EXIT_CONTROLS, low(msr(0x483)) | (1n << 9n)) // 64-bit host
        w(F.VM_ENTRY_CONTROLS, low(msr(0x484)) | (1n << 9n))
        w(F.VMCS_LINK_POINTER, 0xffffffffffffffffn)
        w(F.HOST_CR0, host.cr0)
        w(F.HOST_CR3, host.cr3)
        w(F.HOST_CR4, host.cr4)
        w(F.HOST_CS_SELECTOR, 0x10)
        w(F.HOST_SS_SELECTOR, 0x18)
        w(F.HOST_TR_SELECTOR, 0x40)
        w(F.HOST_RIP, 0xffffffffa0001000n)
        w(F.HOST_RSP, 0xffffc90000010000n)
        w(F.GUEST_CR0, 0x80000031)
        w(F.GUEST_CR3, 0x1000)
        w(F.GUEST_CR4, 0x2020)
        w(F.GUEST_RIP, 0x100000)
        w(F.GUEST_RFLAGS, 2)
        const status = lp.vmlaunch(1)
        if (status === VmxStatus.FailValid && lp.vmread(F.VM_INSTRUCTION_ERROR) === VmxStatus.Succeed) error = lp.value
        const outcome = lp.outcome(status)
        result = outcome.kind === "VMfailValid" ? `VMLAUNCH: VMfailValid, VM-instruction error ${error} (${outcome.meaning})` : `VMLAUNCH: ${outcome.kind}${status === VmxStatus.VmExit && lp.vmread(F.VM_EXIT_REASON) === VmxStatus.Succeed ? `, exit reason 0x${lp.value.toString(16)}` : ""}`
        explanation = lp.explainEntryFailure() ?? ""
        // Leave the CPU as we found it: VMCLEAR, VMXOFF, CR4.VMXE off, pages freed.
        lp.vmclear(vmcs)
        lp.vmxoff()
        lp.writeCr4(lp.root.cr4 & ~VMXE)
        kvm.hostMemory.freePage(vmcs)
        kvm.hostMemory.freePage(vmxon)
        yield* Effect.orDie(
          sysfs.kobject(sysfs.kernelKobj, "vmm", [
            {
              attrs: [
                { name: "result", mode: 0o444, show: () => `${result}\n` },
                { name: "vm_instruction_error", mode: 0o444, show: () => `${error}\n` },
                { name: "explanation", mode: 0o444, show: () => `${explanation}\n` },
              ],
            },
          ]),
        )
      }),
  }
})
