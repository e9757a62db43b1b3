/**
 * Membership changes at the transport: a node that joins knows only a seed's address; members learn of new ones
 * (and forget removed ones) through setMembers; a leader may reach a learner before the learner knows the leader.
 */
import { message, MessageType } from '../../lib/raft/index.js';
import { NotSentError } from '../../lib/io/network.js';
import { CaptureLogger, connected, freePorts, fullyConnected, Recorder, testCluster, waitFor, type TestCluster } from './helpers.js';
import { TcpNetwork } from '../../lib/transport/tcp-network.js';

const SECRET = 'test-secret-0123456789';
let cluster: TestCluster | undefined;
const extra: TcpNetwork[] = [];

afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  await Promise.all(extra.splice(0).map((n) => n.close()));
});

/** A node that knows no member but itself: how a node started with `join` begins. */
async function loner(id: string, port: number, handler = new Recorder(), secret = SECRET): Promise<TcpNetwork> {
  const net = new TcpNetwork({ nodeId: id, members: [`${id}=127.0.0.1:${port}`], secret, logger: new CaptureLogger() });
  extra.push(net);
  await net.listen(handler);
  return net;
}

const raft = (from: string, to: string) => message({ type: MessageType.Heartbeat, from, to, term: 1 });

test('a joining node calls a seed by address, learning its id; the seed sees the joiner by its id', async () => {
  const c = (cluster = await testCluster(['a', 'b'], { bootstrap: 'a,b' }));
  await fullyConnected(c);
  const [port] = await freePorts(1);
  const j = await loner('z', port!);
  const seed = c.members[1]!.split('=')[1]!;
  const reply = await j.callAddress(seed, Buffer.from('join me'), 2000);
  expect(Buffer.from(reply).toString()).toBe('z:join me'); // the seed's handler saw the caller as "z"
  expect(connected(j, 'b')).toBe(true);
});

test('a joining node with the wrong secret is refused, and the call is surely not sent', async () => {
  const c = (cluster = await testCluster(['a', 'b']));
  const [port] = await freePorts(1);
  const j = await loner('z', port!, new Recorder(), 'another-secret-0000');
  const seed = c.members[0]!.split('=')[1]!;
  await expect(j.callAddress(seed, Buffer.from('x'), 2000)).rejects.toThrow(NotSentError);
  await expect(j.callAddress('127.0.0.1:1', Buffer.from('x'), 2000)).rejects.toThrow(NotSentError);
});

test('a member reaches a node that does not know it yet (a leader and its new learner), both ways', async () => {
  const c = (cluster = await testCluster(['a', 'b']));
  await fullyConnected(c);
  const [port] = await freePorts(1);
  const learner = new Recorder();
  const z = await loner('z', port!, learner);
  // a learns of z from the configuration; 'a' < 'z', so a dials; z admits the authenticated stranger.
  c.nets.get('a')!.setMembers([...c.members, `z=127.0.0.1:${port}`]);
  await waitFor(() => connected(c.nets.get('a')!, 'z') && connected(z, 'a'), 'a connected to z');
  c.nets.get('a')!.sendRaft(raft('a', 'z'));
  await waitFor(() => learner.messages.length > 0, 'z receiving from a');
  z.sendRaft(raft('z', 'a')); // the answer goes back over the connection a made
  await waitFor(() => c.handlers.get('a')!.messages.some((m) => m.from === 'z'), 'a receiving from z');
});

test('setMembers dials new members, follows a changed address, and stops dialing removed ones', async () => {
  const c = (cluster = await testCluster(['a', 'b', 'c'], {}, ['a', 'b']));
  await fullyConnected(c, ['a', 'b']);
  const a = c.nets.get('a')!;
  // c moves to another port before it starts: a learns the new address and reaches it there.
  const [moved] = await freePorts(1);
  const members = [c.members[0]!, c.members[1]!, `c=127.0.0.1:${moved}`];
  a.setMembers(members);
  await c.start('c', { members, bootstrap: '' });
  await waitFor(() => connected(a, 'c'), 'a connected to c at its new address');

  // b is removed: a stops dialing it; once b's connection goes, a forgets b.
  a.setMembers([members[0]!, members[2]!]);
  expect(c.loggers.get('a')!.logs.join('\n')).toMatch(/b is no longer a member/);
  await c.nets.get('b')!.close();
  await waitFor(() => !connected(a, 'b'), 'b gone');
  await new Promise((r) => setTimeout(r, 400)); // several backoff periods
  expect(a.stats().peers.b).toBeUndefined();
  await expect(a.call('b', Buffer.from('x'), 500)).rejects.toThrow(NotSentError);
});
