/**
 * Time as the runtime and the transport see it: the I/O ports through which production passes the system clock and
 * timers, and the simulator its own clock and event queue.
 */
/** Monotonic time in ms. Production: performance.now(); the simulator: its own clock, optionally skewed per node. */
export interface Clock {
  now(): number;
}

export interface TimerHandle {
  cancel(): void;
}

/** Production: setTimeout/setImmediate; the simulator: events on its queue. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Runs `fn` after the current I/O callbacks: how proposals from one event-loop turn end up in one batch. */
  setImmediate(fn: () => void): void;
}

export const systemClock: Clock = { now: () => performance.now() };

export const systemTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  setImmediate(fn) {
    setImmediate(fn);
  },
};
