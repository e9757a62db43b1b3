import type { FactoryProvider } from '@nestjs/common';
import { APP_FILTER, HttpAdapterHost } from '@nestjs/core';
import { CLUSTER_MODULE_OPTIONS } from '../cluster.module-definition.js';
import type { ClusterModuleOptions } from '../interfaces/cluster-module-options.interface.js';
import { ClusterExceptionFilter } from './cluster-exception.filter.js';

/**
 * ClusterExceptionFilter as a global filter when the `exceptionFilter` option asks for it. Nest skips an APP_FILTER
 * whose factory returns null, so the option may come from forRootAsync's factory like any other.
 */
export const EXCEPTION_FILTER_PROVIDER: FactoryProvider<ClusterExceptionFilter | null> = {
  provide: APP_FILTER,
  inject: [CLUSTER_MODULE_OPTIONS, HttpAdapterHost],
  useFactory: (options: ClusterModuleOptions, adapterHost: HttpAdapterHost) => (options.exceptionFilter ? new ClusterExceptionFilter(adapterHost) : null),
};
