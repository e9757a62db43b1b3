import * as net from 'node:net';
import { FrameReader } from '../../lib/transport/frame.js';
import { DialerHandshake } from '../../lib/transport/handshake.js';
import type { FuzzCase } from './fuzz-case.js';

export interface CaseOutcome {
  /** Our local port: the node's log names the connection by it. */
  readonly localPort: number;
  /** The node closed (or reset) the connection; false when we gave up waiting and reset it ourselves. */
  readonly closedByNode: boolean;
  /** For 'auth' cases: the genuine handshake did not complete (it always should). */
  readonly handshakeFailed: string | null;
  readonly bytesSent: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs one case against the node on `port`: connects, for 'auth' does the real handshake as `claimed` with the
 * secret, sends the case's bytes as its delivery says, then waits up to `waitMs` for the node to close. Never throws:
 * every way a connection can end is an outcome. `onConnected` gets the local port as soon as it is known, so log
 * lines naming it can be matched while the case still runs.
 */
export function runCase(c: FuzzCase, port: number, secret: string, waitMs: number, onConnected: (localPort: number) => void): Promise<CaseOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let closed = false;
    let settled = false;
    let localPort = 0;
    let bytesSent = 0;
    let handshakeFailed: string | null = null;
    /** Authenticated ('auth' cases). */
    let open = false;
    let onClose: (() => void) | null = null;
    const finish = (closedByNode: boolean): void => {
      if (settled) return;
      settled = true;
      if (!closed) socket.resetAndDestroy(); // RST: no TIME_WAIT left on our side for 100k+ connections
      resolve({ localPort, closedByNode, handshakeFailed, bytesSent });
    };
    socket.on('error', () => undefined); // resets by the node end in 'close'
    socket.on('close', () => {
      closed = true;
      if (c.mode === 'auth' && !open) handshakeFailed ??= 'closed during the handshake';
      onClose?.();
      finish(true);
    });
    const send = (b: Buffer): void => {
      if (closed) return;
      bytesSent += b.length;
      socket.write(b);
    };
    const waitClose = (ms: number): Promise<void> =>
      new Promise((r) => {
        if (closed) return r();
        const t = setTimeout(r, ms);
        onClose = () => {
          clearTimeout(t);
          r();
        };
      });

    const deliver = async (): Promise<void> => {
      const bytes = c.bytes;
      if (c.delivery === 'whole') send(bytes);
      else {
        let at = 0;
        while (at < bytes.length && !closed) {
          const n = c.delivery === 'dribble' ? 1 + ((at * 7 + c.seq) % 5) : Math.max(1, Math.ceil(bytes.length / (2 + (c.seq % 5))));
          send(bytes.subarray(at, at + n));
          at += n;
          await sleep(c.delivery === 'dribble' ? 2 : 0);
        }
      }
      await waitClose(waitMs);
      finish(closed);
    };

    socket.once('connect', () => {
      localPort = socket.localPort ?? 0;
      onConnected(localPort);
      socket.setNoDelay(true);
      if (c.mode === 'preauth') {
        socket.resume(); // read (and drop) what the node sends, or its closing FIN would wait behind the unread data
        void deliver();
        return;
      }
      // A genuine handshake as `claimed`, with the secret; frames the node sends afterwards (its own Raft traffic
      // to the member we pose as, replies to our calls) are read and dropped.
      const hs = new DialerHandshake({ nodeId: c.claimed!, secret, clusterName: '', maxFrameBytes: 1 << 20 }, c.target);
      const reader = new FrameReader(64 * 1024 * 1024);
      socket.on('data', (chunk: Buffer) => {
        if (open || settled) return;
        try {
          reader.push(chunk);
          for (let f = reader.next(); f !== null && !open; f = reader.next()) {
            const step = hs.receive(f.kind, f.payload);
            if (step.send) send(step.send);
            if (step.peer !== null) {
              open = true;
              void deliver();
            }
          }
        } catch (e) {
          handshakeFailed = (e as Error).message;
          finish(false);
        }
      });
      const timer = setTimeout(() => {
        if (open) return;
        handshakeFailed ??= 'no READY within 5 s';
        finish(false);
      }, 5000);
      socket.once('close', () => clearTimeout(timer));
      send(hs.hello());
    });
  });
}
