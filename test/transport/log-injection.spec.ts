/**
 * A peer's own words reach the log (a REJECT reason, the id a HELLO claims): line breaks and other control characters
 * in them must not start a forged line. Found by the fuzzer (docs/reliability.md).
 */
import { FrameKind, frame } from '../../lib/transport/frame.js';
import { DialerHandshake } from '../../lib/transport/handshake.js';
import { printable } from '../../lib/transport/printable.js';
import { RawPeer, testCluster, waitFor, type TestCluster } from './helpers.js';

let cluster: TestCluster | null = null;
afterEach(async () => {
  await cluster?.close();
  cluster = null;
});

describe('peer text in the log', () => {
  it('printable escapes control characters and keeps the rest', () => {
    expect(printable('n1 is fine: ünïcödé ✓')).toBe('n1 is fine: ünïcödé ✓');
    expect(printable('a\nb\r\u0000c\u001b[31m\u007f\u0085\u2028')).toBe('a\\u000ab\\u000d\\u0000c\\u001b[31m\\u007f\\u0085\\u2028');
  });

  it('a claimed id or a REJECT reason with line breaks is logged on one line', async () => {
    const c = (cluster = await testCluster(['a', 'b'], { bootstrap: 'a,b' }, ['b']));
    const port = Number(c.members[1]!.split(':').pop());
    const forged = 'a\n[b] all peers authenticated';
    const hello = await RawPeer.connect(port);
    hello.send(new DialerHandshake({ nodeId: forged, secret: 'test-secret-0123456789', clusterName: '', maxFrameBytes: 1 << 20, bootstrap: 'x' }, 'b').hello());
    const reject = await RawPeer.connect(port);
    reject.send(frame(FrameKind.reject, Buffer.from('bye\r\n[b] connected to a (127.0.0.1:1, accepted)')));
    await hello.waitClosed();
    await reject.waitClosed();
    const warns = c.loggers.get('b')!.warns;
    await waitFor(() => warns.length >= 2, 'both refusals');
    expect(warns.filter((w) => /\n|\r/.test(w))).toEqual([]);
    expect(warns.join('\n')).toContain('a\\u000a[b] all peers authenticated was started with members [x]');
    expect(warns.join('\n')).toContain('the peer refused the handshake: bye\\u000d\\u000a[b] connected to a');
  });
});
