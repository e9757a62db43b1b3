/**
 * Errors raised by storage. Every one names the file (relative to the dataDir, or the dataDir itself) so an operator
 * can find what is wrong without reading code.
 */

export interface StorageErrorOptions {
  /** The file or directory concerned. */
  readonly path: string;
  /** The errno code (`ENOSPC`, `EACCES`, ...) when the error came from the file system. */
  readonly code?: string;
  readonly cause?: unknown;
}

/** Base class: an I/O failure or an inconsistency in the files of a dataDir. */
export class StorageError extends Error {
  readonly path: string;
  readonly code: string | undefined;

  constructor(message: string, options: StorageErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.path = options.path;
    this.code = options.code;
  }
}

/** Another live process (or this one, through another storage instance) holds the dataDir lock. */
export class DataDirLockedError extends StorageError {
  readonly dataDir: string;
  /** Process id written in the lock file; null when the holder is not a process (simulated disks). */
  readonly pid: number | null;

  constructor(dataDir: string, lockPath: string, pid: number | null) {
    const who = pid === null ? 'another storage instance' : `process ${pid}`;
    super(
      `dataDir ${dataDir} is in use by ${who} (lock file ${lockPath}). Stop that process or give this node another ` +
        `dataDir. If you are sure nothing uses it, delete ${lockPath}.`,
      { path: lockPath },
    );
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

/**
 * A write failed because the disk is full (ENOSPC) or the quota is used up (EDQUOT), and the storage removed every
 * byte the write had left: the files are exactly as before the call and the storage stays usable. Nothing of the
 * batch may be acknowledged; the same call can be retried once space is freed.
 */
export class DiskFullError extends StorageError {
  constructor(cause: StorageError) {
    super(`${cause.message} (nothing of this write was kept; it can be retried once there is space)`, {
      path: cause.path,
      code: cause.code,
      cause,
    });
  }
}

/** A WAL segment is damaged somewhere other than its torn last record. Nothing is guessed: the node stops. */
export class CorruptLogError extends StorageError {
  readonly file: string;
  /** Byte offset of the first bad record within `file`. */
  readonly offset: number;

  constructor(file: string, offset: number, reason: string) {
    super(
      `corrupt WAL: ${file} at byte ${offset}: ${reason}. The node cannot start from this log; restore the dataDir ` +
        `from a backup or remove it so the node catches up from the leader.`,
      { path: file },
    );
    this.file = file;
    this.offset = offset;
  }
}

/** A snapshot file is damaged and cannot be skipped safely. */
export class CorruptSnapshotError extends StorageError {
  readonly file: string;

  constructor(file: string, reason: string) {
    super(`corrupt snapshot: ${file}: ${reason}`, { path: file });
    this.file = file;
  }
}

/** A file in wal/ or snap/ is not in a format (or version) this build can read. */
export class UnsupportedFormatError extends StorageError {
  readonly file: string;

  constructor(file: string, reason: string) {
    super(`${file} is not a file this version of catga-cluster can read: ${reason}`, { path: file });
    this.file = file;
  }
}

const HINTS: Readonly<Record<string, string>> = {
  ENOSPC: 'the disk is full; free space (a running node waits and retries the write)',
  EDQUOT: 'the disk quota is exhausted; raise it or free space (a running node waits and retries the write)',
  EACCES: 'permission denied; the process user needs read and write access to the dataDir',
  EPERM: 'operation not permitted; check the ownership and permissions of the dataDir',
  EROFS: 'the file system is mounted read-only; the dataDir must be writable',
  EIO: 'the device reported an I/O error; check the disk, then restart the node',
};

/**
 * Wraps a file-system error whose cause an operator must fix (full disk, permissions, read-only mount) in a
 * StorageError with the path and a hint. Other errors are returned unchanged; nothing is swallowed.
 */
export function toStorageError(err: unknown, op: string, path: string): unknown {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err);
  const hint = code === undefined ? undefined : HINTS[code];
  if (code === undefined || hint === undefined) return err;
  return new StorageError(`${op} ${path} failed with ${code}: ${hint}`, { path, code, cause: err });
}

/** The `code` of a Node system error, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A write the storage refuses because it would break the log's invariants (a gap, a snapshot older than the stored
 * one, a call before open). Raised before anything is written, so the storage stays usable; it means a caller bug.
 */
export class InvalidWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidWriteError';
  }
}
