import { Data } from "effect"

/** Where a problem was found: the file, 1-based line and column, and the text of that line. */
export interface SourcePosition {
  readonly file: string
  readonly line: number
  readonly column: number
  readonly sourceLine: string
}

/**
 * Bad assembler input. The message reads like a compiler's: `file:line:column: error: ...`,
 * then the offending line and a caret under the column, then what was expected instead.
 */
export class AsmError extends Data.TaggedError("AsmError")<{
  readonly file: string
  readonly line: number
  readonly column: number
  readonly sourceLine: string
  /** What was wrong, e.g. "unknown instruction `movz`". */
  readonly problem: string
  /** What the assembler expected instead, e.g. "an instruction, directive or label". */
  readonly expected: string
}> {
  override get message(): string {
    const caret = " ".repeat(Math.max(0, this.column - 1)) + "^"
    return (
      `${this.file}:${this.line}:${this.column}: error: ${this.problem}\n` +
      `  ${this.sourceLine}\n  ${caret}\n` +
      `expected ${this.expected}`
    )
  }
}

/** Thrown inside the assembler's synchronous core, turned into AsmError at the line level. */
export class LineProblem {
  constructor(
    readonly problem: string,
    readonly expected: string,
    /** 1-based column within the (expanded) line text, or 0 when unknown. */
    readonly column: number,
    /** Text near the problem, used to find the column in the original line after macro expansion. */
    readonly near?: string,
  ) {}
}

export const fail = (problem: string, expected: string, column = 0, near?: string): never => {
  throw new LineProblem(problem, expected, column, near)
}

export const asmErrorAt = (pos: SourcePosition, problem: string, expected: string): AsmError =>
  new AsmError({ ...pos, problem, expected })
