import { Inject, type Type } from '@nestjs/common';
import { FORWARDER_PROPERTY, FORWARD_TO_LEADER_METADATA } from '../constants.js';
import type { ForwardToLeaderOptions } from '../interfaces/cluster-module-options.interface.js';
import { CommandForwarder } from '../services/command-forwarder.service.js';
import { wrapExecute } from './wrap-execute.js';

/**
 * Runs the handler on the leader, whichever node received the command: on a follower the command is sent to the
 * leader, executed there by the same handler, and its result or error comes back. On a query handler it gives
 * read-your-writes reads (queries otherwise stay local).
 */
export function ForwardToLeader(options: ForwardToLeaderOptions = {}): ClassDecorator {
  return (target) => {
    const cls = target as unknown as Type<object>;
    Reflect.defineMetadata(FORWARD_TO_LEADER_METADATA, options, cls);
    Inject(CommandForwarder)(cls.prototype, FORWARDER_PROPERTY);
    wrapExecute(cls, '@ForwardToLeader()', (original) =>
      function (this: object, message: object) {
        const forwarder = (this as Record<string, CommandForwarder | undefined>)[FORWARDER_PROPERTY];
        if (!forwarder) return original.call(this, message); // outside a cluster module: plain handler
        return forwarder.run(message, (m) => original.call(this, m), options);
      },
    );
  };
}
