// Virtual time charged for work that is not guest instructions, so trace timestamps advance the
// way they do on hardware: a VMCALL round trip through KVM costs about a microsecond on a
// Skylake host, a trip to user space (QEMU) a few, a trace_printk a little.

export const Cost = {
  /** VM exit: hardware transition plus KVM's exit dispatch. */
  exitNs: 350,
  /** VM entry: KVM's entry path plus VMRESUME. */
  entryNs: 250,
  /** Return to user space and back (the ioctl and QEMU's handling of a simple port). */
  userspaceNs: 2_000,
  /** One trace_printk or tracepoint record. */
  traceNs: 60,
  /** Waking a halted vCPU thread (wake-up + context switch). */
  wakeupNs: 3_000,
} as const
