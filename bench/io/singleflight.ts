// Benchmark 4: 64 clients opening the same slide at once all read its first IFD. Through the block
// cache (cold) the 64 identical metadata reads share one range request; sent straight to S3 with
// 20 ms per request they are 64 requests.

import { BlockCache, DEFAULT_BLOCK_SIZE } from '../../src/io/block-cache.js';
import { createReaderFactory } from '../../src/io/reader.js';
import type { ByteSource, ReadOptions } from '../../src/storage/types.js';
import {
  checkBytes,
  checkThat,
  counted,
  formatBytes,
  formatMs,
  formatRatio,
  interleaved,
  median,
  MiB,
  type Benchmark,
  type ResultTable,
} from '../harness.js';
import type { BenchStores } from '../stores.js';
import { S3_LATENCY_MS } from './block-cache.js';
import { expectedBytes, firstImageTiles } from './fixture-bytes.js';

const CONCURRENT = 64;
const ROUNDS = 6;

interface Run {
  ms: number;
  requests: number;
  bytes: number;
}

async function readAtOnce(source: ByteSource, offset: number, length: number, options?: ReadOptions) {
  const answers = await Promise.all(
    Array.from({ length: CONCURRENT }, () => source.read(offset, length, options)),
  );
  for (const bytes of answers) checkBytes(bytes, expectedBytes(offset, length), 'singleflight');
}

export const singleflightBenchmark: Benchmark = {
  name: 'singleflight',
  title: 'Singleflight: identical concurrent metadata reads',
  async run(stores: BenchStores) {
    await stores.setLatency(S3_LATENCY_MS);
    const object = await stores.open('s3+latency');
    const { ifdOffset, ifdLength } = firstImageTiles();
    const runs = await interleaved<Run>(ROUNDS, {
      direct: async () => {
        const run = await counted(object.stats, () => readAtOnce(object.source, ifdOffset, ifdLength));
        return { ms: run.ms, requests: run.requests, bytes: run.bytes };
      },
      cached: async () => {
        const blockCache = new BlockCache({ maxBytes: 64 * MiB });
        const source = createReaderFactory({ blockCache })(object.source);
        const run = await counted(object.stats, () =>
          readAtOnce(source, ifdOffset, ifdLength, { purpose: 'metadata' }),
        );
        checkThat(run.requests === 1, `${CONCURRENT} identical metadata reads sent one request`);
        return { ms: run.ms, requests: run.requests, bytes: run.bytes };
      },
    });
    const table: ResultTable = {
      title: `${CONCURRENT} concurrent reads of IFD 0 (${ifdLength} B at ${ifdOffset}), S3 (s3rver) with ${S3_LATENCY_MS} ms/request; cache cold each round (${DEFAULT_BLOCK_SIZE / 1024} KiB blocks); ${ROUNDS} rounds interleaved (median)`,
      columns: [
        'variant',
        'reads',
        'requests',
        'bytes fetched',
        'wall ms (median)',
        'speed-up (direct ÷ this)',
      ],
      rows: [],
    };
    const directMs = median(runs.direct.map((run) => run.ms));
    for (const variant of ['direct', 'cached'] as const) {
      const ms = median(runs[variant].map((run) => run.ms));
      const { requests, bytes } = runs[variant][0];
      table.rows.push([
        variant === 'direct' ? 'direct to backend' : 'CachedSource + BlockCache',
        String(CONCURRENT),
        String(requests),
        formatBytes(bytes),
        formatMs(ms),
        variant === 'direct' ? '1× (peer)' : formatRatio(directMs / ms),
      ]);
    }
    return { name: this.name, title: this.title, tables: [table], data: { rounds: ROUNDS, runs } };
  },
};
