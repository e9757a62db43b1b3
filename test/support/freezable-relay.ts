import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay to one server (an etcd member) that can freeze: connections stay open but no byte moves, as with a cut
 * network or a stopped process on the other side.
 */
export async function freezableRelay(target: string): Promise<{ url: string; freeze(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  let frozen = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(Number(port), hostname);
    for (const [from, to] of [
      [down, up],
      [up, down],
    ] as const) {
      sockets.add(from);
      from.on('data', (b) => frozen || to.write(b));
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    freeze: () => (frozen = true),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
