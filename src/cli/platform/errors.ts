import * as PlatformError from "effect/PlatformError"

/** Maps a Node fs error (ENOENT, EACCES …) to Effect's PlatformError. */
export const fromNodeError = (method: string, path: string, e: unknown): PlatformError.PlatformError => {
  const code = (e as { code?: string }).code
  const tag: PlatformError.SystemErrorTag =
    code === "ENOENT" ? "NotFound" : code === "EACCES" || code === "EPERM" ? "PermissionDenied" : code === "EEXIST" ? "AlreadyExists" : code === "EBUSY" ? "Busy" : code === "EISDIR" || code === "ENOTDIR" ? "BadResource" : "Unknown"
  return PlatformError.systemError({ _tag: tag, module: "FileSystem", method, pathOrDescriptor: path, description: (e as Error).message, cause: e })
}
