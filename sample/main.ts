import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ClusterExceptionFilter } from '../lib/index.js';
import { AppModule } from './app.module.js';

/** One node of the sample: `node dist/sample/main.js` with CATGA_*, PORT and HOST set (sample/cluster.ts starts three). */
async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['log', 'warn', 'error'] });
  app.useGlobalFilters(new ClusterExceptionFilter()); // cluster errors → 421 / 503 / 409 / 504 with a JSON code
  app.enableShutdownHooks(); // on SIGTERM/SIGINT a leader hands over before the process exits
  const port = Number(process.env.PORT ?? 3000);
  // Loopback by default (the three-node sample on one machine); HOST=0.0.0.0 in a container.
  await app.listen(port, process.env.HOST ?? '127.0.0.1');
}

void bootstrap();
