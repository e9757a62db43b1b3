import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { NoLeaderException, NotLeaderException, ProposalOutcomeUnknownError } from '../lib/index.js';

/** Cluster errors as JSON: 503 while there is no leader or a write timed out, 421 for a leader-only command elsewhere. */
@Catch()
export class ClusterErrorsFilter implements ExceptionFilter {
  catch(e: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (e instanceof HttpException) {
      res.status(e.getStatus()).json(e.getResponse());
      return;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    const status =
      err instanceof NotLeaderException ? 421 : err instanceof NoLeaderException || err instanceof ProposalOutcomeUnknownError ? 503 : 500;
    res.status(status).json({
      statusCode: status,
      error: err.name,
      message: err.message,
      ...(err instanceof NotLeaderException ? { leaderId: err.leaderId } : {}),
    });
  }
}
