// The virtual clock. Each host CPU keeps its own local time in nanoseconds since boot (like the
// kernel's per-CPU sched_clock behind ftrace's default "local" clock); time moves only when
// simulated work is charged to a CPU — retired guest instructions and fixed costs of kernel
// paths — so one seed gives one timeline. Times are integers in number form: exact to 2^53 ns
// (104 days).

export interface ClockOptions {
  readonly cpuCount: number
  /** Uptime when the simulation starts. */
  readonly startNs: number
  /** Virtual time one retired guest instruction takes. */
  readonly nsPerInstruction: number
  /** CONFIG_HZ: the host timer tick rate. */
  readonly hz: number
}

export class VirtualClock {
  /** Local time of each host CPU. The hot path adds to it directly. */
  readonly cpuNs: Float64Array
  readonly nsPerInstruction: number
  readonly tickPeriodNs: number
  /** The CPU whose task is running now, or -1 between scheduling decisions. */
  current = -1

  constructor(options: ClockOptions) {
    if (!Number.isInteger(options.nsPerInstruction) || options.nsPerInstruction < 1) {
      throw new RangeError(`nsPerInstruction must be a positive integer, got ${options.nsPerInstruction}`)
    }
    this.cpuNs = new Float64Array(options.cpuCount).fill(options.startNs)
    this.nsPerInstruction = options.nsPerInstruction
    this.tickPeriodNs = Math.round(1e9 / options.hz)
  }

  /** Trace-clock interface: the running CPU's local time; the latest CPU time when none runs. */
  nowNs(): number {
    const cpu = this.current
    if (cpu >= 0) return this.cpuNs[cpu]!
    return this.latestNs()
  }

  /** Local time of one CPU. */
  nowOn(cpu: number): number {
    return this.cpuNs[cpu]!
  }

  latestNs(): number {
    let latest = 0
    for (let i = 0; i < this.cpuNs.length; i++) if (this.cpuNs[i]! > latest) latest = this.cpuNs[i]!
    return latest
  }

  /** Charges `ns` of work to a CPU. */
  advance(cpu: number, ns: number): void {
    this.cpuNs[cpu]! += ns
  }

  /** Charges retired guest instructions to a CPU. */
  retire(cpu: number, instructions: number): void {
    this.cpuNs[cpu]! += instructions * this.nsPerInstruction
  }

  /** Moves a CPU's time forward to at least `ns` (an idle CPU catching up when work arrives). */
  raiseTo(cpu: number, ns: number): void {
    if (this.cpuNs[cpu]! < ns) this.cpuNs[cpu] = ns
  }

  /** Time of the next host timer tick on a CPU: the next multiple of the tick period. */
  nextTickNs(cpu: number): number {
    const now = this.cpuNs[cpu]!
    return (Math.floor(now / this.tickPeriodNs) + 1) * this.tickPeriodNs
  }

  /** jiffies since boot on a CPU. */
  jiffies(cpu: number): number {
    return Math.floor(this.cpuNs[cpu]! / this.tickPeriodNs)
  }
}
