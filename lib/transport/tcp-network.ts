import * as net from 'node:net';
import * as tls from 'node:tls';
import { NotSentError, type InboundHandler, type Network } from '../io/network.js';
import type { Message, NodeId } from '../raft/index.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { errorReplyFrame, okReplyFrame } from './call-frames.js';
import { ListenError } from './errors.js';
import { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameKind, PRE_AUTH_MAX_FRAME_BYTES } from './frame.js';
import { DialerHandshake, ListenerHandshake, secretsOf, type HandshakeConfig } from './handshake.js';
import { consoleLogger, type TransportLogger } from './logger.js';
import { parseMember, parseMembers, type MemberAddress, type MemberInput } from './member-address.js';
import { CLOSE_GRACE_MS, PeerConnection, type ConnectionHost } from './peer-connection.js';
import { messageSize, writeMessage } from './raft-codec.js';
import { addCounters, newCounters, type Counters, type PeerStats, type TransportStats } from './stats.js';

/** node:tls material for mutual TLS; the server always requests and verifies client certificates. */
export type TcpNetworkTlsOptions = tls.SecureContextOptions & {
  /** Overrides the server-name check of a peer's certificate (default: the member's host must match it). */
  readonly checkServerIdentity?: (hostname: string, cert: tls.PeerCertificate) => Error | undefined;
};

export interface TcpNetworkOptions {
  readonly nodeId: NodeId;
  /** Every member, this node included: its own entry says where to listen. */
  readonly members: readonly MemberInput[];
  /**
   * Shared secret for the HMAC handshake; undefined = ids exchanged but not authenticated (development). A list rotates
   * secrets: the first is proved and required when accepting, any is accepted when dialing (see secretsOf).
   */
  readonly secret?: string | readonly string[];
  readonly tls?: TcpNetworkTlsOptions;
  /** Largest frame accepted once authenticated (default 16 MiB); peers are told and never send more. */
  readonly maxFrameBytes?: number;
  /** Per dial attempt (default 1000). */
  readonly connectTimeoutMs?: number;
  /** From accept or connect until authenticated (default 5000). */
  readonly handshakeTimeoutMs?: number;
  /** A ping is sent after this long without sending anything (default 1000). */
  readonly pingIntervalMs?: number;
  /** A connection with nothing received for this long is dropped (default 5000). */
  readonly idleTimeoutMs?: number;
  /** Per-peer cap on bytes buffered for sending; beyond it Raft messages are dropped (default 64 MiB). */
  readonly sendQueueBytes?: number;
  /** Connections still in the handshake at once; more are closed on accept (default 64). */
  readonly maxPendingHandshakes?: number;
  /** Address to bind (default: this member's host). '0.0.0.0' or '::' in containers whose name resolves elsewhere. */
  readonly listenHost?: string;
  /** When both sides set one, they must match: catches a node pointed at another cluster. */
  readonly clusterName?: string;
  /** The static member list this node started from, canonical; '' when it joins by seed (see HandshakeConfig). */
  readonly bootstrap?: string;
  /** Reconnect delays (default 50 ms doubling to 250 ms, ±20%). */
  readonly backoff?: BackoffOptions;
  readonly logger?: TransportLogger;
}

/**
 * One other node: its address, the current authenticated connection, and the dialing state when we dial it. A node
 * that is not (or not yet, as far as this one knows) a member has no address: it authenticated with the secret and
 * dialed us (joining, or a leader reaching a learner that has not learned the configuration yet). Its connection
 * carries Raft and calls like any other and is forgotten when it closes, unless the node became a member meanwhile.
 */
interface Peer {
  member: MemberAddress | null;
  /** The smaller id dials; the larger accepts. */
  weDial: boolean;
  conn: PeerConnection | null;
  /** A dial in progress: the raw socket before it connects, then the connection in its handshake. */
  dialing: net.Socket | PeerConnection | null;
  retryTimer: NodeJS.Timeout | null;
  lastDialError: string;
  readonly backoff: Backoff;
  readonly counters: Counters;
}

/**
 * Network over TCP (optionally mutual TLS): its own listener, one authenticated connection per peer pair, Raft and
 * calls multiplexed on it. Connection rule: the member with the smaller id (JavaScript string order) dials, the other
 * accepts and refuses HELLOs from larger ids — so there is never a duplicate to arbitrate. A newer authenticated
 * connection from the same peer replaces the older one (the peer restarted).
 */
export class TcpNetwork implements Network {
  readonly nodeId: NodeId;
  private readonly self: MemberAddress;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly handshakeConfig: HandshakeConfig;
  private readonly maxFrameBytes: number;
  private readonly sendQueueBytes: number;
  private readonly connectTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxPendingHandshakes: number;
  private readonly listenHost: string;
  private readonly tls: TcpNetworkTlsOptions | undefined;
  private readonly backoffOptions: BackoffOptions | undefined;
  private readonly logger: TransportLogger;
  private readonly server: net.Server;
  /** Accepted connections still in their handshake. */
  private readonly pending = new Set<PeerConnection>();
  /** Every connection ever made that may still have an open socket, for close(). */
  private readonly sockets = new Set<PeerConnection>();
  /** Every accepted socket (for TLS, also those still in the TLS handshake), destroyed if close() outlasts its grace. */
  private readonly rawSockets = new Set<net.Socket>();
  /** Counters of connections that never identified themselves. */
  private readonly anonymous = newCounters();
  private handler: InboundHandler | null = null;
  private listening = false;
  private closing: Promise<void> | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private lastTick = 0;
  private readonly host: ConnectionHost;
  /** Connections dialed by address (to a seed whose id is unknown), waiting to learn whom they reached. */
  private readonly seedDials = new Map<PeerConnection, (id: NodeId | Error) => void>();

  constructor(options: TcpNetworkOptions) {
    this.nodeId = options.nodeId;
    const members = parseMembers(options.members);
    const self = members.find((m) => m.id === options.nodeId);
    if (self === undefined) {
      throw new Error(`nodeId ${JSON.stringify(options.nodeId)} is not in members (${members.map((m) => m.id).join(', ')})`);
    }
    this.self = self;
    this.maxFrameBytes = positive(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, 'maxFrameBytes');
    if (this.maxFrameBytes < PRE_AUTH_MAX_FRAME_BYTES || this.maxFrameBytes > 0xffff_ffff) {
      throw new RangeError(`maxFrameBytes must be between ${PRE_AUTH_MAX_FRAME_BYTES} and 4 GiB - 1, got ${this.maxFrameBytes}`);
    }
    this.sendQueueBytes = positive(options.sendQueueBytes ?? 64 * 1024 * 1024, 'sendQueueBytes');
    this.connectTimeoutMs = positive(options.connectTimeoutMs ?? 1000, 'connectTimeoutMs');
    this.handshakeTimeoutMs = positive(options.handshakeTimeoutMs ?? 5000, 'handshakeTimeoutMs');
    this.pingIntervalMs = positive(options.pingIntervalMs ?? 1000, 'pingIntervalMs');
    this.idleTimeoutMs = positive(options.idleTimeoutMs ?? 5000, 'idleTimeoutMs');
    if (this.idleTimeoutMs <= this.pingIntervalMs) {
      throw new RangeError(`idleTimeoutMs (${this.idleTimeoutMs}) must exceed pingIntervalMs (${this.pingIntervalMs})`);
    }
    this.maxPendingHandshakes = positive(options.maxPendingHandshakes ?? 64, 'maxPendingHandshakes');
    this.listenHost = options.listenHost ?? self.host;
    this.tls = options.tls;
    this.logger = options.logger ?? consoleLogger(options.nodeId);
    this.handshakeConfig = {
      nodeId: options.nodeId,
      secret: secretsOf(options.secret), // an empty list fails here rather than at the first connection
      clusterName: options.clusterName ?? '',
      maxFrameBytes: this.maxFrameBytes,
      bootstrap: options.bootstrap ?? '',
    };
    this.backoffOptions = options.backoff;
    for (const member of members) if (member.id !== this.nodeId) this.peers.set(member.id, this.newPeer(member.id, member));
    this.host = this.connectionHost();
    this.server = this.createServer();
  }

  async listen(handler: InboundHandler): Promise<void> {
    if (this.closing !== null) throw new Error('TcpNetwork.listen() after close()');
    if (this.handler !== null) throw new Error('TcpNetwork.listen() called twice');
    this.handler = handler;
    const where = `${this.listenHost}:${this.self.port}`;
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen({ host: this.listenHost, port: this.self.port }, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.handler = null;
      throw listenError(this.nodeId, where, err);
    }
    this.listening = true;
    this.server.on('error', (err) => this.logger.warn(`listener ${where}: ${err.message}`));
    if (this.handshakeConfig.secret === undefined) {
      this.logger.warn('no secret configured: peers are identified but not authenticated (development only)');
    }
    this.lastTick = performance.now();
    const every = Math.max(10, Math.min(this.pingIntervalMs, this.idleTimeoutMs / 2) / 2);
    this.tickTimer = setInterval(() => this.tick(every), every);
    this.tickTimer.unref();
    for (const peer of this.peers.values()) if (peer.weDial) this.dial(peer);
  }

  /**
   * The members as the configuration now says (this node's own entry is ignored): new ones are dialed, changed
   * addresses are used from the next dial, and connections to nodes no longer listed are closed.
   */
  setMembers(members: readonly MemberInput[]): void {
    if (this.closing !== null) return;
    const next = new Map(parseMembers(members).filter((m) => m.id !== this.nodeId).map((m) => [m.id, m]));
    for (const [id, peer] of this.peers) {
      if (next.has(id) || peer.member === null) continue;
      // Not dialed again; a live connection stays (as to any non-member) so that calls in flight, such as the removed
      // node's own request to be removed, get their answers. It is forgotten when it closes.
      peer.member = null;
      peer.weDial = false;
      this.stopDialing(peer);
      if (peer.dialing !== null && !(peer.dialing instanceof net.Socket)) peer.dialing.fail('no longer a member', null, 'log');
      peer.dialing = null;
      if (peer.conn === null) this.peers.delete(id);
      this.logger.log(`${id} is no longer a member`);
    }
    for (const [id, member] of next) {
      const peer = this.peers.get(id);
      if (peer === undefined) {
        const fresh = this.newPeer(id, member);
        this.peers.set(id, fresh);
        if (this.listening && fresh.weDial) this.dial(fresh);
        continue;
      }
      peer.member = member;
      peer.weDial = this.nodeId < id;
      if (this.listening && peer.weDial && peer.conn === null) this.dial(peer);
    }
  }

  /**
   * Calls whoever listens at `address` (a seed of a cluster this node joins, whose id it does not know yet). Rejects
   * with NotSentError when no authenticated connection could be made there.
   */
  async callAddress(address: string, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closing !== null) throw new NotSentError('the network is closed');
    const { host, port } = parseMember({ id: 'seed', address }, 'join');
    const socket = this.tls === undefined ? net.connect({ host, port }) : tls.connect({ ...this.tls, host, port });
    const id = await new Promise<NodeId>((resolve, reject) => {
      const timer = setTimeout(() => socket.destroy(new Error(`no authenticated connection within ${timeoutMs} ms`)), timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        reject(new NotSentError(`cannot reach ${address}: ${e.message}`));
      };
      socket.once('error', fail);
      socket.once(this.tls === undefined ? 'connect' : 'secureConnect', () => {
        socket.off('error', fail);
        const conn = new PeerConnection(socket, address, 'dialer', new DialerHandshake(this.handshakeConfig, ''), this.host, this.anonymous, this.handshakeTimeoutMs);
        this.sockets.add(conn);
        this.seedDials.set(conn, (r) => {
          clearTimeout(timer);
          if (r instanceof Error) fail(r);
          else resolve(r);
        });
      });
    });
    return this.call(id, payload, timeoutMs);
  }

  /** The bound address once listening (the real port when the member's port is 0). */
  address(): { host: string; port: number } | null {
    const a = this.server.address();
    return a === null || typeof a === 'string' ? null : { host: a.address, port: a.port };
  }

  sendRaft(m: Message): void {
    const peer = this.peers.get(m.to);
    if (peer === undefined) {
      this.anonymous.dropped++;
      this.logger.debug?.(`dropping raft message to unknown member ${JSON.stringify(m.to)}`);
      return;
    }
    const conn = peer.conn;
    if (conn === null) {
      peer.counters.dropped++;
      return;
    }
    if (m.from !== this.nodeId) {
      // The peer would drop the whole connection for it.
      peer.counters.dropped++;
      this.logger.warn(`dropping raft message with from=${JSON.stringify(m.from)}: this node is ${this.nodeId}`);
      return;
    }
    let size: number;
    try {
      size = messageSize(m); // also validates every field, so the write below cannot fail half-way
    } catch (err) {
      peer.counters.dropped++;
      this.logger.warn(`dropping raft message to ${m.to}: cannot encode it: ${String(err)}`);
      return;
    }
    const limit = conn.peer?.maxFrameBytes ?? 0;
    if (size + 1 > limit) {
      peer.counters.dropped++;
      this.logger.warn(
        `dropping raft message to ${m.to} of ${size} bytes: over the peer's frame limit of ${limit} ` +
          '(lower the batch or snapshot chunk size, or raise maxFrameBytes on every member)',
      );
      return;
    }
    if (!conn.hasRoom(size + FRAME_HEADER_BYTES)) {
      peer.counters.dropped++;
      return;
    }
    const at = conn.reserveFrame(size + FRAME_HEADER_BYTES);
    const buf = conn.outBuffer;
    buf.writeUInt32LE(size + 1, at);
    buf[at + 4] = FrameKind.raft;
    writeMessage(buf, at + FRAME_HEADER_BYTES, m);
  }

  call(to: NodeId, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.closing !== null) return Promise.reject(new NotSentError('the network is closed'));
    const peer = this.peers.get(to);
    if (peer === undefined) return Promise.reject(new NotSentError(`${JSON.stringify(to)} is not a member and has no connection here`));
    const conn = peer.conn;
    if (conn === null || conn.state !== 'open') return Promise.reject(new NotSentError(`no connection to ${to}`));
    const limit = conn.peer?.maxFrameBytes ?? 0;
    if (payload.byteLength + 5 > limit) {
      return Promise.reject(new RangeError(`call payload of ${payload.byteLength} bytes is over ${to}'s frame limit of ${limit}`));
    }
    return conn.call(to, payload, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.closing === null) this.closing = this.shutdown();
    return this.closing;
  }

  stats(): TransportStats {
    const total = newCounters();
    addCounters(total, this.anonymous);
    const peers: [NodeId, PeerStats][] = [];
    for (const [id, p] of this.peers) {
      addCounters(total, p.counters);
      peers.push([id, { ...p.counters, connected: p.conn !== null, queuedBytes: p.conn === null ? 0 : p.conn.queuedBytes }]);
    }
    // fromEntries defines own properties, so even an id like "__proto__" is a plain key.
    return { total, peers: Object.fromEntries(peers) };
  }

  private async shutdown(): Promise<void> {
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    for (const peer of this.peers.values()) this.stopDialing(peer);
    const closes: Promise<void>[] = [];
    for (const conn of this.sockets) {
      closes.push(conn.closed);
      if (conn.state === 'open') conn.shutdown('this node is shutting down');
      else conn.fail('this node is shutting down', null, 'log');
    }
    if (this.listening) closes.push(new Promise<void>((resolve) => this.server.close(() => resolve())));
    const straggle = setTimeout(() => {
      for (const s of this.rawSockets) s.destroy();
    }, CLOSE_GRACE_MS);
    await Promise.all(closes);
    clearTimeout(straggle);
  }

  private createServer(): net.Server {
    const server = this.tls === undefined ? net.createServer((s) => this.onSocket(s)) : this.createTlsServer();
    server.on('connection', (raw: net.Socket) => {
      this.rawSockets.add(raw);
      raw.once('close', () => this.rawSockets.delete(raw));
      // Errors before the TLS layer takes over (resets during its handshake) must not be unhandled.
      raw.on('error', () => undefined);
    });
    return server;
  }

  private onSocket(socket: net.Socket): void {
    try {
      this.accept(socket);
    } catch (err) {
      this.logger.warn(`accepting a connection failed: ${String(err)}`);
      socket.destroy();
    }
  }

  private createTlsServer(): tls.Server {
    // Client certificates are required and checked in onTlsSocket rather than by rejectUnauthorized, so that a refusal
    // is logged with the peer's address and the verification error instead of an anonymous "socket hang up".
    const server = tls.createServer(
      { ...this.tls, requestCert: true, rejectUnauthorized: false, handshakeTimeout: this.handshakeTimeoutMs },
      (socket) => this.onTlsSocket(socket),
    );
    server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
      this.anonymous.rejects++;
      const remote = remoteOf(socket);
      if (err.code === 'ECONNRESET' || remote === 'unknown address') {
        this.logger.debug?.(`TLS connection from ${remote} ended in the TLS handshake: ${err.message}`);
      } else {
        this.logger.warn(`TLS handshake from ${remote} failed: ${err.message.trim()}`);
      }
    });
    return server;
  }

  private onTlsSocket(socket: tls.TLSSocket): void {
    if (!socket.authorized) {
      this.anonymous.rejects++;
      const cert = socket.getPeerCertificate();
      // At run time authorizationError is an OpenSSL code string despite its declared type.
      const code: unknown = socket.authorizationError;
      const why = cert === null || Object.keys(cert).length === 0 ? 'no client certificate' : `client certificate refused: ${String(code)}`;
      this.logger.warn(`refusing TLS connection from ${remoteOf(socket)}: ${why}`);
      socket.destroy();
      return;
    }
    this.onSocket(socket);
  }

  private accept(socket: net.Socket): void {
    const remote = remoteOf(socket);
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    if (this.pending.size >= this.maxPendingHandshakes) {
      this.anonymous.rejects++;
      this.logger.warn(`refusing connection from ${remote}: ${this.pending.size} handshakes already in progress`);
      socket.destroy();
      return;
    }
    const handshake = new ListenerHandshake(this.handshakeConfig, (id) => this.admit(id));
    const conn = new PeerConnection(socket, remote, 'listener', handshake, this.host, this.anonymous, this.handshakeTimeoutMs);
    this.pending.add(conn);
    this.sockets.add(conn);
  }

  /**
   * The listener's policy on a HELLO: a member that, by the connection rule, dials us; or a node this one does not
   * know as a member, which the secret (checked next) must authenticate.
   */
  private admit(id: NodeId): string | null {
    const peer = this.peers.get(id);
    if (peer?.member && peer.weDial) return `${this.nodeId} dials ${id}, not the other way round (the smaller id dials)`;
    return null;
  }

  /** No more dials to `peer`: its retry timer ends, and a connect still in progress is dropped. */
  private stopDialing(peer: Peer): void {
    if (peer.retryTimer !== null) clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    if (peer.dialing instanceof net.Socket) peer.dialing.destroy();
  }

  private newPeer(id: NodeId, member: MemberAddress | null): Peer {
    return {
      member,
      weDial: member !== null && this.nodeId < id,
      conn: null,
      dialing: null,
      retryTimer: null,
      lastDialError: '',
      backoff: new Backoff(this.backoffOptions),
      counters: newCounters(),
    };
  }

  private dial(peer: Peer): void {
    if (this.closing !== null || peer.conn !== null || peer.dialing !== null || peer.member === null) return;
    const { id, host, port } = peer.member;
    // Resolving the host on every attempt (the default lookup) follows containers that come back on a new IP.
    const socket = this.tls === undefined ? net.connect({ host, port }) : tls.connect({ ...this.tls, host, port });
    peer.dialing = socket;
    let attached = false;
    let error: Error | null = null;
    const timer = setTimeout(() => {
      error = new Error(`connect timed out after ${this.connectTimeoutMs} ms`);
      socket.destroy();
    }, this.connectTimeoutMs);
    socket.on('error', (err) => {
      error ??= err;
    });
    socket.once(this.tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      if (this.closing !== null || peer.dialing !== socket) {
        socket.destroy();
        return;
      }
      attached = true;
      const handshake = new DialerHandshake(this.handshakeConfig, id);
      const conn = new PeerConnection(socket, `${host}:${port}`, 'dialer', handshake, this.host, peer.counters, this.handshakeTimeoutMs);
      peer.dialing = conn;
      this.sockets.add(conn);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (attached) return; // the connection reports its own close
      if (peer.dialing === socket) peer.dialing = null;
      this.noteDialFailure(peer, error === null ? 'closed' : error.message);
      this.scheduleDial(peer);
    });
  }

  private scheduleDial(peer: Peer): void {
    if (this.closing !== null || !peer.weDial || peer.member === null || peer.retryTimer !== null || peer.conn !== null) return;
    if (this.peers.get(peer.member.id) !== peer) return; // removed meanwhile
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      this.dial(peer);
    }, peer.backoff.next());
    peer.retryTimer.unref();
  }

  private tick(every: number): void {
    const now = performance.now();
    // After a stall of our own event loop, data may be waiting unread: do not blame the peers for it.
    const stalled = now - this.lastTick > 3 * every;
    this.lastTick = now;
    for (const peer of this.peers.values()) {
      const conn = peer.conn;
      if (conn === null) continue;
      if (stalled) conn.lastReceived = now;
      conn.tick(now, this.pingIntervalMs, this.idleTimeoutMs);
    }
  }

  private connectionHost(): ConnectionHost {
    return {
      nodeId: this.nodeId,
      maxFrameBytes: this.maxFrameBytes,
      sendQueueBytes: this.sendQueueBytes,
      warn: (message) => this.logger.warn(message),
      onOpen: (conn) => this.onOpen(conn),
      onClose: (conn, reason) => this.onClose(conn, reason),
      onRaft: (_conn, m) => {
        try {
          this.handler?.raft(m);
        } catch (err) {
          this.logger.warn(`the raft handler threw on a message from ${m.from}: ${String(err)}`);
        }
      },
      onCall: (conn, id, payload) => this.onCall(conn, id, payload),
    };
  }

  private onOpen(conn: PeerConnection): Counters {
    this.pending.delete(conn);
    const id = conn.peerId;
    let peer = this.peers.get(id);
    if (peer === undefined) {
      peer = this.newPeer(id, null);
      this.peers.set(id, peer);
    }
    const seed = this.seedDials.get(conn);
    this.seedDials.delete(conn);
    seed?.(id);
    if (peer.dialing === conn) peer.dialing = null;
    const old = peer.conn;
    peer.conn = conn;
    peer.backoff.reset();
    peer.lastDialError = '';
    peer.counters.connects++;
    if (old !== null) old.fail('replaced by a newer connection from the same peer', null, 'log');
    this.logger.log(`connected to ${id} (${conn.remote}, ${conn.role === 'dialer' ? 'dialed' : 'accepted'}${peer.member ? '' : ', not a member here yet'})`);
    return peer.counters;
  }

  private onClose(conn: PeerConnection, reason: string): void {
    this.pending.delete(conn);
    void conn.closed.then(() => this.sockets.delete(conn));
    const id = conn.peer?.id;
    const seed = this.seedDials.get(conn);
    this.seedDials.delete(conn);
    seed?.(new Error(`handshake ended: ${reason}`));
    if (id === undefined) {
      // Dialer connections know their peer before authentication: report and retry.
      for (const peer of this.peers.values()) {
        if (peer.dialing !== conn) continue;
        peer.dialing = null;
        this.noteDialFailure(peer, `handshake ended: ${reason}`);
        this.scheduleDial(peer);
      }
      if (conn.role === 'listener') this.logger.debug?.(`connection from ${conn.name} closed in the handshake: ${reason}`);
      return;
    }
    const peer = this.peers.get(id);
    if (peer === undefined) return; // removed from the members
    if (peer.dialing === conn) peer.dialing = null;
    if (peer.conn === conn) {
      peer.conn = null;
      this.logger.log(`disconnected from ${id}: ${reason}`);
    }
    if (peer.member === null && peer.conn === null) this.peers.delete(id);
    else this.scheduleDial(peer);
  }

  /** Logs a failed dial once per distinct reason, so a peer that stays down does not flood the log. */
  private noteDialFailure(peer: Peer, reason: string): void {
    if (peer.member === null) return;
    const { id, host, port } = peer.member;
    if (reason !== peer.lastDialError) {
      peer.lastDialError = reason;
      this.logger.log(`cannot reach ${id} at ${host}:${port}: ${reason} (retrying)`);
    } else {
      this.logger.debug?.(`dial ${id} at ${host}:${port} failed again: ${reason}`);
    }
  }

  private onCall(conn: PeerConnection, id: number, payload: Uint8Array): void {
    const from = conn.peerId;
    const handler = this.handler;
    let result: Promise<Uint8Array>;
    try {
      result = handler === null ? Promise.reject(new Error('not listening')) : handler.call(from, payload);
    } catch (err) {
      result = Promise.reject(err);
    }
    Promise.resolve(result).then(
      (bytes) => {
        if (!(bytes instanceof Uint8Array)) {
          this.reply(conn, errorReplyFrame(id, 'the call handler returned something other than bytes', new Uint8Array(0)));
          return;
        }
        const limit = conn.peer?.maxFrameBytes ?? 0;
        if (bytes.byteLength + 6 > limit) {
          this.reply(conn, errorReplyFrame(id, `reply of ${bytes.byteLength} bytes is over the caller's frame limit`, new Uint8Array(0)));
          return;
        }
        this.reply(conn, okReplyFrame(id, bytes));
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        const own = typeof err === 'object' && err !== null ? (err as { payload?: unknown }).payload : undefined;
        const bytes = own instanceof Uint8Array ? own : Buffer.from(message, 'utf8');
        const limit = conn.peer?.maxFrameBytes ?? 0;
        const frameBytes = bytes.byteLength + 6 + 2 + Buffer.byteLength(message.slice(0, 1000), 'utf8');
        this.reply(conn, errorReplyFrame(id, message, frameBytes > limit ? new Uint8Array(0) : bytes));
      },
    );
  }

  private reply(conn: PeerConnection, frame: Buffer): void {
    if (conn.state !== 'open') return; // the caller sees ConnectionLostError
    if (!conn.trySend(frame)) this.logger.debug?.(`dropped a reply to ${conn.name}: send queue full`);
  }
}

function positive(n: number, name: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`${name} must be a positive number, got ${n}`);
  return n;
}

function remoteOf(socket: net.Socket): string {
  const a = socket.remoteAddress;
  if (a === undefined) return 'unknown address';
  return `${a.includes(':') ? `[${a}]` : a}:${socket.remotePort}`;
}

function listenError(nodeId: NodeId, where: string, err: unknown): ListenError {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
  const hint =
    code === 'EADDRINUSE'
      ? 'the address is in use: another process (or another node of this cluster) listens on this port'
      : code === 'EADDRNOTAVAIL'
        ? 'this host has no such address: set listenHost (e.g. 0.0.0.0) when the member host names another interface'
        : code === 'EACCES'
          ? 'permission denied: ports below 1024 need privileges'
          : err instanceof Error
            ? err.message
            : String(err);
  return new ListenError(`node ${nodeId} cannot listen on ${where}: ${hint}${code ? ` (${code})` : ''}`, code, { cause: err });
}
