/**
 * `npm run sample`: three nodes of the sample app on 127.0.0.1 (HTTP 3001–3003, cluster 7001–7003), logs prefixed by
 * node id, who leads printed as it changes. A node that dies is started again after a few seconds, so a user can kill
 * the leader, watch another take over, then watch it rejoin. Each node's pid is in data/<id>.pid. Ctrl-C stops all
 * three (each leader hands over first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const NODES = [1, 2, 3].map((i) => ({ id: `node${i}`, http: 3000 + i, cluster: 7000 + i }));
const MEMBERS = NODES.map((n) => `${n.id}=127.0.0.1:${n.cluster}`).join(',');
const SECRET = process.env.CATGA_SECRET ?? 'sample-secret-change-me-in-production';
const COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[33m'];
const DATA = join(process.cwd(), 'data');
const RESTART_AFTER_MS = 5000;

const children = new Map<string, ChildProcess>();
let stopping = false;

function start(n: (typeof NODES)[number], i: number): void {
  const child = spawn(process.execPath, [join(__dirname, 'main.js')], {
    env: {
      ...process.env,
      CATGA_NODE_ID: n.id,
      CATGA_MEMBERS: MEMBERS,
      CATGA_DATA_DIR: join(DATA, n.id),
      CATGA_SECRET: SECRET,
      PORT: String(n.http),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.set(n.id, child);
  mkdirSync(DATA, { recursive: true });
  writeFileSync(join(DATA, `${n.id}.pid`), `${child.pid}\n`);
  const prefix = `${COLORS[i % COLORS.length]}[${n.id}]\x1b[0m `;
  for (const stream of [child.stdout!, child.stderr!]) {
    let rest = '';
    stream.on('data', (b: Buffer) => {
      const lines = (rest + b.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) process.stdout.write(prefix + line + '\n');
    });
  }
  child.on('exit', (code, signal) => {
    children.delete(n.id);
    rmSync(join(DATA, `${n.id}.pid`), { force: true });
    if (stopping) return;
    console.log(`${prefix}exited (${signal ?? code}); the others carry on. Starting it again in ${RESTART_AFTER_MS / 1000} s so it rejoins`);
    setTimeout(() => !stopping && start(n, i), RESTART_AFTER_MS);
  });
}

/** The leader each node names (null for a node that is down, starting, or knows none). */
async function leadersSeen(): Promise<(string | null)[]> {
  return Promise.all(
    NODES.map(async (n) => {
      try {
        const r = await fetch(`http://127.0.0.1:${n.http}/cluster/status`, { signal: AbortSignal.timeout(500) });
        return ((await r.json()) as { leaderId?: string | null }).leaderId ?? null;
      } catch {
        return null; // that node is down or still starting
      }
    }),
  );
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  NODES.forEach(start);
  let shown: string | null = null;
  let agreedAfterMs: number | null = null;
  const watch = setInterval(async () => {
    const seen = await leadersSeen();
    // The first banner waits until all three name the same leader: the cold start, measured from the spawns.
    if (agreedAfterMs === null) {
      if (!seen[0] || seen.some((x) => x !== seen[0])) return;
      agreedAfterMs = performance.now() - startedAt;
      console.log(`\n>>> cold start: all three nodes agreed on ${seen[0]} as leader ${(agreedAfterMs / 1000).toFixed(2)} s after they were started`);
    }
    const leader = seen.find((x) => x !== null) ?? null;
    if (leader === shown || stopping) return;
    shown = leader;
    const n = NODES.find((x) => x.id === leader);
    if (!n) {
      console.log('\n>>> no leader right now (an election is running)\n');
      return;
    }
    const pid = children.get(n.id)?.pid;
    console.log(
      `\n>>> ${leader} leads. Try:\n` +
        `    curl -s -XPOST localhost:3002/orders -H 'content-type: application/json' -d '{"customer":"ada","amount":42}'\n` +
        `    curl -s localhost:3003/orders/o-1\n` +
        `    curl -s -XPOST localhost:3001/orders/o-1/pay      # unpaid orders are cancelled after 2 minutes by a leader-only cron job\n` +
        `    curl -s -XPOST localhost:3003/reports/sales       # one node at a time, under a distributed lock\n` +
        `    curl -s -XPUT localhost:3001/kv/greeting -H 'content-type: application/json' -d '{"value":"hello"}'\n` +
        `    curl -s localhost:3001/cluster/status\n` +
        `    open http://localhost:3001/cluster                 # the live cluster page\n` +
        `    kill -9 ${pid ?? '<pid>'}    # kill the leader (${leader}) and watch another node take over\n`,
    );
  }, 100);
  const stop = () => {
    if (stopping) return;
    stopping = true;
    clearInterval(watch);
    console.log('\nstopping the three nodes…');
    for (const c of children.values()) c.kill('SIGTERM');
    const deadline = setTimeout(() => process.exit(0), 5000);
    const check = setInterval(() => {
      if (children.size > 0) return;
      clearInterval(check);
      clearTimeout(deadline);
      process.exit(0);
    }, 50);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main();
