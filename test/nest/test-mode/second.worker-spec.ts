import { parallelWorkerTest } from './parallel-worker';

parallelWorkerTest('second');
