/**
 * Forwarded work runs at most once, on a node holding the lease. The sender retries only on the leader's explicit
 * "not run" answer (or a request that surely never left), never because of the error the work threw. Regression:
 * a handler's own NotLeaderException was taken for a refusal, so its side effect ran twice and the caller saw success.
 */
import { ForwardOutcomeUnknownException, NoLeaderException, NotLeaderException } from '../../lib/cluster/errors.js';
import { LeaderForwarding, type ForwardedRun } from '../../lib/cluster/leader-forwarding.js';
import type { NodeId } from '../../lib/raft/index.js';
import { sleep, startMemCluster } from './mem-cluster.js';

jest.setTimeout(30_000);

interface Ran {
  readonly on: NodeId;
  readonly name: string;
}

let c: Awaited<ReturnType<typeof startMemCluster>>;
let ran: Ran[];
let forwarding: Map<NodeId, LeaderForwarding>;
/** What the work does after it ran its side effect, per request name. */
let then: Record<string, (on: NodeId) => Promise<unknown>>;
/** Awaited before the work is admitted (before the lease check that guards it). */
let beforeAdmit: (on: NodeId) => Promise<void>;

beforeEach(async () => {
  c = await startMemCluster({ requestTimeoutMs: 2000 });
  ran = [];
  then = {};
  beforeAdmit = async () => undefined;
  forwarding = new Map(
    c.ids.map((id) => {
      const f = new LeaderForwarding(c.node(id).cluster, {
        channel: 'test.forward',
        encodeError: (e) => ({ name: (e as Error).name, message: (e as Error).message }),
        decodeError: (w) => Object.assign(new Error((w as Error).message), { name: (w as Error).name }),
      });
      f.handle(async (run: ForwardedRun) => {
        if (!(run.name in then)) run.refuse(`${run.name} is not known here`);
        await beforeAdmit(id);
        run.admit();
        return work(id, run.name);
      });
      return [id, f];
    }),
  );
});
afterEach(async () => {
  await c?.stop();
});

/** The work: its side effect is recorded in `ran`, then `then[name]` decides the outcome. */
async function work(on: NodeId, name: string): Promise<unknown> {
  ran.push({ on, name });
  return then[name]!(on);
}

function call(from: NodeId, name: string, timeoutMs = 2000): Promise<unknown> {
  return forwarding.get(from)!.run(name, {}, () => work(from, name), timeoutMs);
}

async function follower(): Promise<{ leader: NodeId; caller: NodeId; third: NodeId }> {
  const leader = await c.leader();
  const [caller, third] = c.ids.filter((id) => id !== leader);
  // The caller must know the leader (a heartbeat reached it) before it can send.
  await c.until('the caller knows the leader', () => c.node(caller!).cluster.leaderId === leader);
  return { leader, caller: caller!, third: third! };
}

test('runs on the leader and returns its result', async () => {
  then.charge = async (on) => `charged on ${on}`;
  const { leader, caller } = await follower();
  await expect(call(caller, 'charge')).resolves.toBe(`charged on ${leader}`);
  expect(ran).toEqual([{ on: leader, name: 'charge' }]);
});

test("the work's own NotLeaderException comes back at once, as that error, and it ran once", async () => {
  then.charge = async () => {
    throw new NotLeaderException('', 'a downstream leader-only step refused');
  };
  const { caller } = await follower();
  const t0 = Date.now();
  await expect(call(caller, 'charge')).rejects.toMatchObject({ name: 'NotLeaderException', message: 'a downstream leader-only step refused' });
  expect(Date.now() - t0).toBeLessThan(500);
  expect(ran).toHaveLength(1);
});

test('the work moves leadership and then fails: it ran once and the caller gets its error', async () => {
  const { leader, caller, third } = await follower();
  then.charge = async (on) => {
    await c.node(on).cluster.transferLeadership(third);
    await c.node(on).cluster.confirmLeadership(); // throws NotLeaderException: leadership moved
  };
  await expect(call(caller, 'charge')).rejects.toMatchObject({ name: 'NotLeaderException' });
  expect(ran).toEqual([{ on: leader, name: 'charge' }]);
});

test('a leader that loses its lease before the work starts says "not run"; the caller retries and it runs once, elsewhere', async () => {
  const { leader, caller, third } = await follower();
  then.charge = async (on) => on;
  beforeAdmit = async (on) => {
    if (on === leader) await c.node(leader).cluster.transferLeadership(third);
  };
  await expect(call(caller, 'charge', 4000)).resolves.toBe(third);
  expect(ran).toEqual([{ on: third, name: 'charge' }]);
});

test('an answer lost on the way back: ForwardOutcomeUnknownException, and no second run', async () => {
  const { leader, caller } = await follower();
  then.charge = async () => {
    c.net.cutOneWay(leader, caller);
    return 'done';
  };
  await expect(call(caller, 'charge', 600)).rejects.toBeInstanceOf(ForwardOutcomeUnknownException);
  await sleep(100);
  expect(ran).toHaveLength(1);
});

test('the same request delivered twice runs once', async () => {
  then.charge = async (on) => on;
  const { leader, caller } = await follower();
  const request = { name: 'charge', payload: {}, requestId: 'dup-1' };
  const send = () => c.node(caller).cluster.requestLeader('test.forward', request, 1000);
  const [a, b] = await Promise.all([send(), send()]);
  expect(a.value).toEqual(b.value);
  expect(ran).toEqual([{ on: leader, name: 'charge' }]);
});

test('a name the leader does not know is refused before anything runs, and the caller hears it at once', async () => {
  const { caller } = await follower();
  const t0 = Date.now();
  await expect(call(caller, 'unknown-work')).rejects.toThrow('unknown-work is not known here');
  expect(Date.now() - t0).toBeLessThan(500);
  expect(ran).toEqual([]);
});

test('with no leader reachable it fails with NoLeaderException at the deadline, and nothing ran', async () => {
  then.charge = async (on) => on;
  const { caller } = await follower();
  c.net.isolate(caller, c.ids);
  const t0 = Date.now();
  await expect(call(caller, 'charge', 500)).rejects.toBeInstanceOf(NoLeaderException);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
  expect(ran).toEqual([]);
});
