// `npm run soak`: a soak test, not a test case. N concurrent clients request a mix of cached and
// uncached tiles from a MedStream process for a set duration, against local disk and S3
// (s3rver on 127.0.0.1); it reports requests, errors, latency percentiles and the server's RSS
// over time. Goal: zero errors, and RSS flat after warm-up (bounded by the configured caches).
//
//   npm run soak -- [--duration 60] [--clients 16] [--cache-tiles 64MB] [--storage local|s3|both]

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { formatMs, markdownTable, seededRandom, type ResultTable } from './harness.js';
import { BENCH_BUCKET, BenchStores } from './stores.js';
import { ServerProcess, percentile } from './tiles.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    clients: { type: 'string', default: '16' },
    'cache-tiles': { type: 'string', default: '64MB' },
    storage: { type: 'string', default: 'both' },
  },
});
const DURATION_S = Number(values.duration);
const CLIENTS = Number(values.clients);
const SAMPLE_EVERY_MS = Math.max(1000, (DURATION_S * 1000) / 12);

/** The server's resident set size, from /proc (Linux). */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/**
 * 70 % of requests go to a hot set of 32 tiles (cached after their first request); 30 % to a
 * key space of every tile of every level at 20 qualities (~9 000 images), which keeps missing
 * the cache and keeps evicting, so the cache bound is what holds memory down.
 */
function urlFor(random: () => number, id: string): string {
  if (random() < 0.7) {
    const i = Math.floor(random() * 32);
    return `/tiles/${id}/0/${i % 8}/${Math.floor(i / 8)}.jpg`;
  }
  const levels = [
    [9, 12],
    [5, 6],
    [3, 3],
    [2, 2],
    [1, 1],
  ];
  const level = Math.floor(random() * levels.length);
  const [cols, rows] = levels[level];
  const x = Math.floor(random() * cols);
  const y = Math.floor(random() * rows);
  const quality = 60 + Math.floor(random() * 20);
  const format = random() < 0.8 ? 'jpg' : 'webp';
  return `/tiles/${id}/${level}/${x}/${y}.${format}?quality=${quality}`;
}

interface SoakResult {
  storage: string;
  requests: number;
  errors: number;
  latencies: number[];
  rss: { atS: number; mib: number }[];
}

async function soak(storage: string, server: ServerProcess, id: string): Promise<SoakResult> {
  const random = seededRandom(42);
  const latencies: number[] = [];
  const rss: { atS: number; mib: number }[] = [{ atS: 0, mib: await rssMiB(server.pid) }];
  let errors = 0;
  const started = performance.now();
  const deadline = started + DURATION_S * 1000;
  const sampler = setInterval(() => {
    void rssMiB(server.pid).then((mib) => rss.push({ atS: (performance.now() - started) / 1000, mib }));
  }, SAMPLE_EVERY_MS);
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < deadline) {
        const url = urlFor(random, id);
        const t0 = performance.now();
        try {
          const res = await fetch(server.url + url);
          await res.arrayBuffer();
          if (res.status !== 200) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  clearInterval(sampler);
  rss.push({ atS: DURATION_S, mib: await rssMiB(server.pid) });
  return { storage, requests: latencies.length, errors, latencies, rss };
}

async function main(): Promise<void> {
  const stores = await BenchStores.start(
    new URL('../../shared/fixtures/wsi/generated/pyramid-jpeg.tif', import.meta.url).pathname,
  );
  const results: SoakResult[] = [];
  try {
    const flags = ['--cache-tiles', values['cache-tiles']!];
    const which = values.storage === 'both' ? ['local', 's3'] : [values.storage!];
    for (const storage of which) {
      const server =
        storage === 'local'
          ? await ServerProcess.start(stores.file.replace(/\/[^/]+$/, ''), flags)
          : await ServerProcess.start(
              `s3://${BENCH_BUCKET}`,
              [
                ...flags,
                '--s3-endpoint',
                stores.endpoints.s3Direct,
                '--s3-force-path-style',
                '--s3-region',
                'us-east-1',
              ],
              { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
            );
      try {
        console.log(`soaking ${storage} for ${DURATION_S} s with ${CLIENTS} clients…`);
        results.push(await soak(storage, server, stores.key));
      } finally {
        await server.close();
      }
    }
  } finally {
    await stores.close();
  }
  const summary: ResultTable = {
    title: `Soak: ${CLIENTS} clients, ${DURATION_S} s per storage, --cache-tiles ${values['cache-tiles']}, 70 % hot tiles / 30 % a 9 000-image key space`,
    columns: [
      'storage',
      'requests',
      'req/s',
      'errors',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'RSS start MiB',
      'RSS after warm-up MiB',
      'RSS end MiB',
      'RSS max MiB',
    ],
    rows: results.map((r) => {
      const warm = r.rss.find((s) => s.atS >= DURATION_S / 4) ?? r.rss[0];
      return [
        r.storage,
        String(r.requests),
        (r.requests / DURATION_S).toFixed(0),
        String(r.errors),
        formatMs(percentile(r.latencies, 50)),
        formatMs(percentile(r.latencies, 95)),
        formatMs(percentile(r.latencies, 99)),
        r.rss[0].mib.toFixed(0),
        warm.mib.toFixed(0),
        r.rss.at(-1)!.mib.toFixed(0),
        Math.max(...r.rss.map((s) => s.mib)).toFixed(0),
      ];
    }),
  };
  // Samples at fixed fractions of the run, so every storage's row lines up under one header.
  const marks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * DURATION_S);
  const at = (r: SoakResult, t: number) =>
    r.rss.reduce((best, s) => (Math.abs(s.atS - t) < Math.abs(best.atS - t) ? s : best));
  const overTime: ResultTable = {
    title: 'Server RSS over time (MiB)',
    columns: ['storage', ...marks.map((t) => `${t.toFixed(0)} s`)],
    rows: results.map((r) => [r.storage, ...marks.map((t) => at(r, t).mib.toFixed(0))]),
  };
  console.log(`\n${markdownTable(summary)}\n\n${markdownTable(overTime)}\n`);
  if (results.some((r) => r.errors > 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
