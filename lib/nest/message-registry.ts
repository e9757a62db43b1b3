import type { Type } from '@nestjs/common';

/**
 * Names ↔ classes for what crosses process boundaries (commands, queries, events). A class is known by a stable name
 * so a message can be rebuilt on another node; two classes under one name are refused at bootstrap.
 */
export class MessageRegistry {
  private readonly byName = new Map<string, Type<object>>();
  private readonly byClass = new Map<Type<object>, string>();

  register(name: string, cls: Type<object>, what: string): void {
    const existing = this.byName.get(name);
    if (existing && existing !== cls) {
      throw new Error(
        `two ${what} classes travel under the name "${name}" (${existing.name} and ${cls.name}); give one a unique name in its decorator`,
      );
    }
    this.byName.set(name, cls);
    this.byClass.set(cls, name);
  }

  nameOf(cls: Type<object>): string | undefined {
    return this.byClass.get(cls);
  }

  classOf(name: string): Type<object> | undefined {
    return this.byName.get(name);
  }
}

/** A message's own fields, as plain data. */
export function fieldsOf(message: object): Record<string, unknown> {
  return { ...(message as Record<string, unknown>) };
}

/** A real instance of `cls` with `fields`, without running its constructor (which may have required arguments). */
export function rebuild<T extends object>(cls: Type<T>, fields: unknown): T {
  return Object.assign(Object.create(cls.prototype) as T, fields as object);
}
