/**
 * The result of a command that failed identically on every node (unknown module, a malformed command, a retry past
 * its session window). A result, not an exception: an exception would stop every node at the same entry.
 */
export class ApplyError {
  constructor(readonly message: string) {}
}
