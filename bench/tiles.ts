// The `tiles` suite: the tile service's hot paths end to end over HTTP, with MedStream running in
// its own process (as users run it) and the load generated here on 127.0.0.1: stored-JPEG
// passthrough (tile cache warm, and with the tile cache off), re-encoding, PNG, JPEG 2000
// decoding, IIIF and Deep Zoom tiles, and region reads for ML. Each variant is compared with
// the cold passthrough path measured in the same run, interleaved.

import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkThat,
  formatMs,
  formatRate,
  formatRatio,
  interleaved,
  median,
  type Benchmark,
  type BenchmarkResult,
  type Suite,
} from './harness.js';
import { freePort, stopChild, untilListening } from './peers/procs.js';

const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/wsi/', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const PYRAMID = 'pyramid-jpeg.tif'; // 2220x2967, 5 levels, 256-px JPEG tiles (libvips)
const J2K = 'tcga.svs'; // 4443x3567, JPEG 2000 (33005), 240-px tiles
const CMU = 'CMU-1-Small-Region.svs'; // 2220x2967, one level, 0.499 µm/px

/** A MedStream server in a child process (so the load generator does not share its event loop). */
export class ServerProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  /**
   * Serves `storage` (a directory or storage URL); `env` adds to the environment (credentials).
   * At the default log level `info` the OS picks the port and the "listening" log line names it;
   * at a quieter one (`warn`: no line per request) a free port is chosen here and waited for.
   */
  static async start(
    storage: string,
    flags: string[],
    env: Record<string, string> = {},
    logLevel: 'info' | 'warn' = 'info',
  ): Promise<ServerProcess> {
    const port = logLevel === 'info' ? 0 : await freePort();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'serve',
        storage,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--log-level',
        logLevel,
        ...flags,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
    );
    try {
      const url =
        port === 0
          ? await new Promise<string>((resolve, reject) => {
              let buffered = '';
              child.once('exit', (code) =>
                reject(new Error(`medstream exited with ${code} before listening`)),
              );
              child.stdout!.on('data', (chunk: Buffer) => {
                buffered += chunk.toString();
                const match = /"url":"(http:\/\/[^"]+)"/.exec(buffered);
                if (match) resolve(match[1]);
              });
            })
          : await untilListening(child, port, 'medstream').then(() => `http://127.0.0.1:${port}`);
      child.removeAllListeners('exit');
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      return new ServerProcess(child, url);
    } catch (e) {
      await stopChild(child);
      throw e;
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Also hands the server's stdout (its JSON log lines) to `listener`. */
  onOutput(listener: (chunk: Buffer) => void): void {
    this.child.stdout!.on('data', listener);
  }

  async close(): Promise<void> {
    await stopChild(this.child);
  }
}

interface LoadResult {
  requests: number;
  seconds: number;
  latenciesMs: number[];
  bytes: number;
}

/** `concurrency` clients, each fetching the next URL of the list until `total` are done. */
async function load(base: string, urls: string[], total: number, concurrency: number): Promise<LoadResult> {
  let next = 0;
  let bytes = 0;
  const latenciesMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const url = urls[next++ % urls.length];
        const t0 = performance.now();
        const res = await fetch(base + url);
        const body = await res.arrayBuffer();
        checkThat(res.status === 200, `${url} answered ${res.status}`);
        latenciesMs.push(performance.now() - t0);
        bytes += body.byteLength;
      }
    }),
  );
  return { requests: total, seconds: (performance.now() - started) / 1000, latenciesMs, bytes };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/** A benchmark whose `run` prepares a directory of slides and measures in it. */
interface MeasuredInDir {
  measure(dir: string): Promise<BenchmarkResult>;
}

/** Runs `fn` over a temporary directory holding copies of fixtures (`name` → path under wsi/). */
async function withSlides<T>(files: Record<string, string>, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-'));
  try {
    for (const [name, file] of Object.entries(files))
      await copyFile(path.join(FIXTURES, file), path.join(dir, name));
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every tile of `level` of a grid `cols` x `rows`, as native tile paths with a suffix. */
function tileUrls(id: string, level: number, cols: number, rows: number, suffix: string): string[] {
  const urls: string[] = [];
  for (let y = 0; y < rows; y++)
    for (let x = 0; x < cols; x++) urls.push(`/tiles/${id}/${level}/${x}/${y}${suffix}`);
  return urls;
}

const tilePaths: Benchmark & MeasuredInDir = {
  name: 'tile-paths',
  title: 'Tile paths over HTTP, 16 concurrent clients, local disk',
  run(): Promise<BenchmarkResult> {
    return withSlides(
      { [PYRAMID]: 'generated/pyramid-jpeg.tif', [J2K]: 'svs/tcga-cr-7395-01a-01-ts1.svs' },
      (dir) => this.measure(dir),
    );
  },
  async measure(dir: string): Promise<BenchmarkResult> {
    const warm = await ServerProcess.start(dir, []);
    const cold = await ServerProcess.start(dir, ['--cache-tiles', '0']);
    try {
      // Level 0 of the pyramid: 9x12 tiles of 256 px; tcga level 0: 19x15 tiles of 240 px.
      const native = tileUrls(PYRAMID, 0, 8, 11, '.jpg');
      const iiif = native.map((u) => {
        const [, , , , x, y] = u.split('/');
        return `/iiif/3/${PYRAMID}/${Number(x) * 256},${parseInt(y) * 256},256,256/256,/0/default.jpg`;
      });
      const variants: Record<string, { server: ServerProcess; urls: string[]; total: number }> = {
        'passthrough, tile cache warm': { server: warm, urls: native, total: 4000 },
        'passthrough, tile cache off': { server: cold, urls: native, total: 2000 },
        'IIIF tile = stored tile (passthrough)': { server: cold, urls: iiif, total: 2000 },
        're-encode JPEG q70': { server: cold, urls: native.map((u) => `${u}?quality=70`), total: 400 },
        'decode + PNG': { server: cold, urls: tileUrls(PYRAMID, 0, 8, 11, '.png'), total: 300 },
        'Deep Zoom 254/1 (render)': {
          server: cold,
          urls: native.map((u) => {
            const [, , , , x, y] = u.split('/');
            return `/slides/${PYRAMID}/dzi_files/12/${x}_${parseInt(y)}.jpg`;
          }),
          total: 300,
        },
        'JPEG 2000 decode + JPEG': { server: cold, urls: tileUrls(J2K, 0, 18, 14, '.jpg'), total: 150 },
      };
      // Warm-up: open the slides and fill the warm server's tile cache.
      for (const [, v] of Object.entries(variants)) await load(v.server.url, v.urls, v.urls.length, 4);
      const results = await interleaved(
        3,
        Object.fromEntries(
          Object.entries(variants).map(([name, v]) => [name, () => load(v.server.url, v.urls, v.total, 16)]),
        ),
      );
      const rate = (r: LoadResult) => r.requests / r.seconds;
      const baseline = median(results['passthrough, tile cache off'].map(rate));
      const rows = Object.entries(results).map(([name, runs]) => {
        const all = runs.flatMap((r) => r.latenciesMs);
        const perSecond = median(runs.map(rate));
        return [
          name,
          formatRate(perSecond),
          formatMs(percentile(all, 50)),
          formatMs(percentile(all, 99)),
          `${(runs[0].bytes / runs[0].requests / 1024).toFixed(1)} KiB`,
          formatRatio(perSecond / baseline),
        ];
      });
      return {
        name: this.name,
        title: this.title,
        tables: [
          {
            title: 'Requests per second (median of 3 interleaved rounds), latency over all rounds',
            columns: ['path', 'req/s', 'p50 ms', 'p99 ms', 'body', 'vs passthrough (cache off)'],
            rows,
          },
        ],
        data: Object.fromEntries(
          Object.entries(results).map(([name, runs]) => [
            name,
            runs.map((r) => ({
              requests: r.requests,
              seconds: r.seconds,
              bytes: r.bytes,
              p99: percentile(r.latenciesMs, 99),
            })),
          ]),
        ),
      };
    } finally {
      await warm.close();
      await cold.close();
    }
  },
};

const regions: Benchmark & MeasuredInDir = {
  name: 'regions',
  title: 'Region reads for ML over HTTP, 2 concurrent clients, tile cache off',
  run(): Promise<BenchmarkResult> {
    return withSlides(
      { [PYRAMID]: 'generated/pyramid-jpeg.tif', [CMU]: 'svs/CMU-1-Small-Region.svs' },
      (dir) => this.measure(dir),
    );
  },
  async measure(dir: string): Promise<BenchmarkResult> {
    const server = await ServerProcess.start(dir, ['--cache-tiles', '0']);
    try {
      const at = (i: number) => ({ x: 128 + ((i * 197) % 1500), y: 128 + ((i * 311) % 2200) });
      const urls = (query: (p: { x: number; y: number }) => string, id = PYRAMID) =>
        Array.from({ length: 32 }, (_, i) => `/slides/${id}/region?${query(at(i))}`);
      const variants = {
        '512x512 level 0, raw RGB': urls((p) => `x=${p.x}&y=${p.y}&width=512&height=512&level=0&format=raw`),
        '512x512 level 0, PNG': urls((p) => `x=${p.x}&y=${p.y}&width=512&height=512&level=0&format=png`),
        '512x512 level 1 (sub-pixel origin), raw': urls(
          (p) => `x=${p.x}&y=${p.y}&width=512&height=512&level=1&format=raw`,
        ),
        // CMU-1 (0.499 µm/px): 0.75 µm/px is 1.5x level 0, resampled with Lanczos-3.
        '341x341 at 0.75 µm/px (mpp, resampled), raw': urls(
          (p) => `x=${p.x}&y=${p.y}&width=341&height=341&mpp=0.75&format=raw`,
          CMU,
        ),
      };
      for (const list of Object.values(variants)) await load(server.url, list, 4, 2);
      const results = await interleaved(
        3,
        Object.fromEntries(
          Object.entries(variants).map(([name, list]) => [name, () => load(server.url, list, 48, 2)]),
        ),
      );
      const rate = (r: LoadResult) => r.requests / r.seconds;
      const baseline = median(results['512x512 level 0, raw RGB'].map(rate));
      return {
        name: this.name,
        title: this.title,
        tables: [
          {
            title: 'Regions per second (median of 3 interleaved rounds)',
            columns: ['region', 'regions/s', 'p50 ms', 'p99 ms', 'vs level-0 raw'],
            rows: Object.entries(results).map(([name, runs]) => {
              const all = runs.flatMap((r) => r.latenciesMs);
              const perSecond = median(runs.map(rate));
              return [
                name,
                formatRate(perSecond),
                formatMs(percentile(all, 50)),
                formatMs(percentile(all, 99)),
                formatRatio(perSecond / baseline),
              ];
            }),
          },
        ],
        data: results,
      };
    } finally {
      await server.close();
    }
  },
};

export const tilesSuite: Suite = {
  name: 'tiles',
  file: path.join(FIXTURES, 'generated/pyramid-jpeg.tif'),
  benchmarks: [tilePaths, regions],
};
