// The mini guest kernel: its source (kernel.asm), the boot-parameter block the VMM writes, the
// placement of user programs, and the system-call numbers. See docs/guest-kernel.md.

export * from "./boot-params.ts"
export * from "./syscalls.ts"
export * from "./user-program.ts"
export * from "./install.ts"
