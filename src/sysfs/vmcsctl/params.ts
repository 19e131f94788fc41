// Module parameters as the kernel parses them (module_param(name, bool, 0444)): kstrtobool's
// rules, and the /sys/module/<name>/parameters/<param> file that shows them.

import { EINVAL } from "../errno.ts"

/**
 * kstrtobool: the first character decides (y/Y/1 true, n/N/0 false; "on"/"off" by the second).
 * An absent parameter keeps its default; one given without a value ("insmod m flag", here "")
 * is true. Anything else is -EINVAL.
 */
export const parseBoolParam = (value: string | undefined, defaultValue = false): boolean | number => {
  if (value === undefined) return defaultValue
  if (value === "") return true
  const first = value[0]
  if (first === "y" || first === "Y" || first === "1") return true
  if (first === "n" || first === "N" || first === "0") return false
  if (first === "o" || first === "O") {
    const second = value[1]
    if (second === "n" || second === "N") return true
    if (second === "f" || second === "F") return false
  }
  return -EINVAL
}

/** param_get_bool's text. */
export const showBoolParam = (value: boolean): string => (value ? "Y\n" : "N\n")
