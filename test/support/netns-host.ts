/**
 * The host side of NetnsLab: running iproute2 and iptables, listing what exists, choosing a free subnet, and
 * probing whether namespaces can be used at all.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function run(cmd: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

export function tryRun(cmd: string, args: readonly string[]): boolean {
  try {
    run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

export function runAsync(cmd: string, args: readonly string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || `exit ${code ?? signal}`}`))));
    child.stdin.end(input);
  });
}

export function linkNames(): string[] {
  // "12: name@if11: <...>": the name ends at '@' (veth) or ':'.
  return run('ip', ['-o', 'link', 'show'])
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
}

export function namespaceNames(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The first 10.213.y.0/24 that no address or route of the root namespace overlaps. */
export function freeSubnet(): string {
  const text = `${run('ip', ['-o', '-4', 'addr', 'show'])}\n${run('ip', ['-4', 'route', 'show', 'table', 'all'])}`;
  // Every IPv4 address or prefix mentioned, gateways and sources too: a few needless exclusions cost nothing.
  const used = [...text.matchAll(/(?<![\d.])(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/g)].map((m) => ({ addr: ipv4(m[1]!), len: m[2] === undefined ? 32 : Number(m[2]) }));
  for (let y = 0; y < 256; y++) {
    const net = ipv4(`10.213.${y}.0`);
    if (!used.some((u) => sameNet(u.addr, net, Math.min(u.len, 24)))) return `10.213.${y}`;
  }
  throw new Error('netns lab: every 10.213.y.0/24 overlaps an address or route of this machine');
}

function ipv4(s: string): number {
  return s.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

function sameNet(a: number, b: number, len: number): boolean {
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

/** Why namespaces cannot be used here, or null; makes and removes one namespace named `ns`. */
export function probe(ns: string): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const [cmd, args] of [['ip', ['netns', 'list']], ['iptables', ['-V']], ['iptables-restore', ['--version']]] as const) {
    if (!tryRun(cmd, args)) return `${cmd} is missing or unusable (install iproute2 and iptables)`;
  }
  if (bridgedTrafficFiltered()) return "bridged traffic goes through the root namespace's FORWARD chain, whose policy is not ACCEPT (br_netfilter)";
  try {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['netns', 'exec', ns, 'iptables', '-S']);
    return null;
  } catch (e) {
    return `cannot create a network namespace and use iptables in it: ${(e as Error).message}`;
  } finally {
    tryRun('ip', ['netns', 'del', ns]);
  }
}

function bridgedTrafficFiltered(): boolean {
  let on: boolean;
  try {
    on = readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim() === '1';
  } catch {
    return false; // br_netfilter not loaded: the bridge does not consult iptables
  }
  return on && !/^-P FORWARD ACCEPT$/m.test(run('iptables', ['-S', 'FORWARD']));
}
