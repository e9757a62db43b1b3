import { randomBytes } from 'node:crypto';
import { HandshakeError } from '../../lib/transport/errors.js';
import { FrameKind, frame } from '../../lib/transport/frame.js';
import { DialerHandshake, ListenerHandshake, type HandshakeConfig, type PeerIdentity } from '../../lib/transport/handshake.js';

/** `secret` null = no secret (undefined would pick the default). */
const config = (nodeId: string, secret: string | null = 'shared-secret', clusterName = ''): HandshakeConfig => ({
  nodeId,
  secret: secret ?? undefined,
  clusterName,
  maxFrameBytes: 1 << 20,
});
const admitAll = (): null => null;

/** Runs both sides in memory; returns what each side authenticated, or throws the first HandshakeError. */
function handshake(d: DialerHandshake, l: ListenerHandshake): { dialerSaw: PeerIdentity; listenerSaw: PeerIdentity } {
  const hello = d.hello();
  const challenge = l.receive(FrameKind.hello, hello.subarray(5)).send!;
  const auth = d.receive(FrameKind.challenge, challenge.subarray(5)).send!;
  const done = l.receive(FrameKind.auth, auth.subarray(5));
  const ready = d.receive(FrameKind.ready, done.send!.subarray(5));
  return { dialerSaw: ready.peer!, listenerSaw: done.peer! };
}

function refusal(fn: () => unknown): HandshakeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HandshakeError) return err;
    throw err;
  }
  throw new Error('expected a HandshakeError');
}

describe('handshake protocol', () => {
  it('authenticates both sides with the same secret, and exchanges frame limits', () => {
    const r = handshake(new DialerHandshake(config('a'), 'b'), new ListenerHandshake(config('b'), admitAll));
    expect(r).toEqual({ dialerSaw: { id: 'b', maxFrameBytes: 1 << 20 }, listenerSaw: { id: 'a', maxFrameBytes: 1 << 20 } });
  });

  it('exchanges ids without MACs when neither side has a secret', () => {
    const r = handshake(new DialerHandshake(config('a', null), 'b'), new ListenerHandshake(config('b', null), admitAll));
    expect(r.listenerSaw.id).toBe('a');
  });

  it('the dialer refuses a listener with another secret, and says so', () => {
    const e = refusal(() => handshake(new DialerHandshake(config('a', 'one'), 'b'), new ListenerHandshake(config('b', 'two'), admitAll)));
    expect(e.message).toMatch(/b failed authentication/);
    expect(e.tellPeer).toBe('authentication failed');
  });

  it('the listener refuses a forged AUTH and a replayed one', () => {
    const l = new ListenerHandshake(config('b'), admitAll);
    l.receive(FrameKind.hello, new DialerHandshake(config('a'), 'b').hello().subarray(5));
    expect(refusal(() => l.receive(FrameKind.auth, randomBytes(32))).message).toMatch(/a failed authentication/);

    // Record a good session, then replay its HELLO and AUTH against a fresh listener (fresh nonce).
    const d1 = new DialerHandshake(config('a'), 'b');
    const l1 = new ListenerHandshake(config('b'), admitAll);
    const hello = d1.hello().subarray(5);
    const auth = d1.receive(FrameKind.challenge, l1.receive(FrameKind.hello, hello).send!.subarray(5)).send!.subarray(5);
    expect(l1.receive(FrameKind.auth, auth).peer?.id).toBe('a');
    const l2 = new ListenerHandshake(config('b'), admitAll);
    l2.receive(FrameKind.hello, hello);
    expect(refusal(() => l2.receive(FrameKind.auth, auth)).tellPeer).toBe('authentication failed');
  });

  it('refuses a secret on one side only, with a reason for each case', () => {
    expect(refusal(() => handshake(new DialerHandshake(config('a', null), 'b'), new ListenerHandshake(config('b'), admitAll))).tellPeer).toBe(
      'this node requires a secret and the peer has none',
    );
    expect(refusal(() => handshake(new DialerHandshake(config('a'), 'b'), new ListenerHandshake(config('b', null), admitAll))).tellPeer).toBe(
      'the peer uses a secret and this node has none',
    );
  });

  it('refuses our own id, ids the policy refuses, a wrong target, another cluster and another version', () => {
    const l = (admit: (id: string) => string | null = admitAll, name = ''): ListenerHandshake => new ListenerHandshake(config('b', 'shared-secret', name), admit);
    expect(refusal(() => handshake(new DialerHandshake(config('b'), 'b'), l())).tellPeer).toBe('b is this node\'s own id');
    expect(refusal(() => handshake(new DialerHandshake(config('x'), 'b'), l(() => 'x is not a member'))).tellPeer).toBe('x is not a member');
    expect(refusal(() => handshake(new DialerHandshake(config('a'), 'c'), l())).tellPeer).toMatch(/this is node b, not c/);
    expect(refusal(() => handshake(new DialerHandshake(config('a', 'shared-secret', 'red'), 'b'), l(admitAll, 'blue'))).tellPeer).toMatch(
      /cluster name mismatch/,
    );
    const hello = Buffer.from(new DialerHandshake(config('a'), 'b').hello().subarray(5));
    hello.writeUInt16LE(1, 0);
    expect(refusal(() => l().receive(FrameKind.hello, hello)).tellPeer).toBe('protocol version 1 is not supported; this node speaks 2');
  });

  it('refuses a node started from another static member list, naming both lists', () => {
    const withList = (id: string, bootstrap: string): HandshakeConfig => ({ ...config(id), bootstrap });
    const e = refusal(() => handshake(new DialerHandshake(withList('a', 'a=h:1,b=h:2'), 'b'), new ListenerHandshake(withList('b', 'a=h:1,b=h:2,c=h:3'), admitAll)));
    expect(e.message).toMatch(/a was started with members \[a=h:1,b=h:2\] \(hash [0-9a-f]{12}\), this node with \[a=h:1,b=h:2,c=h:3\]/);
    expect(e.tellPeer).toMatch(/member lists differ: b was started with \[a=h:1,b=h:2,c=h:3\].*you with \[a=h:1,b=h:2\]/);
    // A node that joins by seed has no list of its own: nothing to compare.
    expect(handshake(new DialerHandshake(withList('a', ''), 'b'), new ListenerHandshake(withList('b', 'a=h:1'), admitAll)).listenerSaw.id).toBe('a');
  });

  it('a node joining through a seed address accepts whoever answers there, and learns its id', () => {
    const r = handshake(new DialerHandshake(config('joiner'), ''), new ListenerHandshake(config('b'), admitAll));
    expect(r.dialerSaw.id).toBe('b');
    expect(r.listenerSaw.id).toBe('joiner');
  });

  it('the dialer refuses an answer from a member it did not dial', () => {
    const d = new DialerHandshake(config('a'), 'b');
    const helloToC = new DialerHandshake(config('a'), 'c').hello().subarray(5);
    const challenge = new ListenerHandshake(config('c'), admitAll).receive(FrameKind.hello, helloToC).send!;
    expect(refusal(() => d.receive(FrameKind.challenge, challenge.subarray(5))).message).toMatch(/dialed b but "c" answered/);
  });

  it('reports a REJECT from the other side and refuses frames out of order', () => {
    const d = new DialerHandshake(config('a'), 'b');
    expect(refusal(() => d.receive(FrameKind.reject, Buffer.from('go away'))).message).toBe('b refused the handshake: go away');
    expect(refusal(() => d.receive(FrameKind.raft, Buffer.alloc(3))).message).toBe('unexpected RAFT frame during the handshake');
    expect(refusal(() => new ListenerHandshake(config('b'), admitAll).receive(FrameKind.auth, Buffer.alloc(32))).message).toMatch(/unexpected AUTH/);
    expect(frame(FrameKind.ping).length).toBe(5);
  });
});
