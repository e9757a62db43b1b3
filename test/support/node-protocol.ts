/** IPC between a test (or benchmark) and a node process running test/e2e/node-main. */
export type NodeRequest = { readonly id: number } & (
  | { readonly op: 'status' }
  | { readonly op: 'put'; readonly key: string; readonly value: unknown }
  | { readonly op: 'get'; readonly key: string; readonly consistency?: 'local' | 'linearizable' }
  | { readonly op: 'cas'; readonly key: string; readonly expectedVersion: number; readonly value: unknown }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'waitForLeader'; readonly timeout?: number }
  | { readonly op: 'transfer'; readonly to?: string }
  | { readonly op: 'writeLoad'; readonly writers: number; readonly durationMs: number; readonly keyPrefix: string }
  | { readonly op: 'stop' }
);

export type NodeReply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: { readonly name: string; readonly message: string } };

export type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
