/**
 * Coalesces the frames written during one tick into few large socket writes. A socket.write per small frame costs
 * several microseconds of stream bookkeeping, more than encoding the frame; here frames are encoded straight into a
 * shared buffer that is handed to the socket once, at the end of the tick (or when full).
 */

const MIN_SLAB = 1024;
const MAX_SLAB = 256 * 1024;
/** Frames at least this large skip the copy into the batch and are written as they are. */
const DIRECT_BYTES = 16 * 1024;

export class WriteBatch {
  /** The buffer frames are being written into; valid from reserve() until the end of the tick. */
  buffer: Buffer = Buffer.alloc(0);
  private length = 0;
  private scheduled = false;
  private closed = false;
  /** Bytes written in the current tick, to size the next tick's buffer. */
  private tickBytes = 0;
  private slabBytes = MIN_SLAB;

  constructor(private readonly sink: (chunk: Buffer) => void) {}

  /** Bytes accepted and not yet handed to the socket. */
  get pendingBytes(): number {
    return this.length;
  }

  /**
   * Reserves `bytes` and returns the offset in `buffer` where the caller writes them, before anything else runs.
   * Read `buffer` after this call: it may switch to a new buffer.
   */
  reserve(bytes: number): number {
    if (this.buffer.length - this.length < bytes) {
      this.push();
      this.buffer = Buffer.allocUnsafe(Math.max(bytes, this.slabBytes));
    }
    const at = this.length;
    this.length += bytes;
    this.tickBytes += bytes;
    this.schedule();
    return at;
  }

  /** Queues a frame that is already a buffer. */
  write(frame: Buffer): void {
    if (this.closed) return;
    if (frame.length >= DIRECT_BYTES) {
      this.push();
      this.buffer = Buffer.alloc(0);
      this.tickBytes += frame.length;
      this.sink(frame);
      this.schedule();
      return;
    }
    const at = this.reserve(frame.length); // first: it may replace this.buffer
    frame.copy(this.buffer, at);
  }

  /** Hands everything pending to the socket now (before an orderly end). */
  flush(): void {
    this.push();
    this.buffer = Buffer.alloc(0);
  }

  /** Drops anything pending; later writes are ignored. */
  close(): void {
    this.closed = true;
    this.length = 0;
    this.buffer = Buffer.alloc(0);
  }

  private push(): void {
    if (this.length === 0) return;
    const chunk = this.buffer.subarray(0, this.length);
    // The socket keeps `chunk` until written, so the rest of this buffer is not reused.
    this.buffer = Buffer.alloc(0);
    this.length = 0;
    if (!this.closed) this.sink(chunk);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(this.endOfTick);
  }

  private readonly endOfTick = (): void => {
    this.scheduled = false;
    this.push();
    this.buffer = Buffer.alloc(0);
    // Next tick's buffer fits about what this tick wrote, so a busy link gets large writes and an idle one small ones.
    this.slabBytes = Math.min(MAX_SLAB, Math.max(MIN_SLAB, this.tickBytes));
    this.tickBytes = 0;
  };
}
