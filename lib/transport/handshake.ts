import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NodeId } from '../raft/index.js';
import { ByteReader, putStr16, str16Size } from './binary.js';
import { HandshakeError } from './errors.js';
import { FRAME_HEADER_BYTES, FrameKind, PRE_AUTH_MAX_FRAME_BYTES, allocFrame, frame, kindName } from './frame.js';

/**
 * Mutual HMAC-SHA256 challenge–response on the shared secret, run before any other frame is accepted:
 *
 *   dialer   → HELLO     u16 version | u8 auth mode | str16 dialerId | str16 listenerId (whom it meant to reach; '' =
 *                        whoever listens there, for a node joining through a seed address) | str16 clusterName |
 *                        str16 bootstrap (the static member list it started from, '' for none) | u32 maxFrameBytes |
 *                        nonceA (32)
 *   listener → CHALLENGE str16 listenerId | u32 maxFrameBytes | nonceB (32) | u8 mac length | macB
 *   dialer   → AUTH      macA
 *   listener → READY     (empty)
 *
 *   macB = HMAC(secret, "catga/listener/v1" | HELLO payload | CHALLENGE payload up to macB)
 *   macA = HMAC(secret, "catga/dialer/v1"   | HELLO payload | CHALLENGE payload)
 *
 * The MACs cover the whole transcript, so both nonces, both ids and the advertised limits are bound; the labels keep
 * a listener's MAC from being usable as a dialer's. Each side picks a fresh nonce per connection, so a recorded AUTH
 * fails on a new connection. Either side may send REJECT with a reason before closing. Without a secret the same
 * frames carry empty MACs: ids are exchanged, nothing is proven. See docs/transport.md for what this does not protect.
 *
 * Several secrets (rotation): a listener proves and requires its first; a dialer accepts a listener that proves any of
 * its secrets and answers with that one. The frames are the same, so nodes with one secret and nodes with a list
 * interoperate.
 */

/** 2: Raft messages carry the transfer fence, snapshots a configuration, HELLO the bootstrap list. */
export const PROTOCOL_VERSION = 2;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
const AUTH_NONE = 0;
const AUTH_HMAC = 1;
const LISTENER_LABEL = Buffer.from('catga/listener/v1');
const DIALER_LABEL = Buffer.from('catga/dialer/v1');
const MAX_REJECT_CHARS = 500;

export interface HandshakeConfig {
  readonly nodeId: NodeId;
  /**
   * Undefined: development mode, ids are exchanged but not authenticated. A list rotates secrets without downtime: the
   * first is the one this node proves as a listener and requires from dialers; as a dialer it accepts a listener that
   * proves any of them, and answers with that one (see secretsOf and docs/deploy.md).
   */
  readonly secret: string | readonly string[] | undefined;
  /** Checked only when both sides set one; '' = unset. */
  readonly clusterName: string;
  /** This node's frame limit after authentication, told to the peer so it never sends more. */
  readonly maxFrameBytes: number;
  /**
   * The static member list this node was started with, canonical ('id=host:port,…' sorted), or '' when it joins by
   * seed. Two nodes started from different lists belong to different clusters: their handshake is refused.
   */
  readonly bootstrap?: string;
}

export interface PeerIdentity {
  readonly id: NodeId;
  /** The largest frame the peer accepts. */
  readonly maxFrameBytes: number;
}

/** What the connection does after a handshake frame: write `send` (if any); `peer` is set once authenticated. */
export interface HandshakeStep {
  readonly send: Buffer | null;
  readonly peer: PeerIdentity | null;
}

interface Hello {
  readonly version: number;
  readonly authMode: number;
  readonly dialerId: NodeId;
  readonly listenerId: NodeId;
  readonly clusterName: string;
  readonly bootstrap: string;
  readonly maxFrameBytes: number;
  readonly nonce: Buffer;
}

export function encodeHello(h: Hello): Buffer {
  const size =
    2 +
    1 +
    str16Size(h.dialerId, 'node id') +
    str16Size(h.listenerId, 'node id') +
    str16Size(h.clusterName, 'clusterName') +
    str16Size(h.bootstrap, 'bootstrap member list');
  const buf = Buffer.allocUnsafe(size + 4 + NONCE_BYTES);
  let o = buf.writeUInt16LE(h.version, 0);
  o = buf.writeUInt8(h.authMode, o);
  o = putStr16(buf, o, h.dialerId);
  o = putStr16(buf, o, h.listenerId);
  o = putStr16(buf, o, h.clusterName);
  o = putStr16(buf, o, h.bootstrap);
  o = buf.writeUInt32LE(h.maxFrameBytes, o);
  h.nonce.copy(buf, o);
  return buf;
}

/** Reads the version alone first, so a future layout is refused by version rather than misparsed. */
function decodeHello(payload: Buffer): Hello {
  const r = new ByteReader(payload, 'HELLO');
  const version = r.u16('version');
  if (version !== PROTOCOL_VERSION) {
    throw new HandshakeError(
      `protocol version mismatch: peer speaks ${version}, this node ${PROTOCOL_VERSION}`,
      `protocol version ${version} is not supported; this node speaks ${PROTOCOL_VERSION}`,
    );
  }
  const authMode = r.u8('auth mode');
  const dialerId = r.str16('dialer id');
  const listenerId = r.str16('listener id');
  const clusterName = r.str16('cluster name');
  const bootstrap = r.str16('bootstrap member list');
  const maxFrameBytes = r.u32('max frame bytes');
  const nonce = r.view(NONCE_BYTES, 'nonce');
  r.end();
  return { version, authMode, dialerId, listenerId, clusterName, bootstrap, maxFrameBytes, nonce };
}

/** A short hash of a member list, to tell two lists apart at a glance in logs. */
export function listHash(list: string): string {
  return createHash('sha256').update(list).digest('hex').slice(0, 12);
}

/**
 * The secrets of a config, the current one first; undefined without any. The listener signs and verifies with the first
 * only; the dialer accepts a listener's MAC made with any of them and answers with the same secret. A rolling change
 * from S1 to S2 therefore goes [S1] → [S1, S2] → [S2, S1] → [S2] one node at a time, every pair of neighbouring steps
 * sharing a secret that the listener uses and the dialer accepts.
 */
export function secretsOf(secret: string | readonly string[] | undefined): readonly string[] | undefined {
  if (secret === undefined) return undefined;
  const list = typeof secret === 'string' ? [secret] : secret;
  if (list.length === 0) throw new RangeError('secret: an empty list; give at least one secret, or none at all');
  return list;
}

function hmac(secret: string, label: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', secret).update(label);
  for (const p of parts) h.update(p);
  return h.digest();
}

function macMatches(expected: Buffer, actual: Buffer): boolean {
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function checkPeerLimit(n: number, who: string): void {
  if (n < PRE_AUTH_MAX_FRAME_BYTES) {
    throw new HandshakeError(`${who} advertises a frame limit of ${n} bytes, below the minimum ${PRE_AUTH_MAX_FRAME_BYTES}`);
  }
}

function rejected(kind: number, payload: Buffer, who: string): HandshakeError {
  if (kind === FrameKind.reject) {
    return new HandshakeError(`${who} refused the handshake: ${payload.toString('utf8').slice(0, MAX_REJECT_CHARS)}`);
  }
  return new HandshakeError(`unexpected ${kindName(kind)} frame during the handshake`);
}

/** A REJECT frame; the reason is cut short so it stays far below the pre-authentication frame limit. */
export function rejectFrame(reason: string): Buffer {
  return frame(FrameKind.reject, Buffer.from(reason.slice(0, MAX_REJECT_CHARS), 'utf8'));
}

/**
 * The dialing side. `target` is the member whose address was dialed; anyone else answering is refused. '' accepts
 * whoever answers (a node joining through a seed address); the secret still authenticates it.
 */
export class DialerHandshake {
  private readonly helloPayload: Buffer;
  private challengePayload: Buffer | null = null;
  private listenerMax = 0;
  private listenerId: NodeId;

  constructor(
    private readonly cfg: HandshakeConfig,
    private readonly target: NodeId,
    nonce: Buffer = randomBytes(NONCE_BYTES),
  ) {
    this.listenerId = target;
    this.helloPayload = encodeHello({
      version: PROTOCOL_VERSION,
      authMode: secretsOf(cfg.secret) === undefined ? AUTH_NONE : AUTH_HMAC,
      dialerId: cfg.nodeId,
      listenerId: target,
      clusterName: cfg.clusterName,
      bootstrap: cfg.bootstrap ?? '',
      maxFrameBytes: cfg.maxFrameBytes,
      nonce,
    });
  }

  hello(): Buffer {
    return frame(FrameKind.hello, this.helloPayload);
  }

  receive(kind: number, payload: Buffer): HandshakeStep {
    if (kind === FrameKind.challenge && this.challengePayload === null) return this.onChallenge(payload);
    if (kind === FrameKind.ready && this.challengePayload !== null) {
      if (payload.length !== 0) throw new HandshakeError(`READY frame with ${payload.length} unexpected bytes`);
      return { send: null, peer: { id: this.listenerId, maxFrameBytes: this.listenerMax } };
    }
    throw rejected(kind, payload, this.target);
  }

  private onChallenge(payload: Buffer): HandshakeStep {
    const r = new ByteReader(payload, 'CHALLENGE');
    const listenerId = r.str16('listener id');
    const maxFrameBytes = r.u32('max frame bytes');
    r.view(NONCE_BYTES, 'nonce');
    const signedUpTo = payload.length - r.remaining;
    const macB = r.view(r.u8('mac length'), 'mac');
    r.end();
    if (this.target === '') this.listenerId = listenerId;
    else if (listenerId !== this.target) {
      throw new HandshakeError(
        `dialed ${this.target} but ${JSON.stringify(listenerId)} answered; check the members addresses`,
        `this node dialed ${this.target}, not ${listenerId}`,
      );
    }
    checkPeerLimit(maxFrameBytes, this.listenerId);
    const secrets = secretsOf(this.cfg.secret);
    let macA: Buffer = Buffer.alloc(0);
    if (secrets === undefined) {
      if (macB.length !== 0) throw new HandshakeError(`${this.listenerId} sent a MAC but this node has no secret configured`);
    } else {
      // Any secret this node accepts; the answer is made with the one the listener proved, which it requires.
      const signed = payload.subarray(0, signedUpTo);
      const secret = secrets.find((s) => macMatches(hmac(s, LISTENER_LABEL, this.helloPayload, signed), macB));
      if (secret === undefined) {
        const which = secrets.length === 1 ? 'its MAC does not match' : `its MAC matches none of this node's ${secrets.length} secrets`;
        throw new HandshakeError(`${this.listenerId} failed authentication (${which}: are the secrets the same?)`, 'authentication failed');
      }
      macA = hmac(secret, DIALER_LABEL, this.helloPayload, payload);
    }
    this.challengePayload = payload;
    this.listenerMax = maxFrameBytes;
    return { send: frame(FrameKind.auth, macA), peer: null };
  }
}

/**
 * The accepting side. `admit(dialerId)` applies the caller's policy (membership, connection rule) and returns the
 * reason to refuse, or null.
 */
export class ListenerHandshake {
  private hello: Hello | null = null;
  private claimed: NodeId | null = null;
  private helloPayload: Buffer = Buffer.alloc(0);
  private challengePayload: Buffer = Buffer.alloc(0);

  constructor(
    private readonly cfg: HandshakeConfig,
    private readonly admit: (dialerId: NodeId) => string | null,
    private readonly nonce: Buffer = randomBytes(NONCE_BYTES),
  ) {}

  /** The id the dialer claims, once its HELLO was read (not proven until the handshake completes). */
  get claimedId(): NodeId | null {
    return this.claimed;
  }

  receive(kind: number, payload: Buffer): HandshakeStep {
    if (kind === FrameKind.hello && this.hello === null) return this.onHello(payload);
    if (kind === FrameKind.auth && this.hello !== null) return this.onAuth(payload);
    throw rejected(kind, payload, this.hello === null ? 'the peer' : this.hello.dialerId);
  }

  private onHello(payload: Buffer): HandshakeStep {
    const h = decodeHello(payload);
    this.claimed = h.dialerId;
    const me = this.cfg.nodeId;
    const hasSecret = secretsOf(this.cfg.secret) !== undefined;
    if (h.authMode !== AUTH_NONE && h.authMode !== AUTH_HMAC) throw new HandshakeError(`unknown auth mode ${h.authMode}`);
    if ((h.authMode === AUTH_HMAC) !== hasSecret) {
      const reason = hasSecret ? 'this node requires a secret and the peer has none' : 'the peer uses a secret and this node has none';
      throw new HandshakeError(`${reason}; configure the same secret on every member`, reason);
    }
    if (h.dialerId === me) throw new HandshakeError(`peer claims this node's own id ${me}`, `${me} is this node's own id`);
    const refusal = this.admit(h.dialerId);
    if (refusal !== null) throw new HandshakeError(refusal, refusal);
    if (h.listenerId !== me && h.listenerId !== '') {
      const reason = `this is node ${me}, not ${h.listenerId}; check the members addresses`;
      throw new HandshakeError(reason, reason);
    }
    if (h.clusterName !== '' && this.cfg.clusterName !== '' && h.clusterName !== this.cfg.clusterName) {
      throw new HandshakeError(
        `cluster name mismatch: the peer is in ${JSON.stringify(h.clusterName)}, this node in ${JSON.stringify(this.cfg.clusterName)}`,
        `cluster name mismatch: this node is not in ${JSON.stringify(h.clusterName)}`,
      );
    }
    const ours = this.cfg.bootstrap ?? '';
    if (h.bootstrap !== '' && ours !== '' && h.bootstrap !== ours) {
      throw new HandshakeError(
        `${h.dialerId} was started with members [${h.bootstrap}] (hash ${listHash(h.bootstrap)}), this node with [${ours}] ` +
          `(hash ${listHash(ours)}); give every member the same list (or start new members with join instead)`,
        `member lists differ: ${this.cfg.nodeId} was started with [${ours}] (hash ${listHash(ours)}), you with [${h.bootstrap}] (hash ${listHash(h.bootstrap)})`,
      );
    }
    checkPeerLimit(h.maxFrameBytes, h.dialerId);
    this.hello = h;
    this.helloPayload = Buffer.from(payload); // kept past this chunk for the MACs
    const unsigned = str16Size(me, 'node id') + 4 + NONCE_BYTES;
    const secret = secretsOf(this.cfg.secret)?.[0]; // the current one: listeners prove and require only this
    const macLen = secret === undefined ? 0 : MAC_BYTES;
    const out = allocFrame(FrameKind.challenge, unsigned + 1 + macLen);
    let o = putStr16(out, FRAME_HEADER_BYTES, me);
    o = out.writeUInt32LE(this.cfg.maxFrameBytes, o);
    o += this.nonce.copy(out, o);
    if (secret !== undefined) {
      const macB = hmac(secret, LISTENER_LABEL, this.helloPayload, out.subarray(FRAME_HEADER_BYTES, o));
      o = out.writeUInt8(MAC_BYTES, o);
      macB.copy(out, o);
    } else {
      out.writeUInt8(0, o);
    }
    this.challengePayload = out.subarray(FRAME_HEADER_BYTES);
    return { send: out, peer: null };
  }

  private onAuth(macA: Buffer): HandshakeStep {
    const h = this.hello as Hello;
    const secret = secretsOf(this.cfg.secret)?.[0];
    if (secret === undefined) {
      if (macA.length !== 0) throw new HandshakeError(`${h.dialerId} sent a MAC but this node has no secret configured`);
    } else {
      const expected = hmac(secret, DIALER_LABEL, this.helloPayload, this.challengePayload);
      if (!macMatches(expected, macA)) {
        throw new HandshakeError(
          `${h.dialerId} failed authentication (its MAC does not match: wrong secret or a replayed handshake)`,
          'authentication failed',
        );
      }
    }
    return { send: frame(FrameKind.ready), peer: { id: h.dialerId, maxFrameBytes: h.maxFrameBytes } };
  }
}
