/** The lock was not acquired within the `wait` the caller gave. */
export class LockTimeoutException extends Error {
  override name = 'LockTimeoutException';
  constructor(
    readonly lockName: string,
    message = `lock "${lockName}" was not acquired in time`,
  ) {
    super(message);
  }
}

/** The lock is no longer ours: a renewal found another holder, or the lease ran out before it could be renewed. */
export class LockLostException extends Error {
  override name = 'LockLostException';
  constructor(
    readonly lockName: string,
    message = `lock "${lockName}" was lost`,
  ) {
    super(message);
  }
}
