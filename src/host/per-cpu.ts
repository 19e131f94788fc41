// Per-CPU data (the kernel's DEFINE_PER_CPU): one slot per host CPU, owned by the module that made
// it. KVM keeps each CPU's logical-processor VMX state here; the host core does not know its type.

export class PerCpu<T> {
  private readonly slots: Array<T>

  constructor(cpuCount: number, init: (cpu: number) => T) {
    this.slots = Array.from({ length: cpuCount }, (_, cpu) => init(cpu))
  }

  get(cpu: number): T {
    if (cpu < 0 || cpu >= this.slots.length) throw new RangeError(`per-CPU access on CPU ${cpu} of ${this.slots.length}`)
    return this.slots[cpu]!
  }

  get length(): number {
    return this.slots.length
  }

  forEach(f: (value: T, cpu: number) => void): void {
    this.slots.forEach(f)
  }
}
