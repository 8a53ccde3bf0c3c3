// Benchmark: opening a slide on a replica that has never seen it, with the metadata blocks coming
// from storage (no shared cache) or from Redis (another replica parsed it first; `--redis-url`).
// Both variants start with an empty in-process block cache and run the real parser
// (formats/detect.ts `openSlide`) over the real backend; the `redis` variant's blocks were put
// there by a separate BlockCache + Redis client, as replica A's would be. On S3 with 20 ms per
// request the parser's dependent reads (header, then directories, then tag arrays) each cost a
// round trip; from Redis each costs one HMGET. The object's HEAD (once per open in both) is not
// in the timing.
//
//   apt-get install -y redis-server

import { openSlide } from '../../src/formats/detect.js';
import { BlockCache } from '../../src/io/block-cache.js';
import { createReaderFactory } from '../../src/io/reader.js';
import { RedisSharedCache } from '../../src/tiles/shared-cache.js';
import {
  checkThat,
  counted,
  formatMs,
  formatRatio,
  interleaved,
  median,
  MiB,
  type Benchmark,
  type ResultTable,
} from '../harness.js';
import { findRedisServer, REDIS_INSTALL, RedisServer } from '../peers/redis.js';
import type { BackendName, BenchStores } from '../stores.js';
import { S3_LATENCY_MS } from './block-cache.js';

const PLAN: Array<{ backend: BackendName; rounds: number }> = [
  { backend: 'local', rounds: 20 },
  { backend: 's3+latency', rounds: 5 },
];

interface Run {
  ms: number;
  requests: number;
  levels: number;
}

export const sharedOpenBenchmark: Benchmark = {
  name: 'shared-open',
  title: 'Slide open on a fresh replica: metadata from storage vs from Redis',
  async run(stores: BenchStores) {
    const binary = await findRedisServer();
    const table: ResultTable = {
      title: `openSlide(CMU-1-Small-Region.svs) with a cold in-process block cache; S3 latency ${S3_LATENCY_MS} ms/request; HEAD not included`,
      columns: [
        'backend',
        'metadata from',
        'range requests',
        'wall ms (median)',
        'speed-up (storage ÷ this)',
      ],
      rows: [],
    };
    if (!binary) {
      table.rows.push(['—', `skipped: redis-server not installed (${REDIS_INSTALL})`, '', '', '']);
      return { name: this.name, title: this.title, tables: [table], data: [] };
    }
    await stores.setLatency(S3_LATENCY_MS);
    const redis = await RedisServer.start(binary);
    // Two clients, as two replicas would have: A fills Redis, B reads from it.
    const clientA = new RedisSharedCache({ url: redis.url, ttlMs: 3_600_000, timeoutMs: 1000 });
    const clientB = new RedisSharedCache({ url: redis.url, ttlMs: 3_600_000, timeoutMs: 1000 });
    const data: unknown[] = [];
    try {
      checkThat((await clientA.ready(5000)) && (await clientB.ready(5000)), 'redis reachable');
      for (const { backend, rounds } of PLAN) {
        const object = await stores.open(backend);
        const open = async (shared?: RedisSharedCache): Promise<Run> => {
          const blockCache = new BlockCache({ maxBytes: 64 * MiB, shared });
          const source = createReaderFactory({ blockCache })(object.source);
          const run = await counted(object.stats, () => openSlide(source));
          return { ms: run.ms, requests: run.requests, levels: run.value.levels.length };
        };
        const runs = await interleaved<Run>(rounds, {
          storage: () => open(),
          redis: async () => {
            await redis.flushAll();
            await open(clientA);
            while (clientA.stats().writesInFlight > 0) await new Promise((r) => setTimeout(r, 5));
            return open(clientB);
          },
        });
        checkThat(
          runs.redis.every((run) => run.requests === 0),
          `${backend}: an open from Redis sends no range request`,
        );
        checkThat(
          runs.redis.every((run, i) => run.levels === runs.storage[i].levels),
          `${backend}: the same slide either way`,
        );
        const storageMs = median(runs.storage.map((run) => run.ms));
        for (const variant of ['storage', 'redis'] as const) {
          const ms = median(runs[variant].map((run) => run.ms));
          table.rows.push([
            backend,
            variant === 'storage' ? 'storage' : 'Redis (put there by another replica)',
            String(runs[variant][0].requests),
            formatMs(ms),
            variant === 'storage' ? '1× (peer)' : formatRatio(storageMs / ms),
          ]);
        }
        data.push({ backend, rounds, runs });
      }
    } finally {
      await Promise.all([clientA.close(), clientB.close()]);
      await redis.close();
    }
    return { name: this.name, title: this.title, tables: [table], data };
  },
};
