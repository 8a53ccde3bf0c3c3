// The `io` suite: the storage backends and the io/ hot paths (block cache, range coalescing,
// singleflight, metadata shared through Redis) on local disk, s3rver and the HTTP range server,
// all reading the same slide.

import type { Suite } from './harness.js';
import { blockCacheBenchmark } from './io/block-cache.js';
import { coalesceBenchmark } from './io/coalesce.js';
import { SLIDE_FILE } from './io/fixture-bytes.js';
import { sharedOpenBenchmark } from './io/shared-open.js';
import { singleflightBenchmark } from './io/singleflight.js';
import { throughputBenchmark } from './io/throughput.js';

export const ioSuite: Suite = {
  name: 'io',
  file: SLIDE_FILE,
  benchmarks: [
    blockCacheBenchmark,
    coalesceBenchmark,
    throughputBenchmark,
    singleflightBenchmark,
    sharedOpenBenchmark,
  ],
};
