import { Backoff } from '../../lib/transport/backoff.js';

describe('Backoff', () => {
  it('doubles from 50 ms to a 250 ms cap and resets', () => {
    const b = new Backoff({ random: () => 0.5 });
    expect(Array.from({ length: 6 }, () => b.next())).toEqual([50, 100, 200, 250, 250, 250]);
    b.reset();
    expect(b.next()).toBe(50);
  });

  it('spreads each delay by at most ±20%', () => {
    expect(new Backoff({ random: () => 0 }).next()).toBe(40);
    expect(new Backoff({ random: () => 0.999999 }).next()).toBe(60);
    const b = new Backoff();
    for (let i = 0; i < 100; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(40);
      expect(d).toBeLessThanOrEqual(300);
    }
  });
});
