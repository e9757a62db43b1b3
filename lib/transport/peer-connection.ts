import type { Socket } from 'node:net';
import { CallTimeoutError, ConnectionLostError, NotSentError, RemoteCallError } from '../io/network.js';
import type { Message, NodeId } from '../raft/index.js';
import { callFrame, decodeCall, decodeReply } from './call-frames.js';
import { FrameError, HandshakeError } from './errors.js';
import { FrameKind, FrameReader, PRE_AUTH_MAX_FRAME_BYTES, frame, kindName, type Frame } from './frame.js';
import { rejectFrame, type DialerHandshake, type ListenerHandshake, type PeerIdentity } from './handshake.js';
import { printable } from './printable.js';
import { decodeMessage } from './raft-codec.js';
import type { Counters } from './stats.js';
import { WriteBatch } from './write-batch.js';

/** What a connection reports to the network that owns it. */
export interface ConnectionHost {
  readonly nodeId: NodeId;
  readonly maxFrameBytes: number;
  readonly sendQueueBytes: number;
  /** Called once authenticated; returns the counters to use from now on (the peer's). */
  onOpen(conn: PeerConnection): Counters;
  onClose(conn: PeerConnection, reason: string): void;
  onRaft(conn: PeerConnection, m: Message): void;
  onCall(conn: PeerConnection, id: number, payload: Uint8Array): void;
  /** A refusal or protocol violation: logged as a warning with the remote address. */
  warn(message: string): void;
}

interface PendingCall {
  readonly resolve: (bytes: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** How long an orderly close waits for buffered frames to flush before destroying the socket. */
export const CLOSE_GRACE_MS = 250;
const PING = frame(FrameKind.ping);

/**
 * One socket to one peer: runs the handshake, then carries Raft, CALL and REPLY frames. Anything malformed, oversized
 * or out of place closes this connection with a logged reason; nothing a peer sends can throw past it.
 */
export class PeerConnection {
  state: 'handshake' | 'open' | 'closed' = 'handshake';
  /** Set once authenticated. */
  peer: PeerIdentity | null = null;
  lastReceived = performance.now();
  lastSent = performance.now();
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  private readonly reader = new FrameReader(PRE_AUTH_MAX_FRAME_BYTES);
  private readonly calls = new Map<number, PendingCall>();
  private nextCallId = 0;
  private readonly out = new WriteBatch((chunk) => {
    this.lastSent = performance.now();
    this.socket.write(chunk);
  });
  private handshakeTimer: NodeJS.Timeout | null;
  private socketError: Error | null = null;

  constructor(
    readonly socket: Socket,
    /** host:port of the other end, for logs. */
    readonly remote: string,
    readonly role: 'dialer' | 'listener',
    private readonly handshake: DialerHandshake | ListenerHandshake,
    private readonly host: ConnectionHost,
    private counters: Counters,
    handshakeTimeoutMs: number,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError = err;
    });
    socket.on('close', () => this.cleanup(this.socketError === null ? 'closed by the peer' : this.socketError.message));
    this.handshakeTimer = setTimeout(
      () => this.fail(`handshake not finished within ${handshakeTimeoutMs} ms`, null),
      handshakeTimeoutMs,
    );
    if (role === 'dialer') this.write((handshake as DialerHandshake).hello());
  }

  /** The authenticated peer's id; only valid once open. */
  get peerId(): NodeId {
    if (this.peer === null) throw new Error('PeerConnection.peerId before authentication');
    return this.peer.id;
  }

  /** Who this is for logs: the address, and the id once authenticated (or as claimed, quoted, before). */
  get name(): string {
    if (this.peer !== null) return `${this.peer.id} (${this.remote})`;
    const claimed = this.role === 'listener' ? (this.handshake as ListenerHandshake).claimedId : null;
    return claimed === null ? this.remote : `${this.remote} claiming to be ${JSON.stringify(claimed)}`;
  }

  /** Bytes accepted for sending and not yet handed to the kernel. */
  get queuedBytes(): number {
    return this.socket.writableLength + this.out.pendingBytes;
  }

  /** Room in the send queue for `bytes` more; a single frame always fits an empty queue. */
  hasRoom(bytes: number): boolean {
    const queued = this.queuedBytes;
    return queued === 0 || queued + bytes <= this.host.sendQueueBytes;
  }

  /** Queues one whole frame; the frames of one tick go to the socket together. */
  write(buf: Buffer): void {
    this.out.write(buf);
    this.counters.framesOut++;
    this.counters.bytesOut += buf.length;
  }

  /**
   * Reserves one frame of `bytes` in the outgoing batch and returns its offset in `outBuffer`, where the caller must
   * write the whole frame at once. Saves a buffer and a copy per frame on the Raft hot path.
   */
  reserveFrame(bytes: number): number {
    this.counters.framesOut++;
    this.counters.bytesOut += bytes;
    return this.out.reserve(bytes);
  }

  get outBuffer(): Buffer {
    return this.out.buffer;
  }

  /** Writes a frame if open and the queue has room; false means dropped (and counted). */
  trySend(buf: Buffer): boolean {
    if (this.state !== 'open' || !this.hasRoom(buf.length)) {
      this.counters.dropped++;
      return false;
    }
    this.write(buf);
    return true;
  }

  call(to: NodeId, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    let id = (this.nextCallId + 1) >>> 0;
    while (this.calls.has(id)) id = (id + 1) >>> 0;
    this.nextCallId = id;
    const buf = callFrame(id, payload);
    if (!this.hasRoom(buf.length)) {
      return Promise.reject(new NotSentError(`send queue to ${to} is full (${this.queuedBytes} bytes buffered)`));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new CallTimeoutError(`call to ${to} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.calls.set(id, { resolve, reject, timer });
      this.write(buf);
    });
  }

  /** Keepalive: ping when idle, drop when the peer has been silent too long. */
  tick(now: number, pingIntervalMs: number, idleTimeoutMs: number): void {
    if (this.state !== 'open') return;
    if (now - this.lastReceived >= idleTimeoutMs) {
      this.fail(`nothing received for ${Math.round(now - this.lastReceived)} ms`, null, 'log');
      return;
    }
    if (now - this.lastSent >= pingIntervalMs && this.queuedBytes === 0) this.write(PING);
  }

  /** Orderly close: flush what is queued, then end; destroyed if the peer does not take it within a short grace. */
  shutdown(reason: string): void {
    if (this.state === 'closed') return;
    this.out.flush();
    this.cleanup(reason);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /**
   * Closes because of a problem. `tellPeer` (handshake only) is sent in a REJECT frame first; `level` 'warn' is for
   * refusals and protocol violations, 'log' for ordinary losses.
   */
  fail(why: string, tellPeer: string | null, level: 'warn' | 'log' = 'warn'): void {
    if (this.state === 'closed') return;
    const reason = printable(why); // may quote the peer's own words (a REJECT reason, a claimed id)
    if (level === 'warn') {
      this.counters.rejects++;
      this.host.warn(`dropping connection ${this.role === 'dialer' ? 'to' : 'from'} ${this.name}: ${reason}`);
    }
    const wasHandshake = this.state === 'handshake';
    this.cleanup(reason);
    if (wasHandshake && tellPeer !== null) {
      this.socket.end(rejectFrame(tellPeer));
      setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      this.socket.destroy();
    }
  }

  private cleanup(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.out.close();
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    const peer = this.peer?.id ?? 'the peer';
    for (const c of this.calls.values()) {
      clearTimeout(c.timer);
      c.reject(new ConnectionLostError(`connection to ${peer} lost with the call in flight: ${reason}`));
    }
    this.calls.clear();
    this.host.onClose(this, reason);
  }

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastReceived = performance.now();
    this.counters.bytesIn += chunk.length;
    try {
      this.reader.push(chunk);
      // A frame may close the connection (a violation, a refused handshake): stop reading the chunk then.
      for (let f = this.reader.next(); f !== null; f = this.isClosed() ? null : this.reader.next()) {
        this.counters.framesIn++;
        if (this.state === 'handshake') this.onHandshakeFrame(f);
        else this.onFrame(f);
      }
    } catch (err) {
      if (err instanceof FrameError || err instanceof HandshakeError) {
        this.fail(err.message, err instanceof HandshakeError ? err.tellPeer : null);
      } else {
        this.fail(`internal error while reading: ${String(err)}`, null);
      }
    }
  }

  private onHandshakeFrame(f: Frame): void {
    const step = this.handshake.receive(f.kind, f.payload);
    if (step.send !== null) this.write(step.send);
    if (step.peer === null) return;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.peer = step.peer;
    this.state = 'open';
    this.reader.maxFrameBytes = this.host.maxFrameBytes;
    this.counters = this.host.onOpen(this);
  }

  private onFrame(f: Frame): void {
    switch (f.kind) {
      case FrameKind.raft: {
        const m = decodeMessage(f.payload);
        if (m.from !== this.peerId || m.to !== this.host.nodeId) {
          throw new FrameError(`raft message from ${JSON.stringify(m.from)} to ${JSON.stringify(m.to)} on the connection of ${this.peerId}`);
        }
        this.host.onRaft(this, m);
        return;
      }
      case FrameKind.call: {
        const c = decodeCall(f.payload);
        this.host.onCall(this, c.id, c.payload);
        return;
      }
      case FrameKind.reply: {
        const r = decodeReply(f.payload);
        const pending = this.calls.get(r.id);
        if (pending === undefined) return; // answered after its timeout
        this.calls.delete(r.id);
        clearTimeout(pending.timer);
        if (r.ok) pending.resolve(r.payload);
        else pending.reject(new RemoteCallError(r.message, r.payload));
        return;
      }
      case FrameKind.ping:
        return;
      default:
        throw new FrameError(`unexpected ${kindName(f.kind)} frame after authentication`);
    }
  }
}
