import { constants, promises as fs, type Stats } from "node:fs"
import { ByteSize, Effect, FileSystem, Layer, Option } from "effect"
import { fromNodeError } from "./errors.ts"

const info = (s: Stats): FileSystem.File.Info => ({
  type: s.isFile() ? "File" : s.isDirectory() ? "Directory" : s.isSymbolicLink() ? "SymbolicLink" : s.isBlockDevice() ? "BlockDevice" : s.isCharacterDevice() ? "CharacterDevice" : s.isFIFO() ? "FIFO" : s.isSocket() ? "Socket" : "Unknown",
  mtime: Option.some(s.mtime),
  atime: Option.some(s.atime),
  birthtime: Option.some(s.birthtime),
  dev: BigInt(s.dev),
  ino: Option.some(BigInt(s.ino)),
  mode: s.mode,
  nlink: Option.some(BigInt(s.nlink)),
  uid: Option.some(s.uid),
  gid: Option.some(s.gid),
  rdev: Option.some(BigInt(s.rdev)),
  size: ByteSize.bytes(s.size),
  blksize: Option.some(ByteSize.bytes(s.blksize)),
  blocks: Option.some(BigInt(s.blocks)),
})

const attempt = <A>(method: string, path: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (e) => fromNodeError(method, path, e) })

/**
 * The file-system operations kvmsim's CLI uses, on Node's fs (what @effect/platform-node would
 * give on Node 22). Operations the CLI never needs (watch, open, links, temp files) fail with
 * NotFound, as FileSystem.makeNoop defines.
 */
export const nodeFileSystem: FileSystem.FileSystem = FileSystem.makeNoop({
  access: (path, options) =>
    attempt("access", path, () => fs.access(path, (options?.readable ? constants.R_OK : 0) | (options?.writable ? constants.W_OK : 0) | constants.F_OK)),
  exists: (path) => Effect.promise(() => fs.access(path).then(() => true, () => false)),
  readFile: (path) => attempt("readFile", path, async () => new Uint8Array(await fs.readFile(path))),
  readFileString: (path, encoding) => attempt("readFileString", path, () => fs.readFile(path, { encoding: (encoding ?? "utf8") as BufferEncoding })),
  writeFile: (path, data, options) => attempt("writeFile", path, () => fs.writeFile(path, data, { flag: options?.flag ?? "w", mode: options?.mode })),
  writeFileString: (path, data, options) => attempt("writeFileString", path, () => fs.writeFile(path, data, { flag: options?.flag ?? "w", mode: options?.mode })),
  stat: (path) => attempt("stat", path, async () => info(await fs.stat(path))),
  lstat: (path) => attempt("lstat", path, async () => info(await fs.lstat(path))),
  realPath: (path) => attempt("realPath", path, () => fs.realpath(path)),
  readDirectory: (path, options) => attempt("readDirectory", path, () => fs.readdir(path, { recursive: options?.recursive ?? false })),
  makeDirectory: (path, options) => attempt("makeDirectory", path, async () => void (await fs.mkdir(path, { recursive: options?.recursive ?? false, mode: options?.mode }))),
  remove: (path, options) => attempt("remove", path, () => fs.rm(path, { recursive: options?.recursive ?? false, force: options?.force ?? false })),
})

export const layer: Layer.Layer<FileSystem.FileSystem> = Layer.succeed(FileSystem.FileSystem, nodeFileSystem)
