import type { Message } from '../raft/index.js';
import { NotSentError, type InboundHandler, type Network } from '../io/network.js';

/** The network of a single-member cluster: there is nobody to talk to, so no port is opened. */
export class SoloNetwork implements Network {
  async listen(_handler: InboundHandler): Promise<void> {}

  sendRaft(m: Message): void {
    throw new Error(`a single-member cluster has no peer ${m.to}`);
  }

  call(to: string): Promise<Uint8Array> {
    return Promise.reject(new NotSentError(`a single-member cluster has no peer ${to}`));
  }

  async close(): Promise<void> {}
}
