import { DiskFullError, StorageError, errnoCode } from './errors.js';

/** True for the errors of a full disk or an exhausted quota, raw or wrapped in a StorageError. */
export function isDiskFull(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * What to throw after a write failed. A full disk is a state the operator can fix while the node runs, so when
 * `undo` removes every byte the failed write left, the result is a DiskFullError: the files are as before and the
 * write may be retried. Any other error — or a full disk whose leftovers cannot be removed — is returned unchanged,
 * and the caller must treat what is on disk as unknown.
 */
export async function settleFailedWrite(err: unknown, undo: () => Promise<void>): Promise<unknown> {
  if (!isDiskFull(err) || !(err instanceof StorageError)) return err;
  try {
    await undo();
  } catch {
    return err; // the leftovers stay: retrying on top of them could acknowledge a damaged log
  }
  return new DiskFullError(err);
}
