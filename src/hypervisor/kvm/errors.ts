// Failures of the ioctl-shaped API: the errno the real ioctl would return and the call's name,
// with a message saying what was wrong and what to do.

import { Data } from "effect"
import { errnoName } from "../../host/errno.ts"

export class KvmError extends Data.TaggedError("KvmError")<{
  /** The ioctl (or open/close) that failed, e.g. "KVM_CREATE_VCPU". */
  readonly call: string
  /** Positive errno; the C call would return -1 with errno set to it. */
  readonly errno: number
  readonly message: string
}> {}

export const kvmError = (call: string, errno: number, what: string): KvmError =>
  new KvmError({ call, errno, message: `${call}: ${errnoName(errno)}: ${what}` })
