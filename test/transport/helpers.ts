import * as net from 'node:net';
import type { InboundHandler } from '../../lib/io/network.js';
import type { Message, NodeId } from '../../lib/raft/index.js';
import { TcpNetwork, type TcpNetworkOptions } from '../../lib/transport/tcp-network.js';
import type { TransportLogger } from '../../lib/transport/logger.js';
import { FrameKind, FrameReader } from '../../lib/transport/frame.js';
import { DialerHandshake, type HandshakeConfig } from '../../lib/transport/handshake.js';

/** A port the OS just handed out and released; good enough for loopback tests. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  return ports;
}

export class CaptureLogger implements TransportLogger {
  readonly logs: string[] = [];
  readonly warns: string[] = [];

  log(message: string): void {
    this.logs.push(message);
  }

  warn(message: string): void {
    this.warns.push(message);
  }

  debug(): void {}

  warned(pattern: RegExp): boolean {
    return this.warns.some((w) => pattern.test(w));
  }
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Records Raft messages; calls answer with `reply` (default: echo with a prefix). */
export class Recorder implements InboundHandler {
  readonly messages: Message[] = [];
  count = 0;
  keep = true;

  constructor(
    private readonly reply: (from: NodeId, payload: Uint8Array) => Promise<Uint8Array> = async (from, p) =>
      Buffer.concat([Buffer.from(`${from}:`), p]),
  ) {}

  raft(m: Message): void {
    this.count++;
    if (this.keep) this.messages.push(m);
  }

  call(from: NodeId, payload: Uint8Array): Promise<Uint8Array> {
    return this.reply(from, payload);
  }
}

export interface TestCluster {
  readonly ids: readonly NodeId[];
  readonly members: readonly string[];
  readonly nets: Map<NodeId, TcpNetwork>;
  readonly handlers: Map<NodeId, Recorder>;
  readonly loggers: Map<NodeId, CaptureLogger>;
  /** Starts (or restarts) one member with the cluster's options. */
  start(id: NodeId, overrides?: Partial<TcpNetworkOptions>, handler?: Recorder): Promise<TcpNetwork>;
  close(): Promise<void>;
}

/** Members on free loopback ports; `started` of them are listening when it resolves. */
export async function testCluster(
  ids: readonly NodeId[],
  options: Partial<TcpNetworkOptions> = {},
  started: readonly NodeId[] = ids,
): Promise<TestCluster> {
  const ports = await freePorts(ids.length);
  const members = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]}`);
  const nets = new Map<NodeId, TcpNetwork>();
  const handlers = new Map<NodeId, Recorder>();
  const loggers = new Map<NodeId, CaptureLogger>();
  const c: TestCluster = {
    ids,
    members,
    nets,
    handlers,
    loggers,
    async start(id, overrides = {}, handler = new Recorder()) {
      const logger = new CaptureLogger();
      const net = new TcpNetwork({ nodeId: id, members, secret: 'test-secret-0123456789', logger, ...options, ...overrides });
      nets.set(id, net);
      handlers.set(id, handler);
      loggers.set(id, logger);
      await net.listen(handler);
      return net;
    },
    async close() {
      await Promise.all([...nets.values()].map((n) => n.close()));
    },
  };
  for (const id of started) await c.start(id);
  return c;
}

export function connected(net: TcpNetwork, peer: NodeId): boolean {
  return net.stats().peers[peer]?.connected === true;
}

/** Waits until every started pair is connected both ways. */
export async function fullyConnected(c: TestCluster, ids: readonly NodeId[] = [...c.nets.keys()]): Promise<void> {
  await waitFor(() => ids.every((a) => ids.every((b) => a === b || connected(c.nets.get(a)!, b))), `connections among ${ids.join(', ')}`);
}

/** A hand-driven client for poking at a node's port: send raw bytes, read frames, see whether it was closed. */
export class RawPeer {
  readonly frames: { kind: number; payload: Buffer }[] = [];
  closed = false;
  private readonly reader = new FrameReader(1 << 20);

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let f = this.reader.next(); f !== null; f = this.reader.next()) this.frames.push({ kind: f.kind, payload: Buffer.from(f.payload) });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  async frame(kind: number, what = `frame kind ${kind}`): Promise<Buffer> {
    await waitFor(() => this.frames.some((f) => f.kind === kind) || this.closed, what);
    const f = this.frames.find((x) => x.kind === kind);
    if (f === undefined) throw new Error(`connection closed before ${what}`);
    return f.payload;
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.closed, 'the node to close the connection', timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Completes a handshake as dialer `id` over a RawPeer (returns the frames it sent, for replays). The node then treats
 * this socket as its authenticated connection from `id`.
 */
export async function rawDial(
  port: number,
  config: HandshakeConfig,
  target: NodeId,
): Promise<{ peer: RawPeer; hello: Buffer; auth: Buffer }> {
  const peer = await RawPeer.connect(port);
  const hs = new DialerHandshake(config, target);
  const hello = hs.hello();
  peer.send(hello);
  const challenge = await peer.frame(FrameKind.challenge, 'CHALLENGE');
  const auth = hs.receive(FrameKind.challenge, challenge).send!;
  peer.send(auth);
  await peer.frame(FrameKind.ready, 'READY');
  return { peer, hello, auth };
}
