import { createHmac } from 'node:crypto';
import { resolveClusterOptions } from '../../lib/cluster/options.js';
import { HandshakeError } from '../../lib/transport/errors.js';
import { FrameKind } from '../../lib/transport/frame.js';
import { DialerHandshake, ListenerHandshake, type HandshakeConfig, type PeerIdentity } from '../../lib/transport/handshake.js';
import { connected, fullyConnected, sleep, testCluster } from './helpers.js';

/**
 * Rotating the cluster secret without downtime (docs/deploy.md, "Rotating the secret"): `secret` may be a list; a
 * listener proves and requires its first, a dialer accepts a listener proving any of its secrets and answers with that
 * one. Rolled one node at a time through [S1] → [S1, S2] → [S2, S1] → [S2], every two neighbouring steps connect in
 * both directions, so no pair of members is ever refused.
 */

const S1 = 'old-secret-0123456789';
const S2 = 'new-secret-9876543210';
const STEPS: readonly (readonly string[])[] = [[S1], [S1, S2], [S2, S1], [S2]];

const config = (nodeId: string, secret: string | readonly string[]): HandshakeConfig => ({ nodeId, secret, clusterName: '', maxFrameBytes: 1 << 20 });
const admitAll = (): null => null;

function handshake(d: DialerHandshake, l: ListenerHandshake): { dialerSaw: PeerIdentity; listenerSaw: PeerIdentity } {
  const challenge = l.receive(FrameKind.hello, d.hello().subarray(5)).send!;
  const auth = d.receive(FrameKind.challenge, challenge.subarray(5)).send!;
  const done = l.receive(FrameKind.auth, auth.subarray(5));
  const ready = d.receive(FrameKind.ready, done.send!.subarray(5));
  return { dialerSaw: ready.peer!, listenerSaw: done.peer! };
}

const connects = (dialer: readonly string[], listener: readonly string[]): boolean => {
  try {
    handshake(new DialerHandshake(config('a', dialer), 'b'), new ListenerHandshake(config('b', listener), admitAll));
    return true;
  } catch (e) {
    if (e instanceof HandshakeError) return false;
    throw e;
  }
};

describe('secret rotation in the handshake', () => {
  test('every two neighbouring steps of the rotation connect, whichever side dials', () => {
    for (let i = 0; i < STEPS.length; i++) {
      for (let j = Math.max(0, i - 1); j <= Math.min(STEPS.length - 1, i + 1); j++) {
        expect({ dialer: i, listener: j, ok: connects(STEPS[i]!, STEPS[j]!) }).toEqual({ dialer: i, listener: j, ok: true });
      }
    }
  });

  test('skipping a step refuses some pair: why the rotation takes three rolls', () => {
    // [S1] → [S2, S1] directly: the rolled node signs with S2, which a node still on [S1] cannot check.
    expect(connects([S1], [S2, S1])).toBe(false);
    // [S1, S2] → [S2] directly: a node on [S1, S2] signs with S1, which a node on [S2] no longer accepts.
    expect(connects([S2], [S1, S2])).toBe(false);
    // And the end state keeps nothing of the old secret.
    expect(connects([S1], [S2])).toBe(false);
    expect(connects([S2], [S1])).toBe(false);
  });

  test('an accepted secret does not let a dialer in: the listener requires its first', () => {
    // A dialer that knows only S1 cannot check the CHALLENGE signed with S2, and an AUTH made with S1 is refused.
    const l = new ListenerHandshake(config('b', [S2, S1]), admitAll);
    const d = new DialerHandshake(config('a', [S1]), 'b');
    const hello = d.hello().subarray(5);
    const challenge = l.receive(FrameKind.hello, hello).send!.subarray(5);
    expect(() => d.receive(FrameKind.challenge, challenge)).toThrow(/b failed authentication/);
    const forged = createHmac('sha256', S1).update('catga/dialer/v1').update(hello).update(challenge).digest();
    expect(() => l.receive(FrameKind.auth, forged)).toThrow(/a failed authentication/);
  });

  test('a single secret and a one-element list are the same on the wire', () => {
    expect(connects([S1], [S1])).toBe(true);
    const r = handshake(new DialerHandshake(config('a', S1), 'b'), new ListenerHandshake(config('b', [S1]), admitAll));
    expect(r.listenerSaw.id).toBe('a');
  });

  test('an empty list is refused', () => {
    expect(() => new DialerHandshake(config('a', []), 'b')).toThrow(/empty list/);
  });
});

describe('secret rotation on running networks', () => {
  jest.setTimeout(30_000);

  test('three members rolled one at a time through the four steps stay connected, and the old secret is out at the end', async () => {
    const ids = ['a', 'b', 'c'];
    const c = await testCluster(ids, { secret: [S1] }, []);
    try {
      for (const id of ids) await c.start(id);
      await fullyConnected(c);
      for (const step of STEPS.slice(1)) {
        for (const id of ids) {
          await c.nets.get(id)!.close();
          await c.start(id, { secret: step });
          // The restarted node reaches both others (one dials it, it dials the other), each still on its own step.
          await fullyConnected(c);
          for (const other of ids) if (other !== id) expect(c.loggers.get(other)!.warned(/failed authentication/)).toBe(false);
        }
      }
      // A node that missed the rotation (still on the old secret) is refused by everyone.
      await c.nets.get('b')!.close();
      await c.start('b', { secret: S1 });
      await sleep(800);
      expect(connected(c.nets.get('b')!, 'a')).toBe(false);
      expect(connected(c.nets.get('b')!, 'c')).toBe(false);
      expect(connected(c.nets.get('a')!, 'c')).toBe(true);
    } finally {
      await c.close();
    }
  });
});

describe('secret options', () => {
  const three = ['a=127.0.0.1:7001', 'b=127.0.0.1:7002', 'c=127.0.0.1:7003'];

  test('a list in code, or CATGA_SECRET plus CATGA_SECRET_ACCEPTED from the environment', () => {
    expect(resolveClusterOptions({ nodeId: 'a', members: three, secret: [S2, S1] }, {}).secret).toEqual([S2, S1]);
    const env = { CATGA_NODE_ID: 'a', CATGA_MEMBERS: three.join(','), CATGA_SECRET: S2, CATGA_SECRET_ACCEPTED: S1 };
    expect(resolveClusterOptions({}, env).secret).toEqual([S2, S1]);
    expect(resolveClusterOptions({}, { ...env, CATGA_SECRET_ACCEPTED: '' }).secret).toBe(S2);
  });

  test('every secret of a list is checked', () => {
    expect(() => resolveClusterOptions({ nodeId: 'a', members: three, secret: [] }, {})).toThrow(/option secret: expected .*non-empty list/);
    expect(() => resolveClusterOptions({ nodeId: 'a', members: three, secret: [S1, 'short'] }, {})).toThrow(/option secret/);
  });
});
