/**
 * Keys and values @nestjs/schedule 12 stores on scheduled methods (dist/schedule.constants.js, enums/scheduler-type).
 * Mirrored rather than imported so the schedule package stays an optional peer; test/nest checks they match.
 */
export const SCHEDULER_TYPE = 'SCHEDULER_TYPE';
export const SCHEDULE_CRON_OPTIONS = 'SCHEDULE_CRON_OPTIONS';
export const SCHEDULE_INTERVAL_OPTIONS = 'SCHEDULE_INTERVAL_OPTIONS';
export const SCHEDULER_TYPE_CRON = 1;
export const SCHEDULER_TYPE_TIMEOUT = 2;
export const SCHEDULER_TYPE_INTERVAL = 3;

/** Copies the metadata of `from` onto `to` where `to` has none of its own under that key. */
export function copyMetadata(from: object, to: object): void {
  for (const key of Reflect.getOwnMetadataKeys(from) as unknown[]) {
    if (!Reflect.hasOwnMetadata(key, to)) Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, from), to);
  }
}

/**
 * The period of a cron expression that fires at fixed intervals, in ms: `* * * * * *` (1 s), `*\/5 * * * * *`,
 * `0 *\/2 * * * *`, `0 0 * * * *`, and the 5-field forms. Undefined for anything else (days, lists, ranges, dates).
 */
export function fixedCronPeriod(expr: unknown): number | undefined {
  if (typeof expr !== 'string') return undefined;
  const f = expr.trim().split(/\s+/);
  if (f.length === 5) f.unshift('0');
  if (f.length !== 6) return undefined;
  const units = [1000, 60_000, 3_600_000];
  const ranges = [60, 60, 24];
  let i = 0;
  while (i < 3 && f[i] === '0') i++;
  if (i === 3) return undefined;
  const m = /^\*(?:\/(\d+))?$/.exec(f[i]!);
  if (!m) return undefined;
  const step = m[1] === undefined ? 1 : Number(m[1]);
  if (step < 1 || ranges[i]! % step !== 0) return undefined;
  if (f.slice(i + 1).some((x) => x !== '*')) return undefined;
  return units[i]! * step;
}

/** The period of a scheduled method, when it has a fixed one (an @Interval, or a @Cron per fixedCronPeriod). */
export function schedulePeriod(fn: object): number | undefined {
  const type = Reflect.getMetadata(SCHEDULER_TYPE, fn) as number | undefined;
  if (type === SCHEDULER_TYPE_INTERVAL) {
    const ms = (Reflect.getMetadata(SCHEDULE_INTERVAL_OPTIONS, fn) as { timeout?: number } | undefined)?.timeout;
    return typeof ms === 'number' && ms > 0 ? ms : undefined;
  }
  if (type === SCHEDULER_TYPE_CRON) {
    return fixedCronPeriod((Reflect.getMetadata(SCHEDULE_CRON_OPTIONS, fn) as { cronTime?: unknown } | undefined)?.cronTime);
  }
  return undefined;
}

/**
 * The scheduled time a fire at `now` belongs to, the same on every node whatever its phase or clock offset (within
 * half a second): cron fires land on whole seconds, so the nearest one (a timer a millisecond early must not fall into
 * the previous second, which already ran); multiples of the period for intervals; whole seconds otherwise.
 */
export function fireTimeOf(fn: object, now: number): number {
  const type = Reflect.getMetadata(SCHEDULER_TYPE, fn) as number | undefined;
  if (type === SCHEDULER_TYPE_CRON) return Math.round(now / 1000) * 1000;
  if (type === SCHEDULER_TYPE_INTERVAL) {
    const p = schedulePeriod(fn);
    if (p) return Math.floor(now / p) * p;
  }
  return Math.floor(now / 1000) * 1000;
}
