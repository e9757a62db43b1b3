/**
 * Reads the node's log lines during a fuzz run: which connection (by the fuzzer's local port) was dropped and why,
 * and anything that should never be there — an internal error, an exception from a handler, or a line the node did
 * not write itself (a stack trace, or text a peer smuggled into the log).
 */

export interface Drop {
  readonly node: string;
  readonly port: number;
  readonly reason: string;
}

const LINE = /^\[(n\d)\] /;
const DROP =
  /^\[(n\d)\] dropping connection (?:from|to) (?:\S+ \()?127\.0\.0\.1:(\d+)\)?(?: claiming to be "(?:[^"\\]|\\.)*")?: (.*)$/;
const TROUBLE = /internal error|the raft handler threw|Uncaught|Unhandled|TypeError|RangeError|ReferenceError|stopping this node/;

export type LineKind = { readonly kind: 'drop'; readonly drop: Drop } | { readonly kind: 'trouble' | 'foreign' | 'other'; readonly line: string };

export function classifyLine(line: string): LineKind {
  const d = DROP.exec(line);
  if (d) {
    const drop = { node: d[1]!, port: Number(d[2]), reason: d[3]! };
    return TROUBLE.test(drop.reason) ? { kind: 'trouble', line } : { kind: 'drop', drop };
  }
  if (!LINE.test(line)) return { kind: 'foreign', line };
  return TROUBLE.test(line) ? { kind: 'trouble', line } : { kind: 'other', line };
}

/** Known refusals by category; the rest by their text with numbers and quoted parts blanked. */
const CATEGORIES: readonly [RegExp, (m: RegExpExecArray) => string][] = [
  [/exceeds the limit of (\d+) bytes/, (m) => `frame over the limit of ${m[1]} bytes`],
  [/frame of length 0/, () => 'frame of length 0'],
  [/unknown frame kind/, () => 'unknown frame kind'],
  [/unexpected (\w+) frame during the handshake/, (m) => `${m[1]} frame during the handshake`],
  [/unexpected (\w+) frame after authentication/, (m) => `${m[1]} frame after authentication`],
  [/refused the handshake/, () => 'REJECT from the peer'],
  [/^(HELLO|CHALLENGE|CALL|REPLY|raft message): /, (m) => `malformed ${m[1]}`],
  [/^REPLY: unknown status/, () => 'malformed REPLY'],
  [/raft message from .* on the connection of/, () => 'raft message in another member\'s name'],
  [/failed authentication/, () => 'failed authentication (wrong secret or replayed handshake)'],
  [/protocol version mismatch/, () => 'protocol version mismatch'],
  [/unknown auth mode/, () => 'unknown auth mode'],
  [/requires a secret and the peer has none/, () => 'peer without a secret'],
  [/was started with members \[/, () => 'a different static member list'],
  [/not the other way round/, () => 'wrong dialing direction'],
  [/this node's own id/, () => 'claims the node\'s own id'],
  [/^this is node \S+, not/, () => 'meant for another member'],
  [/cluster name mismatch/, () => 'cluster name mismatch'],
  [/advertises a frame limit/, () => 'frame limit below the minimum'],
  [/handshake not finished within/, () => 'handshake timeout'],
];

export function reasonCategory(reason: string): string {
  for (const [re, name] of CATEGORIES) {
    const m = re.exec(reason);
    if (m) return name(m);
  }
  return reason.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/\d+/g, 'N').slice(0, 80);
}
