// A small /proc: /proc/<pid>/comm and /proc/<pid>/task/<tid>/comm, generated on demand from the
// host's task table, so the vCPU thread pids that ftrace prints can be checked against names.
// Like procfs, /proc lists thread-group leaders, yet /proc/<tid> of any live thread resolves;
// a handle opened on a task that has since exited reads ESRCH.

import { EINVAL, ESRCH } from "./errno.ts"
import { type Activity, attach, DirNode, type DynamicEntries, FileNode, permanent } from "./nodes.ts"
import type { PseudoFs } from "./pseudo-fs.ts"

/** The part of a host task /proc shows (the host's Task satisfies it). */
export interface ProcTask {
  readonly pid: number
  readonly tgid: number
  readonly comm: string
  readonly state: string
}

/** The part of the host task table /proc reads (the host's TaskTable satisfies it). */
export interface ProcTaskSource {
  get(pid: number): ProcTask | undefined
  threadsOf(tgid: number): ReadonlyArray<ProcTask>
  list(): ReadonlyArray<ProcTask>
}

const isPidName = (name: string): boolean => /^[1-9][0-9]{0,9}$/.test(name)

const live = (tasks: ProcTaskSource, pid: number): ProcTask | undefined => {
  const task = tasks.get(pid)
  return task === undefined || task.state === "exited" ? undefined : task
}

// comm_write only renames a thread of the writer's own thread group; callers of this API are
// not tasks of the simulated machine, so a write is refused with EINVAL as comm_write does.
// A handle stays bound to the task it was opened on (as to its struct pid): once that task has
// exited it reads ESRCH, even if the pid has been handed to a new task.
const commFile = (tasks: ProcTaskSource, task: ProcTask, activity: Activity): FileNode =>
  new FileNode(
    "comm",
    0o644,
    activity,
    () => (task.state === "exited" || tasks.get(task.pid) !== task ? -ESRCH : `${task.comm}\n`),
    () => -EINVAL,
  )

const taskDir = (tasks: ProcTaskSource, task: ProcTask, withTaskList: boolean): DirNode => {
  const pid = task.pid
  const dir = new DirNode(String(pid), 0o555, permanent)
  attach(dir, commFile(tasks, task, permanent))
  if (withTaskList) {
    const taskList = new DirNode("task", 0o555, permanent)
    taskList.dynamic = {
      list: () => {
        const task = live(tasks, pid)
        return task === undefined ? [] : tasks.threadsOf(task.tgid).filter((t) => t.state !== "exited").map((t) => String(t.pid))
      },
      lookup: (name) => {
        if (!isPidName(name)) return undefined
        const thread = live(tasks, Number(name))
        const leader = live(tasks, pid)
        if (thread === undefined || leader === undefined || thread.tgid !== leader.tgid) return undefined
        return taskDir(tasks, thread, false)
      },
    }
    attach(dir, taskList)
  }
  return dir
}

/** Entries of /proc: one directory per live thread-group leader; any live tid resolves. */
export const procEntries = (tasks: ProcTaskSource): DynamicEntries => ({
  list: () => tasks.list().filter((t) => t.pid === t.tgid && t.state !== "exited").map((t) => String(t.pid)),
  lookup: (name) => {
    if (!isPidName(name)) return undefined
    const task = live(tasks, Number(name))
    return task === undefined ? undefined : taskDir(tasks, task, true)
  },
})

/** Mounts /proc on `fs`, backed by `tasks`. */
export const mountProc = (fs: PseudoFs, tasks: ProcTaskSource): void => {
  const proc = fs.mkdirs("/proc", 0o555)
  proc.dynamic = procEntries(tasks)
}
