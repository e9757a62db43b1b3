/**
 * App messages sent to one follower and not yet acknowledged, as a ring of their last indices. Bounds how far the
 * leader pipelines ahead of a slow follower.
 */
export class Inflights {
  private readonly ring: number[];
  private start = 0;
  count = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<number>(capacity);
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  add(lastIndex: number): void {
    if (this.full()) throw new Error('inflights overflow');
    this.ring[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** Frees every message whose last index is <= `index`. */
  freeLE(index: number): void {
    while (this.count > 0 && this.ring[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  freeFirst(): void {
    if (this.count > 0) this.freeLE(this.ring[this.start]!);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}
