/**
 * coordinator.members: changes from any node, one at a time, with clear errors for what cannot be done; learners that
 * replicate and read but never lead; the leader's upkeep that promotes caught-up learners up to the target.
 */
import { MembershipChangeError } from '../../lib/cluster/errors.js';
import { startMemCluster } from './mem-cluster.js';

jest.setTimeout(20_000);

type Mem = Awaited<ReturnType<typeof startMemCluster>>;
let c: Mem | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

const roles = (m: Mem, id: string) =>
  m
    .node(id)
    .cluster.members.map((x) => `${x.id}:${x.membership}`)
    .sort()
    .join(',');

test('a learner added from a follower replicates, serves linearizable reads, forwards writes, and never leads', async () => {
  c = await startMemCluster({ spares: ['d'] });
  const leader = await c.leader();
  const follower = c.ids.find((id) => id !== leader)!;
  await c.node(leader).store.put('before', 1);
  await c.node(follower).cluster.members.add({ id: 'd', address: 'mem:d' });
  expect(roles(c, leader)).toBe('a:voter,b:voter,c:voter,d:learner');
  const d = c.node('d');
  await d.store.put('from-learner', 2); // forwarded to the leader
  expect(await d.store.get('before', { consistency: 'linearizable' })).toMatchObject({ value: 1 });
  expect(await c.node(leader).store.get('from-learner', { consistency: 'linearizable' })).toMatchObject({ value: 2 });
  await c.until('d knows the leader', () => d.cluster.leaderId === leader);

  await expect(c.node(leader).cluster.transferLeadership('d')).rejects.toThrow(/d: it is a learner, which never leads/);
  await c.crash(leader);
  const next = await c.leader(c.ids.filter((id) => id !== leader));
  expect(next).not.toBe('d');
  expect(d.runtime.raft.core.role).toBe('follower');
});

test('clear errors: an id that exists, an unreachable node, the last voter, two changes at once', async () => {
  c = await startMemCluster({ spares: ['d', 'e'] });
  const leader = await c.leader();
  const members = c.node(leader).cluster.members;
  await expect(members.add({ id: 'b', address: 'mem:b' })).rejects.toThrow(/b is already a member \(voter at mem:b\)/);
  await expect(members.add({ id: 'zz', address: 'mem:zz' })).rejects.toThrow(/cannot reach zz at mem:zz/);
  await expect(members.remove('nobody')).rejects.toThrow(MembershipChangeError);
  await expect(members.promote('a')).rejects.toThrow(/a voter already/);

  const others = c.ids.filter((id) => id !== leader);
  const both = await Promise.allSettled([members.demote(others[0]!), members.demote(others[1]!)]);
  expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  expect(String((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toMatch(/another membership change .* is still in progress/);
});

test('the last voter cannot be removed or demoted', async () => {
  c = await startMemCluster({ ids: ['a'], spares: ['d'] });
  await c.leader();
  const members = c.node('a').cluster.members;
  await expect(members.remove('a')).rejects.toThrow(/a is the last voter/);
  await expect(members.demote('a')).rejects.toThrow(/a is the last voter/);
});

test('removing the leader hands leadership over first; the removed node no longer counts', async () => {
  c = await startMemCluster();
  const leader = await c.leader();
  const asker = c.ids.find((id) => id !== leader)!;
  await c.node(asker).cluster.members.remove(leader);
  const rest = c.ids.filter((id) => id !== leader);
  const next = await c.leader(rest);
  expect(next).not.toBe(leader);
  expect(roles(c, next)).toBe(rest.map((id) => `${id}:voter`).join(','));
  // Two voters left: both are needed, and the removed node is not.
  await c.crash(leader);
  await c.node(next).store.put('after', 1);
});

test('the leader promotes caught-up learners while voters are fewer than targetVoters (3), and records the history', async () => {
  c = await startMemCluster({ ids: ['a'], spares: ['d', 'e'] });
  await c.leader();
  const a = c.node('a').cluster;
  await a.members.add({ id: 'd', address: 'mem:d' });
  await a.members.add({ id: 'e', address: 'mem:e' });
  await c.until('three voters', () => roles(c!, 'a') === 'a:voter,d:voter,e:voter', 10_000);
  // Roles change when the entry is appended; the history records commits.
  const expected = ['d joined as learner', 'e joined as learner', 'd promoted to voter', 'e promoted to voter'];
  await c.until('the history', () => expected.every((x) => a.membershipHistory().some((h) => h.change === x)));
  // A pinned learner stays a learner.
  await a.members.demote('e');
  await c.until('e demoted', () => roles(c!, 'a') === 'a:voter,d:voter,e:learner');
});

test('leaveOnShutdown: a graceful stop removes the node, the leader after handing leadership over', async () => {
  c = await startMemCluster({ ids: ['a', 'b', 'c', 'd', 'e'], leaveOnShutdown: ['a', 'b', 'c', 'd', 'e'] });
  const leader = await c.leader();
  await c.node(leader).store.put('k', 1);
  await c.stopNode(leader);
  const rest = c.ids.filter((id) => id !== leader);
  const next = await c.leader(rest);
  await c.until('the old leader removed', () => roles(c!, next) === rest.map((id) => `${id}:voter`).join(','));
  const follower = rest.find((id) => id !== next)!;
  await c.stopNode(follower);
  const three = rest.filter((id) => id !== follower);
  await c.until('the follower removed', () => roles(c!, next) === three.map((id) => `${id}:voter`).join(','));
  // Three voters left, all running: the cluster keeps committing.
  expect(await c.node(three[0]!).store.get('k', { consistency: 'linearizable' })).toMatchObject({ value: 1 });
});
