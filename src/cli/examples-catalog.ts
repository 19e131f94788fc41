// The examples shipped in examples/: what each shows and the command that runs it. `kvmsim
// examples list` prints this; `kvmsim examples copy` copies the files; the e2e tests run every
// entry's command.

export interface ExampleEntry {
  readonly name: string
  readonly files: ReadonlyArray<string>
  readonly summary: string
  /** The command line that runs it, from the directory the files were copied to. */
  readonly command: string
  /** The exit status the command ends with. */
  readonly status: number
}

export const examplesDirectory = new URL("../../examples/", import.meta.url)

export const exampleCatalog: ReadonlyArray<ExampleEntry> = [
  {
    name: "vcpu-info",
    files: ["vcpu-info.asm"],
    summary: "the KVM_HC_VCPU_INFO homework (seed 003), assembly: syscall 548 on 4 vCPUs, one trace block per vCPU",
    command: "kvmsim run examples/vcpu-info.asm --vcpus 4 --trace",
    status: 0,
  },
  {
    name: "vcpu-info-c",
    files: ["vcpu-info.c"],
    summary: "the same homework in C, built by gcc with the mini kernel's header (needs gcc)",
    command: "kvmsim run examples/vcpu-info.c --vcpus 4 --trace",
    status: 0,
  },
  {
    name: "vmcsctl-tour",
    files: ["vmcsctl-tour.sh", "fault-injection.asm"],
    summary: "a shell tour of /sys/kernel/vmcsctl (seed 002): one directory per VMCS, reads, a GUEST_RIP write the guest obeys",
    command: "kvmsim shell < examples/vmcsctl-tour.sh",
    status: 0,
  },
  {
    name: "legacy-vmcs",
    files: ["legacy-vmcs.sh", "fault-injection.asm"],
    summary: "the 2016 /sys/vmcs (seed 000): seven files showing the VMCS current on the reader's CPU",
    command: "kvmsim shell --host-cpus 1 < examples/legacy-vmcs.sh",
    status: 0,
  },
  {
    name: "fault-injection",
    files: ["fault-injection.asm"],
    summary: "fault injection by VMCS writes: GUEST_CR0 cleared at the 3rd exit makes the next entry fail (exit status 3)",
    command: "kvmsim run --bare examples/fault-injection.asm --inject GUEST_CR0=0x20@exit:3",
    status: 3,
  },
  {
    name: "vmm-error8",
    files: ["vmm-error8.ts"],
    summary: "seed 004's bare VMM as a module: HOST_CR4 captured before CR4.VMXE, VMLAUNCH fails with VM-instruction error 8",
    command: "kvmsim shell -c 'insmod examples/vmm-error8.ts; cat /sys/kernel/vmm/result /sys/kernel/vmm/explanation'",
    status: 0,
  },
  {
    name: "hypercall-module",
    files: ["hypercall-module.ts", "hypercall.asm"],
    summary: "a custom hypercall (0x100, a0 + a1) in a host kernel module, called by a bare guest",
    command: "kvmsim run --bare --module examples/hypercall-module.ts examples/hypercall.asm --trace",
    status: 0,
  },
]
