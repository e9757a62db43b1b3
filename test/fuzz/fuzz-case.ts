import { FrameKind } from '../../lib/transport/frame.js';
import { DialerHandshake } from '../../lib/transport/handshake.js';
import type { Prng } from '../support/prng.js';
import { MUTATORS, MUTATOR_NAMES, randomBytes, randomFrame } from './mutations.js';
import { expectAfterAuth, expectBeforeAuth, type Expectation, type Identity } from './oracle.js';
import type { RecordedFrame } from './recording-proxy.js';

/** How the bytes go out: in one write, in a few pieces, or a few bytes at a time by a slow peer that stops early. */
export type Delivery = 'whole' | 'pieces' | 'dribble';

/** One fuzz connection: who it claims to be, what it sends, and what the node must do about it. */
export interface FuzzCase {
  readonly seq: number;
  /** 'auth': a genuine handshake with the secret first, then the fuzz frames as an authenticated member. */
  readonly mode: 'preauth' | 'auth';
  readonly target: string;
  /** The member id an 'auth' case authenticates as. */
  readonly claimed: string | null;
  /** Bytes sent (after the handshake for 'auth'), genuine prefix frames included. */
  readonly bytes: Buffer;
  /** Random or mutated frames among them (genuine and replayed handshake frames are not counted). */
  readonly fuzzFrames: number;
  /** What produced each fuzz frame, for the summary. */
  readonly sources: readonly string[];
  readonly delivery: Delivery;
  readonly expect: Expectation;
}

export interface CaseMaterial {
  readonly recorded: readonly RecordedFrame[];
  readonly handshakeFrames: readonly Buffer[];
  readonly raftFrames: readonly Buffer[];
  /** CALL, REPLY and PING: frames an authenticated connection survives when their payload is bad. */
  readonly callFrames: readonly Buffer[];
  /** HELLO and AUTH of one recorded connection, for replays. */
  readonly replays: readonly { readonly hello: Buffer; readonly auth: Buffer; readonly listener: string }[];
}

export function material(recorded: readonly RecordedFrame[]): CaseMaterial {
  const isHandshake = (k: number) => k >= FrameKind.hello && k <= FrameKind.reject;
  const replays: { hello: Buffer; auth: Buffer; listener: string }[] = [];
  for (let i = 0; i < recorded.length; i++) {
    const f = recorded[i]!;
    if (f.kind !== FrameKind.hello) continue;
    const auth = recorded.slice(i + 1).find((g) => g.kind === FrameKind.auth && g.dialer === f.dialer && g.listener === f.listener);
    if (auth) replays.push({ hello: f.bytes, auth: auth.bytes, listener: f.listener });
  }
  return {
    recorded,
    handshakeFrames: recorded.filter((f) => isHandshake(f.kind)).map((f) => f.bytes),
    raftFrames: recorded.filter((f) => f.kind === FrameKind.raft).map((f) => f.bytes),
    callFrames: recorded.filter((f) => f.kind === FrameKind.call || f.kind === FrameKind.reply || f.kind === FrameKind.ping).map((f) => f.bytes),
    replays,
  };
}

/** One fuzz frame and what made it. */
function fuzzFrame(rng: Prng, m: CaseMaterial, preferTraffic: boolean): { bytes: Buffer; source: string } {
  const roll = rng.next();
  if (roll < 0.08) return { bytes: randomFrame(rng), source: 'random frame' };
  if (roll < 0.12) return { bytes: randomBytes(rng), source: 'random bytes' };
  // An authenticated connection survives CALLs and REPLYs with bad payloads (answered with an error, or ignored), so
  // those make up most of its frames; a spoilt Raft or handshake frame ends it.
  const pools = preferTraffic
    ? [m.raftFrames, m.raftFrames, m.callFrames, m.callFrames, m.callFrames, m.callFrames, m.handshakeFrames]
    : [m.handshakeFrames, m.raftFrames, m.callFrames];
  const pool = rng.pick(pools.filter((p) => p.length > 0));
  const base = rng.pick(pool);
  if (roll < 0.17) return { bytes: base, source: 'recorded frame, unchanged' };
  const name = rng.pick(MUTATOR_NAMES);
  const other = rng.pick(m.recorded).bytes;
  return { bytes: MUTATORS[name]!(rng, base, other), source: name };
}

/** Ids a HELLO may claim: members, strangers, the empty id, and one that tries to forge a line in the node's log. */
const CLAIMS = ['n0', 'n1', 'n2', 'n3', 'mallory', '', 'n0: all good\n[n9] forged log line'];

/**
 * Draws a case. Fuzz frames are added one at a time, each checked with the oracle: the case ends with the first
 * frame the node must refuse (later ones would never be read), and a frame that would reach the Raft core or the
 * router well-formed is drawn again.
 */
export function drawCase(seq: number, rng: Prng, m: CaseMaterial, id: Identity, mode: 'preauth' | 'auth', claimed: string): FuzzCase {
  const parts: Buffer[] = [];
  const sources: string[] = [];
  if (mode === 'preauth') {
    const opening = rng.next();
    if (opening < 0.05 && m.replays.length > 0) {
      // A genuine handshake recorded from another cluster, replayed whole: valid HELLO, then an AUTH for a nonce
      // this node never sent.
      const r = rng.pick(m.replays);
      parts.push(r.hello, r.auth);
      sources.push('replayed HELLO and AUTH');
    } else if (opening < 0.4) {
      // A real HELLO (right, wrong or no secret, various claimed ids) so that the fuzz hits the later steps.
      const secret = rng.pick([id.secret, id.secret, 'not-the-secret-1234', undefined]);
      parts.push(new DialerHandshake({ nodeId: rng.pick(CLAIMS), secret, clusterName: '', maxFrameBytes: 1 << 20 }, id.target).hello());
    }
  }
  const check = (bytes: Buffer): Expectation =>
    mode === 'preauth' ? expectBeforeAuth(id, bytes) : expectAfterAuth(id, claimed, bytes);
  let expect = check(Buffer.concat(parts));
  const wanted = mode === 'auth' ? rng.int(1, 41) : rng.int(1, 4);
  let fuzzFrames = 0;
  for (let n = 0; n < wanted && expect.kind === 'open'; n++) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const f = fuzzFrame(rng, m, mode === 'auth');
      const next = check(Buffer.concat([...parts, f.bytes]));
      if (next.kind === 'unsafe') continue;
      parts.push(f.bytes);
      sources.push(f.source);
      fuzzFrames++;
      expect = next;
      break;
    }
  }
  let bytes = Buffer.concat(parts);
  const delivery: Delivery = rng.chance(0.7) ? 'whole' : rng.chance(0.7) ? 'pieces' : 'dribble';
  if (delivery === 'dribble' && bytes.length > 1) {
    // A slow peer that gives up part way: only what it sent counts.
    bytes = bytes.subarray(0, rng.int(1, Math.min(bytes.length, 120) + 1));
    expect = check(bytes);
  }
  return { seq, mode, target: id.target, claimed: mode === 'auth' ? claimed : null, bytes, fuzzFrames, sources, delivery, expect };
}
