// Linux errno numbers (asm-generic/errno-base.h, errno.h) that the pseudo-filesystem returns.
// Synchronous calls return them negated, like the kernel's -errno convention.

export const EPERM = 1
export const ENOENT = 2
export const ESRCH = 3
export const EIO = 5
export const E2BIG = 7
export const EBADF = 9
export const EAGAIN = 11
export const ENOMEM = 12
export const EACCES = 13
export const EBUSY = 16
export const EEXIST = 17
export const ENODEV = 19
export const ENOTDIR = 20
export const EISDIR = 21
export const EINVAL = 22
export const ERANGE = 34
export const ENAMETOOLONG = 36
export const ELOOP = 40

const names: Record<number, string> = {
  [EPERM]: "EPERM",
  [ENOENT]: "ENOENT",
  [ESRCH]: "ESRCH",
  [EIO]: "EIO",
  [E2BIG]: "E2BIG",
  [EBADF]: "EBADF",
  [EAGAIN]: "EAGAIN",
  [ENOMEM]: "ENOMEM",
  [EACCES]: "EACCES",
  [EBUSY]: "EBUSY",
  [EEXIST]: "EEXIST",
  [ENODEV]: "ENODEV",
  [ENOTDIR]: "ENOTDIR",
  [EISDIR]: "EISDIR",
  [EINVAL]: "EINVAL",
  [ERANGE]: "ERANGE",
  [ENAMETOOLONG]: "ENAMETOOLONG",
  [ELOOP]: "ELOOP",
}

// strerror() texts as glibc prints them, for messages users compare with their shell.
const messages: Record<number, string> = {
  [EPERM]: "Operation not permitted",
  [ENOENT]: "No such file or directory",
  [ESRCH]: "No such process",
  [EIO]: "Input/output error",
  [E2BIG]: "Argument list too long",
  [EBADF]: "Bad file descriptor",
  [EAGAIN]: "Resource temporarily unavailable",
  [ENOMEM]: "Cannot allocate memory",
  [EACCES]: "Permission denied",
  [EBUSY]: "Device or resource busy",
  [EEXIST]: "File exists",
  [ENODEV]: "No such device",
  [ENOTDIR]: "Not a directory",
  [EISDIR]: "Is a directory",
  [EINVAL]: "Invalid argument",
  [ERANGE]: "Numerical result out of range",
  [ENAMETOOLONG]: "File name too long",
  [ELOOP]: "Too many levels of symbolic links",
}

/** "ENOENT" for 2 (or -2); "E<n>" for numbers this table does not name. */
export const errnoName = (errno: number): string => names[Math.abs(errno)] ?? `E${Math.abs(errno)}`

/** glibc's strerror() text for the errno (sign ignored). */
export const strerror = (errno: number): string => messages[Math.abs(errno)] ?? `Unknown error ${Math.abs(errno)}`
