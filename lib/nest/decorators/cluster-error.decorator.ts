import type { Type } from '@nestjs/common';

/** Classes marked with @ClusterError(), by class name: process-wide, like the classes themselves. */
const marked = new Map<string, Type<Error>>();

/**
 * Marks an error class that @ForwardToLeader handlers may throw: a caller on another node then rethrows it as this
 * class (`instanceof` holds), with its message and plain own fields. The same as listing it in the module's
 * `errorTypes`. Errors travel by class name, so two marked classes must not share one.
 *
 *   @ClusterError()
 *   export class InsufficientFunds extends Error { constructor(readonly account: string) { super(…); } }
 */
export function ClusterError(): (target: Type<Error>) => void {
  return (target) => {
    const other = marked.get(target.name);
    if (other && other !== target) {
      throw new Error(`@ClusterError() on ${target.name}: another class of that name is marked already; errors travel by class name, so rename one`);
    }
    marked.set(target.name, target);
  };
}

/** The @ClusterError() class of that name, if one is marked. */
export function clusterErrorClass(name: string): Type<Error> | undefined {
  return marked.get(name);
}
