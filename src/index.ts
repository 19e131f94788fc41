// kvmsim's public API: what a program (or a user's kernel module, or a property test) imports.
// The layers: the simulated host with KVM (KVM-shaped calls with bigint registers and typed
// exits), the QEMU-like VMM, the guest toolchain and mini kernel, the VT-x layer, the trace and
// sysfs readers, module registration, and the CLI's own building blocks (one guest run).
// Property-testing arbitraries live in `kvmsim/testing` (src/cli/testing/index.ts).

// x86 and VT-x facts
export { ExitReason, exitReasonName, EXIT_REASON_FAILED_VMENTRY } from "./arch/exit-reasons.ts"
export type { ExitReasonName } from "./arch/exit-reasons.ts"
export { VmcsField } from "./arch/vmx/vmcs-fields.ts"
export type { VmcsFieldName } from "./arch/vmx/vmcs-fields.ts"
export { VmInstructionError, vmInstructionErrorMeaning } from "./arch/vmx/instruction-errors.ts"

// guest toolchain and mini kernel
export { assemble, assembleEffect, AsmError, disassemble } from "./guest/asm/index.ts"
export type { AssembleOptions, AssembleResult } from "./guest/asm/index.ts"
export { elfImage, flatImage, isElf, LoaderError, programImage } from "./guest/loader/index.ts"
export type { ProgramImage } from "./guest/loader/index.ts"
export { flatProgram, installKernel, kernelImageBytes, userProgramFromImage, vcpuEntry } from "./guest/kernel/index.ts"
export type { UserProgram } from "./guest/kernel/index.ts"

// the simulated host kernel
export { HostKernel, HostKernelLive, makeHostKernel } from "./host/kernel.ts"
export type { HostKernelOptions, HostKernelShape } from "./host/kernel.ts"
export { ModuleError, ModuleInitError } from "./host/modules.ts"
export type { KernelModule, ModuleParams } from "./host/modules.ts"
export { Errno, errnoName } from "./host/errno.ts"
export type { KernelProfileName } from "./host/profile.ts"

// VT-x hardware
export { LogicalProcessor } from "./hypervisor/vmx/logical-processor.ts"
export { VmxCapabilities } from "./hypervisor/vmx/capabilities.ts"
export { VmxStatus } from "./hypervisor/vmx/outcome.ts"

// KVM: ioctl-shaped calls with bigint registers and typed exits
export { Kvm } from "./hypervisor/kvm/kvm.ts"
export { loadKvm, openDevKvm } from "./hypervisor/kvm/module.ts"
export { kvmRun } from "./hypervisor/kvm/run.ts"
export { ExitHook, ExitVerdict } from "./hypervisor/kvm/exit-hook.ts"
export type { ExitObserver } from "./hypervisor/kvm/exit-hook.ts"
export { KvmError } from "./hypervisor/kvm/errors.ts"
export { KvmExit, kvmExitName, KvmHc, KvmHcError } from "./hypervisor/kvm/uapi.ts"
export type { KvmRegs, KvmRunExit, KvmSegment, KvmSregs, KvmUserspaceMemoryRegion } from "./hypervisor/kvm/uapi.ts"
export type { HypercallCall, HypercallDefinition, HypercallFunction } from "./hypervisor/kvm/hypercalls.ts"
export type { Vcpu } from "./hypervisor/kvm/vcpu.ts"
export type { Vm } from "./hypervisor/kvm/vm.ts"

// the QEMU-like VMM
export { bootHost, catTrace } from "./hypervisor/vmm/system.ts"
export type { SimulatedHost, SimulatedHostOptions } from "./hypervisor/vmm/system.ts"
export { Machine, runMachine, runMachines } from "./hypervisor/vmm/machine.ts"
export type { MachineEnd, MachineOptions } from "./hypervisor/vmm/machine.ts"
export { longModeSregs } from "./hypervisor/vmm/long-mode.ts"

// trace and sysfs readers
export { makeTrace, Trace, TracePipeReader, TraceSnapshotReader } from "./trace/index.ts"
export type { TraceShape } from "./trace/index.ts"
export { makeMachineSysfs } from "./sysfs/machine.ts"
export { Sysfs, SysfsError, SysfsLive } from "./sysfs/service.ts"
export type { SysfsShape } from "./sysfs/service.ts"
export { kstrtoull } from "./sysfs/kstrtox.ts"
export { legacyVmcsForKvm, vmcsctlForKvm } from "./sysfs/vmcsctl/kvm-adapter.ts"

// user kernel modules (kvmsim run --module FILE.ts, the shell's insmod FILE.ts)
export { defineModule } from "./cli/module-api.ts"
export type { ModuleContext, UserModule } from "./cli/module-api.ts"

// one guest run, as `kvmsim run` does it
export { executeRun } from "./cli/sim/execute.ts"
export type { ExecuteOptions, RunResult } from "./cli/sim/execute.ts"
export { bootSimHost, SimHost } from "./cli/sim/session.ts"
export type { GuestOptions, HostOptions, Injection, VcpuSnapshot } from "./cli/sim/session.ts"
export { loadGuestFile } from "./cli/sim/guest-file.ts"
export { classify, ExitStatus } from "./cli/sim/outcome.ts"
export type { Outcome } from "./cli/sim/outcome.ts"
export { decodeRunDocument, RunDocumentSchema, runDocument } from "./cli/report/run-document.ts"
export type { RunDocument } from "./cli/report/run-document.ts"
