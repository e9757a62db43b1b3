import { Inject, Injectable, type OnApplicationBootstrap, type Type } from '@nestjs/common';
import { DiscoveryService, ModuleRef } from '@nestjs/core';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { ClusterCoordinator } from '../../cluster/cluster-coordinator.js';
import { NoLeaderException, NotLeaderException } from '../../cluster/errors.js';
import { CallTimeoutError, ConnectionLostError, NotSentError } from '../../cluster/io.js';
import { CLUSTER_MODULE_OPTIONS } from '../cluster.module-definition.js';
import {
  CQRS_COMMAND_HANDLER_METADATA,
  CQRS_QUERY_HANDLER_METADATA,
  FORWARD_CHANNEL,
  FORWARD_TO_LEADER_METADATA,
} from '../constants.js';
import { encodeError, ErrorTypes, type EncodedError } from '../error-codec.js';
import type { ClusterModuleOptions, ForwardToLeaderOptions } from '../interfaces/cluster-module-options.interface.js';
import { fieldsOf, MessageRegistry, rebuild } from '../message-registry.js';
import { CLUSTER_METRICS, type NodeMetrics } from '../ops/node-metrics.js';

export type MessageKind = 'command' | 'query';

interface ForwardRequest {
  readonly kind: MessageKind;
  readonly name: string;
  readonly fields: unknown;
  readonly requestId: string;
}

type ForwardReply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: EncodedError };

/** A forwarded command was sent but no answer came back: it may or may not have run on the leader. */
export class ForwardOutcomeUnknownException extends Error {
  override name = 'ForwardOutcomeUnknownException';
}

/** Marks an error thrown before the handler ran, so the caller knows a retry cannot run the command twice. */
const NOT_RUN = Symbol('catga.notRun');
/** How long the leader remembers a forwarded request id, so a duplicate delivery runs the handler once. */
const DEDUPE_WINDOW_MS = 60_000;
const DEDUPE_MAX = 10_000;

/**
 * Runs @ForwardToLeader handlers on the leader: locally when this node leads, otherwise by sending the message (its
 * registered name and fields) to the leader, which rebuilds a real instance and executes it on its own bus.
 * Retries happen only when the message surely did not run (not sent, or refused by a node that is no longer leader).
 */
@Injectable()
export class CommandForwarder implements OnApplicationBootstrap {
  private readonly registry = new MessageRegistry();
  private readonly errors: ErrorTypes;
  /** Messages rebuilt from a forward: they run here or fail, never travel again. */
  private readonly forwarded = new WeakSet<object>();
  private readonly recent = new Map<string, { at: number; reply: Promise<ForwardReply> }>();
  private readonly requestTimeout: number;

  constructor(
    private readonly cluster: ClusterCoordinator,
    private readonly discovery: DiscoveryService,
    private readonly moduleRef: ModuleRef,
    @Inject(CLUSTER_MODULE_OPTIONS) options: ClusterModuleOptions,
    @Inject(CLUSTER_METRICS) private readonly metrics: NodeMetrics | null,
  ) {
    this.errors = new ErrorTypes(options.errorTypes);
    this.requestTimeout = options.requestTimeout ?? 5000;
    cluster.onRequest(FORWARD_CHANNEL, (body) => this.serve(body as ForwardRequest));
  }

  /** Learns every message class whose handler forwards, so the leader can rebuild what followers send. */
  onApplicationBootstrap(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const handler = wrapper.metatype as Type<object> | null;
      if (!handler || typeof handler !== 'function') continue;
      const options = Reflect.getMetadata(FORWARD_TO_LEADER_METADATA, handler) as ForwardToLeaderOptions | undefined;
      if (!options) continue;
      const command = Reflect.getMetadata(CQRS_COMMAND_HANDLER_METADATA, handler) as Type<object> | undefined;
      const query = Reflect.getMetadata(CQRS_QUERY_HANDLER_METADATA, handler) as Type<object> | undefined;
      const message = command ?? query;
      if (!message) {
        throw new Error(`@ForwardToLeader() on ${handler.name}: put it on a @CommandHandler() or @QueryHandler() class`);
      }
      this.registry.register(options.name ?? message.name, message, command ? 'command' : 'query');
    }
  }

  async run(kind: MessageKind, message: object, runLocal: (m: object) => Promise<unknown>, options: ForwardToLeaderOptions): Promise<unknown> {
    if (this.forwarded.has(message)) {
      if (!this.cluster.isLeader) throw notRun(new NotLeaderException(this.cluster.leaderId ?? ''));
      return runLocal(message);
    }
    const cls = message.constructor as Type<object>;
    const name = this.registry.nameOf(cls) ?? options.name ?? cls.name;
    const timeout = options.timeout ?? this.requestTimeout;
    const deadline = Date.now() + timeout;
    const request: ForwardRequest = { kind, name, fields: fieldsOf(message), requestId: randomUUID() };
    for (let attempt = 0; ; attempt++) {
      if (this.cluster.isLeader) return runLocal(message);
      const left = deadline - Date.now();
      if (left <= 0) throw new NoLeaderException(`no leader ran ${name} within ${timeout} ms`);
      const leader = this.cluster.leaderId;
      if (leader) {
        const sent = performance.now();
        try {
          const { value } = await this.cluster.requestLeader(FORWARD_CHANNEL, request, left).catch((e: unknown) => {
            this.metrics?.forwardSettled(kind, 'failed', (performance.now() - sent) / 1000);
            throw e;
          });
          const reply = value as ForwardReply;
          this.metrics?.forwardSettled(kind, reply.ok ? 'ok' : 'error', (performance.now() - sent) / 1000);
          if (reply.ok) return reply.value;
          throw this.errors.rebuild(reply.error, leader);
        } catch (e) {
          if (e instanceof CallTimeoutError || e instanceof ConnectionLostError) {
            throw new ForwardOutcomeUnknownException(
              `${name} was sent to the leader ${leader}, but no answer came back (${e.message}); it may or may not have run`,
            );
          }
          // Not sent, or refused by a node that no longer leads: it did not run, so trying again is safe.
          if (!(e instanceof NotSentError || e instanceof NotLeaderException || e instanceof NoLeaderException)) throw e;
        }
      }
      await this.cluster.pauseUntilLeaderElected(Math.min(5 * 2 ** Math.min(attempt, 5), Math.max(1, deadline - Date.now())));
    }
  }

  /** On the leader: rebuild the message and run it on the local bus, once per request id. */
  private serve(req: ForwardRequest): Promise<ForwardReply> {
    this.forgetOld();
    const seen = this.recent.get(req.requestId);
    if (seen) return seen.reply;
    const reply = this.execute(req);
    this.recent.set(req.requestId, { at: Date.now(), reply });
    // A refusal before running is not remembered: the caller retries with the same id and must get a fresh try.
    reply.catch(() => this.recent.delete(req.requestId));
    return reply;
  }

  private async execute(req: ForwardRequest): Promise<ForwardReply> {
    const cls = this.registry.classOf(req.name);
    if (!cls) {
      return {
        ok: false,
        error: encodeError(
          new Error(
            `${req.kind} "${req.name}" is not known on ${this.cluster.nodeId}: decorate its handler with @ForwardToLeader() ` +
              `(with the same name option on every node) and import the handler's module in every node's app`,
          ),
        ),
      };
    }
    const message = rebuild(cls, req.fields);
    this.forwarded.add(message);
    try {
      const value =
        req.kind === 'command'
          ? await this.moduleRef.get(CommandBus, { strict: false }).execute(message)
          : await this.moduleRef.get(QueryBus, { strict: false }).execute(message);
      return { ok: true, value };
    } catch (e) {
      if (typeof e === 'object' && e !== null && NOT_RUN in e) throw e;
      return { ok: false, error: encodeError(e) };
    }
  }

  private forgetOld(): void {
    const cutoff = Date.now() - DEDUPE_WINDOW_MS;
    for (const [id, r] of this.recent) {
      if (r.at >= cutoff && this.recent.size <= DEDUPE_MAX) break;
      this.recent.delete(id);
    }
  }
}

function notRun<E extends Error>(e: E): E {
  Object.defineProperty(e, NOT_RUN, { value: true });
  return e;
}
