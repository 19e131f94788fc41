import { Layer, Path } from "effect"
import * as ChildProcess from "./child-process.ts"
import * as NodeFileSystem from "./file-system.ts"
import * as NodeStdio from "./stdio.ts"
import * as NodeTerminal from "./terminal.ts"

/** Everything effect/cli's Command.run needs (Command.Environment), on Node 20. */
export const nodeEnvironment = (args: ReadonlyArray<string>) =>
  Layer.mergeAll(NodeFileSystem.layer, Path.layer, NodeStdio.layer(args), NodeTerminal.layer, ChildProcess.layer)
