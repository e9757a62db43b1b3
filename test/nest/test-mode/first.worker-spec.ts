import { parallelWorkerTest } from './parallel-worker';

parallelWorkerTest('first');
