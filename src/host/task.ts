// Tasks: the kernel's view of processes and threads. Every thread is a task with its own pid
// (what ftrace prints and what user space calls the tid); the threads of one process share its
// tgid, which is the pid of its first thread. comm is at most 15 characters, as the kernel keeps it.

import { FileTable } from "./files.ts"
import { truncateComm } from "./profile.ts"

export type TaskState = "runnable" | "running" | "blocked" | "exited"

export class Task {
  state: TaskState = "runnable"
  /** Host CPU the task last ran on (or is queued on); -1 before it first runs. */
  cpu = -1
  private commValue: string
  /** The process's descriptor table, shared by its threads. */
  readonly files: FileTable

  constructor(
    readonly pid: number,
    readonly tgid: number,
    comm: string,
    files: FileTable = new FileTable(),
  ) {
    this.commValue = truncateComm(comm)
    this.files = files
  }

  get comm(): string {
    return this.commValue
  }

  /** prctl(PR_SET_NAME) / pthread_setname_np: the kernel keeps the first 15 characters. */
  setComm(comm: string): void {
    this.commValue = truncateComm(comm)
  }

  get isThreadGroupLeader(): boolean {
    return this.pid === this.tgid
  }
}

/** First pid handed out after a wrap (kernel/pid.c RESERVED_PIDS). */
export const RESERVED_PIDS = 300

export interface TaskTableOptions {
  readonly pidMax: number
  /** Next pid to hand out: the boot-time tasks took the ones before it. */
  readonly firstPid: number
}

export class TaskTable {
  private readonly tasks = new Map<number, Task>()
  private readonly threads = new Map<number, Array<Task>>()
  private nextPid: number
  private readonly pidMax: number

  constructor(options: TaskTableOptions) {
    this.pidMax = options.pidMax
    this.nextPid = options.firstPid
    // The tasks every Linux system has; their pids are fixed by boot order.
    this.insert(new Task(1, 1, "systemd"))
    this.insert(new Task(2, 2, "kthreadd"))
  }

  /** Creates a process (its first thread); the pid is allocated cyclically like alloc_pid(). */
  spawnProcess(comm: string): Task {
    const pid = this.allocatePid()
    const task = new Task(pid, pid, comm)
    this.insert(task)
    return task
  }

  /** Creates another thread of `leader`'s process; a new thread inherits the creator's comm. */
  spawnThread(leader: Task, comm: string = leader.comm): Task {
    if (leader.state === "exited") throw new Error(`spawnThread: process ${leader.tgid} has exited`)
    const task = new Task(this.allocatePid(), leader.tgid, comm, leader.files)
    this.insert(task)
    return task
  }

  /** Removes a task; the last thread of a process removes the process. Its pid may be reused later. */
  exit(task: Task): void {
    if (task.state === "exited") return
    task.state = "exited"
    this.tasks.delete(task.pid)
    const group = this.threads.get(task.tgid)
    if (group !== undefined) {
      const rest = group.filter((t) => t !== task)
      if (rest.length === 0) this.threads.delete(task.tgid)
      else this.threads.set(task.tgid, rest)
    }
  }

  get(pid: number): Task | undefined {
    return this.tasks.get(pid)
  }

  /**
   * comm for a pid as ftrace resolves it: the live task's, else the saved_cmdlines cache, which
   * remembers the last `savedCmdlinesSize` tasks that ran (so a trace read after QEMU exited
   * still names its threads).
   */
  commOf(pid: number): string | undefined {
    return this.tasks.get(pid)?.comm ?? this.savedCmdlines.get(pid)
  }

  /** saved_cmdlines_size (128 by default). */
  savedCmdlinesSize = 128
  private readonly savedCmdlines = new Map<number, string>()

  /** tracing_record_cmdline: called when a task is switched in. */
  recordCmdline(task: Task): void {
    const cache = this.savedCmdlines
    if (cache.get(task.pid) === task.comm) return
    cache.delete(task.pid)
    cache.set(task.pid, task.comm)
    if (cache.size > this.savedCmdlinesSize) cache.delete(cache.keys().next().value!)
  }

  /** Threads of the process whose tgid is given, in creation order (/proc/<pid>/task). */
  threadsOf(tgid: number): ReadonlyArray<Task> {
    return this.threads.get(tgid) ?? []
  }

  /** Live tasks in pid order (/proc). */
  list(): Array<Task> {
    return [...this.tasks.values()].sort((a, b) => a.pid - b.pid)
  }

  get size(): number {
    return this.tasks.size
  }

  private insert(task: Task): void {
    this.tasks.set(task.pid, task)
    const group = this.threads.get(task.tgid)
    if (group === undefined) this.threads.set(task.tgid, [task])
    else group.push(task)
  }

  private allocatePid(): number {
    // Cyclic allocation from the last pid handed out, skipping pids in use, wrapping to
    // RESERVED_PIDS at pid_max — what idr_alloc_cyclic in alloc_pid() does.
    const span = this.pidMax - RESERVED_PIDS
    for (let tries = 0; tries <= span; tries++) {
      let pid = this.nextPid
      if (pid >= this.pidMax) pid = RESERVED_PIDS
      this.nextPid = pid + 1
      if (!this.tasks.has(pid)) return pid
    }
    throw new Error("pid space exhausted")
  }
}
