import { randomBytes } from 'node:crypto';
import { NotSentError } from '../../lib/io/network.js';
import { MessageType, message } from '../../lib/raft/index.js';
import { FRAME_HEADER_BYTES, FrameKind, allocFrame, frame } from '../../lib/transport/frame.js';
import { DialerHandshake, type HandshakeConfig } from '../../lib/transport/handshake.js';
import { encodeMessage } from '../../lib/transport/raft-codec.js';
import { RawPeer, fullyConnected, rawDial, sleep, testCluster, waitFor, type TestCluster } from './helpers.js';

const SECRET = 'test-secret-0123456789';
const as = (nodeId: string, secret: string | undefined = SECRET): HandshakeConfig => ({
  nodeId,
  secret,
  clusterName: '',
  maxFrameBytes: 1 << 20,
});

let cluster: TestCluster | null = null;
const raws: RawPeer[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await cluster?.close();
  cluster = null;
});

function portOf(c: TestCluster, id: string): number {
  return Number(c.members[c.ids.indexOf(id)]!.split(':').pop());
}

async function raw(port: number): Promise<RawPeer> {
  const r = await RawPeer.connect(port);
  raws.push(r);
  return r;
}

/** The real members a and b still talk: a call from a to b succeeds. */
async function stillServing(c: TestCluster): Promise<void> {
  await fullyConnected(c, ['a', 'b']);
  expect(Buffer.from(await c.nets.get('a')!.call('b', Buffer.from('ping'), 2000)).toString()).toBe('a:ping');
}

describe('hostile and misconfigured peers', () => {
  it('a member with another secret is refused on both sides, with reasons; the others keep working', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c'], {}, ['a', 'b']));
    await c.start('c', { secret: 'another-secret-987654321' });
    const [la, lb, lc] = ['a', 'b', 'c'].map((id) => c.loggers.get(id)!);
    await waitFor(() => la!.warned(/c .*failed authentication/) && lb!.warned(/c .*failed authentication/), 'a and b to refuse c');
    await waitFor(() => lc!.warned(/a refused the handshake: authentication failed/), 'c to log why');
    await stillServing(c);
    await expect(c.nets.get('a')!.call('c', Buffer.from('x'), 1000)).rejects.toBeInstanceOf(NotSentError);
    expect(c.nets.get('a')!.stats().peers['c']).toMatchObject({ connected: false, connects: 0 });
    expect(c.nets.get('a')!.stats().peers['c']!.rejects).toBeGreaterThan(0);
  });

  it('refuses a forged AUTH, and an AUTH replayed from a recorded session', async () => {
    const c = (cluster = await testCluster(['a', 'b'], {}, ['b']));
    const port = portOf(c, 'b');
    const lb = c.loggers.get('b')!;

    // Forged: the right HELLO, then 32 random bytes as the MAC.
    const forger = await raw(port);
    forger.send(new DialerHandshake(as('a'), 'b').hello());
    await forger.frame(FrameKind.challenge);
    forger.send(frame(FrameKind.auth, randomBytes(32)));
    expect((await forger.frame(FrameKind.reject)).toString()).toBe('authentication failed');
    await forger.waitClosed();
    expect(lb.warned(/from 127\.0\.0\.1:\d+ claiming to be "a": a failed authentication/)).toBe(true);

    // Recorded: a genuine session's HELLO and AUTH, replayed on a new connection.
    const genuine = await rawDial(port, as('a'), 'b');
    raws.push(genuine.peer);
    const replay = await raw(port);
    replay.send(genuine.hello);
    await replay.frame(FrameKind.challenge);
    replay.send(genuine.auth);
    await replay.waitClosed();
    expect(lb.warns.filter((w) => /a failed authentication/.test(w))).toHaveLength(2);
  });

  it('refuses another member list, our own id, the wrong direction and a version mismatch', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c'], { bootstrap: 'a,b,c' }, ['b']));
    const port = portOf(c, 'b');
    const cases: [HandshakeConfig, string, RegExp][] = [
      [{ ...as('mallory'), bootstrap: 'mallory' }, 'b', /\[a,b,c\].*\[mallory\]|\[mallory\].*\[a,b,c\]/],
      [as('b'), 'b', /this node's own id b|b is this node's own id/],
      [as('c'), 'b', /b dials c, not the other way round/],
      [as('a'), 'a', /this is node b, not a/],
    ];
    for (const [cfg, target, reason] of cases) {
      const r = await raw(port);
      r.send(new DialerHandshake(cfg, target).hello());
      expect((await r.frame(FrameKind.reject)).toString()).toMatch(reason);
      await r.waitClosed();
      expect(c.loggers.get("b")!.warns.join("\n")).toMatch(reason);
    }
    const hello = new DialerHandshake(as('a'), 'b').hello();
    hello.writeUInt16LE(7, FRAME_HEADER_BYTES);
    const r = await raw(port);
    r.send(hello);
    expect((await r.frame(FrameKind.reject)).toString()).toMatch(/protocol version 7 is not supported/);
    await r.waitClosed();
    expect(c.nets.get('b')!.stats().total.rejects).toBe(5);
  });

  it('drops garbage, HTTP, huge length prefixes and oversized pre-auth frames, and keeps serving', async () => {
    const c = (cluster = await testCluster(['a', 'b'], { handshakeTimeoutMs: 300 }));
    await fullyConnected(c);
    const port = portOf(c, 'b');
    const lb = c.loggers.get('b')!;
    const huge = Buffer.alloc(5);
    huge.writeUInt32LE(0xffff_fff0, 0);
    huge[4] = FrameKind.hello;
    const bigHello = allocFrame(FrameKind.hello, 5000);
    const inputs: Buffer[] = [
      Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
      huge,
      bigHello,
      Buffer.from([0, 0, 0, 0]),
      Buffer.from([3, 0, 0, 0, 42, 1, 2]),
      frame(FrameKind.raft, Buffer.from('before auth')),
      frame(FrameKind.hello, Buffer.from([2, 0])), // truncated HELLO
      ...Array.from({ length: 20 }, () => randomBytes(64 + Math.floor(Math.random() * 2000))),
    ];
    const peers = await Promise.all(inputs.map(async (bytes) => {
      const r = await raw(port);
      r.send(bytes);
      return r;
    }));
    await Promise.all(peers.map((r) => r.waitClosed(2000)));
    expect(lb.warned(/frame of 542393671 bytes exceeds the limit of 4096 bytes/)).toBe(true); // "GET "
    expect(lb.warned(/frame of 4294967280 bytes exceeds the limit of 4096/)).toBe(true);
    expect(lb.warned(/frame of 5001 bytes exceeds the limit of 4096/)).toBe(true);
    expect(lb.warned(/length 0/)).toBe(true);
    expect(lb.warned(/unknown frame kind 42/)).toBe(true);
    expect(lb.warned(/unexpected RAFT frame during the handshake/)).toBe(true);
    expect(lb.warned(/HELLO: /)).toBe(true);
    await stillServing(c);
  });

  it('drops a peer that connects and says nothing, after the handshake timeout', async () => {
    const c = (cluster = await testCluster(['a', 'b'], { handshakeTimeoutMs: 200 }, ['b']));
    const r = await raw(portOf(c, 'b'));
    const t0 = Date.now();
    await r.waitClosed(2000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(c.loggers.get('b')!.warned(/handshake not finished within 200 ms/)).toBe(true);
  });

  it('drops an authenticated peer that sends raft messages in another name, malformed, or over the limit', async () => {
    const c = (cluster = await testCluster(['a', 'b'], { maxFrameBytes: 64 * 1024 }, ['b']));
    const port = portOf(c, 'b');
    const lb = c.loggers.get('b')!;
    const cfg = as('a');

    const good = await rawDial(port, cfg, 'b');
    raws.push(good.peer);
    good.peer.send(frame(FrameKind.raft, encodeMessage(message({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: 1 }))));
    await waitFor(() => c.handlers.get('b')!.count === 1, 'the genuine message');

    const bad: [Buffer, RegExp][] = [
      [frame(FrameKind.raft, encodeMessage(message({ type: MessageType.Heartbeat, from: 'c', to: 'b', term: 1 }))), /raft message from "c" to "b" on the connection of a/],
      [frame(FrameKind.raft, encodeMessage(message({ type: MessageType.Heartbeat, from: 'a', to: 'z', term: 1 }))), /to "z"/],
      [frame(FrameKind.raft, Buffer.from([6, 0, 1])), /raft message: from needs/],
      [frame(FrameKind.reply, Buffer.from([1, 0, 0, 0, 9])), /REPLY: unknown status 9/],
      [frame(FrameKind.hello, Buffer.alloc(10)), /unexpected HELLO frame after authentication/],
      [allocFrame(FrameKind.call, 64 * 1024 + 10), /exceeds the limit of 65536/],
    ];
    for (const [bytes, reason] of bad) {
      const { peer } = await rawDial(port, cfg, 'b');
      raws.push(peer);
      peer.send(bytes);
      await peer.waitClosed();
      expect(lb.warned(reason)).toBe(true);
    }
    expect(c.handlers.get('b')!.count).toBe(1);
  });

  it('caps connections in the handshake at once', async () => {
    const c = (cluster = await testCluster(['a', 'b'], { maxPendingHandshakes: 2 }, ['b']));
    const port = portOf(c, 'b');
    const held = [await raw(port), await raw(port)];
    await sleep(30);
    const third = await raw(port);
    await third.waitClosed();
    expect(held.every((r) => !r.closed)).toBe(true);
    expect(c.loggers.get('b')!.warned(/2 handshakes already in progress/)).toBe(true);
  });

  it('connects without a secret when no member has one, and refuses a mix with reasons', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c'], { secret: undefined }, ['a', 'b']));
    await fullyConnected(c, ['a', 'b']);
    expect(c.loggers.get('a')!.warned(/no secret configured/)).toBe(true);
    await c.start('c', { secret: SECRET });
    await waitFor(() => c.loggers.get('c')!.warned(/the peer has none/), 'c to refuse a secretless peer');
    await waitFor(() => c.loggers.get('a')!.warned(/c refused the handshake: this node requires a secret/), 'a to log c\'s reason');
  });
});
