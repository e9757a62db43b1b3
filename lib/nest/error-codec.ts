import * as common from '@nestjs/common';
import type { Type } from '@nestjs/common';
import * as clusterErrors from '../cluster/errors.js';

/** An error as it travels back from the leader. */
export interface EncodedError {
  readonly name: string;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/** A forwarded handler failed on the leader with an error class this node does not know. */
export class RemoteHandlerError extends Error {
  constructor(
    readonly remoteName: string,
    message: string,
    readonly fields: Record<string, unknown>,
  ) {
    super(message);
    this.name = remoteName;
    Object.assign(this, fields);
  }
}

export function encodeError(e: unknown): EncodedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'stack' || k === 'message') continue;
    try {
      fields[k] = JSON.parse(JSON.stringify(v)) as unknown; // only what survives plain-data encoding travels
    } catch {
      // a field that cannot be encoded stays behind
    }
  }
  return { name: e.name, message: e.message, fields };
}

const BUILT_IN: readonly Type<Error>[] = [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError];

function errorClasses(from: Record<string, unknown>): Type<Error>[] {
  return Object.values(from).filter(
    (v): v is Type<Error> => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof Error,
  );
}

/** Rebuilds errors as their own class when it is known here: built-ins, Nest's, this library's, and the app's. */
export class ErrorTypes {
  private readonly byName = new Map<string, Type<Error>>();

  constructor(extra: readonly Type<Error>[] = []) {
    for (const cls of [...BUILT_IN, ...errorClasses(common), ...errorClasses(clusterErrors), ...extra]) this.byName.set(cls.name, cls);
  }

  rebuild(e: EncodedError, leaderId: string): Error {
    const cls = this.byName.get(e.name);
    const err = cls ? (Object.create(cls.prototype) as Error) : new RemoteHandlerError(e.name, e.message, e.fields);
    Object.assign(err, e.fields);
    Object.defineProperty(err, 'message', { value: e.message, writable: true, configurable: true });
    Object.defineProperty(err, 'stack', {
      value: `${e.name}: ${e.message}\n    at <the leader, ${leaderId}, via @ForwardToLeader>`,
      writable: true,
      configurable: true,
    });
    return err;
  }
}
