import type { Type } from '@nestjs/common';

type Execute = (this: object, message: object) => Promise<unknown>;

/**
 * Replaces `execute` on a handler class's prototype. The cqrs buses look `execute` up on the instance at call time,
 * so this covers singleton and request-scoped handlers alike, whatever order the decorators are applied in.
 */
export function wrapExecute(target: Type<object>, decorator: string, wrap: (original: Execute) => Execute): void {
  const original = (target.prototype as { execute?: Execute }).execute;
  if (typeof original !== 'function') {
    throw new Error(`${decorator} on ${target.name}: the class has no execute() method; put it on a @CommandHandler() or @QueryHandler() class`);
  }
  (target.prototype as { execute: Execute }).execute = wrap(original);
}
