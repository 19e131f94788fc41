// Kernel profiles: the two host kernels kvmsim imitates. Everything that differs between them is
// a field here, so callers never test the profile name themselves.

export type KernelProfileName = "linux-5.0" | "linux-6.x"

export interface KernelProfile {
  readonly name: KernelProfileName
  /** `uname -r`. */
  readonly release: string
  /** ftrace output era (ftrace.md §0): A for 5.0, D for 6.x. */
  readonly traceEra: "A" | "D"
  /** CONFIG_HZ of the distribution kernels of that era (Ubuntu: 250). */
  readonly hz: number
  /** /proc/sys/kernel/pid_max: the kernel default 32768, raised by systemd ≥ 243 to 4194304. */
  readonly pidMax: number
  /** comm of QEMU's main thread: "qemu-system-x86_64" cut to TASK_COMM_LEN - 1 = 15 characters. */
  readonly vmmComm: string
  /**
   * comm of vCPU thread `index`. QEMU names its threads only with `-name ...,debug-threads=on`
   * (libvirt's default on 6.x-era distributions): "CPU N/KVM"; otherwise the thread keeps the
   * process's comm.
   */
  readonly vcpuThreadComm: (index: number) => string
  /** Default number of the homework's KVM_HC_VCPU_INFO hypercall. */
  readonly defaultVcpuInfoHypercall: number
  /** Whether KVM_HC_SCHED_YIELD (11, v5.3) exists. */
  readonly hasSchedYield: boolean
}

/** Longest comm the kernel keeps (TASK_COMM_LEN 16 including the NUL). */
export const TASK_COMM_LEN = 16
export const truncateComm = (comm: string): string => comm.slice(0, TASK_COMM_LEN - 1)

export const linux50: KernelProfile = {
  name: "linux-5.0",
  release: "5.0.11",
  traceEra: "A",
  hz: 250,
  pidMax: 32768,
  vmmComm: truncateComm("qemu-system-x86_64"),
  vcpuThreadComm: () => truncateComm("qemu-system-x86_64"),
  defaultVcpuInfoHypercall: 11,
  hasSchedYield: false,
}

export const linux6x: KernelProfile = {
  name: "linux-6.x",
  release: "6.8.0",
  traceEra: "D",
  hz: 250,
  pidMax: 4194304,
  vmmComm: truncateComm("qemu-system-x86_64"),
  vcpuThreadComm: (index) => truncateComm(`CPU ${index}/KVM`),
  // 11 is KVM_HC_SCHED_YIELD and 12 KVM_HC_MAP_GPA_RANGE there; 13 is the first free number.
  defaultVcpuInfoHypercall: 13,
  hasSchedYield: true,
}

export const kernelProfiles: Readonly<Record<KernelProfileName, KernelProfile>> = {
  "linux-5.0": linux50,
  "linux-6.x": linux6x,
}

export const kernelProfile = (name: KernelProfileName = "linux-5.0"): KernelProfile => kernelProfiles[name]
