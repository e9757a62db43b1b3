import type { Type } from '@nestjs/common';
import type { ClusterOptions } from '../../cluster/options.js';

/** `CatgaClusterModule.forRoot()` options: the cluster's own, plus how the module behaves inside Nest. */
export interface ClusterModuleOptions extends ClusterOptions {
  /** ms to wait for a leader during bootstrap before the app reports ready; 0 = do not wait. Default 10000. */
  readonly startupTimeout?: number;
  /**
   * Error classes that forwarded commands may throw, so a follower rethrows the same class. JS built-ins, Nest's
   * HTTP exceptions and this library's exceptions are known already.
   */
  readonly errorTypes?: readonly Type<Error>[];
}

export interface ForwardToLeaderOptions {
  /** Stable name the message travels under (default: the message class's name); unique across the app. */
  readonly name?: string;
  /** ms before a forwarded call fails (default: the module's requestTimeout, 5000). */
  readonly timeout?: number;
}

export interface LeaderOnlyOptions {
  /** Confirm leadership with a quorum (a ReadIndex round) before running, instead of trusting the lease alone. */
  readonly linearizable?: boolean;
}

export interface ClusterEventOptions {
  /** Stable name the event travels under (default: the class name); unique across the app. */
  readonly name?: string;
}
