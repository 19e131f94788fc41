# vmcsctl-tour.sh: a tour of /sys/kernel/vmcsctl (seed 002's interface) in kvmsim's shell.
#   kvmsim shell < examples/vmcsctl-tour.sh
# Each line is a shell command; the script stops at the first one that fails.
insmod vmcsctl.ko
boot examples/fault-injection.asm --bare
run until exit:IO_INSTRUCTION
# one directory per VMCS, named after the pid of the thread that created it (the vCPU thread)
ls /sys/kernel/vmcsctl
ps
cat /sys/kernel/vmcsctl/vmcs*/revision_id
cat /sys/kernel/vmcsctl/vmcs*/VM_EXIT_REASON
cat /sys/kernel/vmcsctl/vmcs*/GUEST_RIP
ls /sys/kernel/vmcsctl/vmcs* | grep -c GUEST_
# a write is a VMWRITE on the CPU that owns the VMCS; the guest sees it at its next entry:
# jump to `done` (0x100030): the guest halts without printing more
echo 0x100030 > /sys/kernel/vmcsctl/vmcs12398/GUEST_RIP
cat /sys/kernel/vmcsctl/vmcs12398/GUEST_RIP
run
