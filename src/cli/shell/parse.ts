// The shell's command-line grammar, a small subset of bash: words with '…' and "…" quoting and
// backslash escapes, `# comments`, pipelines with `|`, output redirection `> FILE` / `>> FILE`,
// and lists joined by `;`, `&&` and `||`.

export interface SimpleCommand {
  readonly argv: ReadonlyArray<string>
  readonly redirect?: { readonly append: boolean; readonly file: string }
}

export interface Pipeline {
  readonly commands: ReadonlyArray<SimpleCommand>
  /** How this pipeline joins the previous one. */
  readonly joiner: ";" | "&&" | "||"
}

type Token = { readonly kind: "word"; readonly text: string } | { readonly kind: "op"; readonly text: string }

/** Splits a line into words and operators; a string result is a syntax error (bash's wording). */
export const tokenize = (line: string): Array<Token> | string => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < line.length) {
    const c = line[i]!
    if (c === " " || c === "\t") {
      i++
      continue
    }
    if (c === "#") break
    if (c === "|" || c === "&" || c === ";" || c === ">") {
      const two = line.slice(i, i + 2)
      if (two === "&&" || two === "||" || two === ">>") {
        tokens.push({ kind: "op", text: two })
        i += 2
      } else if (c === "&") {
        return "background jobs (&) are not supported"
      } else {
        tokens.push({ kind: "op", text: c })
        i++
      }
      continue
    }
    let word = ""
    while (i < line.length && !" \t|&;>".includes(line[i]!)) {
      const ch = line[i]!
      if (ch === "'") {
        const end = line.indexOf("'", i + 1)
        if (end < 0) return "unexpected EOF while looking for matching `''"
        word += line.slice(i + 1, end)
        i = end + 1
      } else if (ch === '"') {
        i++
        let closed = false
        while (i < line.length) {
          const d = line[i]!
          if (d === '"') {
            closed = true
            i++
            break
          }
          if (d === "\\" && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) {
            word += line[i + 1]
            i += 2
            continue
          }
          word += d
          i++
        }
        if (!closed) return 'unexpected EOF while looking for matching `"\''
      } else if (ch === "\\" && i + 1 < line.length) {
        word += line[i + 1]
        i += 2
      } else {
        word += ch
        i++
      }
    }
    tokens.push({ kind: "word", text: word })
  }
  return tokens
}

/** Parses a line into pipelines; a string result is a syntax error. */
export const parseLine = (line: string): Array<Pipeline> | string => {
  const tokens = tokenize(line)
  if (typeof tokens === "string") return tokens
  const pipelines: Array<Pipeline> = []
  let joiner: Pipeline["joiner"] = ";"
  let commands: Array<SimpleCommand> = []
  let argv: Array<string> = []
  let redirect: SimpleCommand["redirect"]
  const endCommand = (op: string): string | undefined => {
    if (argv.length === 0) return `syntax error near unexpected token \`${op}'`
    commands.push(redirect === undefined ? { argv } : { argv, redirect })
    argv = []
    redirect = undefined
    return undefined
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (t.kind === "word") {
      argv.push(t.text)
      continue
    }
    if (t.text === ">" || t.text === ">>") {
      const next = tokens[i + 1]
      if (next === undefined || next.kind !== "word") return `syntax error near unexpected token \`${next?.text ?? "newline"}'`
      redirect = { append: t.text === ">>", file: next.text }
      i++
      continue
    }
    const error = endCommand(t.text)
    if (error !== undefined) return error
    if (t.text === "|") continue
    pipelines.push({ commands, joiner })
    commands = []
    joiner = t.text as Pipeline["joiner"]
  }
  if (argv.length > 0 || redirect !== undefined) {
    const error = endCommand("newline")
    if (error !== undefined) return error
  } else if (commands.length > 0 || joiner !== ";") {
    // A line ending in `|`, `&&` or `||`.
    return "syntax error: unexpected end of line"
  }
  if (commands.length > 0) pipelines.push({ commands, joiner })
  return pipelines
}
