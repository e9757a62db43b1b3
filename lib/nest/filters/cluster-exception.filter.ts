import { Catch, Optional, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { CLUSTER_HTTP_ERRORS, clusterHttpAnswer, type ClusterHttpError } from './cluster-http-errors.js';

/** The part of the response API that express's Response and fastify's reply share. */
interface ChainedReply {
  status(code: number): ChainedReply;
  header(name: string, value: string): ChainedReply;
  send(body: unknown): unknown;
}

/**
 * Answers the cluster's errors over HTTP as JSON with a stable `code`: NotLeaderException 421 (with `leaderId`),
 * NoLeaderException, ProposalOutcomeUnknownError and ClusterStoppedError 503 with Retry-After, LockTimeoutException
 * 409, ForwardOutcomeUnknownException 504. It catches only those, so every other error (HttpException included) gets
 * Nest's own handling or your filters.
 *
 *   app.useGlobalFilters(new ClusterExceptionFilter());
 *   CatgaClusterModule.forRoot({ …, exceptionFilter: true });   // the same, registered as APP_FILTER
 */
@Catch(...CLUSTER_HTTP_ERRORS)
export class ClusterExceptionFilter implements ExceptionFilter<ClusterHttpError> {
  /**
   * Nest passes the adapter host when it creates the filter (APP_FILTER): replies then go through the app's HTTP
   * adapter, whichever it is. A filter made with `new` replies through the response object (express or fastify).
   */
  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  catch(e: ClusterHttpError, host: ArgumentsHost): void {
    // Other contexts (GraphQL, RPC) report errors their own way: returning nothing leaves the error to them.
    if (host.getType() !== 'http') return;
    const { status, headers, body } = clusterHttpAnswer(e);
    const response = host.switchToHttp().getResponse<unknown>();
    const adapter = this.adapterHost?.httpAdapter;
    if (adapter) {
      for (const [name, value] of Object.entries(headers)) adapter.setHeader(response, name, value);
      adapter.reply(response, body, status);
      return;
    }
    let reply = (response as ChainedReply).status(status);
    for (const [name, value] of Object.entries(headers)) reply = reply.header(name, value);
    reply.send(body);
  }
}
