# legacy-vmcs.sh: the 2016 class report's /sys/vmcs (seed 000): seven files that show the VMCS
# current on the reader's CPU. kvmsim's version parses base 0 (seed 000's store parsed base 2,
# so `echo 2` could not work).
# The files read the VMCS current on the CPU of the reading task; the shell reads on CPU 0, so
# give the host a single CPU (on a 4-CPU host the vCPU runs elsewhere and the files say EIO):
#   kvmsim shell --host-cpus 1 < examples/legacy-vmcs.sh
insmod vmcs.ko
ls /sys/vmcs
boot examples/fault-injection.asm --bare
run until exit:IO_INSTRUCTION
cat /sys/vmcs/g_rip_a
cat /sys/vmcs/g_cr0_c
cat /sys/vmcs/guest_rflags
run
