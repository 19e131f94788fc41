// A process's file-descriptor table: open() returns the lowest free descriptor (0, 1, 2 are the
// standard streams), close() frees it. KVM hands out its /dev/kvm, VM and vCPU files through it,
// so "PID-FD" names in debugfs match what the process sees.

import { Errno } from "./errno.ts"

/** RLIMIT_NOFILE's usual soft limit. */
export const DEFAULT_NOFILE = 1024

export class FileTable {
  private readonly files = new Map<number, unknown>()

  constructor(private readonly limit = DEFAULT_NOFILE) {
    // stdin, stdout, stderr
    for (let fd = 0; fd < 3; fd++) this.files.set(fd, "std")
  }

  /** Installs `file` at the lowest free descriptor; -EMFILE when the table is full. */
  install(file: unknown): number {
    for (let fd = 0; fd < this.limit; fd++) {
      if (!this.files.has(fd)) {
        this.files.set(fd, file)
        return fd
      }
    }
    return -Errno.EMFILE
  }

  get(fd: number): unknown {
    return this.files.get(fd)
  }

  /** close(fd): 0, or -EBADF. */
  close(fd: number): number {
    return this.files.delete(fd) ? 0 : -Errno.EBADF
  }

  get openCount(): number {
    return this.files.size
  }
}
