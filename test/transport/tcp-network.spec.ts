import * as net from 'node:net';
import { CallTimeoutError, ConnectionLostError, NotSentError, RemoteCallError } from '../../lib/io/network.js';
import { MessageType, message, type Message } from '../../lib/raft/index.js';
import { ListenError } from '../../lib/transport/errors.js';
import { TcpNetwork } from '../../lib/transport/tcp-network.js';
import { CaptureLogger, Recorder, connected, freePort, fullyConnected, sleep, testCluster, waitFor, type TestCluster } from './helpers.js';

const app = (from: string, to: string, i: number): Message =>
  message({
    type: MessageType.App,
    from,
    to,
    term: 3,
    index: i,
    logTerm: 2,
    commit: i - 1,
    stamp: 77,
    entries: [{ term: 3, index: i + 1, data: Buffer.from(`entry ${i}`) }],
  });

let cluster: TestCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

describe('TcpNetwork', () => {
  it('connects three members pairwise and delivers raft messages both ways', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c']));
    await fullyConnected(c);
    for (const from of c.ids) for (const to of c.ids) if (from !== to) for (let i = 1; i <= 50; i++) c.nets.get(from)!.sendRaft(app(from, to, i));
    await waitFor(() => c.ids.every((id) => c.handlers.get(id)!.count === 100), 'all messages');
    for (const id of c.ids) {
      const got = c.handlers.get(id)!.messages;
      for (const from of c.ids.filter((x) => x !== id)) {
        const mine = got.filter((m) => m.from === from);
        expect(mine.map((m) => m.index)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1)); // in order per peer
        expect(Buffer.from(mine[4]!.entries[0]!.data).toString()).toBe('entry 5');
        expect(mine[0]!.to).toBe(id);
      }
    }
    const s = c.nets.get('a')!.stats();
    expect(s.peers['b']).toMatchObject({ connected: true, connects: 1, framesOut: expect.any(Number) });
    expect(s.peers['b']!.framesOut).toBeGreaterThanOrEqual(52); // 50 raft + handshake
    expect(s.total.framesIn).toBeGreaterThanOrEqual(100);
    // One connection per pair: the smaller id dialed it.
    expect(c.loggers.get('a')!.logs.filter((l) => l.startsWith('connected to b'))).toEqual([expect.stringContaining('dialed')]);
    expect(c.loggers.get('b')!.logs.filter((l) => l.startsWith('connected to a'))).toEqual([expect.stringContaining('accepted')]);
  });

  it('pipelines calls and returns results, remote errors and timeouts', async () => {
    const c = (cluster = await testCluster(['a', 'b'], {}, ['a']));
    await c.start(
      'b',
      {},
      new Recorder(async (from, p) => {
        const text = Buffer.from(p).toString();
        if (text === 'fail') throw new Error('no such order');
        if (text === 'fail-bytes') throw Object.assign(new Error('coded'), { payload: Uint8Array.of(9, 9) });
        if (text === 'hang') return new Promise<Uint8Array>(() => undefined);
        await sleep(Math.random() * 20);
        return Buffer.from(`${from} asked ${text}`);
      }),
    );
    await fullyConnected(c);
    const a = c.nets.get('a')!;
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => a.call('b', Buffer.from(`q${i}`), 2000)));
    expect(answers.map((x) => Buffer.from(x).toString())).toEqual(Array.from({ length: 200 }, (_, i) => `a asked q${i}`));
    // The accepting side calls the dialing side on the same connection.
    expect(Buffer.from(await c.nets.get('b')!.call('a', Buffer.from('hi'), 1000)).toString()).toBe('b:hi');

    const err = await a.call('b', Buffer.from('fail'), 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteCallError);
    expect((err as RemoteCallError).message).toBe('no such order');
    expect(Buffer.from((err as RemoteCallError).payload).toString()).toBe('no such order');
    const coded = await a.call('b', Buffer.from('fail-bytes'), 1000).catch((e: unknown) => e);
    expect((coded as RemoteCallError).payload).toEqual(Uint8Array.of(9, 9));

    const t0 = Date.now();
    await expect(a.call('b', Buffer.from('hang'), 100)).rejects.toBeInstanceOf(CallTimeoutError);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('rejects at once with NotSentError when there is no connection', async () => {
    const c = (cluster = await testCluster(['a', 'b', 'c'], {}, ['a', 'b']));
    await fullyConnected(c, ['a', 'b']);
    const a = c.nets.get('a')!;
    await expect(a.call('c', Buffer.from('x'), 5000)).rejects.toBeInstanceOf(NotSentError);
    await expect(a.call('zz', Buffer.from('x'), 5000)).rejects.toThrow(NotSentError);
    a.sendRaft(app('a', 'c', 1)); // dropped, never thrown
    expect(a.stats().peers['c']!.dropped).toBe(1);
  });

  it('rejects calls in flight with ConnectionLostError when the peer dies, and reconnects when it restarts', async () => {
    const hang = (): Recorder => new Recorder(() => new Promise<Uint8Array>(() => undefined));
    const c = (cluster = await testCluster(['a', 'b'], {}, ['a']));
    await c.start('b', {}, hang());
    await fullyConnected(c);
    const a = c.nets.get('a')!;
    const inFlight = a.call('b', Buffer.from('x'), 5000);
    await sleep(20);
    await c.nets.get('b')!.close();
    await expect(inFlight).rejects.toBeInstanceOf(ConnectionLostError);
    await waitFor(() => !connected(a, 'b'), 'a to notice');

    // b (the larger id) comes back on the same port: a redials it.
    await c.start('b');
    await fullyConnected(c);
    a.sendRaft(app('a', 'b', 1));
    await waitFor(() => c.handlers.get('b')!.count === 1, 'message after reconnect');

    // a (the dialer) restarts: b accepts the new connection in place of the old one.
    await a.close();
    await c.start('a');
    await fullyConnected(c);
    c.nets.get('b')!.sendRaft(app('b', 'a', 2));
    await waitFor(() => c.handlers.get('a')!.count === 1, 'message to the restarted dialer');
    expect(c.nets.get('a')!.stats().peers['b']!.connects).toBe(1);
  });

  it('close() rejects calls in flight, stops reconnecting and frees the port', async () => {
    const c = (cluster = await testCluster(['a', 'b'], {}, ['a']));
    await c.start('b', {}, new Recorder(() => new Promise<Uint8Array>(() => undefined)));
    await fullyConnected(c);
    const a = c.nets.get('a')!;
    const inFlight = a.call('b', Buffer.from('x'), 5000);
    await a.close();
    await expect(inFlight).rejects.toBeInstanceOf(ConnectionLostError);
    await expect(a.call('b', Buffer.from('x'), 5000)).rejects.toBeInstanceOf(NotSentError);
    const before = c.loggers.get('a')!.logs.length;
    await c.nets.get('b')!.close();
    await sleep(200);
    expect(c.loggers.get('a')!.logs.length).toBe(before); // no redial attempts after close
    // The port is free again.
    const s = net.createServer();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(Number(c.members[0]!.split(':')[1]), '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => s.close(() => resolve()));
  });

  it('names host:port when the port is taken', async () => {
    const port = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    const n = new TcpNetwork({ nodeId: 'a', members: [`a=127.0.0.1:${port}`], logger: new CaptureLogger() });
    try {
      const err = await n.listen(new Recorder()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ListenError);
      expect((err as ListenError).message).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect((err as ListenError).code).toBe('EADDRINUSE');
    } finally {
      await n.close();
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('refuses bad options with the option name', () => {
    const members = ['a=127.0.0.1:1'];
    expect(() => new TcpNetwork({ nodeId: 'x', members })).toThrow('nodeId "x" is not in members (a)');
    expect(() => new TcpNetwork({ nodeId: 'a', members, maxFrameBytes: 100 })).toThrow(/maxFrameBytes/);
    expect(() => new TcpNetwork({ nodeId: 'a', members, sendQueueBytes: -1 })).toThrow(/sendQueueBytes/);
    expect(() => new TcpNetwork({ nodeId: 'a', members: ['a=h'] })).toThrow('members[0]: expected "id=host:port"');
  });
});
