// Linux errno numbers (include/uapi/asm-generic/errno-base.h, errno.h) used by the simulated
// host kernel. Calls return them negated, as system calls do.

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
} as const
export type ErrnoName = keyof typeof Errno

/** EWOULDBLOCK is EAGAIN on Linux; delete_module returns it for a module in use. */
export const EWOULDBLOCK = Errno.EAGAIN

const namesByNumber = new Map<number, ErrnoName>(
  (Object.entries(Errno) as Array<[ErrnoName, number]>).map(([name, n]) => [n, name]),
)

/** Symbolic name of an errno number (positive or negated), e.g. 22 → "EINVAL". */
export const errnoName = (errno: number): string => namesByNumber.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`
