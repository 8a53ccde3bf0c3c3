// Benchmark 1: metadata-style reads (small, scattered, one after another, as a TIFF parser walks
// IFDs and tag arrays) through CachedSource + BlockCache, against the same reads sent straight to
// the backend. On local disk it shows what the cache costs or saves per read; on S3 with 20 ms per
// request it shows the round trips it saves.

import { BlockCache, DEFAULT_BLOCK_SIZE } from '../../src/io/block-cache.js';
import { createReaderFactory } from '../../src/io/reader.js';
import type { ByteSource, ReadOptions } from '../../src/storage/types.js';
import {
  checkBytes,
  checkThat,
  counted,
  formatBytes,
  formatMs,
  formatRate,
  formatRatio,
  interleaved,
  median,
  MiB,
  randomInt,
  seededRandom,
  type Benchmark,
  type ResultTable,
} from '../harness.js';
import type { BackendName, BenchStores } from '../stores.js';
import { expectedBytes } from './fixture-bytes.js';

/** Object-store latency the fault proxy adds to each request of the `s3+latency` backend. */
export const S3_LATENCY_MS = 20;
const SPAN = 1 * MiB;
const CACHE_BYTES = 64 * MiB;

/**
 * Reads per run and rounds per backend. On S3 with latency the uncached peer costs a round trip
 * per read, so it gets fewer reads (the same ones for both variants) to keep the run short.
 */
const PLAN: Array<{ backend: BackendName; reads: number; rounds: number }> = [
  { backend: 'local', reads: 2000, rounds: 5 },
  { backend: 's3+latency', reads: 300, rounds: 2 },
];

interface Range {
  offset: number;
  length: number;
}

interface Run {
  ms: number;
  requests: number;
  bytes: number;
}

function scatteredReads(count: number): Range[] {
  const random = seededRandom(0x5eed_0001);
  return Array.from({ length: count }, () => {
    const length = randomInt(random, 16, 512);
    return { offset: randomInt(random, 0, SPAN - length), length };
  });
}

/** One read after another, as a parser that needs each answer to find the next offset. */
async function readInSequence(
  source: ByteSource,
  reads: Range[],
  options?: ReadOptions,
): Promise<Uint8Array[]> {
  const answers: Uint8Array[] = [];
  for (const { offset, length } of reads) answers.push(await source.read(offset, length, options));
  return answers;
}

function check(answers: Uint8Array[], reads: Range[], what: string): void {
  answers.forEach((bytes, i) => checkBytes(bytes, expectedBytes(reads[i].offset, reads[i].length), what));
}

export const blockCacheBenchmark: Benchmark = {
  name: 'block-cache',
  title: 'Block cache: scattered small metadata reads',
  async run(stores: BenchStores) {
    await stores.setLatency(S3_LATENCY_MS);
    const table: ResultTable = {
      title: `Scattered 16–512 B reads in the first 1 MiB, in sequence; cache: ${DEFAULT_BLOCK_SIZE / 1024} KiB blocks, cold at the start of each run; S3 latency ${S3_LATENCY_MS} ms/request`,
      columns: [
        'backend',
        'reads',
        'variant',
        'requests',
        'bytes fetched',
        'wall ms (median)',
        'reads/s',
        'speed-up (direct ÷ this)',
      ],
      rows: [],
    };
    const data: unknown[] = [];
    for (const { backend, reads: count, rounds } of PLAN) {
      const object = await stores.open(backend);
      const reads = scatteredReads(count);
      const storeBefore = await stores.requestsSeen(backend);
      const runs = await interleaved<Run>(rounds, {
        direct: async () => {
          const run = await counted(object.stats, () => readInSequence(object.source, reads));
          check(run.value, reads, `${backend} direct`);
          return { ms: run.ms, requests: run.requests, bytes: run.bytes };
        },
        cached: async () => {
          const blockCache = new BlockCache({ maxBytes: CACHE_BYTES });
          const source = createReaderFactory({ blockCache })(object.source);
          const run = await counted(object.stats, () =>
            readInSequence(source, reads, { purpose: 'metadata' }),
          );
          check(run.value, reads, `${backend} cached`);
          checkThat(
            blockCache.stats().requests === run.requests,
            'block cache and backend agree on requests',
          );
          return { ms: run.ms, requests: run.requests, bytes: run.bytes };
        },
      });
      const storeAfter = await stores.requestsSeen(backend);
      const sent = [...runs.direct, ...runs.cached].reduce((sum, run) => sum + run.requests, 0);
      if (storeBefore !== undefined && storeAfter !== undefined) {
        checkThat(storeAfter - storeBefore === sent, `${backend}: the store saw every request we counted`);
      }
      const directMs = median(runs.direct.map((run) => run.ms));
      for (const variant of ['direct', 'cached'] as const) {
        const ms = median(runs[variant].map((run) => run.ms));
        const { requests, bytes } = runs[variant][0];
        table.rows.push([
          backend,
          String(count),
          variant === 'direct' ? 'direct to backend' : 'CachedSource + BlockCache',
          String(requests),
          formatBytes(bytes),
          formatMs(ms),
          formatRate((count / ms) * 1000),
          variant === 'direct' ? '1× (peer)' : formatRatio(directMs / ms),
        ]);
      }
      data.push({ backend, reads: count, rounds, runs });
    }
    return { name: this.name, title: this.title, tables: [table], data };
  },
};
