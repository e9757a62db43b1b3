#!/usr/bin/env node
/**
 * `catga-cluster` — operations on a cluster from the command line (package.json `bin`). Today: snapshots.
 *
 *   catga-cluster snapshot save <file> --address host:port …   a consistent snapshot of a running cluster
 *   catga-cluster snapshot restore <file> <dataDir>            seed an empty data dir with it
 *   catga-cluster snapshot status <file | dataDir>             what a snapshot file or a stopped node's data dir holds
 *
 * Exit codes: 0 done, 1 failed, 2 usage error, 3 refused (the target is not in a state to act on; nothing changed).
 */
import { readFileSync } from 'node:fs';
import type { Member } from '../raft/membership.js';
import type { TcpNetworkTlsOptions } from '../transport/tcp-network.js';
import { EXIT, RefusedError, UsageError, option, parseArgs, type ParsedArgs } from './args.js';
import { restoreSnapshot, saveSnapshot, snapshotStatus, type StatusReport } from './snapshot.js';

const MAIN_HELP = `Usage: catga-cluster <command> [options]

Commands:
  snapshot save <file>               save a consistent snapshot of a running cluster to <file>
  snapshot restore <file> <dataDir>  write a snapshot into an empty data dir, for a node to start from
  snapshot status <file|dataDir>     show what a snapshot file or a stopped node's data dir holds

Run "catga-cluster snapshot <command> --help" for the options of each.
Exit codes: 0 done, 1 failed, 2 usage error, 3 refused (nothing was changed).
`;

const SNAPSHOT_HELP: Record<string, string> = {
  save: `Usage: catga-cluster snapshot save <file> --address <host:port> [options]

Asks a running member, over its cluster port and authenticated like a member, for a snapshot of the replicated state
at a linearizable point: every write acknowledged before the command started is in it, at one log index, with the
membership in force there. Any member will do (a follower confirms the point with the leader); with several
--address, the first that answers is used. The file is written atomically, with mode 0600, in the format of the
nodes' own snap/ files.

Options:
  --address <host:port>   a member's cluster address (repeat, or comma-separate, to try several)
                          default: the addresses in CATGA_MEMBERS
  --secret-file <path>    file holding the cluster secret (trailing newlines ignored); default: CATGA_SECRET
                          (plus CATGA_SECRET_ACCEPTED). During a rotation give both secrets' files: any is accepted
  --insecure              the cluster runs without a secret
  --tls-ca <path>         PEM CA that signs the members' certificates (clusters using the tls option)
  --tls-cert <path>       PEM client certificate signed by that CA (members require one)
  --tls-key <path>        its PEM private key
  --timeout <seconds>     give up after this long (default 60)
  --force                 replace <file> if it exists
  --verbose               also print the transport's warnings (handshake, TLS and connection details)
`,
  restore: `Usage: catga-cluster snapshot restore <file> <dataDir> [--node-id <id>]

Writes the snapshot into <dataDir>, which must be empty or missing (a non-empty one is refused, exit 3), so a node
started on it begins from the snapshot: its state, log index and membership. To restore a cluster, stop every
member, move every data dir aside, restore the same file into each member's data dir, then start them all with the
same ids and member list as before. <dataDir> defaults to CATGA_DATA_DIR.

Options:
  --node-id <id>          refuse unless <id> is a member of the snapshot's configuration
`,
  status: `Usage: catga-cluster snapshot status <file | dataDir> [--json]

Shows what a snapshot file holds (index, term, members, size, keys, kept events), or a stopped node's data dir
(hard state, snapshot, log, membership in force, keys at the commit index it recorded). A data dir in use by a
running node is refused (exit 3): it is locked; use "snapshot save" against the running node instead.
<dataDir> defaults to CATGA_DATA_DIR.

Options:
  --json                  print JSON
`,
};

interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  const [command, sub, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(MAIN_HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command !== 'snapshot') return usage(io, `unknown command "${command}"`, MAIN_HELP);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.out(MAIN_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  const help = SNAPSHOT_HELP[sub];
  if (help === undefined) return usage(io, `unknown snapshot command "${sub}"`, MAIN_HELP);
  try {
    const args = parseArgs(rest, SPECS[sub]!);
    if (args.flags.has('help')) {
      io.out(help);
      return EXIT.ok;
    }
    if (sub === 'save') return await save(args, io);
    if (sub === 'restore') return await restore(args, io);
    return await status(args, io);
  } catch (e) {
    if (e instanceof UsageError) return usage(io, e.message, help);
    if (e instanceof RefusedError) {
      io.err(`catga-cluster snapshot ${sub}: refused: ${e.message}\n`);
      return EXIT.refused;
    }
    io.err(`catga-cluster snapshot ${sub}: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.failed;
  }
}

const SPECS: Record<string, { options: string[]; flags: string[] }> = {
  save: { options: ['address', 'secret-file', 'tls-ca', 'tls-cert', 'tls-key', 'timeout'], flags: ['insecure', 'force', 'verbose'] },
  restore: { options: ['node-id', 'data-dir'], flags: [] },
  status: { options: ['data-dir'], flags: ['json'] },
};

function usage(io: Io, message: string, help: string): number {
  io.err(`catga-cluster: ${message}\n\n${help}`);
  return EXIT.usage;
}

/** The positional arguments, at most `max` of them. */
function positionals(args: ParsedArgs, max: number): (string | undefined)[] {
  if (args.positional.length > max) throw new UsageError(`unexpected argument "${args.positional[max]}"`);
  return args.positional;
}

async function save(args: ParsedArgs, io: Io): Promise<number> {
  const [file] = positionals(args, 1);
  if (file === undefined) throw new UsageError('name the file to write the snapshot to');
  const given = args.options.get('address') ?? [];
  const fromEnv = (io.env.CATGA_MEMBERS ?? '').split(',').map((m) => m.trim().split('=').slice(1).join('=')).filter(Boolean);
  const addresses = (given.length > 0 ? given : fromEnv).flatMap((a) => a.split(',')).map((a) => a.trim()).filter(Boolean);
  if (addresses.length === 0) throw new UsageError('give --address <host:port> (a member\'s cluster port), or set CATGA_MEMBERS');
  const timeout = Number(option(args, 'timeout') ?? 60);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout: expected seconds > 0, got ${option(args, 'timeout')}`);
  const secret = secretFrom(args, io.env);
  const result = await saveSnapshot({
    addresses,
    out: file,
    secret,
    tls: tlsFrom(args),
    timeoutMs: timeout * 1000,
    force: args.flags.has('force'),
    log: (line) => io.err(`${line}\n`),
    ...(args.flags.has('verbose') && { debug: (line: string) => io.err(`${line}\n`) }),
  });
  io.out(
    `saved the snapshot of ${result.node} (${result.address}) to ${result.file}\n` +
      `  index ${result.index}, term ${result.term}, ${result.bytes} bytes\n` +
      `  members: ${membersText(result.members)}\n`,
  );
  return EXIT.ok;
}

async function restore(args: ParsedArgs, io: Io): Promise<number> {
  const [file, dirArg] = positionals(args, 2);
  if (file === undefined) throw new UsageError('name the snapshot file to restore');
  const dataDir = dirArg ?? option(args, 'data-dir') ?? io.env.CATGA_DATA_DIR;
  if (dataDir === undefined) throw new UsageError('name the data dir to restore into (or set CATGA_DATA_DIR)');
  const r = await restoreSnapshot({ file, dataDir, nodeId: option(args, 'node-id') });
  io.out(
    `restored the snapshot at index ${r.index} (term ${r.term}) into ${r.dataDir}\n` +
      `  members: ${membersText(r.members)}\n` +
      '  Start a member on it under one of these ids. A restored cluster needs the same snapshot in a majority of its\n' +
      "  voters' data dirs (all of them, usually), and no member left with newer state.\n",
  );
  return EXIT.ok;
}

async function status(args: ParsedArgs, io: Io): Promise<number> {
  const [pathArg] = positionals(args, 1);
  const path = pathArg ?? option(args, 'data-dir') ?? io.env.CATGA_DATA_DIR;
  if (path === undefined) throw new UsageError('name a snapshot file or a data dir (or set CATGA_DATA_DIR)');
  const report = await snapshotStatus(path);
  io.out(args.flags.has('json') ? `${JSON.stringify(report, null, 2)}\n` : statusText(report));
  return EXIT.ok;
}

/** The secrets to accept members by: --secret-file (repeatable, during a rotation), else CATGA_SECRET (+ _ACCEPTED). */
function secretFrom(args: ParsedArgs, env: NodeJS.ProcessEnv): string | readonly string[] | undefined {
  const files = args.options.get('secret-file') ?? [];
  const secrets = files.map((file) => {
    const secret = readFileSync(file, 'utf8').replace(/[\r\n]+$/, ''); // as $(cat file) in a shell reads it
    if (secret === '') throw new UsageError(`--secret-file ${file} is empty`);
    return secret;
  });
  if (files.length === 0 && env.CATGA_SECRET !== undefined) secrets.push(env.CATGA_SECRET, ...(env.CATGA_SECRET_ACCEPTED ? [env.CATGA_SECRET_ACCEPTED] : []));
  if (args.flags.has('insecure')) {
    if (secrets.length > 0) throw new UsageError('--insecure and a secret: give one or the other');
    return undefined;
  }
  if (secrets.length === 0) throw new UsageError('no cluster secret: give --secret-file <path> or set CATGA_SECRET (or --insecure for a cluster without one)');
  return secrets.length === 1 ? secrets[0] : secrets;
}

function tlsFrom(args: ParsedArgs): TcpNetworkTlsOptions | undefined {
  const [ca, cert, key] = ['tls-ca', 'tls-cert', 'tls-key'].map((n) => option(args, n));
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if (ca === undefined || cert === undefined || key === undefined) {
    throw new UsageError('--tls-ca, --tls-cert and --tls-key go together: members require a client certificate signed by their CA');
  }
  return { ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key) };
}

function membersText(members: readonly Member[]): string {
  if (members.length === 0) return 'none';
  return members.map((m) => `${m.id}=${m.address || '?'}${m.role === 'learner' ? ' (learner)' : ''}`).join(', ');
}

function statusText(r: StatusReport): string {
  const rows: [string, string | number][] = [];
  if (r.kind === 'empty') return `${r.path}: an empty data dir (a node started on it begins from its options)\n`;
  if (r.kind === 'file') {
    rows.push(['snapshot file', r.path], ['index', r.index], ['term', r.term], ['members', membersText(r.members)], ['size', `${r.bytes} bytes`]);
    rows.push(['keys', r.keys], ['events kept', r.events]);
  } else {
    const hs = r.hardState;
    rows.push(['data dir', r.path], ['size', `${r.bytes} bytes (wal/ and snap/)`]);
    rows.push(['hard state', `term ${hs.term}, voted for ${hs.vote || 'nobody'}, commit ${hs.commit}`]);
    rows.push(['snapshot', r.snapshot ? `index ${r.snapshot.index}, term ${r.snapshot.term}` : 'none']);
    rows.push(['log', r.log.entries === 0 ? `no entries after the snapshot (last index ${r.log.last})` : `${r.log.entries} entries, ${r.log.first} to ${r.log.last}`]);
    rows.push(['members', `${membersText(r.members)} (from ${r.membershipFrom})`]);
    rows.push([`keys at ${r.state.atIndex}`, r.state.keys], [`events kept at ${r.state.atIndex}`, r.state.events]);
    rows.push(['events delivered', r.eventCursor === null ? 'none recorded' : `up to index ${r.eventCursor}`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join('');
}

if (require.main === module) {
  run(process.argv.slice(2), {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    env: process.env,
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`catga-cluster: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = EXIT.failed;
    },
  );
}
