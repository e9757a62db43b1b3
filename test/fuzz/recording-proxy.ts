import * as net from 'node:net';
import { FrameKind, FrameReader } from '../../lib/transport/frame.js';

/** One frame as it crossed the wire, header included. */
export interface RecordedFrame {
  readonly kind: FrameKind;
  /** The dialer's and the listener's ids, and which way the frame went. */
  readonly dialer: string;
  readonly listener: string;
  readonly toListener: boolean;
  readonly bytes: Buffer;
}

/**
 * A loopback TCP proxy in front of one member's real port: dialers are pointed at it, it forwards both directions
 * untouched and cuts a copy of each direction into frames. Frames per connection direction are capped so a long
 * recording stays small.
 */
export class RecordingProxy {
  readonly frames: RecordedFrame[] = [];
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly listener: string,
    private readonly targetPort: number,
    private readonly maxFramesPerDirection = 400,
  ) {
    this.server = net.createServer((client) => this.relay(client));
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    let dialer = '?';
    const tap = (toListener: boolean) => {
      const reader = new FrameReader(64 * 1024 * 1024);
      let kept = 0;
      let broken = false;
      return (chunk: Buffer): void => {
        if (broken || kept >= this.maxFramesPerDirection) return;
        try {
          reader.push(chunk);
          for (let f = reader.next(); f !== null; f = reader.next()) {
            if (f.kind === FrameKind.hello) dialer = helloDialer(f.payload) ?? dialer;
            const header = Buffer.alloc(5);
            header.writeUInt32LE(f.payload.length + 1, 0);
            header[4] = f.kind;
            if (kept++ < this.maxFramesPerDirection) {
              this.frames.push({ kind: f.kind, dialer, listener: this.listener, toListener, bytes: Buffer.concat([header, f.payload]) });
            }
          }
        } catch {
          broken = true; // not ours to judge: the real endpoints see the same bytes
        }
      };
    };
    const toListener = tap(true);
    const toDialer = tap(false);
    client.on('data', (chunk: Buffer) => {
      toListener(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      toDialer(chunk);
      client.write(chunk);
    });
  }
}

/** The dialer id in a HELLO payload (u16 version, u8 auth mode, str16 dialer id, ...). */
function helloDialer(payload: Buffer): string | null {
  if (payload.length < 5) return null;
  const n = payload.readUInt16LE(3);
  return payload.length < 5 + n ? null : payload.toString('utf8', 5, 5 + n);
}
