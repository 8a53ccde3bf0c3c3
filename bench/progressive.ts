// `npm run bench -- progressive`: issue 16's table. Debian's Chromium drives Cornerstone3D (the
// bench page, bench/progressive-page/page.ts) against a MedStream server with every derived
// representation prepared ahead, on a 3036x3036 16-bit image (stack) and a 512x512x174 CT series
// (volume, interleaved stages), for each retrieve configuration, on "4g" (Chromium's network
// emulation through CDP: 30 Mbit/s down, 5 up, 10 ms latency) and unthrottled on 127.0.0.1.
// A fresh browser context per run (no HTTP cache); decoder start-up is warmed before timing, as
// in Cornerstone3D's published table, and with BENCH_PROGRESSIVE_WARMUP `render` the viewport too.
// A 64x64 image (layout `tiny`) measures the browser's floor on the same path. Env:
// BENCH_PROGRESSIVE_CONFIGS (comma-separated config keys), BENCH_PROGRESSIVE_NETWORKS (`4g,local`),
// BENCH_PROGRESSIVE_LAYOUTS (`stack,volume,tiny`), BENCH_PROGRESSIVE_WARMUP (`decoders,render`);
// BENCH_PROGRESSIVE_EARLY_DRAW=1 draws the empty volume right after load() (as the radiology
// viewer does); BENCH_PROGRESSIVE_DEBUG=1 prints the page's console. BENCH_PROGRESSIVE_TRACE=DIR
// (stall hunting, bench/progressive-trace.ts) writes the server's access log and each run's
// per-request CDP timings there, ends a run after 20 s without network progress, and goes on;
// BENCH_PROGRESSIVE_REPEAT=N runs each cell N times.

import type { Browser } from 'playwright-core';
import { launchChromium } from '../test/viewer/helpers.js';
import type { Benchmark, BenchmarkResult, ResultTable, Suite } from './harness.js';
import { benchData, serveBenchPage } from './progressive-setup.js';
import { RequestTrace } from './progressive-trace.js';
import { ServerProcess } from './tiles.js';

type Options = Record<string, unknown>;
type Layout = 'stack' | 'volume' | 'tiny';
type Network = '4g' | 'local';
/** What is warmed before the timed load: the decoders (as the published table), or the viewport too. */
type Warmup = 'decoders' | 'render';
const SERIES: Record<Layout, string> = {
  stack: 'bench 3036x3036',
  volume: 'bench 174 slices',
  tiny: 'bench 64x64',
};

const SUBRESOLUTION = 6; // Cornerstone3D's ImageQualityStatus.SUBRESOLUTION
const LOSSY = 7; // ImageQualityStatus.LOSSY
const FOUR_G = { latency: 10, downloadThroughput: 30e6 / 8, uploadThroughput: 5e6 / 8 };

interface Config {
  key: string;
  label: string;
  fast?: Options;
  final: Options;
}

export const CONFIGS: Config[] = [
  { key: 'jls', label: 'JLS full', final: { framesPath: '/jls/' } },
  {
    key: 'jls-reduced',
    label: 'JLS reduced (jlsThumbnail, then jls)',
    fast: { framesPath: '/jlsThumbnail/', imageQualityStatus: SUBRESOLUTION },
    final: { framesPath: '/jls/' },
  },
  { key: 'htj2k-streaming', label: 'HTJ2K streaming', final: { framesPath: '/htj2k/', streaming: true } },
  {
    key: 'htj2k-range',
    label: 'HTJ2K byte range (64000, then rest)',
    // Cornerstone3D 5.14 sizes the first range by initialChunkSize (default 131,072).
    fast: { framesPath: '/htj2k/', rangeIndex: 0, initialChunkSize: 64000, chunkSize: 64000 },
    final: { framesPath: '/htj2k/', rangeIndex: -1, initialChunkSize: 64000, chunkSize: 64000 },
  },
  {
    key: 'htj2k-range-16k',
    label: 'MedStream: HTJ2K byte range (16000, then rest)',
    fast: { framesPath: '/htj2k/', rangeIndex: 0, initialChunkSize: 16000, chunkSize: 16000 },
    final: { framesPath: '/htj2k/', rangeIndex: -1, initialChunkSize: 16000, chunkSize: 16000 },
  },
  {
    key: 'htj2k-thumbnail',
    label: 'MedStream: htj2kThumbnail, then htj2k',
    fast: { framesPath: '/htj2kThumbnail/', imageQualityStatus: SUBRESOLUTION },
    final: { framesPath: '/htj2k/' },
  },
  {
    key: 'lossy',
    label: 'MedStream: lossy HTJ2K, then htj2k',
    fast: { framesPath: '/lossy/', imageQualityStatus: LOSSY },
    final: { framesPath: '/htj2k/' },
  },
];

/** Cornerstone3D's published rows (issue 16): first render / final render, ms. */
const PUBLISHED: Record<string, Record<string, [number | undefined, number]>> = {
  'stack 4g': {
    jls: [undefined, 4586],
    'jls-reduced': [359, 4903],
    'htj2k-streaming': [66, 5053],
    'htj2k-range': [45, 4610],
  },
  'volume 4g': {
    jls: [2265, 8106],
    'jls-reduced': [1028, 8455],
    'htj2k-streaming': [2503, 8817],
    'htj2k-range': [1002, 8813],
  },
  'volume local': {
    jls: [1322, 1487],
    'jls-reduced': [1084, 1679],
    'htj2k-streaming': [1253, 1736],
    'htj2k-range': [1359, 1964],
  },
};

interface Measured {
  layout: Layout;
  network: Network;
  warmup: Warmup;
  config: string;
  firstRenderMs: number;
  finalRenderMs: number;
  completeMs: number;
  bytes: number;
  requests: number;
  frames: number;
  /** First frame request sent to its response finished (CDP timestamps): the network's share. */
  firstResponseMs: number;
  /** The first frame request's Range header, if any (checked against initialChunkSize). */
  firstRange?: string;
  /** Where the time to the first render went (bench/progressive-page/page.ts, Breakdown). */
  viewportReadyMs: number;
  firstRequestMs: number;
  firstResponseEndMs: number;
  imageReadyMs: number;
  actorReadyMs: number;
  decodeMs: number;
  firstImageSize: string;
  firstDrawMs: number;
  emptyDrawMs: number;
  renderAloneMs: number;
  drawAloneMs: number;
}

const list = <T extends string>(name: string, all: T[]): T[] =>
  process.env[name] ? (process.env[name].split(',') as T[]).filter((x) => all.includes(x)) : all;

async function seriesUids(server: string): Promise<Map<string, [string, string]>> {
  const res = await fetch(`${server}/dicomweb/series?includefield=0008103E`);
  const rows = (await res.json()) as Record<string, { Value?: unknown[] }>[];
  return new Map(
    rows.map((r) => [
      String(r['0008103E']?.Value?.[0] ?? ''),
      [String(r['0020000D'].Value![0]), String(r['0020000E'].Value![0])],
    ]),
  );
}

async function measure(
  browser: Browser,
  pageUrl: string,
  server: string,
  uids: Map<string, [string, string]>,
  layout: Layout,
  network: Network,
  warmup: Warmup,
  config: Config,
  trace?: RequestTrace,
): Promise<Measured> {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  try {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    if (process.env.BENCH_PROGRESSIVE_DEBUG)
      page.on('console', (m) => console.error('page:', m.type(), m.text().slice(0, 300)));
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    trace?.attach(cdp, server, () => counting);
    const urls = new Map<string, string>();
    let bytes = 0;
    let requests = 0;
    let counting = false;
    let firstSent = NaN;
    let firstDone = NaN;
    let firstRange: string | undefined;
    cdp.on('Network.requestWillBeSent', (e) => {
      urls.set(e.requestId, e.request.url);
      if (counting && e.request.url.startsWith(server) && Number.isNaN(firstSent)) {
        firstSent = e.timestamp;
        const range = Object.entries(e.request.headers).find(([k]) => k.toLowerCase() === 'range');
        firstRange = range ? String(range[1]) : undefined;
      }
    });
    cdp.on('Network.loadingFinished', (e) => {
      const url = urls.get(e.requestId) ?? '';
      if (counting && url.startsWith(server)) {
        bytes += e.encodedDataLength;
        requests++;
        if (Number.isNaN(firstDone)) firstDone = e.timestamp;
      }
    });
    await page.goto(pageUrl);
    await page.waitForFunction('window.progressiveBench !== undefined');
    const series = uids.get(SERIES[layout]);
    const warm = [...uids.entries()].find(([d]) => !d.startsWith('bench'))?.[1];
    if (!series || !warm) throw new Error(`bench series missing: ${[...uids.keys()].join(', ')}`);
    const options = [config.fast, config.final].filter((o) => o !== undefined);
    const pageLayout = layout === 'volume' ? 'volume' : 'stack';
    const earlyDraw = process.env.BENCH_PROGRESSIVE_EARLY_DRAW === '1';
    const request = { layout: pageLayout, fast: config.fast, final: config.final, earlyDraw };
    await page.evaluate(
      ([root, s, w, o, r]) =>
        (
          globalThis as unknown as {
            progressiveBench: { prepare: (...a: unknown[]) => Promise<number> };
          }
        ).progressiveBench.prepare(root, s[0], s[1], w, o, r),
      [`${server}/dicomweb`, series, warm, options, warmup === 'render' ? request : undefined] as const,
    );
    if (network === '4g') await cdp.send('Network.emulateNetworkConditions', { offline: false, ...FOUR_G });
    counting = true;
    const running = page.evaluate(
      (req) =>
        (
          globalThis as unknown as {
            progressiveBench: { run: (r: unknown) => Promise<unknown> };
          }
        ).progressiveBench.run(req),
      request,
    );
    const result = (await (trace ? trace.race(running) : running)) as Omit<
      Measured,
      'layout' | 'network' | 'warmup' | 'config' | 'bytes' | 'requests' | 'firstResponseMs'
    >;
    // The last responses' loadingFinished events may trail the page's own completion.
    await page.waitForTimeout(300);
    if (errors.length > 0) throw new Error(`${config.key} ${layout}: ${errors.join('; ')}`);
    // A byte-range configuration's first request is as long as its initialChunkSize says.
    const initial = config.fast?.initialChunkSize;
    if (pageLayout === 'stack' && typeof initial === 'number' && firstRange !== `bytes=0-${initial - 1}`)
      throw new Error(`${config.key}: first request's Range ${firstRange}, expected bytes=0-${initial - 1}`);
    const firstResponseMs = (firstDone - firstSent) * 1000;
    return {
      layout,
      network,
      warmup,
      config: config.key,
      ...result,
      bytes,
      requests,
      firstResponseMs,
      firstRange,
    };
  } finally {
    await context.close();
  }
}

const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(0));

const SIZE: Record<Layout, string> = { stack: '3036²', volume: '512²', tiny: '64²' };
const WARMED: Record<Warmup, string> = {
  decoders: 'decoders warmed',
  render: 'decoders and viewport warmed',
};

/** Where the time to the first render went, per row (ms after setStack / volume creation). */
function breakdown(rows: Measured[], title: string): ResultTable {
  const volume = rows[0].layout === 'volume';
  return {
    title: `${title}: time to first render`,
    columns: [
      'configuration',
      ...(volume ? ['viewport ready'] : []),
      'first request sent',
      'first response end',
      volume ? 'first frame in volume' : 'decoded image at viewport',
      ...(volume ? [] : ['actor built', 'worker decode ms', 'first image']),
      'first render',
      'response end → first render',
      'first draw ms',
      ...(volume ? ['empty volume draw ms'] : []),
      'render alone ms (draw)',
    ],
    rows: rows.map((r) => [
      CONFIGS.find((c) => c.key === r.config)!.label,
      ...(volume ? [ms(r.viewportReadyMs)] : []),
      ms(r.firstRequestMs),
      ms(r.firstResponseEndMs),
      ms(r.imageReadyMs),
      ...(volume ? [] : [ms(r.actorReadyMs), ms(r.decodeMs), r.firstImageSize]),
      ms(r.firstRenderMs),
      // Streaming renders from a partial response, before that response ends.
      r.firstRenderMs < r.firstResponseEndMs ? 'before it' : ms(r.firstRenderMs - r.firstResponseEndMs),
      ms(r.firstDrawMs),
      ...(volume ? [ms(r.emptyDrawMs)] : []),
      `${ms(r.renderAloneMs)} (${ms(r.drawAloneMs)})`,
    ]),
  };
}

function tables(results: Measured[]): ResultTable[] {
  const out: ResultTable[] = [];
  for (const [layout, network, warmup] of (['stack', 'volume', 'tiny'] as Layout[]).flatMap((l) =>
    (['4g', 'local'] as Network[]).flatMap((n) =>
      (['decoders', 'render'] as Warmup[]).map((w) => [l, n, w] as const),
    ),
  )) {
    const rows = results.filter((r) => r.layout === layout && r.network === network && r.warmup === warmup);
    if (rows.length === 0) continue;
    const published = layout === 'tiny' ? {} : (PUBLISHED[`${layout} ${network}`] ?? {});
    const best = Math.min(...Object.values(published).flatMap(([f]) => (f === undefined ? [] : [f])));
    const title = `${layout} (${rows[0].frames} × ${SIZE[layout]}), ${network}, ${WARMED[warmup]}`;
    out.push({
      title,
      columns: [
        'configuration',
        'first render ms',
        'first response ms',
        'final render ms',
        'complete ms',
        'MB on the wire',
        'requests',
        ...(network === '4g' ? ['bytes ÷ 30 Mbit/s ms', 'complete ÷ that'] : []),
        'published first / final ms',
        'first: best published ÷ ours',
      ],
      rows: rows.map((r) => {
        const label = CONFIGS.find((c) => c.key === r.config)!.label;
        const limit = (r.bytes * 8) / 30e3;
        const p = published[r.config];
        return [
          label,
          ms(r.firstRenderMs),
          ms(r.firstResponseMs),
          ms(r.finalRenderMs),
          ms(r.completeMs),
          (r.bytes / 1e6).toFixed(2),
          String(r.requests),
          ...(network === '4g' ? [ms(limit), (r.completeMs / limit).toFixed(2)] : []),
          p ? `${ms(p[0])} / ${ms(p[1])}` : '—',
          Number.isFinite(best) ? (best / r.firstRenderMs).toFixed(1) : '—',
        ];
      }),
    });
    out.push(breakdown(rows, title));
  }
  return out;
}

const progressiveBenchmark: Benchmark = {
  name: 'progressive',
  title: 'Progressive loading in Cornerstone3D (Chromium) against MedStream',
  async run(): Promise<BenchmarkResult> {
    const data = await benchData();
    const traceDir = process.env.BENCH_PROGRESSIVE_TRACE;
    const server = await ServerProcess.start(
      data.storage,
      ['--data-dir', data.dataDir, '--cors-origins', '*'],
      {},
      traceDir ? 'info' : 'warn',
    );
    const trace = traceDir ? await RequestTrace.create(traceDir, server) : undefined;
    const repeat = Math.max(1, Number(process.env.BENCH_PROGRESSIVE_REPEAT ?? 1));
    const page = await serveBenchPage();
    const browser = await launchChromium();
    const results: Measured[] = [];
    try {
      const uids = await seriesUids(server.url);
      const configs = list(
        'BENCH_PROGRESSIVE_CONFIGS',
        CONFIGS.map((c) => c.key),
      );
      for (const layout of list<Layout>('BENCH_PROGRESSIVE_LAYOUTS', ['stack', 'volume', 'tiny'])) {
        for (const network of list<Network>('BENCH_PROGRESSIVE_NETWORKS', ['4g', 'local'])) {
          for (const warmup of list<Warmup>('BENCH_PROGRESSIVE_WARMUP', ['decoders', 'render'])) {
            for (const key of configs.flatMap((k) => Array<string>(repeat).fill(k))) {
              const config = CONFIGS.find((c) => c.key === key)!;
              const name = `${layout} ${network} ${warmup} ${key}`;
              let r: Measured;
              try {
                r = await measure(
                  browser,
                  page.url,
                  server.url,
                  uids,
                  layout,
                  network,
                  warmup,
                  config,
                  trace,
                );
              } catch (e) {
                if (!trace) throw e;
                console.log(`${name}: FAILED ${(e as Error).message}`);
                continue;
              } finally {
                await trace?.save(name);
              }
              console.log(
                `${name}: first ${ms(r.firstRenderMs)} ms (first response ${ms(r.firstResponseMs)} ms), final ${ms(r.finalRenderMs)} ms, complete ${ms(r.completeMs)} ms, ${(r.bytes / 1e6).toFixed(2)} MB in ${r.requests} requests${r.firstRange ? ` (first: Range ${r.firstRange})` : ''}; ` +
                  `viewport ${ms(r.viewportReadyMs)}, request ${ms(r.firstRequestMs)}, response end ${ms(r.firstResponseEndMs)}, image ${ms(r.imageReadyMs)} (${r.firstImageSize}, worker decode ${ms(r.decodeMs)}), actor ${ms(r.actorReadyMs)}, first draw ${ms(r.firstDrawMs)}, empty draw ${ms(r.emptyDrawMs)}, render alone ${ms(r.renderAloneMs)} (draw ${ms(r.drawAloneMs)})`,
              );
              results.push(r);
            }
          }
        }
      }
    } finally {
      await browser.close();
      await page.close();
      await server.close();
    }
    return { name: 'progressive', title: this.title, tables: tables(results), data: results };
  },
};

export const progressiveSuite: Suite = { name: 'progressive', file: '', benchmarks: [progressiveBenchmark] };
