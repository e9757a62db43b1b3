import * as common from '@nestjs/common';
import type { Type } from '@nestjs/common';
import * as clusterErrors from '../cluster/errors.js';
import * as lockErrors from '../cluster/lock-errors.js';
import type { ClusterLogger } from '../cluster/logger.js';
import { clusterErrorClass } from './decorators/cluster-error.decorator.js';

/** An error as it travels back from the leader. */
export interface EncodedError {
  /** Its class's name: the caller rebuilds it as that class when it knows it. */
  readonly type: string;
  /** Its `name`; its class's name when it never set one (`class Declined extends Error {}` still says 'Error'). */
  readonly name: string;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/**
 * A forwarded handler failed on the leader with an error class this node does not know (not marked with
 * @ClusterError(), not in `errorTypes`): it keeps the original's name, message and plain own fields.
 */
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

const BUILT_IN: readonly Type<Error>[] = [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError];

export function encodeError(e: unknown): EncodedError {
  if (!(e instanceof Error)) return { type: 'Error', name: 'Error', message: String(e), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'stack' || k === 'message') continue;
    try {
      fields[k] = JSON.parse(JSON.stringify(v)) as unknown; // only what survives plain-data encoding travels
    } catch {
      // a field that cannot be encoded stays behind
    }
  }
  return { type: e.constructor.name, name: nameOf(e), message: e.message, fields };
}

/** `e.name`, unless it is only inherited from a built-in's prototype: then the class's own name says more. */
function nameOf(e: Error): string {
  let holder: object | null = e;
  while (holder !== null && !Object.hasOwn(holder, 'name')) holder = Object.getPrototypeOf(holder) as object | null;
  return BUILT_IN.some((b) => b.prototype === holder) ? e.constructor.name || e.name : e.name;
}

function errorClasses(from: Record<string, unknown>): Type<Error>[] {
  return Object.values(from).filter(
    (v): v is Type<Error> => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof Error,
  );
}

/** Classes every node knows without being told: JS built-ins, Nest's exceptions, this library's. */
const KNOWN = new Map<string, Type<Error>>(
  [...BUILT_IN, ...errorClasses(common), ...errorClasses(clusterErrors), ...errorClasses(lockErrors)].map((c) => [c.name, c]),
);

/**
 * Rebuilds errors as their own class when this node knows it: the app's (errorTypes, @ClusterError()) before the
 * known ones, so an app class may share a name with one of those. Any other class becomes a RemoteHandlerError, with
 * one warning per class saying how to register it.
 */
export class ErrorTypes {
  private readonly listed: ReadonlyMap<string, Type<Error>>;
  private readonly warned = new Set<string>();

  constructor(
    listed: readonly Type<Error>[],
    private readonly logger: ClusterLogger,
  ) {
    this.listed = new Map(listed.map((c) => [c.name, c]));
  }

  rebuild(e: EncodedError, leaderId: string): Error {
    const cls = this.listed.get(e.type) ?? clusterErrorClass(e.type) ?? KNOWN.get(e.type);
    if (!cls) this.warnUnknown(e, leaderId);
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

  private warnUnknown(e: EncodedError, leaderId: string): void {
    if (this.warned.has(e.type)) return;
    this.warned.add(e.type);
    this.logger.warn(
      `a @ForwardToLeader handler on ${leaderId} threw ${e.type}, a class this node does not know: it is rethrown here as ` +
        `RemoteHandlerError (name "${e.name}"). To rethrow it as ${e.type}, mark the class with @ClusterError() or list it in the errorTypes option`,
    );
  }
}
