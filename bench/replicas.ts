// The `replicas` suite (scale-out issue): MedStream replicas behind nginx round-robin, two
// replicas against one, both through the same nginx setup so the ratio compares like with
// like. Everything is real and on 127.0.0.1: a Debian redis-server (no persistence, 256 MB
// allkeys-lru), MedStream replicas as `medstream serve` child processes sharing it through
// `--redis-url` (log level warn: no line per request), and for each replica set two nginx
// instances, one with the first replica as its only upstream and one round-robin over both
// (keepalive to the upstreams). wrk drives nginx at each connection count; 1 and 2 replicas
// alternate round by round (harness `interleaved`).
//
// Workloads, on the 20000x16000 JPEG pyramidal TIFF of bench/slides.ts:
// - warm JPEG passthrough: 1024 stored level-0 tiles, each already in every replica's
//   in-process tile cache (served from memory);
// - computed PNG: level-0 and level-1 tiles as PNG (decode + encode) with the in-process tile
//   cache off (`--cache-tiles 0`) and Redis emptied before every run, so each request computes;
// - PNG from Redis: replica A computes 512 PNG tiles (cache off), then the same tiles are asked
//   through nginx; every answer is a Redis hit, on replica B too (X-Cache counted once over the
//   set, then per run from /metrics).
// Per run and replica the counters of /metrics (images computed, Redis hits, memory hits) and
// CPU seconds from /proc show who served what and which cores were busy. Settings:
// LOAD_SETTINGS (BENCH_SHORT, BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNECTIONS). A missing
// nginx, wrk or redis-server is reported and the benchmark skipped.
//
//   apt-get install -y nginx wrk redis-server

import path from 'node:path';
import { prewarm, shuffled, skipped, tileGrid, withNotes } from './compare.js';
import {
  formatBytes,
  formatMs,
  formatRate,
  formatRatio,
  interleaved,
  LOAD_SETTINGS,
  median,
  type Benchmark,
  type BenchmarkResult,
  type ResultTable,
  type Suite,
} from './harness.js';
import { findNginx, Nginx, NGINX_INSTALL } from './peers/nginx.js';
import { cpuSeconds, machineBusySeconds, rssMiB } from './peers/procs.js';
import { findRedisServer, RedisServer, REDIS_INSTALL } from './peers/redis.js';
import { findWrk, wrk, type WrkResult } from './peers/wrk.js';
import { benchPyramid, FIXTURES, SLIDE_CACHE, type BenchSlide } from './slides.js';
import { ServerProcess } from './tiles.js';

const { durationS: DURATION_S, rounds: ROUNDS, connections: CONNECTIONS } = LOAD_SETTINGS;
const INSTALL = `${NGINX_INSTALL} ${REDIS_INSTALL.replace('apt-get install -y ', '')} wrk`;
const SHARED_TILES = 512;

/** Two replicas with the same flags, and nginx in front of the first one and of both. */
interface ReplicaSet {
  replicas: [ServerProcess, ServerProcess];
  nginx: Record<1 | 2, Nginx>;
}

async function startReplicaSet(
  nginxBin: string,
  redisUrl: string,
  flags: string[],
  started: { close(): Promise<void> }[],
): Promise<ReplicaSet> {
  const serve = async () => {
    const server = await ServerProcess.start(SLIDE_CACHE, ['--redis-url', redisUrl, ...flags], {}, 'warn');
    started.push(server);
    return server;
  };
  const replicas: [ServerProcess, ServerProcess] = [await serve(), await serve()];
  const ports = replicas.map((r) => Number(new URL(r.url).port));
  const front = async (upstreams: number[]) => {
    const nginx = await Nginx.start(nginxBin, { upstreams, protocol: 'http', balance: 'round-robin' });
    started.push(nginx);
    return nginx;
  };
  return { replicas, nginx: { 1: await front(ports.slice(0, 1)), 2: await front(ports) } };
}

/** The /metrics counters read around each run: who served what, and Redis commands that failed. */
const COUNTERS = {
  computed: 'medstream_images_rendered_total',
  joined: 'medstream_images_joined_total',
  redis: 'medstream_redis_hits_total',
  memory: 'medstream_tile_cache_hits_total',
  /** Redis commands that failed or timed out (`--redis-timeout`, 50 ms). */
  redisFailed: 'medstream_redis_errors_total',
  /** Redis commands not sent: circuit open. */
  redisSkipped: 'medstream_redis_skipped_total',
} as const;
type Served = Record<keyof typeof COUNTERS, number>;
const COUNTER_KEYS = Object.keys(COUNTERS) as (keyof Served)[];

async function served(server: ServerProcess): Promise<Served> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return Object.fromEntries(COUNTER_KEYS.map((k) => [k, get(COUNTERS[k])])) as Served;
}

const minus = (a: Served, b: Served) =>
  Object.fromEntries(COUNTER_KEYS.map((k) => [k, a[k] - b[k]])) as Served;

const sum = (list: Served[]) =>
  Object.fromEntries(COUNTER_KEYS.map((k) => [k, list.reduce((acc, s) => acc + s[k], 0)])) as Served;

/** Images answered (a joined request shares another's computation or Redis lookup). */
const total = (s: Served) => s.computed + s.joined + s.redis + s.memory;

interface Run extends WrkResult {
  /** Per replica (A, B): what its counters moved by during the run. */
  served: Served[];
  /** CPU cores busy on average during the run: replica A, replica B, nginx, the whole machine. */
  cores: { a: number; b: number; nginx: number; machine: number };
}

/** One wrk run through `nginx`, with the replicas' counters and CPU time around it. */
async function measuredRun(
  wrkBin: string,
  set: ReplicaSet,
  nginx: Nginx,
  urls: string[],
  connections: number,
): Promise<Run> {
  const snapshot = async () => ({
    at: performance.now(),
    served: await Promise.all(set.replicas.map(served)),
    cpu: [...(await Promise.all(set.replicas.map((r) => cpuSeconds(r.pid)))), await nginx.cpuSeconds()],
    machine: await machineBusySeconds(),
  });
  const before = await snapshot();
  const run = await wrk(wrkBin, nginx.url, urls, { connections, seconds: DURATION_S });
  const after = await snapshot();
  // Per second between the snapshots (wrk's start and end included: the replicas idle then).
  const wall = (after.at - before.at) / 1000;
  const [a, b, front] = after.cpu.map((c, i) => (c - before.cpu[i]) / wall);
  return {
    ...run,
    served: after.served.map((s, i) => minus(s, before.served[i])),
    cores: { a, b, nginx: front, machine: (after.machine - before.machine) / wall },
  };
}

interface Workload {
  name: string;
  set: ReplicaSet;
  urls: string[];
  /** Once, before the workload's first run. */
  prepare?: () => Promise<void>;
  /** Before every run (emptying Redis so that nothing is a hit). */
  beforeRun?: () => Promise<void>;
}

const tilePath = (slide: BenchSlide, level: number, [x, y]: [number, number], ext: string) =>
  `/tiles/${encodeURIComponent(slide.id)}/${level}/${x}/${y}.${ext}`;

/** Every full interior tile of `level` (2x steps, one page per level). */
function levelTiles(slide: BenchSlide, level: number): [number, number][] {
  const scale = 2 ** level;
  return tileGrid(Math.floor(slide.width / scale / 256), Math.floor(slide.height / scale / 256), 0, 0);
}

/** How the responses of one set of URLs, fetched once each, were labelled by X-Cache. */
async function xCacheCounts(base: string, urls: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < urls.length) {
        const res = await fetch(base + urls[next++]);
        await res.arrayBuffer();
        const label = res.status === 200 ? (res.headers.get('x-cache') ?? 'none') : `status ${res.status}`;
        counts[label] = (counts[label] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

const percent = (part: number, whole: number) =>
  whole > 0 ? `${((100 * part) / whole).toFixed(0)} %` : 'n/a';

const replicaScaling: Benchmark = {
  name: 'replica-scaling',
  title: 'Throughput through nginx round-robin: 2 MedStream replicas vs 1 (shared Redis, wrk, local disk)',
  async run(): Promise<BenchmarkResult> {
    const [wrkBin, nginxBin, redisBin] = await Promise.all([findWrk(), findNginx(), findRedisServer()]);
    const missing = Object.entries({ wrk: wrkBin, nginx: nginxBin, 'redis-server': redisBin })
      .filter(([, bin]) => !bin)
      .map(([name]) => name);
    if (!wrkBin || !nginxBin || !redisBin)
      return skipped(this, `${missing.join(', ')} not found (install: ${INSTALL})`);
    const slide = await benchPyramid();
    const started: { close(): Promise<void> }[] = [];
    try {
      const redis = await RedisServer.start(redisBin, '256mb');
      started.push(redis);
      // Warm: default in-process tile cache (512 MB). Compute: tile cache off.
      const warm = await startReplicaSet(nginxBin, redis.url, [], started);
      const compute = await startReplicaSet(nginxBin, redis.url, ['--cache-tiles', '0'], started);

      const warmUrls = shuffled(tileGrid(32, 32, 20, 15), 1).map((t) => tilePath(slide, 0, t, 'jpg'));
      const pngUrls = shuffled(
        [
          ...levelTiles(slide, 0).map((t) => tilePath(slide, 0, t, 'png')),
          ...levelTiles(slide, 1).map((t) => tilePath(slide, 1, t, 'png')),
        ],
        2,
      );
      let sharedCheck:
        { computedByA: Served; xCache: Record<string, number>; pass: Served; servedB: Served } | undefined;
      const sharedUrls = shuffled(tileGrid(32, 16, 10, 40), 3).map((t) => tilePath(slide, 0, t, 'png'));

      // Open the slide on every replica and fill the warm replicas' tile caches directly.
      for (const r of warm.replicas) await prewarm(r.url, warmUrls);
      for (const r of compute.replicas) await prewarm(r.url, pngUrls.slice(0, 32), 4);

      const workloads: Workload[] = [
        { name: 'warm JPEG passthrough (memory)', set: warm, urls: warmUrls },
        {
          name: 'computed PNG (tile cache off, Redis emptied)',
          set: compute,
          urls: pngUrls,
          beforeRun: () => redis.flushAll(),
        },
        {
          name: `PNG from Redis (${SHARED_TILES} tiles computed by A)`,
          set: compute,
          urls: sharedUrls,
          // Replica A computes the set (stored in Redis, fire and forget); then one pass through
          // nginx over both replicas: every answer should say X-Cache: redis, half of them B's.
          async prepare() {
            const [a, b] = compute.replicas;
            await redis.flushAll();
            const a0 = await served(a);
            await prewarm(a.url, sharedUrls, 4);
            await new Promise((r) => setTimeout(r, 500));
            const computedByA = minus(await served(a), a0);
            const [a1, b1] = [await served(a), await served(b)];
            const xCache = await xCacheCounts(compute.nginx[2].url, sharedUrls);
            const servedB = minus(await served(b), b1);
            const pass = sum([minus(await served(a), a1), servedB]);
            sharedCheck = { computedByA, xCache, pass, servedB };
          },
        },
      ];
      const results: Record<string, Record<string, Run[]>> = {};
      for (const w of workloads) {
        await w.prepare?.();
        for (const c of CONNECTIONS) {
          const variant = (n: 1 | 2) => async () => {
            await w.beforeRun?.();
            return measuredRun(wrkBin, w.set, w.set.nginx[n], w.urls, c);
          };
          results[`${w.name}|${c}`] = await interleaved(ROUNDS, { '1': variant(1), '2': variant(2) });
        }
      }

      const rate = (r: Run) => r.requests / r.seconds;
      const rows: string[][] = [];
      for (const w of workloads) {
        for (const c of CONNECTIONS) {
          const byReplicas = results[`${w.name}|${c}`];
          const oneRate = median(byReplicas['1'].map(rate));
          for (const n of ['1', '2']) {
            const runs = byReplicas[n];
            const perSecond = median(runs.map(rate));
            const [a, b] = [0, 1].map((i) => sum(runs.map((r) => r.served[i])));
            const all = sum([a, b]);
            const cores = (k: keyof Run['cores']) => median(runs.map((r) => r.cores[k])).toFixed(2);
            rows.push([
              w.name,
              String(c),
              n,
              formatRate(perSecond),
              formatMs(median(runs.map((r) => r.p50Ms))),
              formatMs(Math.max(...runs.map((r) => r.p99Ms))),
              String(runs.reduce((a, r) => a + r.errors, 0)),
              formatBytes(
                Math.round(
                  runs.reduce((a, r) => a + r.bytes, 0) /
                    Math.max(
                      1,
                      runs.reduce((a, r) => a + r.requests, 0),
                    ),
                ),
              ),
              `${percent(total(a), total(all))} / ${percent(total(b), total(all))}`,
              [all.computed + all.joined, all.redis, all.memory]
                .map((k) => percent(k, total(all)))
                .join(' / '),
              `${all.redisFailed} / ${all.redisSkipped}`,
              `${cores('a')} / ${cores('b')} / ${cores('nginx')} / ${cores('machine')}`,
              n === '1' ? '1× (peer)' : formatRatio(perSecond / oneRate),
            ]);
          }
        }
      }

      const rss: [string, number][] = [
        ['replica A, warm set (512 MB tile cache)', await rssMiB(warm.replicas[0].pid)],
        ['replica B, warm set (512 MB tile cache)', await rssMiB(warm.replicas[1].pid)],
        ['replica A, compute set (tile cache off)', await rssMiB(compute.replicas[0].pid)],
        ['replica B, compute set (tile cache off)', await rssMiB(compute.replicas[1].pid)],
        ['nginx, 2 upstreams, compute set (1 worker)', await compute.nginx[2].rssMiB()],
        ['redis-server', await redis.rssMiB()],
      ];
      const tables: ResultTable[] = [
        {
          title: `wrk (2 threads) → nginx (1 worker, round-robin, keepalive) → 1 or 2 replicas; ${DURATION_S} s per run, ${ROUNDS} interleaved round(s): req/s is the median of the rounds, p50 the median, p99 the worst round's; served / X-Cache (computed includes the few requests joined to an identical one in flight) and Redis commands failed (timed out, 50 ms) / skipped (circuit open) from the replicas' /metrics over all rounds; CPU in cores (CPU seconds ÷ wall seconds around the run, median of rounds), "machine" is every process on the 2 cores (wrk and other tenants included)`,
          columns: [
            'workload',
            'connections',
            'replicas',
            'req/s',
            'p50 ms',
            'p99 ms',
            'errors',
            'body',
            'served by A / B',
            'computed / Redis / memory',
            'Redis failed / skipped',
            'CPU cores A / B / nginx / machine',
            '2 ÷ 1 replicas (req/s)',
          ],
          rows,
        },
        {
          title: 'RSS after the runs',
          columns: ['process', 'RSS MiB'],
          rows: rss.map(([name, mib]) => [name, mib.toFixed(0)]),
        },
      ];
      const notes: string[] = [];
      if (sharedCheck) {
        const { computedByA, xCache, pass, servedB } = sharedCheck;
        const labels = Object.entries(xCache)
          .map(([label, n]) => `${label} ${n}`)
          .join(', ');
        notes.push(
          `PNG from Redis: A computed the ${SHARED_TILES} tiles (${computedByA.computed} computed, ${computedByA.redisFailed} Redis commands failed); then one pass through nginx over both replicas (4 clients) answered X-Cache ${labels} (Redis commands failed ${pass.redisFailed}, skipped ${pass.redisSkipped}); replica B served ${total(servedB)} of them (${servedB.redis} from Redis, ${servedB.computed} computed)`,
        );
      }
      return {
        name: this.name,
        title: this.title,
        tables: withNotes(tables, notes),
        data: {
          settings: LOAD_SETTINGS,
          slide,
          urls: Object.fromEntries(workloads.map((w) => [w.name, w.urls.length])),
          sharedCheck,
          results,
          rss: Object.fromEntries(rss),
        },
      };
    } finally {
      // nginx first (it holds keepalive connections to the replicas), then the replicas, Redis last.
      for (const s of started.reverse())
        await s
          .close()
          .catch((e: unknown) => console.error(`replicas: stopping a process failed: ${String(e)}`));
    }
  },
};

export const replicasSuite: Suite = {
  name: 'replicas',
  // run.ts uploads a suite's file to its stores; this suite reads the bench pyramid on local disk.
  file: path.join(FIXTURES, 'svs/CMU-1-Small-Region.svs'),
  benchmarks: [replicaScaling],
};
