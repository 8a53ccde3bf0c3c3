// `npm run bench -- derived`: what derived frames for progressive loading cost, on the fixture CT
// (20 slices, 512x512, stored as JPEG 2000 lossless): per frame, the time to decode the stored
// frame alone (OpenJPEG), and to decode + encode each derived representation (one worker thread,
// so it is one core's latency), their sizes against the stored frame and native pixels, and which
// resolution the first 64 KiB of the HTJ2K frame completes. BENCH_ROUNDS passes (default 2).

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Catalog, type StoredInstance } from '../src/catalog/catalog.js';
import { Indexer } from '../src/catalog/indexer.js';
import { parseJ2kCodestream } from '../src/codecs/j2k-markers.js';
import { DerivedCache } from '../src/dicomweb/derived-cache.js';
import { DERIVED_KINDS, DerivedFrames } from '../src/dicomweb/derived.js';
import { storedFrameTable } from '../src/dicomweb/frames.js';
import { LocalStorage } from '../src/storage/local.js';
import { FrameSampleDecoder } from '../src/volumes/frame-samples.js';
import type { Benchmark, BenchmarkResult, Suite } from './harness.js';

const FIXTURES = path.resolve(new URL('../../shared/fixtures', import.meta.url).pathname);
const CT_DIR = path.join(FIXTURES, 'volumes/ct-dicom-j2k');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f = (n: number, d = 1) => n.toFixed(d);

const derivedBenchmark: Benchmark = {
  name: 'derived',
  title: 'Derived frames of a 512x512 CT slice: encode time and size',
  async run(): Promise<BenchmarkResult> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-derived-'));
    const storage = await LocalStorage.create(CT_DIR);
    const catalog = await Catalog.open(path.join(dir, 'catalog.sqlite'));
    const decoder = new FrameSampleDecoder({ workers: 1 });
    const derived = new DerivedFrames({ cache: new DerivedCache({ maxBytes: 0 }), workers: 1, decoder });
    try {
      await new Indexer(storage, catalog, { niftiModality: 'OT' }).scan({ concurrency: 4 });
      const instances: StoredInstance[] = await catalog.instancesUnder('', '', 1000);
      const frames: Array<{ instance: StoredInstance; bytes: Uint8Array }> = [];
      for (const instance of instances) {
        const table = storedFrameTable(await storage.open(instance.objectKey), instance);
        frames.push({ instance, bytes: await table.read(0) });
      }
      const info = (i: StoredInstance) => ({
        rows: 512,
        columns: 512,
        bitsAllocated: 16,
        bitsStored: Number(i.json['00280101']?.Value?.[0] ?? 16),
        pixelRepresentation: Number(i.json['00280103']?.Value?.[0] ?? 0),
        rescaleSlope: 1,
        rescaleIntercept: 0,
      });
      // Warm the worker threads (WASM compile) before timing.
      await decoder.decodeNative(
        frames[0].bytes,
        frames[0].instance.transferSyntax,
        info(frames[0].instance),
      );
      for (const kind of DERIVED_KINDS) await derived.make(frames[0].instance, frames[0].bytes, kind);

      const decodeMs: number[] = [];
      const makeMs: Record<string, number[]> = Object.fromEntries(DERIVED_KINDS.map((k) => [k, []]));
      const sizes: Record<string, number[]> = Object.fromEntries(DERIVED_KINDS.map((k) => [k, []]));
      const prefixLevels: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (const { instance, bytes } of frames) {
          let t = performance.now();
          await decoder.decodeNative(bytes, instance.transferSyntax, info(instance));
          decodeMs.push(performance.now() - t);
          for (const kind of DERIVED_KINDS) {
            t = performance.now();
            const out = await derived.make(instance, bytes, kind);
            makeMs[kind].push(performance.now() - t);
            if (round === 0) sizes[kind].push(out.length);
            if (round === 0 && kind === 'htj2k') {
              const cs = parseJ2kCodestream(out);
              const complete = cs.tileParts.filter((p) => p.offset + p.length <= 65536).length;
              prefixLevels.push(512 >> (cs.decompositions + 1 - complete));
            }
          }
        }
      }
      // All five representations of each frame requested at once: one shared decode.
      const allMs: number[] = [];
      for (const { instance, bytes } of frames) {
        const t = performance.now();
        await Promise.all(DERIVED_KINDS.map((kind) => derived.frame(instance, 1, kind, async () => bytes)));
        allMs.push(performance.now() - t);
      }
      const stored = mean(frames.map((x) => x.bytes.length));
      const native = 512 * 512 * 2;
      const decodeMedian = median(decodeMs);
      const rows = [
        [
          'stored JPEG 2000 (decode only)',
          f(decodeMedian),
          '—',
          f(stored / 1024),
          '1.00',
          f(native / stored, 2),
        ],
        ...DERIVED_KINDS.map((kind) => {
          const m = median(makeMs[kind]);
          const size = mean(sizes[kind]);
          return [
            kind,
            f(m),
            f(Math.max(0, m - decodeMedian)),
            f(size / 1024),
            f(size / stored, 2),
            f(native / size, 2),
          ];
        }),
        ['all five at once (one decode)', f(median(allMs)), '—', '—', '—', '—'],
      ];
      return {
        name: 'derived',
        title: `Derived frames of the fixture CT (${frames.length} slices x ${ROUNDS} rounds, 512x512, one worker thread)`,
        tables: [
          {
            title: 'per frame (median ms; sizes are means)',
            columns: [
              'representation',
              'decode + encode ms',
              '≈ encode ms',
              'KiB',
              'vs stored',
              'ratio vs native',
            ],
            rows,
          },
          {
            title: 'first 64 KiB of the HTJ2K lossless frame',
            columns: ['complete resolution (px per side)', 'frames'],
            rows: [...new Set(prefixLevels)]
              .sort((a, b) => b - a)
              .map((px) => [`${px}x${px}`, String(prefixLevels.filter((p) => p === px).length)]),
          },
        ],
        data: { decodeMs, makeMs, allMs, sizes, stored, prefixLevels },
      };
    } finally {
      await derived.close();
      await decoder.close();
      await catalog.close();
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export const derivedSuite: Suite = { name: 'derived', file: '', benchmarks: [derivedBenchmark] };
