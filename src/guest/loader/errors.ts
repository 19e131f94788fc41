import { Data } from "effect"

/** A program file the loader cannot load: what was wrong, and what it needs instead. */
export class LoaderError extends Data.TaggedError("LoaderError")<{
  readonly file: string
  /** What was wrong, e.g. "relocatable object file (ET_REL)". */
  readonly problem: string
  /** What the loader needs instead. */
  readonly expected: string
}> {
  override get message(): string {
    return `${this.file}: cannot load: ${this.problem}\nexpected ${this.expected}`
  }
}
