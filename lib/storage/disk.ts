/**
 * The file system as storage sees it. Production passes `NodeDisk` (node:fs); the simulator passes `SimDisk`,
 * which loses unsynced writes on a crash. Every path is relative to the disk's root (the node's dataDir).
 */
export interface Disk {
  /** Creates the directory and its parents, durably (each parent that gained an entry is synced); no error when it exists. */
  mkdir(dir: string): Promise<void>;
  /** Names (not paths) of the entries in `dir`, sorted; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** The whole file, or null when it does not exist. */
  readFile(path: string): Promise<Uint8Array | null>;
  /** Opens for appending, creating it when missing. */
  openAppend(path: string): Promise<AppendFile>;
  /** Atomically replaces `to` with `from` (rename(2)); durable only after `syncDir`. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes creations, renames and unlinks in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
  /** Takes an exclusive lock on `path` for this process; throws DataDirLockedError when another holds it. */
  lock(path: string): Promise<DiskLock>;
}

export interface AppendFile {
  readonly path: string;
  /** Current length in bytes, including unsynced appends. */
  readonly size: number;
  append(data: Uint8Array): Promise<void>;
  /** fdatasync: everything appended so far survives a crash once this resolves. */
  sync(): Promise<void>;
  /** Cuts the file to `length` bytes (used to drop a torn tail or a conflicting suffix). */
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface DiskLock {
  release(): Promise<void>;
}

/**
 * Writes `bytes` as the whole content of `path` and syncs it: the first half of a durable replace (rename it into
 * place next). A file left by a write that a crash interrupted is emptied first.
 */
export async function writeWholeFile(disk: Disk, path: string, bytes: Uint8Array): Promise<void> {
  const file = await disk.openAppend(path);
  try {
    if (file.size > 0) await file.truncate(0);
    await file.append(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
}
