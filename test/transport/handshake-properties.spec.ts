/**
 * Properties of the handshake on hostile input (fast-check): arbitrary frames in any order, transcripts altered by a
 * man in the middle, replays across sessions, wrong secrets. handshake.spec.ts has the example-based tests.
 */
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { FrameError, HandshakeError } from '../../lib/transport/errors.js';
import { FRAME_HEADER_BYTES, FrameKind } from '../../lib/transport/frame.js';
import { DialerHandshake, ListenerHandshake, type HandshakeConfig, type HandshakeStep } from '../../lib/transport/handshake.js';

const config = (nodeId: string, secret = 'shared-secret-0123'): HandshakeConfig => ({ nodeId, secret, clusterName: '', maxFrameBytes: 1 << 20 });
const admitAll = (): null => null;
const payloadOf = (frame: Buffer): Buffer => frame.subarray(FRAME_HEADER_BYTES);

/** Runs `fn`; a HandshakeError or FrameError is a refusal (returns null), anything else is a bug and rethrown. */
function refusedOrStep(fn: () => HandshakeStep): HandshakeStep | null {
  try {
    return fn();
  } catch (e) {
    if (e instanceof HandshakeError || e instanceof FrameError) return null;
    throw e;
  }
}

const kindArb = fc.integer({ min: 0, max: 12 });
const bytesArb = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b));
/** Alters a buffer: flips bytes (never to the same value), cuts it, or extends it. */
const alteration = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), flips: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);
type Alteration = typeof alteration extends fc.Arbitrary<infer T> ? T : never;

function alter(buf: Buffer, a: Alteration): Buffer {
  const out = Buffer.from(buf);
  if (a.op === 'cut') return out.subarray(0, a.at % out.length);
  if (a.op === 'extend') return Buffer.concat([out, a.extra]);
  // Distinct positions, so two flips never cancel out.
  const seen = new Set<number>();
  for (const f of a.flips) {
    const at = f.at % out.length;
    if (seen.has(at)) continue;
    seen.add(at);
    out[at] ^= f.xor;
  }
  return out;
}

describe('handshake on hostile input', () => {
  it('a listener with a secret never authenticates a peer sending arbitrary frames, and only ever refuses with a reason', () => {
    const genuineHello = payloadOf(new DialerHandshake(config('a'), 'b').hello());
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.record({ kind: kindArb, payload: fc.oneof(bytesArb, fc.constant(genuineHello)) }), { minLength: 1, maxLength: 5 }),
        (helloFirst, frames) => {
          const l = new ListenerHandshake(config('b'), admitAll);
          const sequence = helloFirst ? [{ kind: FrameKind.hello, payload: genuineHello }, ...frames] : frames;
          for (const f of sequence) {
            const step = refusedOrStep(() => l.receive(f.kind, f.payload));
            if (step === null) return; // refused: the connection is closed
            expect(step.peer).toBeNull();
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('a dialer with a secret never answers an arbitrary CHALLENGE and never takes a READY it was not owed', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ kind: kindArb, payload: bytesArb }), { minLength: 1, maxLength: 4 }), (frames) => {
        const d = new DialerHandshake(config('a'), 'b');
        for (const f of frames) {
          const step = refusedOrStep(() => d.receive(f.kind, f.payload));
          if (step === null) return;
          expect(step).toEqual({ send: null, peer: null }); // unreachable: anything random is refused
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('any alteration of HELLO, CHALLENGE or AUTH by a man in the middle makes the handshake fail', () => {
    fc.assert(
      fc.property(fc.constantFrom('hello', 'challenge', 'auth'), alteration, (which, a) => {
        const d = new DialerHandshake(config('a'), 'b');
        const l = new ListenerHandshake(config('b'), admitAll);
        let hello = payloadOf(d.hello());
        if (which === 'hello') hello = alter(hello, a);
        const challengeStep = refusedOrStep(() => l.receive(FrameKind.hello, hello));
        if (challengeStep === null) return;
        let challenge = payloadOf(challengeStep.send!);
        if (which === 'challenge') challenge = alter(challenge, a);
        const authStep = refusedOrStep(() => d.receive(FrameKind.challenge, challenge));
        if (authStep === null) return;
        let auth = payloadOf(authStep.send!);
        if (which === 'auth') auth = alter(auth, a);
        const done = refusedOrStep(() => l.receive(FrameKind.auth, auth));
        expect(done?.peer ?? null).toBeNull(); // the listener must have refused by now
      }),
      { numRuns: 5000 },
    );
  });

  it('a recorded AUTH or CHALLENGE replayed on a new connection is refused', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 40 }), (secret) => {
        const d1 = new DialerHandshake(config('a', secret), 'b');
        const l1 = new ListenerHandshake(config('b', secret), admitAll);
        const hello = payloadOf(d1.hello());
        const challenge = payloadOf(l1.receive(FrameKind.hello, hello).send!);
        const auth = payloadOf(d1.receive(FrameKind.challenge, challenge).send!);
        expect(l1.receive(FrameKind.auth, auth).peer?.id).toBe('a');

        // The same HELLO and AUTH against a listener with a fresh nonce.
        const l2 = new ListenerHandshake(config('b', secret), admitAll);
        l2.receive(FrameKind.hello, hello);
        expect(refusedOrStep(() => l2.receive(FrameKind.auth, auth))).toBeNull();
        // The recorded CHALLENGE sent to a dialer with a fresh nonce (an impostor listener).
        const d2 = new DialerHandshake(config('a', secret), 'b');
        expect(refusedOrStep(() => d2.receive(FrameKind.challenge, challenge))).toBeNull();
      }),
      { numRuns: 300 },
    );
  });

  it('different secrets never authenticate, in either direction', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 40 }), fc.string({ minLength: 8, maxLength: 40 }), (s1, s2) => {
        fc.pre(s1 !== s2);
        const d = new DialerHandshake(config('a', s1), 'b');
        const l = new ListenerHandshake(config('b', s2), admitAll);
        const challenge = payloadOf(l.receive(FrameKind.hello, payloadOf(d.hello())).send!);
        expect(refusedOrStep(() => d.receive(FrameKind.challenge, challenge))).toBeNull();
        // A dialer that ignored the bad MAC could still not produce an AUTH the listener accepts: try one made
        // with its own (wrong) secret over the very same transcript.
        const forger = new DialerHandshake(config('a', s1), 'b');
        const l2 = new ListenerHandshake(config('b', s2), admitAll);
        const c2 = payloadOf(l2.receive(FrameKind.hello, payloadOf(forger.hello())).send!);
        expect(refusedOrStep(() => l2.receive(FrameKind.auth, forgedAuth(s1, forger, c2)))).toBeNull();
        // The same computation is what a listener holding s1 accepts: the refusal above is the secret's doing.
        const l3 = new ListenerHandshake(config('b', s1), admitAll);
        const c3 = payloadOf(l3.receive(FrameKind.hello, payloadOf(forger.hello())).send!);
        expect(l3.receive(FrameKind.auth, forgedAuth(s1, forger, c3)).peer?.id).toBe('a');
      }),
      { numRuns: 300 },
    );
  });
});

/** The AUTH a dialer holding `secret` would send for this transcript, computed as the dialer does. */
function forgedAuth(secret: string, d: DialerHandshake, challenge: Buffer): Buffer {
  return createHmac('sha256', secret).update('catga/dialer/v1').update(payloadOf(d.hello())).update(challenge).digest();
}
