// The `compare` suite (issue 9): MedStream side by side with its peers, every headline a ratio
// against the peer measured in the same run, interleaved, with the raw numbers beside it.
//
// - compare-tiles: tile throughput and latency with wrk at 16 and 64 connections, tile cache
//   warm and off, MedStream's native and IIIF 3 routes vs IIPImage's IIIF 2 route (behind
//   nginx) on the same 20000x16000 pyramidal TIFF and the same tiles; RSS after each run. MedStream
//   runs as one process and with `--workers 2`; warm rows also have nginx serving the very same
//   tile bytes as static files at the same URLs (the ceiling for a cached tile on this machine).
// - tile-profile: `node --cpu-prof` on a MedStream process under the warm-tile load; the top
//   self-time functions.
// - compare-regions: level-0 regions 256x256 and 1024x1024, random and tile-aligned, PNG and
//   JPEG, per second: MedStream's /region over HTTP vs OpenSlide's read_region + PIL encode in
//   a Python process (no HTTP), same regions, same concurrency; and the same OpenSlide reads
//   behind a minimal Python http.server fetched by the same client as MedStream ("OpenSlide over
//   HTTP": the hop and the client's CPU the in-process rows leave out; the goal stays in-process). Each case (size, placement,
//   format) reads regions no other case reads, so neither side is served by a cache the case
//   before it filled (OpenSlide keeps decoded tiles; MedStream's tile cache is off).
// - cold-open: on S3 (s3rver behind the 20 ms/request proxy), time and requests to the first
//   metadata and to the first tile for each fixture format and the bench slides; then storage
//   bytes per cold tile / the tile's stored size.
//
// Peers missing from the machine are reported and their rows skipped. Settings come from the
// environment (run.ts takes benchmark names as arguments):
//   BENCH_SHORT=1          short settings (3 s runs, 1 round, fewer regions) for development
//   BENCH_DURATION=10      seconds per wrk run          BENCH_ROUNDS=2    interleaved rounds
//   BENCH_CONNECTIONS=16,64                             BENCH_BIG=1       include the 60000x45000 SVS
//   BENCH_TILES=warm,cold  compare-tiles: which tile runs (cold = the tile-cache-off rows only)

import { chmod, readFile, rm, mkdtemp, mkdir, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  formatBytes,
  formatMs,
  formatRate,
  formatRatio,
  interleaved,
  LOAD_SETTINGS,
  median,
  seededRandom,
  randomInt,
  type Benchmark,
  type BenchmarkResult,
  type ResultTable,
  type Suite,
} from './harness.js';
import { findIipImage, IipImage, IIPIMAGE_INSTALL } from './peers/iipimage.js';
import { BareNode } from './peers/bare-node.js';
import { codecFloor } from './codec-floor.js';
import { findNginx, Nginx, NGINX_INSTALL } from './peers/nginx.js';
import { findOpenSlide, OpenSlideWorker, OPENSLIDE_INSTALL } from './peers/openslide.js';
import { childPids, rssMiB } from './peers/procs.js';
import { findWrk, wrk, type WrkResult } from './peers/wrk.js';
import { benchPyramid, benchSlides, FIXTURES, SLIDE_CACHE, tiledLevels, type BenchSlide } from './slides.js';
import { BENCH_BUCKET, type BenchStores } from './stores.js';
import { percentile, ServerProcess } from './tiles.js';

const env = process.env;
const { short: SHORT, durationS: DURATION_S, rounds: ROUNDS, connections: CONNECTIONS } = LOAD_SETTINGS;
const BIG = env.BENCH_BIG !== '0';
/** Seconds of the uncounted wrk pass before the warm rows' rounds. */
const WARMUP_S = 2;
/** compare-tiles: which tile runs (`BENCH_TILES=cold` for the cold rows only). */
const TILE_CACHES = (env.BENCH_TILES ?? 'warm,cold').split(',');
const REGION_CONCURRENCY = 2;

const S3RVER = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

function settings() {
  return { short: SHORT, durationS: DURATION_S, rounds: ROUNDS, connections: CONNECTIONS, big: BIG };
}

// ---------------------------------------------------------------------------------------------
// Tiles: MedStream native / IIIF vs IIPImage IIIF, wrk.

/** Level-0 interior tiles (full 256 px) of the bench pyramid, as [x, y] grid positions. */
export function tileGrid(cols: number, rows: number, x0: number, y0: number): [number, number][] {
  const out: [number, number][] = [];
  for (let y = y0; y < y0 + rows; y++) for (let x = x0; x < x0 + cols; x++) out.push([x, y]);
  return out;
}

/** A fixed shuffle, so consecutive requests do not walk the file in order. */
export function shuffled<T>(items: T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const routes = {
  native: (id: string, [x, y]: [number, number]) => `/tiles/${encodeURIComponent(id)}/0/${x}/${y}.jpg`,
  iiif3: (id: string, [x, y]: [number, number], t = 256) =>
    `/iiif/3/${encodeURIComponent(id)}/${x * t},${y * t},${t},${t}/${t},/0/default.jpg`,
  iiif2: (id: string, [x, y]: [number, number], t = 256) =>
    `/iiif/${encodeURIComponent(id)}/${x * t},${y * t},${t},${t}/${t},/0/default.jpg`,
};

/** Fetches every URL once with a few clients (opens the slide, fills a warm cache). */
export async function prewarm(base: string, urls: string[], concurrency = 8): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < urls.length) {
        const res = await fetch(base + urls[next++]);
        await res.arrayBuffer();
      }
    }),
  );
}

interface TileRun extends WrkResult {
  rssMiB: number;
}

/** RSS of a process and its children (a cluster primary and its workers), summed. */
async function treeRssMiB(pid: number): Promise<number> {
  let sum = await rssMiB(pid);
  for (const child of await childPids(pid)) sum += await rssMiB(child);
  return sum;
}

/** Writes each URL's answer from `base` to `root` + the URL's decoded path: what nginx serves. */
async function mirrorAsFiles(base: string, urls: string[], root: string): Promise<void> {
  for (const url of urls) {
    const res = await fetch(base + url);
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    const file = path.join(root, decodeURIComponent(url));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
  }
}

/** The ceiling: nginx serving the same bytes as static files, without and with its access log. */
const NGINX = 'nginx static (same bytes)';
const NGINX_LOGGED = 'nginx static, access log on (same bytes)';
/** The reference rows: Node.js's own HTTP stack answering the same bytes (peers/bare-node.ts). */
const BARE_1 = 'bare Node.js node:http (reference)';
const BARE_2 = 'bare Node.js node:http, 2 workers (reference)';
/** Warm-only rows: 2 workers with the log written asynchronously, one access-log line in 100, none. */
const LOG_VARIANTS = ['--log-async', '--access-log-sample 100', '--no-access-log'] as const;
const logRow = (flag: string) => `MedStream IIIF 3, 2 workers, ${flag}`;

const compareTiles: Benchmark = {
  name: 'compare-tiles',
  title: 'Tiles: MedStream vs IIPImage (wrk, local disk, 20000x16000 JPEG pyramidal TIFF)',
  async run(): Promise<BenchmarkResult> {
    const wrkBin = await findWrk();
    if (!wrkBin) return skipped(this, 'wrk not found (install: apt-get install -y wrk)');
    const slide = await benchPyramid();
    const iipBin = await findIipImage();
    const nginxBin = await findNginx();
    const notes: string[] = [];
    if (typeof iipBin === 'string') notes.push(`IIPImage rows skipped: ${iipBin}`);
    if (!nginxBin) notes.push(`nginx static rows skipped: nginx not found (install: ${NGINX_INSTALL})`);

    // Warm: a 32x32 block of level-0 tiles (1024 tiles, ~11 MiB: fits both tile caches).
    // Cold: every interior level-0 tile (78x62 = 4836), shuffled; tile caches off.
    const warmTiles = shuffled(tileGrid(32, 32, 20, 15), 1);
    const coldTiles = shuffled(
      tileGrid(Math.floor(slide.width / 256), Math.floor(slide.height / 256), 0, 0),
      2,
    );
    const msWarm = await ServerProcess.start(SLIDE_CACHE, []);
    const msCold = await ServerProcess.start(SLIDE_CACHE, ['--cache-tiles', '0']);
    const msWarm2 = await ServerProcess.start(SLIDE_CACHE, ['--workers', '2']);
    const msCold2 = await ServerProcess.start(SLIDE_CACHE, ['--workers', '2', '--cache-tiles', '0']);
    // The same with the access log written asynchronously, and with none: what it costs.
    const msWarm2Logs: ServerProcess[] = [];
    if (TILE_CACHES.includes('warm'))
      for (const flag of LOG_VARIANTS)
        msWarm2Logs.push(await ServerProcess.start(SLIDE_CACHE, ['--workers', '2', ...flag.split(' ')]));
    let iipWarm: IipImage | undefined;
    let iipCold: IipImage | undefined;
    let nginx: Nginx | undefined;
    let nginxLogged: Nginx | undefined;
    let bare1: BareNode | undefined;
    let bare2: BareNode | undefined;
    const staticRoot = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-static-'));
    await chmod(staticRoot, 0o755); // nginx's workers run as an unprivileged user
    try {
      if (TILE_CACHES.includes('warm')) {
        const urls = warmTiles.map((t) => routes.iiif3(slide.id, t));
        await mirrorAsFiles(msWarm.url, urls, staticRoot);
        if (nginxBin) nginx = await Nginx.startStatic(nginxBin, staticRoot);
        if (nginxBin) nginxLogged = await Nginx.startStatic(nginxBin, staticRoot, { accessLog: true });
        bare1 = await BareNode.start(staticRoot, urls, 1);
        bare2 = await BareNode.start(staticRoot, urls, 2);
      }
      if (typeof iipBin !== 'string') {
        iipWarm = await IipImage.start(iipBin, { root: SLIDE_CACHE, cacheMB: 512 });
        iipCold = await IipImage.start(iipBin, { root: SLIDE_CACHE, cacheMB: 0 });
      }
      type Variant = { base: string; urls: string[]; rss: () => Promise<number> };
      const variants: Record<string, Variant> = {};
      const key = (cache: string, c: number, who: string) => `${cache}|${c}|${who}`;
      for (const c of CONNECTIONS) {
        for (const [cache, tiles, ms, ms2, iip] of [
          ['warm', warmTiles, msWarm, msWarm2, iipWarm],
          ['cold', coldTiles, msCold, msCold2, iipCold],
        ] as const) {
          if (!TILE_CACHES.includes(cache)) continue;
          variants[key(cache, c, 'MedStream native, 2 workers')] = {
            base: ms2.url,
            urls: tiles.map((t) => routes.native(slide.id, t)),
            rss: () => treeRssMiB(ms2.pid),
          };
          variants[key(cache, c, 'MedStream IIIF 3, 2 workers')] = {
            base: ms2.url,
            urls: tiles.map((t) => routes.iiif3(slide.id, t)),
            rss: () => treeRssMiB(ms2.pid),
          };
          for (const [who, server] of [
            [NGINX, nginx],
            [NGINX_LOGGED, nginxLogged],
          ] as const)
            if (cache === 'warm' && server)
              variants[key(cache, c, who)] = {
                base: server.url,
                urls: tiles.map((t) => routes.iiif3(slide.id, t)),
                rss: () => server.rssMiB(),
              };
          if (cache === 'warm')
            msWarm2Logs.forEach((server, i) => {
              variants[key(cache, c, logRow(LOG_VARIANTS[i]))] = {
                base: server.url,
                urls: tiles.map((t) => routes.iiif3(slide.id, t)),
                rss: () => treeRssMiB(server.pid),
              };
            });
          for (const [who, bare] of [
            [BARE_1, bare1],
            [BARE_2, bare2],
          ] as const)
            if (cache === 'warm' && bare)
              variants[key(cache, c, who)] = {
                base: bare.url,
                urls: tiles.map((t) => routes.iiif3(slide.id, t)),
                rss: () => bare.rssMiB(),
              };
          variants[key(cache, c, 'MedStream native')] = {
            base: ms.url,
            urls: tiles.map((t) => routes.native(slide.id, t)),
            rss: () => rssMiB(ms.pid),
          };
          variants[key(cache, c, 'MedStream IIIF 3')] = {
            base: ms.url,
            urls: tiles.map((t) => routes.iiif3(slide.id, t)),
            rss: () => rssMiB(ms.pid),
          };
          if (iip)
            variants[key(cache, c, 'IIPImage IIIF 2')] = {
              base: iip.url,
              urls: tiles.map((t) => routes.iiif2(slide.id, t)),
              rss: () => iip.rssMiB(),
            };
        }
      }
      // Open the slide everywhere and fill the warm caches (each warm URL once).
      for (const [name, v] of Object.entries(variants)) {
        await prewarm(v.base, name.startsWith('warm') ? v.urls : v.urls.slice(0, 64));
      }
      // Then a short wrk pass per warm row, not counted: prewarm's few connections reach one
      // worker per URL, so with --workers 2 the other worker's caches (its tile cache, its fast
      // path's URLs) would fill during the first measured round; and the hot paths get compiled.
      for (const [name, v] of Object.entries(variants))
        if (name.startsWith('warm'))
          await wrk(wrkBin, v.base, v.urls, { connections: Number(name.split('|')[1]), seconds: WARMUP_S });
      const results = await interleaved(
        ROUNDS,
        Object.fromEntries(
          Object.entries(variants).map(([name, v]) => [
            name,
            async (): Promise<TileRun> => {
              const c = Number(name.split('|')[1]);
              const r = await wrk(wrkBin, v.base, v.urls, { connections: c, seconds: DURATION_S });
              return { ...r, rssMiB: await v.rss() };
            },
          ]),
        ),
      );
      const rate = (r: WrkResult) => r.requests / r.seconds;
      const summary = (runs: TileRun[]) => ({
        perSecond: median(runs.map(rate)),
        p50: median(runs.map((r) => r.p50Ms)),
        p99: Math.max(...runs.map((r) => r.p99Ms)),
        errors: runs.reduce((a, r) => a + r.errors, 0),
        body:
          runs.reduce((a, r) => a + r.bytes, 0) /
          Math.max(
            1,
            runs.reduce((a, r) => a + r.requests, 0),
          ),
        rss: runs.at(-1)!.rssMiB,
      });
      const rows: string[][] = [];
      const goals: string[][] = [];
      for (const cache of ['warm', 'cold']) {
        for (const c of CONNECTIONS) {
          const peer = results[key(cache, c, 'IIPImage IIIF 2')];
          const peerRate = peer ? summary(peer).perSecond : NaN;
          const ceiling = results[key(cache, c, NGINX)];
          const ceilingRate = ceiling ? summary(ceiling).perSecond : NaN;
          for (const who of [
            'MedStream native',
            'MedStream IIIF 3',
            'MedStream native, 2 workers',
            'MedStream IIIF 3, 2 workers',
            ...LOG_VARIANTS.map(logRow),
            'IIPImage IIIF 2',
            NGINX,
            NGINX_LOGGED,
            BARE_1,
            BARE_2,
          ]) {
            const runs = results[key(cache, c, who)];
            if (!runs) continue;
            const s = summary(runs);
            rows.push([
              cache === 'warm' ? 'warm (in tile cache)' : 'cold (tile cache off)',
              String(c),
              who,
              formatRate(s.perSecond),
              formatMs(s.p50),
              formatMs(s.p99),
              String(s.errors),
              formatBytes(Math.round(s.body)),
              s.rss.toFixed(0),
              peer ? (who.startsWith('IIPImage') ? '1× (peer)' : formatRatio(s.perSecond / peerRate)) : 'n/a',
              ceiling ? formatRatio(s.perSecond / ceilingRate) : 'n/a',
            ]);
          }
          const two = results[key(cache, c, 'MedStream IIIF 3, 2 workers')];
          if (cache === 'warm' && c === 64 && two && ceiling) {
            const ratio = summary(two).perSecond / ceilingRate;
            const p99 = summary(two).p99;
            goals.push([
              'warm tiles, 64 connections, 2 workers: IIIF req/s ≥ 0.5× nginx static, p99 ≤ 10 ms',
              `${formatRatio(ratio)}, ${formatMs(p99)} ms`,
              ratio >= 0.5 && p99 <= 10 ? 'met' : 'missed',
            ]);
          }
          const logged = results[key(cache, c, NGINX_LOGGED)];
          if (cache === 'warm' && c === 64 && two && logged) {
            const ratio = summary(two).perSecond / summary(logged).perSecond;
            const p99 = summary(two).p99;
            goals.push([
              'warm tiles, 64 connections, 2 workers, both logging every request: IIIF req/s ≥ 0.5× nginx static with its access log, p99 ≤ 10 ms',
              `${formatRatio(ratio)}, ${formatMs(p99)} ms`,
              ratio >= 0.5 && p99 <= 10 ? 'met' : 'missed',
            ]);
          }
          for (const flag of LOG_VARIANTS) {
            const runs = results[key(cache, c, logRow(flag))];
            if (cache !== 'warm' || c !== 64 || !runs || !ceiling) continue;
            const ratio = summary(runs).perSecond / ceilingRate;
            const p99 = summary(runs).p99;
            goals.push([
              `warm tiles, 64 connections, 2 workers, ${flag}: IIIF req/s ≥ 0.5× nginx static, p99 ≤ 10 ms`,
              `${formatRatio(ratio)}, ${formatMs(p99)} ms`,
              ratio >= 0.5 && p99 <= 10 ? 'met' : 'missed',
            ]);
          }
          const bare = results[key(cache, c, BARE_2)];
          if (cache === 'warm' && two && bare)
            goals.push([
              `warm tiles, ${c} connections, 2 workers: IIIF req/s against bare Node.js, 2 workers (reference, no goal)`,
              [two, ...LOG_VARIANTS.map((flag) => results[key(cache, c, logRow(flag))])]
                .map((runs, i) =>
                  runs
                    ? `${i === 0 ? '' : `${LOG_VARIANTS[i - 1]}: `}${formatRatio(summary(runs).perSecond / summary(bare).perSecond)}`
                    : '',
                )
                .filter(Boolean)
                .join(', '),
              '',
            ]);
          const one = results[key(cache, c, 'MedStream IIIF 3')];
          if (cache === 'cold' && two && one) {
            const ratio = summary(two).perSecond / summary(one).perSecond;
            goals.push([
              `cold tiles, ${c} connections: IIIF req/s with 2 workers ≥ 1× one process`,
              formatRatio(ratio),
              ratio >= 1 ? 'met' : 'missed',
            ]);
          }
          const ours = results[key(cache, c, 'MedStream IIIF 3')];
          if (ours && peer) {
            const target = cache === 'warm' ? 3 : 1.5;
            const ratio = summary(ours).perSecond / peerRate;
            goals.push([
              `${cache} tiles, ${c} connections: IIIF req/s ≥ ${target}× IIPImage`,
              formatRatio(ratio),
              ratio >= target ? 'met' : 'missed',
            ]);
          }
          if (cache === 'warm' && c === 64 && ours) {
            const p99 = summary(ours).p99;
            const native = summary(results[key(cache, c, 'MedStream native')]).p99;
            goals.push([
              'warm tiles, 64 connections: p99 ≤ 20 ms (IIIF / native)',
              `${formatMs(p99)} / ${formatMs(native)} ms`,
              Math.max(p99, native) <= 20 ? 'met' : 'missed',
            ]);
          }
        }
      }
      const tables: ResultTable[] = [
        {
          title: `wrk, ${DURATION_S} s per run, ${ROUNDS} interleaved round(s): req/s is the median of the rounds, p50 the median, p99 the worst round's; RSS after the last run (IIPImage: its iipsrv processes summed, its nginx not included; MedStream 2 workers: primary and workers summed; nginx static: master and workers)`,
          columns: [
            'tiles',
            'connections',
            'server / route',
            'req/s',
            'p50 ms',
            'p99 ms',
            'errors',
            'body',
            'RSS MiB',
            'vs IIPImage (req/s)',
            'vs nginx static (req/s)',
          ],
          rows,
        },
      ];
      if (goals.length > 0)
        tables.push({ title: 'Goals (issue 9)', columns: ['goal', 'this run', ''], rows: goals });
      if (nginx)
        notes.push(
          'nginx static: the warm IIIF 3 answers of MedStream written as files at the same paths, served by nginx with worker_processes auto, sendfile, open_file_cache, access_log off (the ceiling of the "vs nginx static" column); "access log on": the same with nginx\'s default access log (combined format, one write per request, to a file)',
        );
      if (bare1)
        notes.push(
          "bare Node.js (reference, not a product path): bench/peers/bare-node-server.mjs, a minimal node:http server answering the same bytes from an in-memory Map by URL (Content-Type and Content-Length only; no routing, logging, metrics or ETag), one process and 2 node:cluster workers (round-robin): the ceiling of Node.js's own HTTP stack on this machine",
        );
      if (iipWarm)
        notes.push(
          `IIPImage: ${iipWarm.iipsrvPids.length} iipsrv processes (one per core) behind nginx (1 worker), MAX_IMAGE_CACHE_SIZE 512 (warm) / 0 (cold), JPEG_QUALITY 75`,
        );
      return {
        name: this.name,
        title: this.title,
        tables: withNotes(tables, notes),
        data: { settings: settings(), slide, results },
      };
    } finally {
      await Promise.all([
        msWarm.close(),
        msCold.close(),
        msWarm2.close(),
        msCold2.close(),
        ...msWarm2Logs.map((server) => server.close()),
        iipWarm?.close(),
        iipCold?.close(),
        nginx?.close(),
        nginxLogged?.close(),
        bare1?.close(),
        bare2?.close(),
      ]);
      await rm(staticRoot, { recursive: true, force: true });
    }
  },
};

// ---------------------------------------------------------------------------------------------
// CPU profile of MedStream under the warm-tile load.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (name, file:line), heaviest first. */
export function selfTimes(profile: CpuProfile): { fn: string; ms: number; share: number }[] {
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const node = byNode.get(id)!;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    const where = url
      ? `${url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}:${columnNumber + 1}`
      : '';
    const name = `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    const dt = profile.timeDeltas[i] / 1000;
    totals.set(name, (totals.get(name) ?? 0) + dt);
    all += dt;
  });
  return [...totals.entries()].map(([fn, ms]) => ({ fn, ms, share: ms / all })).sort((a, b) => b.ms - a.ms);
}

const tileProfile: Benchmark = {
  name: 'tile-profile',
  title:
    'CPU profiles of MedStream: warm tiles (wrk, 64 connections) and 256x256 JPEG regions (wrk, 2 connections)',
  async run(): Promise<BenchmarkResult> {
    const wrkBin = await findWrk();
    if (!wrkBin) return skipped(this, 'wrk not found (install: apt-get install -y wrk)');
    const slide = await benchPyramid();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-prof-'));
    const file = path.join(dir, 'medstream.cpuprofile');
    try {
      // Node refuses --cpu-prof in NODE_OPTIONS (and ServerProcess takes no node flags): a
      // preloaded module runs the same V8 profiler, started and stopped by SIGUSR2.
      const preload = new URL('./peers/cpu-profile.mjs', import.meta.url).href;
      const server = await ServerProcess.start(SLIDE_CACHE, [], {
        NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import=${preload}`.trim(),
        BENCH_CPU_PROFILE: file,
      });
      const scenarios = [
        {
          name: 'warm IIIF tiles, 64 connections',
          urls: shuffled(tileGrid(32, 32, 20, 15), 1).map((t) => routes.iiif3(slide.id, t)),
          connections: 64,
          prewarm: true,
        },
        {
          name: '256x256 JPEG regions at random level-0 positions, 2 connections (region responses are cached too: 4096 distinct regions)',
          urls: regionList(slide, 256, false, 4096, 5).map(
            ([x, y, w, h]) =>
              `/slides/${slide.id}/region?x=${x}&y=${y}&width=${w}&height=${h}&level=0&format=jpg&quality=80`,
          ),
          connections: 2,
          prewarm: false,
        },
      ];
      const runs: { name: string; wrk: WrkResult; top: { fn: string; ms: number; share: number }[] }[] = [];
      try {
        for (const [i, scenario] of scenarios.entries()) {
          await prewarm(server.url, scenario.prewarm ? scenario.urls : scenario.urls.slice(0, 8), 4);
          process.kill(server.pid, 'SIGUSR2'); // start profiling
          await new Promise((r) => setTimeout(r, 200));
          const run = await wrk(wrkBin, server.url, scenario.urls, {
            connections: scenario.connections,
            seconds: DURATION_S,
          });
          process.kill(server.pid, 'SIGUSR2'); // stop, write the profile
          const out = `${file}.${i + 1}`;
          const deadline = Date.now() + 30_000;
          while (
            !(await stat(out).then(
              (st) => st.size > 0,
              () => false,
            ))
          ) {
            if (Date.now() > deadline) return skipped(this, 'the profiled server wrote no profile');
            await new Promise((r) => setTimeout(r, 100));
          }
          runs.push({
            name: scenario.name,
            wrk: run,
            top: selfTimes(JSON.parse(await readFile(out, 'utf8')) as CpuProfile),
          });
        }
      } finally {
        await server.close();
      }
      return {
        name: this.name,
        title: this.title,
        tables: runs.map((r) => {
          const busy = r.top.filter((t) => !t.fn.startsWith('(idle)'));
          const busyMs = busy.reduce((a, t) => a + t.ms, 0);
          return {
            title: `${r.name}: top self-time functions on the main thread during the ${DURATION_S} s run (${formatRate(r.wrk.requests / r.wrk.seconds)} req/s, p50 ${formatMs(r.wrk.p50Ms)} ms); share of non-idle samples (${(busyMs / 1000).toFixed(1)} s busy of ${r.wrk.seconds.toFixed(1)} s)`,
            columns: ['function (file:line:column)', 'self ms', 'share of busy'],
            rows: busy
              .slice(0, 15)
              .map((t) => [
                t.fn.replace(/\|/g, '\\|'),
                t.ms.toFixed(0),
                `${((t.ms / busyMs) * 100).toFixed(1)} %`,
              ]),
          };
        }),
        data: { settings: settings(), runs: runs.map((r) => ({ ...r, top: r.top.slice(0, 40) })) },
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Regions: MedStream /region vs OpenSlide read_region (+ PIL encode).

type Region = [number, number, number, number];

function regionList(
  slide: BenchSlide,
  size: number,
  aligned: boolean,
  count: number,
  seed: number,
): Region[] {
  const random = seededRandom(seed);
  const t = slide.tileSize;
  return Array.from({ length: count }, () => {
    if (aligned) {
      const x = randomInt(random, 0, Math.floor((slide.width - size) / t)) * t;
      const y = randomInt(random, 0, Math.floor((slide.height - size) / t)) * t;
      return [x, y, size, size];
    }
    return [randomInt(random, 0, slide.width - size), randomInt(random, 0, slide.height - size), size, size];
  });
}

async function msRegions(base: string, id: string, regions: Region[], format: string) {
  return fetchRegions(
    regions,
    ([x, y, w, h]) =>
      `${base}/slides/${encodeURIComponent(id)}/region?x=${x}&y=${y}&width=${w}&height=${h}&level=0&format=${format}&quality=80`,
  );
}

/** OpenSlide's regions through the worker's minimal HTTP server, by the same client as MedStream's. */
async function peerRegions(base: string, file: string, regions: Region[], format: string) {
  return fetchRegions(
    regions,
    ([x, y, w, h]) =>
      `${base}/region?slide=${encodeURIComponent(file)}&x=${x}&y=${y}&width=${w}&height=${h}&format=${format}&quality=80`,
  );
}

/** One GET's status and body through `agent`. */
function httpGet(url: string, agent: http.Agent): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/**
 * `REGION_CONCURRENCY` HTTP clients taking the regions' URLs from one queue, on keep-alive
 * connections. node:http rather than `fetch`: undici cost ~1.2–1.4 ms of CPU per request here
 * against ~0.5 ms, taken from the same 2 cores as the servers measured.
 */
async function fetchRegions(regions: Region[], url: (region: Region) => string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: REGION_CONCURRENCY });
  let next = 0;
  let bytes = 0;
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: REGION_CONCURRENCY }, async () => {
      while (next < regions.length) {
        const region = regions[next++];
        const t0 = performance.now();
        const { status, body } = await httpGet(url(region), agent);
        if (status !== 200) throw new Error(`region answered ${status}: ${body.toString().slice(0, 200)}`);
        latencies.push(performance.now() - t0);
        bytes += body.byteLength;
      }
    }),
  ).finally(() => agent.destroy());
  return { seconds: (performance.now() - started) / 1000, latencies, bytes };
}

const compareRegions: Benchmark = {
  name: 'compare-regions',
  title: 'Regions at level 0: MedStream /region (HTTP) vs OpenSlide read_region + PIL (in-process)',
  async run(): Promise<BenchmarkResult> {
    const { pyramid, svs } = await benchSlides(BIG);
    const python = await findOpenSlide();
    const notes: string[] = [];
    if (typeof python !== 'string') notes.push(`OpenSlide rows skipped: ${python.missing}`);
    const server = await ServerProcess.start(SLIDE_CACHE, ['--cache-tiles', '0']);
    const worker = typeof python === 'string' ? OpenSlideWorker.start(python) : undefined;
    try {
      const versions = worker ? await worker.info() : undefined;
      const peerHttp = worker ? await worker.serve() : undefined;
      if (versions) notes.push(`OpenSlide ${versions.openslide} (openslide-python, PIL ${versions.pil})`);
      const count = (size: number) => (size >= 1024 ? (SHORT ? 6 : 16) : SHORT ? 16 : 48);
      type Case = { slide: BenchSlide; size: number; aligned: boolean; format: 'png' | 'jpg' };
      const cases: Case[] = [];
      for (const slide of svs ? [pyramid, svs] : [pyramid])
        for (const size of [256, 1024])
          for (const aligned of [false, true])
            for (const format of ['png', 'jpg'] as const) cases.push({ slide, size, aligned, format });
      const label = (c: Case) =>
        `${c.slide.id}|${c.size}|${c.aligned ? 'tile-aligned' : 'random'}|${c.format}`;
      // Open the slides on both sides first (not what is measured).
      for (const slide of svs ? [pyramid, svs] : [pyramid]) {
        const warm = regionList(slide, 256, false, 4, 99);
        await msRegions(server.url, slide.id, warm, 'png');
        await worker?.regions(slide.file, warm, 'png', 1);
        if (peerHttp) await peerRegions(peerHttp, slide.file, warm, 'png');
      }
      type Run = { seconds: number; latencies: number[]; bytes: number; count: number };
      const variants: Record<string, (round: number) => Promise<Run>> = {};
      for (const [index, c] of cases.entries()) {
        // Every case reads its own regions (the seed names the case), the same on both sides: with
        // one list per size, OpenSlide's second format of a round was served from the decoded
        // tiles its first had left in OpenSlide's tile cache (MedStream runs with its cache off).
        const list = (round: number) =>
          regionList(
            c.slide,
            c.size,
            c.aligned,
            count(c.size),
            1000 * round + 100_000 * (index + 1) + c.size,
          );
        variants[`${label(c)}|MedStream`] = async (round) => {
          const r = await msRegions(server.url, c.slide.id, list(round), c.format);
          return { ...r, count: count(c.size) };
        };
        if (worker)
          variants[`${label(c)}|OpenSlide`] = async (round) => {
            const r = await worker.regions(c.slide.file, list(round), c.format, REGION_CONCURRENCY);
            return { seconds: r.seconds, latencies: r.latencies_ms, bytes: r.bytes, count: count(c.size) };
          };
        // The same reads behind an HTTP hop like MedStream's (same client, keep-alive): what the
        // in-process rows leave out. The goal stays against the in-process peer.
        if (peerHttp)
          variants[`${label(c)}|OpenSlide-HTTP`] = async (round) => {
            const r = await peerRegions(peerHttp, c.slide.file, list(round), c.format);
            return { ...r, count: count(c.size) };
          };
      }
      const results = await interleaved(ROUNDS, variants);
      const rate = (r: Run) => r.count / r.seconds;
      const rows: string[][] = [];
      const ratios: number[] = [];
      for (const c of cases) {
        const ours = results[`${label(c)}|MedStream`];
        const peer = results[`${label(c)}|OpenSlide`];
        const peerOverHttp = results[`${label(c)}|OpenSlide-HTTP`];
        const overHttpRate = peerOverHttp ? median(peerOverHttp.map(rate)) : NaN;
        const oursRate = median(ours.map(rate));
        const peerRate = peer ? median(peer.map(rate)) : NaN;
        const lat = (runs: Run[]) => runs.flatMap((r) => r.latencies);
        if (peer) ratios.push(oursRate / peerRate);
        rows.push([
          c.slide.id.startsWith('bench-aperio')
            ? 'SVS 60000x45000 (240-px RGB JPEG)'
            : 'TIFF 20000x16000 (256-px JPEG)',
          `${c.size}×${c.size}`,
          c.aligned ? 'tile-aligned' : 'random',
          c.format.toUpperCase(),
          formatRate(oursRate),
          formatMs(percentile(lat(ours), 50)),
          peer ? formatRate(peerRate) : 'n/a',
          peer ? formatMs(percentile(lat(peer), 50)) : 'n/a',
          peer ? formatRatio(oursRate / peerRate) : 'n/a',
          peerOverHttp ? formatRate(overHttpRate) : 'n/a',
          peerOverHttp ? formatMs(percentile(lat(peerOverHttp), 50)) : 'n/a',
          peerOverHttp ? formatRatio(oursRate / overHttpRate) : 'n/a',
        ]);
      }
      const rss = { medstream: await rssMiB(server.pid), openslide: worker ? await worker.rssMiB() : NaN };
      const tables: ResultTable[] = [
        {
          title: `${REGION_CONCURRENCY} concurrent requests (MedStream and "OpenSlide over HTTP": keep-alive node:http clients in the bench process; OpenSlide: Python threads in-process), ${count(256)} regions of 256 / ${count(1024)} of 1024 per run, new regions every round, ${ROUNDS} round(s) interleaved; regions/s = median of rounds; MedStream tile cache off; JPEG q80 4:2:0, PNG zlib level 3`,
          columns: [
            'slide',
            'region',
            'placement',
            'format',
            'MedStream regions/s',
            'MedStream p50 ms',
            'OpenSlide regions/s',
            'OpenSlide p50 ms',
            'MedStream ÷ OpenSlide',
            'OpenSlide over HTTP regions/s',
            'OpenSlide over HTTP p50 ms',
            'MedStream ÷ OpenSlide over HTTP',
          ],
          rows,
        },
        {
          title: 'RSS at the end of the region runs',
          columns: ['process', 'RSS MiB'],
          rows: [
            ['MedStream server', rss.medstream.toFixed(0)],
            ['OpenSlide Python worker', Number.isNaN(rss.openslide) ? 'n/a' : rss.openslide.toFixed(0)],
          ],
        },
      ];
      if (ratios.length > 0) {
        const worst = Math.min(...ratios);
        tables.push({
          title: 'Goals (issue 9)',
          columns: ['goal', 'this run', ''],
          rows: [
            [
              'region reads ≥ OpenSlide regions/s (every row)',
              `median ${formatRatio(median(ratios))}, worst ${formatRatio(worst)}`,
              worst >= 1 ? 'met' : `missed in ${ratios.filter((r) => r < 1).length} of ${ratios.length} rows`,
            ],
          ],
        });
      }
      return {
        name: this.name,
        title: this.title,
        tables: withNotes(tables, notes),
        data: { settings: settings(), results, rss },
      };
    } finally {
      await Promise.all([server.close(), worker?.close()]);
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Cold open on S3 with 20 ms per request, and storage bytes per cold tile.

const OPEN_FIXTURES: { file: string; format: string }[] = [
  { file: 'svs/CMU-1-Small-Region.svs', format: 'Aperio SVS, JPEG (RGB), 1 level' },
  { file: 'svs/tcga-cr-7395-01a-01-ts1.svs', format: 'Aperio SVS, JPEG 2000, 2 levels' },
  { file: 'generated/pyramid-jpeg.tif', format: 'pyramidal TIFF (libvips), JPEG' },
  { file: 'generated/pyramid-jpeg-bigtiff.tif', format: 'BigTIFF pyramid, JPEG' },
  { file: 'generated/ome-pyramid-subifd.ome.tif', format: 'OME-TIFF, SubIFD pyramid' },
  { file: 'cog/cog.tif', format: 'COG (GeoTIFF)' },
  { file: 'ndpi/test3-DAPI-2.ndpi', format: 'Hamamatsu NDPI' },
];

interface Metrics {
  reads: number;
  stats: number;
  lists: number;
  bytes: number;
}

async function scrape(base: string): Promise<Metrics> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const get = (name: string, kind: string) =>
    Number(new RegExp(`^${name}\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    reads: get('medstream_storage_requests_total', 'read'),
    stats: get('medstream_storage_requests_total', 'stat'),
    lists: get('medstream_storage_requests_total', 'list'),
    bytes: get('medstream_storage_bytes_total', 'read'),
  };
}

/** What one step cost: wall time, storage requests by kind, requests at the proxy, bytes. */
async function step(server: ServerProcess, stores: BenchStores, url: string) {
  const before = await scrape(server.url);
  const proxyBefore = (await stores.counts()).proxy;
  const t0 = performance.now();
  const res = await fetch(server.url + url);
  const body = Buffer.from(await res.arrayBuffer());
  const ms = performance.now() - t0;
  const after = await scrape(server.url);
  const proxy = (await stores.counts()).proxy - proxyBefore;
  return {
    status: res.status,
    body,
    ms,
    reads: after.reads - before.reads,
    stats: after.stats - before.stats,
    bytes: after.bytes - before.bytes,
    proxy,
  };
}

const coldOpen: Benchmark = {
  name: 'cold-open',
  title: 'Cold open on S3 (s3rver + 20 ms/request): requests and time to first metadata and first tile',
  async run(stores: BenchStores): Promise<BenchmarkResult> {
    const { pyramid, svs } = await benchSlides(BIG);
    const files: { key: string; path: string; format: string }[] = [
      ...OPEN_FIXTURES.map((f) => ({
        key: path.basename(f.file),
        path: path.join(FIXTURES, f.file),
        format: f.format,
      })),
      { key: pyramid.id, path: pyramid.file, format: `bench TIFF ${pyramid.width}x${pyramid.height}, JPEG` },
      ...(svs
        ? [{ key: svs.id, path: svs.file, format: `bench SVS ${svs.width}x${svs.height}, RGB JPEG` }]
        : []),
    ];
    // The suite's own file is already there; upload the others straight to s3rver.
    const client = new S3Client({
      endpoint: stores.endpoints.s3Direct,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER.AWS_ACCESS_KEY_ID, secretAccessKey: S3RVER.AWS_SECRET_ACCESS_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const uploadStarted = performance.now();
    try {
      for (const f of files) {
        if (f.key === stores.key) continue;
        await client.send(
          new PutObjectCommand({ Bucket: BENCH_BUCKET, Key: f.key, Body: await readFile(f.path) }),
        );
      }
    } finally {
      client.destroy();
    }
    const uploadS = (performance.now() - uploadStarted) / 1000;
    await stores.setLatency(20);
    const s3Flags = [
      '--cache-tiles',
      '0',
      '--s3-endpoint',
      stores.endpoints.s3Proxied,
      '--s3-force-path-style',
      '--s3-region',
      'us-east-1',
    ];
    // A: metadata, then a tile, then cold tiles one at a time; B: a tile first, nothing before.
    const a = await ServerProcess.start(`s3://${BENCH_BUCKET}`, s3Flags, S3RVER);
    const b = await ServerProcess.start(`s3://${BENCH_BUCKET}`, s3Flags, S3RVER);
    try {
      const openRows: string[][] = [];
      const byteRows: string[][] = [];
      const data: unknown[] = [];
      const worstBefore: number[] = [];
      const ratiosAll: number[] = [];
      for (const f of files) {
        const id = encodeURIComponent(f.key);
        const meta = await step(a, stores, `/slides/${id}`);
        if (meta.status !== 200) {
          const why = (JSON.parse(meta.body.toString()) as { error?: string }).error ?? meta.status;
          openRows.push([f.format, f.key, `answered ${meta.status} (${why})`, '', '', '', '', '', '']);
          continue;
        }
        const info = JSON.parse(meta.body.toString()) as {
          levels: { tiles_x: number; tiles_y: number; tile_width: number }[];
        };
        const l0 = info.levels[0];
        const mid: [number, number] = [l0.tiles_x >> 1, l0.tiles_y >> 1];
        const tileUrl = (x: number, y: number) => `/tiles/${id}/0/${x}/${y}.jpg`;
        const firstA = await step(a, stores, tileUrl(...mid));
        const firstB = await step(b, stores, tileUrl(...mid));
        // Requests before the first tile's own read: everything the tile-first server sent but one.
        const before = firstB.proxy - 1;
        worstBefore.push(before);
        openRows.push([
          f.format,
          f.key,
          formatMs(meta.ms),
          `${meta.proxy} (${meta.stats} stat + ${meta.reads} read)`,
          formatBytes(meta.bytes),
          `${formatMs(firstA.ms)} / ${firstA.proxy}`,
          formatMs(firstB.ms),
          `${firstB.proxy} (${firstB.stats} stat + ${firstB.reads} read)`,
          String(before),
        ]);
        // Bytes per cold tile: distinct random level-0 tiles, one at a time, on server A.
        let stored: number[] | undefined;
        let cols = 0;
        try {
          const levels = await tiledLevels(f.path);
          if (levels[0] && levels[0].cols === l0.tiles_x) {
            stored = levels[0].byteCounts;
            cols = levels[0].cols;
          }
        } catch {
          stored = undefined;
        }
        const random = seededRandom(7);
        const n = Math.min(SHORT ? 12 : 32, l0.tiles_x * l0.tiles_y - 1);
        const seen = new Set([`${mid[0]},${mid[1]}`]);
        let fetched = 0;
        let storedSum = 0;
        let requests = 0;
        let ms = 0;
        const perTile: number[] = [];
        for (let i = 0; i < n; i++) {
          let x: number;
          let y: number;
          do {
            x = randomInt(random, 0, l0.tiles_x - 1);
            y = randomInt(random, 0, l0.tiles_y - 1);
          } while (seen.has(`${x},${y}`));
          seen.add(`${x},${y}`);
          const r = await step(a, stores, tileUrl(x, y));
          fetched += r.bytes;
          requests += r.proxy;
          ms += r.ms;
          if (stored) {
            storedSum += stored[y * cols + x];
            perTile.push(r.bytes / stored[y * cols + x]);
          }
        }
        if (stored) ratiosAll.push(fetched / storedSum);
        byteRows.push([
          f.format,
          f.key,
          String(n),
          (requests / n).toFixed(2),
          formatMs(ms / n),
          formatBytes(Math.round(fetched / n)),
          stored ? formatBytes(Math.round(storedSum / n)) : 'n/a',
          stored ? formatRatio(fetched / storedSum) : 'n/a',
          stored ? formatRatio(median(perTile)) : 'n/a',
        ]);
        data.push({
          file: f.key,
          meta: { ...meta, body: undefined },
          firstA: { ...firstA, body: undefined },
          firstB: { ...firstB, body: undefined },
          fetched,
          storedSum,
          n,
          requests,
          perTile,
        });
      }
      const rss = { a: await rssMiB(a.pid), b: await rssMiB(b.pid) };
      return {
        name: this.name,
        title: this.title,
        tables: [
          {
            title: `Fresh MedStream processes, tile cache off, default block cache (64 KiB blocks); requests counted at the latency proxy (every request that reached "S3"), split by MedStream's own read statistics; upload of the ${files.length} objects took ${uploadS.toFixed(1)} s`,
            columns: [
              'format',
              'object',
              'metadata ms',
              'metadata requests',
              'metadata bytes',
              'then first tile ms / requests',
              'tile first (no metadata) ms',
              'tile-first requests',
              'requests before the tile’s own read',
            ],
            rows: openRows,
          },
          {
            title: `Storage bytes per cold tile (distinct random level-0 tiles after the open, one at a time): fetched ÷ the tile's stored size (TileByteCounts); mean = sums, median = of the per-tile ratios`,
            columns: [
              'format',
              'object',
              'tiles',
              'requests / tile',
              'ms / tile',
              'fetched / tile',
              'stored / tile',
              'fetched ÷ stored (mean)',
              '(median)',
            ],
            rows: byteRows,
          },
          {
            title: 'Goals (issue 9), and RSS at the end',
            columns: ['goal', 'this run', ''],
            rows: [
              [
                '≤ 3 range requests before the first tile’s own read (worst object)',
                String(Math.max(...worstBefore)),
                Math.max(...worstBefore) <= 3 ? 'met' : 'missed',
              ],
              [
                'bytes per cold tile ≤ 1.25× stored (worst object, mean)',
                formatRatio(Math.max(...ratiosAll)),
                Math.max(...ratiosAll) <= 1.25 ? 'met' : 'missed',
              ],
              ['RSS of server A / B (MiB)', `${rss.a.toFixed(0)} / ${rss.b.toFixed(0)}`, ''],
            ],
          },
        ],
        data: { settings: settings(), uploadS, objects: data, rss },
      };
    } finally {
      await Promise.all([a.close(), b.close()]);
      await stores.setLatency(0);
    }
  },
};

// ---------------------------------------------------------------------------------------------

export function skipped(benchmark: Benchmark, why: string): BenchmarkResult {
  console.log(`${benchmark.name}: skipped: ${why}`);
  return {
    name: benchmark.name,
    title: `${benchmark.title} — skipped`,
    tables: [{ title: 'Skipped', columns: ['reason'], rows: [[why]] }],
    data: { skipped: why },
  };
}

/** Appends a notes table (peer versions, what was skipped) when there is anything to say. */
export function withNotes(tables: ResultTable[], notes: string[]): ResultTable[] {
  return notes.length === 0
    ? tables
    : [...tables, { title: 'Notes', columns: ['note'], rows: notes.map((n) => [n]) }];
}

export const PEER_INSTALL = `apt-get install -y wrk ${IIPIMAGE_INSTALL.replace('apt-get install -y ', '')} ${OPENSLIDE_INSTALL.replace('apt-get install -y ', '')}`;

export const compareSuite: Suite = {
  name: 'compare',
  // Uploaded to s3rver by run.ts; cold-open uploads the other objects itself.
  file: path.join(FIXTURES, 'svs/CMU-1-Small-Region.svs'),
  benchmarks: [compareTiles, tileProfile, compareRegions, codecFloor, coldOpen],
};
