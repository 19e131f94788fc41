// sysfs.read: one read of an already open attribute (pread at offset 0, so show() runs every
// time), in nanoseconds, next to a pread of a real sysfs file on this host as calibration.
// Goal from the issue: at most 0.5x the real read.

import { closeSync, existsSync, openSync, readSync } from "node:fs"
import { bestRate, type Benchmark, type Figure, result, verify } from "./harness.ts"
import type { KObject } from "../src/sysfs/kobject.ts"
import { makeSysfs } from "../src/sysfs/service.ts"

const calibrationCandidates = [
  "/sys/kernel/mm/transparent_hugepage/enabled",
  "/sys/devices/system/cpu/online",
  "/sys/kernel/profiling",
  "/proc/sys/kernel/pid_max",
]

const OPS = 20_000

/** ns per pread of a real sysfs (or, lacking one, procfs) file on this host. */
const realReadNs = (): Figure => {
  const path = calibrationCandidates.find((p) => existsSync(p))
  if (path === undefined) throw new Error("sysfs.read: no readable /sys or /proc file for calibration")
  const fd = openSync(path, "r")
  const buffer = Buffer.alloc(4096)
  try {
    const first = readSync(fd, buffer, 0, 4096, 0)
    verify("sysfs.read", `bytes read from ${path}`, true, first > 0)
    const rate = bestRate(() => {
      for (let i = 0; i < OPS; i++) readSync(fd, buffer, 0, 4096, 0)
    }, OPS)
    return { name: `pread ${path}`, unit: "ns", value: 1e9 / rate }
  } finally {
    closeSync(fd)
  }
}

const simulatedReadNs = (): number => {
  const sysfs = makeSysfs()
  let counter = 0
  const kobject = sysfs.kernelKobj.addChild("bench") as KObject
  kobject.createFile({ name: "value", mode: 0o444, show: () => `${counter++}\n` })
  const fs = sysfs.fs
  const fd = fs.open("/sys/kernel/bench/value")
  let checksum = 0
  const rate = bestRate(() => {
    for (let i = 0; i < OPS; i++) {
      const text = fs.pread(fd, 0)
      if (typeof text === "string") checksum += text.length
    }
  }, OPS)
  verify("sysfs.read", "every read returned text", true, checksum > 0 && counter > OPS)
  return 1e9 / rate
}

const sysfsRead: Benchmark = {
  name: "sysfs.read",
  description: "ns per read of an open sysfs attribute (calibration: pread of a real /sys file)",
  run: () => {
    const calibration = realReadNs()
    return result("sysfs.read", "ns", simulatedReadNs(), calibration)
  },
}

export default [sysfsRead]
