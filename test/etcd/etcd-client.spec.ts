/** The etcd client: the startup probe's messages and the error mapping, against a real 3-member etcd. */
import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCUnavailableError,
  Range,
} from 'etcd3';
import { callOptions, connectEtcd, toClusterError } from '../../lib/cluster/etcd/etcd-client';
import { NoLeaderException, ProposalOutcomeUnknownError } from '../../lib/cluster/errors';
import { etcdHosts, noRetryClient, startEtcd, type EtcdCluster } from '../support/etcd-cluster';
import { freePorts } from '../transport/helpers';
import { failure } from '../support/failure';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
beforeAll(async () => {
  etcd = await startEtcd(3);
});
afterAll(async () => {
  await etcd?.destroy();
});

const prefix = () => `t${randomBytes(4).toString('hex')}/`;

function rawClient(hosts: string[]): Etcd3 {
  return noRetryClient(hosts);
}


test('unreachable hosts fail the probe within the timeout, with every host listed', async () => {
  const ports = await freePorts(2);
  const hosts = ports.map((p) => `http://127.0.0.1:${p}`);
  const t0 = Date.now();
  const e = await failure(connectEtcd({ hosts, requestTimeoutMs: 1_000 }, `${prefix()}probe`));
  expect(Date.now() - t0).toBeLessThan(2 * 1_000 + 1_000);
  expect(e.message).toMatch(/no etcd endpoint answered within 1000 ms/);
  for (const h of hosts) expect(e.message).toContain(`etcd at ${h} is unreachable`);
});

test('bad host strings and mixed schemes are refused before connecting', async () => {
  await expect(connectEtcd({ hosts: ['127.0.0.1:2379'], requestTimeoutMs: 500 }, 'p/probe')).rejects.toThrow(/http:\/\/host:port/);
  await expect(connectEtcd({ hosts: ['http://a:1', 'https://b:2'], requestTimeoutMs: 500 }, 'p/probe')).rejects.toThrow(/mix/);
  await expect(connectEtcd({ hosts: [], requestTimeoutMs: 500 }, 'p/probe')).rejects.toThrow(/no hosts/);
});

test('a working cluster probes fine, also with one dead host in the list', async () => {
  const p = prefix();
  const [dead] = await freePorts(1);
  const client = await connectEtcd({ hosts: etcdHosts(etcd), requestTimeoutMs: 2_000 }, `${p}probe`);
  try {
    await client.put(`${p}k`).value('v').options(callOptions(2_000)).exec();
    expect(await client.get(`${p}k`).options(callOptions(2_000)).string()).toBe('v');
  } finally {
    client.close();
  }
  // A member being down is normal operation: the probe passes (calls that pick the dead host fail, callers retry).
  const partly = await connectEtcd({ hosts: [...etcdHosts(etcd), `http://127.0.0.1:${dead}`], requestTimeoutMs: 2_000 }, `${p}probe`);
  partly.close();
});

test('toClusterError: transport failures map by whether the request surely never reached etcd', () => {
  const unreachable = toClusterError(new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED'), 'put x');
  expect(unreachable).toBeInstanceOf(NoLeaderException);
  expect(unreachable.message).toMatch(/^etcd unreachable: put x failed/);
  expect(toClusterError(new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: no leader'), 'put x')).toBeInstanceOf(NoLeaderException);
  expect(toClusterError(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 1.0s,Waiting for LB pick'), 'put x')).toBeInstanceOf(
    NoLeaderException,
  );
  expect(toClusterError(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded after 1.0s,remote_addr=1.2.3.4:5'), 'put x')).toBeInstanceOf(
    ProposalOutcomeUnknownError,
  );
  expect(toClusterError(new GRPCUnavailableError('14 UNAVAILABLE: Connection dropped'), 'put x')).toBeInstanceOf(ProposalOutcomeUnknownError);
  expect(toClusterError(new GRPCInternalError('13 INTERNAL: Received RST_STREAM with code 2'), 'put x')).toBeInstanceOf(ProposalOutcomeUnknownError);
  const other = new EtcdPermissionDeniedError('etcdserver: permission denied');
  expect(toClusterError(other, 'put x')).toBe(other);
  expect(toClusterError('boom', 'put x').message).toBe('put x: boom');
});

test('toClusterError on a real killed endpoint says unreachable, and on a stopped one says outcome unknown', async () => {
  const p = prefix();
  const victim = etcd.members.find((m) => m !== etcd.members[0])!;
  const client = rawClient([victim.clientUrl]);
  try {
    await client.put(`${p}k`).value('1').options(callOptions(2_000)).exec(); // connection established

    // Stopped (not dead): the request is on the wire, no answer comes back before the deadline.
    victim.pause();
    try {
      const e = await failure(client.put(`${p}k`).value('2').options(callOptions(500)).exec());
      const mapped = toClusterError(e, 'writing k');
      expect(mapped).toBeInstanceOf(ProposalOutcomeUnknownError);
      expect(mapped.message).toMatch(/writing k/);
    } finally {
      victim.resume();
    }

    await victim.stop('SIGKILL');
    // A dead endpoint refuses connections: the call surely never reached etcd.
    const e = await failure(client.put(`${p}k`).value('3').options(callOptions(1_000)).exec());
    const mapped = toClusterError(e, 'writing k');
    expect(mapped).toBeInstanceOf(NoLeaderException);
    expect(mapped.message).toMatch(/^etcd unreachable: writing k failed/);
  } finally {
    client.close();
    if (!victim.running) await etcd.restart(victim);
  }
});

// Last: it turns auth on for this etcd, and off again after its tests.
describe('auth', () => {
  const p = prefix();
  let hosts: string[];
  const rootClient = () => noRetryClient(hosts, { auth: { username: 'root', password: 'rootpw' } });

  beforeAll(async () => {
    hosts = etcdHosts(etcd);
    const root = rawClient(hosts);
    try {
      await root.user('root').create('rootpw', callOptions(5_000));
      await root.role('root').create(callOptions(5_000));
      await root.user('root').addRole('root', callOptions(5_000));
      await root.role('app').create(callOptions(5_000));
      await root.role('app').grant({ permission: 'Readwrite', range: Range.prefix(p) }, callOptions(5_000));
      await root.user('app').create('apppw', callOptions(5_000));
      await root.user('app').addRole('app', callOptions(5_000));
      await root.role('reader').create(callOptions(5_000));
      await root.role('reader').grant({ permission: 'Read', range: Range.prefix(p) }, callOptions(5_000));
      await root.user('reader').create('readerpw', callOptions(5_000));
      await root.user('reader').addRole('reader', callOptions(5_000));
      await root.user('other').create('otherpw', callOptions(5_000));
      await root.auth.authEnable(callOptions(5_000));
    } finally {
      root.close();
    }
  });

  // Isolation: tests added after this block find the etcd as before (auth off, only the extra users left).
  afterAll(async () => {
    const root = rootClient();
    try {
      await root.auth.authDisable(callOptions(5_000));
    } finally {
      root.close();
    }
  });

  test('a wrong password and a user without permission on the prefix fail with what to fix', async () => {
    const wrong = await failure(connectEtcd({ hosts, auth: { username: 'app', password: 'nope' }, requestTimeoutMs: 2_000 }, `${p}probe`));
    expect(wrong.message).toMatch(/^etcd rejected user app: wrong user name or password/);

    const denied = await failure(connectEtcd({ hosts, auth: { username: 'other', password: 'otherpw' }, requestTimeoutMs: 2_000 }, `${p}probe`));
    expect(denied.message).toContain(`etcd user other may not read ${p}*`);

    const ok = await connectEtcd({ hosts, auth: { username: 'app', password: 'apppw' }, requestTimeoutMs: 2_000 }, `${p}probe`);
    try {
      await ok.put(`${p}k`).value('v').options(callOptions(2_000)).exec();
    } finally {
      ok.close();
    }
  });

  test('a read-only user fails at startup, saying it may not write the prefix, and leaves no probe key or lease', async () => {
    const root = rootClient();
    try {
      const leasesBefore = (await root.leaseClient.leaseLeases(callOptions(2_000))).leases.length;
      const e = await failure(connectEtcd({ hosts, auth: { username: 'reader', password: 'readerpw' }, requestTimeoutMs: 2_000 }, `${p}probe`));
      expect(e.message).toBe(
        `etcd user reader may not write ${p}* (needs read/write on ${p}* and lease grant/revoke): grant its role readwrite ` +
          `on the prefix (etcdctl role grant-permission <role> --prefix=true readwrite ${p})`,
      );
      expect((await root.get(`${p}probe`).options(callOptions(2_000)).exec()).kvs).toHaveLength(0);
      expect((await root.leaseClient.leaseLeases(callOptions(2_000))).leases.length).toBe(leasesBefore);

      // The writer's probe cleans up after itself too.
      const ok = await connectEtcd({ hosts, auth: { username: 'app', password: 'apppw' }, requestTimeoutMs: 2_000 }, `${p}probe`);
      ok.close();
      expect((await root.get(`${p}probe`).options(callOptions(2_000)).exec()).kvs).toHaveLength(0);
      expect((await root.leaseClient.leaseLeases(callOptions(2_000))).leases.length).toBe(leasesBefore);
    } finally {
      root.close();
    }
  });

  test('no auth against an etcd with auth enabled: says to set backend.auth', async () => {
    const e = await failure(connectEtcd({ hosts, requestTimeoutMs: 2_000 }, `${p}probe`));
    expect(e.message).toBe('etcd requires authentication: set backend.auth { username, password }');
  });
});

test('after the auth tests, the etcd takes clients without auth again', async () => {
  const client = await connectEtcd({ hosts: etcdHosts(etcd), requestTimeoutMs: 2_000 }, `${prefix()}probe`);
  client.close();
});
