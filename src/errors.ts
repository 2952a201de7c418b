/**
 * Typed errors. A failed spawn throws `SpawnError` carrying errno, its name, the step that
 * failed and the command; a child whose reaper died rejects with `ReaperDiedError`.
 *
 * @module
 */

const ERRNO_NAMES: Readonly<Record<number, [string, string]>> = {
  1: ["EPERM", "Operation not permitted"],
  2: ["ENOENT", "No such file or directory"],
  3: ["ESRCH", "No such process"],
  4: ["EINTR", "Interrupted system call"],
  5: ["EIO", "Input/output error"],
  7: ["E2BIG", "Argument list too long"],
  8: ["ENOEXEC", "Exec format error"],
  9: ["EBADF", "Bad file descriptor"],
  10: ["ECHILD", "No child processes"],
  11: ["EAGAIN", "Resource temporarily unavailable"],
  12: ["ENOMEM", "Cannot allocate memory"],
  13: ["EACCES", "Permission denied"],
  14: ["EFAULT", "Bad address"],
  16: ["EBUSY", "Device or resource busy"],
  17: ["EEXIST", "File exists"],
  20: ["ENOTDIR", "Not a directory"],
  21: ["EISDIR", "Is a directory"],
  22: ["EINVAL", "Invalid argument"],
  23: ["ENFILE", "Too many open files in system"],
  24: ["EMFILE", "Too many open files"],
  26: ["ETXTBSY", "Text file busy"],
  27: ["EFBIG", "File too large"],
  28: ["ENOSPC", "No space left on device"],
  30: ["EROFS", "Read-only file system"],
  36: ["ENAMETOOLONG", "File name too long"],
  38: ["ENOSYS", "Function not implemented"],
  40: ["ELOOP", "Too many levels of symbolic links"],
  116: ["ESTALE", "Stale file handle"],
};

/** The symbolic name of an errno ("ENOENT"), or "E<number>". */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno]?.[0] ?? `E${errno}`;
}

/** The C library's text for an errno. */
export function errnoText(errno: number): string {
  return ERRNO_NAMES[errno]?.[1] ?? `errno ${errno}`;
}

/** What a `SpawnError` reports. */
export interface SpawnErrorDetails {
  errno: number;
  /** The setup step or syscall that failed: "execve", "chdir", "dup2", "open", "clone", … */
  syscall: string;
  command: string;
  args: readonly string[];
  /** The path involved, when the step had one (the program, the cwd, a redirected file). */
  path?: string;
}

/** A child could not be started. Thrown synchronously by `spawnHandle`; nothing is left behind. */
export class SpawnError extends Error {
  /** The errno's name, like "ENOENT". */
  readonly code: string;
  /** The errno's number. */
  readonly errno: number;
  /** The step or syscall that failed. */
  readonly syscall: string;
  /** The command as given. */
  readonly command: string;
  /** The arguments as given. */
  readonly args: readonly string[];
  /** The path the failing step used, if any. */
  readonly path: string | undefined;

  constructor(details: SpawnErrorDetails) {
    const code = errnoName(details.errno);
    const where = details.path !== undefined && details.path !== details.command
      ? ` (${details.syscall} ${JSON.stringify(details.path)})`
      : ` (${details.syscall})`;
    super(`Failed to spawn ${JSON.stringify(details.command)}: ${code}: ${errnoText(details.errno)}${where}`);
    this.name = "SpawnError";
    this.code = code;
    this.errno = details.errno;
    this.syscall = details.syscall;
    this.command = details.command;
    this.args = details.args;
    this.path = details.path;
  }
}

/** The reaper that owned a child died before the child's exit status was collected. */
export class ReaperDiedError extends Error {
  /** Always "ERR_REAPER_DIED". */
  readonly code = "ERR_REAPER_DIED";
  /** The child's pid. */
  readonly pid: number;
  /** The command as given. */
  readonly command: string;
  constructor(pid: number, command: string) {
    super(
      `The reaper process died before the exit status of ${JSON.stringify(command)} (pid ${pid}) was collected; the status is lost (the child itself may still run). The next spawn starts a new reaper.`,
    );
    this.name = "ReaperDiedError";
    this.pid = pid;
    this.command = command;
  }
}
