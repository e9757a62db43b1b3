import { writeWholeFile, type Disk } from './disk.js';

/**
 * One number kept in a small file of the dataDir, replaced atomically: written to a temp file, synced, renamed over
 * the old one. A crash leaves the old value or the new one, never a torn file. The rename is not made durable with a
 * directory sync: callers use it for values where an older one after a crash is acceptable (a delivery cursor).
 */
export class NumberFile {
  private readonly temp: string;

  constructor(
    private readonly disk: Disk,
    private readonly name: string,
  ) {
    this.temp = `${name}.tmp`;
  }

  /** The stored value; null when there is none or it cannot be read as one. */
  async read(): Promise<number | null> {
    const bytes = await this.disk.readFile(this.name);
    if (bytes === null) return null;
    const text = new TextDecoder().decode(bytes).trim();
    const n = Number(text);
    return /^\d+$/.test(text) && Number.isSafeInteger(n) ? n : null;
  }

  async write(value: number): Promise<void> {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`NumberFile ${this.name}: a whole number >= 0, got ${value}`);
    await writeWholeFile(this.disk, this.temp, new TextEncoder().encode(`${value}\n`));
    await this.disk.rename(this.temp, this.name);
  }
}
