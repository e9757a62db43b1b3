import type { DeliveryCursor } from './event-delivery.js';

/** The event cursor of a node without files (`storage: 'memory'`, tests): gone with the process, like its log. */
export class MemoryCursor implements DeliveryCursor {
  value: number | null = null;

  async read(): Promise<number | null> {
    return this.value;
  }

  async write(index: number): Promise<void> {
    this.value = index;
  }
}
