/**
 * NetnsLab's faults are real cuts: small node programs in the lab's namespaces talk plain TCP and UDP over the
 * lab's private addresses, and each fault must do to them what a broken network does. Needs root, iproute2 and
 * iptables; skipped with the reason elsewhere.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { NetnsLab } from '../support/netns.js';

const IDS = ['n1', 'n2', 'n3'] as const;
type Id = (typeof IDS)[number];
const TCP_PORT = 7000;
const UDP_PORT = 7001;
/** How long "nothing arrives" is watched for. */
const QUIET_MS = 1000;

/**
 * Runs in a namespace, driven over IPC: a TCP echo server and a UDP socket on its address; connects, writes and
 * sends on request; reports what arrives and every socket error as events.
 */
const AGENT = `
const net = require('node:net'), dgram = require('node:dgram'), os = require('node:os');
const host = process.env.AGENT_HOST, socks = new Map();
let next = 0;
const emit = (m) => process.send(m);
const track = (s) => { const id = ++next; socks.set(id, s); s.on('data', (d) => emit({ ev: 'data', sock: id, data: String(d) })); return id; };
net.createServer((s) => { const id = track(s); s.on('data', (d) => s.write(d)); s.on('error', (e) => emit({ ev: 'error', sock: id, code: e.code })); })
  .listen(${TCP_PORT}, host, () => {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (d, from) => emit({ ev: 'udp', data: String(d), from: from.address }));
    udp.bind(${UDP_PORT}, host, () => emit({ ev: 'ready', pid: process.pid, addresses: Object.values(os.networkInterfaces()).flat().filter((a) => a.family === 'IPv4').map((a) => a.address) }));
    process.on('message', (m) => {
      const reply = (r) => process.send({ re: m.id, ...r });
      if (m.op === 'write') { socks.get(m.sock).write(m.data); return reply({ ok: true }); }
      if (m.op === 'state') { const s = socks.get(m.sock); return reply({ ok: true, open: !s.destroyed && s.writable }); }
      if (m.op === 'udp') return udp.send(m.data, ${UDP_PORT}, m.host, (e) => reply({ ok: !e, code: e && e.code }));
      const t = Date.now(), s = net.connect({ host: m.host, port: ${TCP_PORT} });
      let settled = false, id = 0;
      const settle = (r) => { if (settled) return; settled = true; clearTimeout(timer); reply({ ...r, ms: Date.now() - t }); };
      const timer = setTimeout(() => { settle({ ok: false, code: 'TIMEOUT' }); s.destroy(); }, m.timeoutMs);
      s.once('connect', () => { id = track(s); settle({ ok: true, sock: id }); });
      s.on('error', (e) => settled ? emit({ ev: 'error', sock: id, code: e.code }) : settle({ ok: false, code: e.code }));
    });
  });
process.on('disconnect', () => process.exit(0));
`;

type AgentEvent =
  | { ev: 'ready'; pid: number; addresses: string[] }
  | { ev: 'data'; sock: number; data: string }
  | { ev: 'error'; sock: number; code: string }
  | { ev: 'udp'; data: string; from: string };
type AgentRequest = { op: 'connect'; host: string; timeoutMs: number } | { op: 'write'; sock: number; data: string } | { op: 'state'; sock: number } | { op: 'udp'; host: string; data: string };
interface AgentReply {
  re: number;
  ok: boolean;
  code?: string;
  ms?: number;
  sock?: number;
  open?: boolean;
}

/** One agent process inside a node's namespace. */
class Agent {
  readonly events: AgentEvent[] = [];
  private seq = 0;
  private readonly pending = new Map<number, (r: AgentReply) => void>();

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: AgentEvent | AgentReply) => {
      if ('re' in m) this.pending.get(m.re)?.(m);
      else this.events.push(m);
    });
  }

  static async start(id: Id): Promise<Agent> {
    const { command, args } = lab.wrap(id, process.execPath, ['-e', AGENT]);
    const agent = new Agent(spawn(command, args, { env: { ...process.env, AGENT_HOST: lab.address(id) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    if (!(await agent.waitFor((e) => e.ev === 'ready', 10_000))) throw new Error(`agent ${id} did not start`);
    return agent;
  }

  request(req: AgentRequest): Promise<AgentReply> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent: no answer to ${req.op}`)), 10_000);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(r);
      });
      this.child.send({ ...req, id });
    });
  }

  connect(to: Id, timeoutMs = QUIET_MS): Promise<AgentReply> {
    return this.request({ op: 'connect', host: lab.address(to), timeoutMs });
  }

  /** The first event since `from` that matches, or null once `ms` passed (polled: bounded by ms / 10 rounds). */
  async waitFor(match: (e: AgentEvent) => boolean, ms: number, from = 0): Promise<AgentEvent | null> {
    for (const deadline = Date.now() + ms; ; await sleep(10)) {
      const hit = this.events.slice(from).find(match);
      if (hit || Date.now() > deadline) return hit ?? null;
    }
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

const reason = NetnsLab.unavailable();
if (reason) console.warn(`netns partition tests skipped: ${reason}`);
const maybe = reason ? describe.skip : describe;

let lab: NetnsLab;
const agents = {} as Record<Id, Agent>;
let rootRules = '';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A connection from `a` to `b`'s echo server that carries data: its socket id on `a`. */
async function established(a: Id, b: Id): Promise<number> {
  const r = await agents[a].connect(b);
  expect(r).toMatchObject({ ok: true });
  const from = agents[a].events.length;
  await agents[a].request({ op: 'write', sock: r.sock!, data: 'hello' });
  expect(await agents[a].waitFor((e) => e.ev === 'data' && e.sock === r.sock, 2000, from)).toBeTruthy();
  return r.sock!;
}

/** Sends a few datagrams from a to b; how many b received. */
async function datagrams(a: Id, b: Id, tag: string): Promise<number> {
  for (let i = 0; i < 5; i++) await agents[a].request({ op: 'udp', host: lab.address(b), data: `${tag}-${i}` });
  await sleep(300);
  return agents[b].events.filter((e) => e.ev === 'udp' && e.data.startsWith(`${tag}-`)).length;
}

maybe(`network namespaces (${reason ?? 'available'})`, () => {
  jest.setTimeout(30_000);

  beforeAll(async () => {
    NetnsLab.cleanupStale();
    rootRules = sh('iptables', ['-S']);
    lab = new NetnsLab(IDS);
    for (const id of IDS) agents[id] = await Agent.start(id);
  });

  // A failed test must not leave its cut in place for the next one.
  afterEach(() => lab?.heal());

  afterAll(() => {
    for (const id of IDS) agents[id]?.stop();
    lab?.destroy();
  });

  test('a program started through wrap() runs in its namespace with its own pid and a working IPC channel', () => {
    for (const id of IDS) {
      const ready = agents[id].events.find((e) => e.ev === 'ready');
      expect(ready).toEqual({ ev: 'ready', pid: agents[id].child.pid, addresses: ['127.0.0.1', lab.address(id)] });
    }
  });

  test('a healthy link carries TCP and UDP both ways', async () => {
    await established('n2', 'n1');
    await established('n1', 'n2');
    expect(await datagrams('n1', 'n3', 'healthy-13')).toBe(5);
    expect(await datagrams('n3', 'n1', 'healthy-31')).toBe(5);
  });

  test('isolate: connects are refused at once both ways, an established connection resets, other links work', async () => {
    const sock = await established('n2', 'n1');
    const cut = await lab.isolate('n1');
    const inbound = await agents.n2.connect('n1');
    expect(inbound).toMatchObject({ ok: false, code: 'ECONNREFUSED' });
    expect(inbound.ms).toBeLessThan(200);
    expect(await agents.n1.connect('n3')).toMatchObject({ ok: false, code: 'ECONNREFUSED' });
    const from = agents.n2.events.length;
    await agents.n2.request({ op: 'write', sock, data: 'after-isolate' });
    expect(await agents.n2.waitFor((e) => e.ev === 'error' && e.sock === sock, QUIET_MS, from)).toMatchObject({ code: 'ECONNRESET' });
    await established('n2', 'n3');
    await cut.heal();
    await established('n2', 'n1');
  });

  test('blackhole: an established connection stays open but nothing arrives, a connect times out; heal delivers', async () => {
    const sock = await established('n2', 'n1');
    const cut = await lab.blackhole('n1');
    const from = agents.n2.events.length;
    await agents.n2.request({ op: 'write', sock, data: 'into-the-hole' });
    expect(await agents.n2.waitFor((e) => 'sock' in e && e.sock === sock, QUIET_MS, from)).toBeNull();
    expect(await agents.n2.request({ op: 'state', sock })).toMatchObject({ open: true });
    expect(await agents.n3.connect('n1')).toMatchObject({ ok: false, code: 'TIMEOUT' });
    expect(await datagrams('n1', 'n2', 'hole-12')).toBe(0);
    await established('n2', 'n3');
    await cut.heal();
    // The connection never broke: TCP retransmits the write and the echo comes back.
    expect(await agents.n2.waitFor((e) => e.ev === 'data' && e.sock === sock, 8000, from)).toMatchObject({ data: 'into-the-hole' });
  });

  test('blackholeLink: only that link goes silent', async () => {
    const cut = await lab.blackholeLink('n1', 'n2');
    expect(await agents.n2.connect('n1')).toMatchObject({ ok: false, code: 'TIMEOUT' });
    expect(await datagrams('n1', 'n2', 'link-12')).toBe(0);
    await established('n3', 'n1');
    await established('n3', 'n2');
    await cut.heal();
    await established('n2', 'n1');
  });

  test('cutOneWay: datagrams from a to b are lost while b to a still arrive', async () => {
    const cut = await lab.cutOneWay('n1', 'n2');
    expect(await datagrams('n1', 'n2', 'oneway-12')).toBe(0);
    expect(await datagrams('n2', 'n1', 'oneway-21')).toBe(5);
    // TCP needs both directions: n2's SYN reaches n1, the SYN-ACK does not come back.
    expect(await agents.n2.connect('n1')).toMatchObject({ ok: false, code: 'TIMEOUT' });
    await cut.heal();
    expect(await datagrams('n1', 'n2', 'healed-12')).toBe(5);
  });

  test('heal() removes every rule of every cut at once', async () => {
    const cuts = [await lab.isolate('n1'), await lab.blackholeLink('n2', 'n3'), await lab.cutOneWay('n3', 'n2')];
    await lab.heal();
    for (const a of IDS) for (const b of IDS) if (a !== b) await established(a, b);
    for (const id of IDS) expect(sh('ip', ['netns', 'exec', lab.namespace(id), 'iptables', '-S']).match(/^-A CATGA-/gm)).toBeNull();
    // A cut's own heal after the lab's is a no-op, not an error.
    for (const c of cuts) await c.heal();
  });

  test('destroy() leaves no namespace, link or rule behind; cleanupStale removes what a dead run left', async () => {
    for (const id of IDS) agents[id].stop();
    lab.destroy();
    lab.destroy();
    expect(sh('ip', ['netns', 'list'])).not.toContain(lab.prefix);
    expect(sh('ip', ['-o', 'link', 'show'])).not.toContain(lab.prefix);
    expect(sh('iptables', ['-S'])).toBe(rootRules);

    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => dead.once('exit', r));
    const stale = `cg${dead.pid!.toString(36)}-0`;
    const mine = `cg${process.pid.toString(36)}-zz`;
    try {
      sh('ip', ['netns', 'add', `${stale}-n1`]);
      sh('ip', ['link', 'add', `${stale}b`, 'type', 'bridge']);
      sh('ip', ['netns', 'add', `${mine}-n1`]);
      expect(NetnsLab.cleanupStale()).toEqual(expect.arrayContaining([`${stale}-n1`, `${stale}b`]));
      expect(sh('ip', ['netns', 'list'])).toContain(`${mine}-n1`);
    } finally {
      for (const args of [['netns', 'del', `${stale}-n1`], ['link', 'del', `${stale}b`], ['netns', 'del', `${mine}-n1`]]) {
        try {
          sh('ip', args);
        } catch {
          // already removed
        }
      }
    }
  });

  test('a process that made a lab and dies of SIGTERM removes it on the way out', async () => {
    const compiled = resolve(__dirname, '../../dist/test/support/netns.js');
    if (!existsSync(compiled)) throw new Error(`${compiled} is missing: run npm run build first`);
    const child = spawn(process.execPath, ['-e', `const l = new (require(${JSON.stringify(compiled)}).NetnsLab)(['a', 'b']); console.log(l.prefix); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const prefix = await new Promise<string>((r) => child.stdout!.once('data', (b: Buffer) => r(b.toString().trim())));
    expect(sh('ip', ['netns', 'list'])).toContain(prefix);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_, sig) => r(sig)));
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
    expect(sh('ip', ['netns', 'list'])).not.toContain(prefix);
    expect(sh('ip', ['-o', 'link', 'show'])).not.toContain(prefix);
  });
});
