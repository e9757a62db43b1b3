/**
 * Without the secret, no Raft or forward (CALL) frame is processed — however the frames are pipelined behind a
 * handshake that never completed. Each attempt writes its handshake frames and then RAFT and CALL frames in the
 * same write, so they sit in the node's input buffer when the handshake frame before them is refused.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { MessageType, message } from '../../lib/raft/index.js';
import { callFrame } from '../../lib/transport/call-frames.js';
import { FrameKind, frame } from '../../lib/transport/frame.js';
import { DialerHandshake, type HandshakeConfig } from '../../lib/transport/handshake.js';
import { encodeMessage } from '../../lib/transport/raft-codec.js';
import { RawPeer, Recorder, rawDial, testCluster, waitFor, type TestCluster } from './helpers.js';

const SECRET = 'test-secret-0123456789';
const as = (nodeId: string, secret = SECRET): HandshakeConfig => ({ nodeId, secret, clusterName: '', maxFrameBytes: 1 << 20 });

const RAFT = frame(FrameKind.raft, encodeMessage(message({ type: MessageType.Heartbeat, from: 'a', to: 'b', term: 1 })));
const CALL = callFrame(7, Buffer.from('forwarded command'));
const TRAFFIC = Buffer.concat([RAFT, CALL, RAFT, CALL]);

let cluster: TestCluster;
let calls = 0;
let port = 0;
const peers: RawPeer[] = [];

beforeEach(async () => {
  calls = 0;
  cluster = await testCluster(['a', 'b'], {}, []);
  await cluster.start(
    'b',
    {},
    new Recorder(async (from, p) => {
      calls++;
      return Buffer.concat([Buffer.from(`${from}:`), p]);
    }),
  );
  port = Number(cluster.members[1]!.split(':').pop());
});

afterEach(async () => {
  for (const p of peers.splice(0)) p.destroy();
  await cluster.close();
});

async function connect(): Promise<RawPeer> {
  const p = await RawPeer.connect(port);
  peers.push(p);
  return p;
}

/** The node dropped the connection, logged why, and handed nothing to the Raft or call handler. */
async function refused(p: RawPeer, reason: RegExp): Promise<void> {
  await p.waitClosed();
  await waitFor(() => cluster.loggers.get('b')!.warned(reason), `b to log ${reason}`);
  // Give anything that slipped through time to reach the handlers.
  await new Promise((r) => setTimeout(r, 50));
  expect(cluster.handlers.get('b')!.count).toBe(0);
  expect(calls).toBe(0);
  expect(p.frames.filter((f) => f.kind === FrameKind.ready || f.kind === FrameKind.reply)).toEqual([]);
}

describe('without the secret no Raft or forward frame is processed', () => {
  it('frames sent before any handshake', async () => {
    const p = await connect();
    p.send(TRAFFIC);
    await refused(p, /unexpected RAFT frame during the handshake/);
  });

  it('a HELLO without a secret, traffic right behind it', async () => {
    const p = await connect();
    p.send(Buffer.concat([new DialerHandshake({ ...as('a'), secret: undefined }, 'b').hello(), TRAFFIC]));
    await refused(p, /this node requires a secret and the peer has none/);
  });

  it('a HELLO with the secret flag, then traffic instead of AUTH', async () => {
    const p = await connect();
    p.send(Buffer.concat([new DialerHandshake(as('a'), 'b').hello(), TRAFFIC]));
    await refused(p, /unexpected RAFT frame during the handshake/);
  });

  it('a guessed AUTH pipelined with traffic', async () => {
    const p = await connect();
    p.send(Buffer.concat([new DialerHandshake(as('a'), 'b').hello(), frame(FrameKind.auth, randomBytes(32)), TRAFFIC]));
    await refused(p, /a failed authentication/);
  });

  it('an AUTH computed over the real transcript with the wrong secret, traffic behind it', async () => {
    const p = await connect();
    const hello = new DialerHandshake(as('a', 'a-wrong-secret-42'), 'b').hello();
    p.send(hello);
    const challenge = await p.frame(FrameKind.challenge);
    const mac = createHmac('sha256', 'a-wrong-secret-42').update('catga/dialer/v1').update(hello.subarray(5)).update(challenge).digest();
    p.send(Buffer.concat([frame(FrameKind.auth, mac), TRAFFIC]));
    await refused(p, /a failed authentication \(its MAC does not match: wrong secret or a replayed handshake\)/);
  });

  it('a genuine HELLO and AUTH recorded from an earlier session and replayed, traffic behind them', async () => {
    const genuine = await rawDial(port, as('a'), 'b');
    genuine.peer.destroy();
    await genuine.peer.waitClosed();
    const p = await connect();
    p.send(genuine.hello);
    await p.frame(FrameKind.challenge);
    p.send(Buffer.concat([genuine.auth, TRAFFIC]));
    await refused(p, /a failed authentication/);
  });

  it('while the same frames from a peer that completed the handshake are processed', async () => {
    const { peer } = await rawDial(port, as('a'), 'b');
    peers.push(peer);
    peer.send(TRAFFIC);
    await waitFor(() => cluster.handlers.get('b')!.count === 2 && calls === 2, 'both messages and both calls');
    await waitFor(() => peer.frames.filter((f) => f.kind === FrameKind.reply).length === 2, 'the two replies');
    expect(peer.closed).toBe(false);
  });
});
