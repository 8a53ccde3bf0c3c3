// The `heatmap` benchmark of the `inference` suite: a heatmap job over the generated
// 60000x45000 SVS of bench/slides.ts with a convolutional classifier, tissue tiles only against
// every tile (time, tiles skipped as background). Settings: BENCH_ROUNDS, BENCH_AI_THREADS.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { convClassifier } from '../test/support/onnx-writer.js';
import {
  formatRate,
  interleaved,
  LOAD_SETTINGS,
  median,
  type Benchmark,
  type BenchmarkResult,
} from './harness.js';
import { MAX_BATCH, serve, THREADS, WAIT_MS } from './inference-server.js';
import type { ServerProcess } from './tiles.js';
import { benchSvs, SLIDE_CACHE } from './slides.js';

const HEATMAP = { mpp: 8, tileSize: 64 };

/**
 * A heatmap job over the generated 60000x45000 SVS (bench/slides.ts; its reduced levels are a
 * mosaic of level-0 tiles, so the tissue mask is not the level-0 tissue: fine for timing), with
 * the conv64 classifier: tissue tiles only, then every tile (minTissue 0) for comparison.
 */
export const heatmapJob: Benchmark = {
  name: 'heatmap',
  title: 'Heatmap job over a generated 60000x45000 SVS (conv64 classifier, tissue tiles only vs all tiles)',
  async run(): Promise<BenchmarkResult> {
    const svs = await benchSvs();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-heatmap-'));
    let server: { process: ServerProcess; port: number } | undefined;
    try {
      await mkdir(path.join(dir, 'conv64'));
      await writeFile(
        path.join(dir, 'conv64', 'model.onnx'),
        convClassifier({ size: 64, filters: 16, classes: 2 }),
      );
      await writeFile(
        path.join(dir, 'conv64', 'model.json'),
        JSON.stringify({
          task: 'classification',
          input: { name: 'image', width: 64, height: 64, channels: 3 },
          labels: ['a', 'b'],
          output: { name: 'scores', activation: 'none' },
          batching: { maxBatch: MAX_BATCH, maxWaitMs: WAIT_MS },
        }),
      );
      server = await serve(SLIDE_CACHE, dir, THREADS);
      const base = `http://127.0.0.1:${server.port}`;
      const rows: string[][] = [];
      const data: unknown[] = [];
      const runJob = async (minTissue: number) => {
        const started = performance.now();
        const res = await fetch(`${base}/ai/models/conv64/slides/${encodeURIComponent(svs.id)}/heatmap`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...HEATMAP, minTissue }),
        });
        if (res.status !== 202) throw new Error(`heatmap job refused: ${res.status} ${await res.text()}`);
        const { id } = (await res.json()) as { id: string };
        let job: { state: string; tiles: number; background: number; done: number; error?: string };
        for (;;) {
          await new Promise((r) => setTimeout(r, 100));
          job = (await (await fetch(`${base}/ai/jobs/${id}`)).json()) as typeof job;
          if (job.state !== 'queued' && job.state !== 'running') break;
        }
        if (job.state !== 'done') throw new Error(`heatmap job ${job.state}: ${job.error ?? ''}`);
        return { minTissue, seconds: (performance.now() - started) / 1000, ...job };
      };
      // A first job warms the slide, block and tile caches, so neither variant pays for them.
      await runJob(0);
      const results = await interleaved(LOAD_SETTINGS.rounds, {
        tissue: () => runJob(0.1),
        all: () => runJob(0),
      });
      for (const [label, runs] of [
        ['tissue tiles only (minTissue 0.1)', results.tissue],
        ['every tile (minTissue 0)', results.all],
      ] as const) {
        const seconds = median(runs.map((r) => r.seconds));
        rows.push([
          label,
          String(runs[0].tiles),
          String(runs[0].background),
          String(runs[0].done),
          seconds.toFixed(1),
          formatRate(runs[0].done / seconds),
        ]);
        data.push(...runs);
      }
      return {
        name: 'heatmap',
        title: this.title,
        tables: [
          {
            title: `${svs.width}x${svs.height} SVS at ${HEATMAP.mpp} µm/px, ${HEATMAP.tileSize}-px tiles (stride = tile), max batch ${MAX_BATCH}, ${THREADS} intra-op threads; median of ${LOAD_SETTINGS.rounds} interleaved rounds after a warm-up job; job time includes the tissue thumbnail`,
            columns: ['run', 'grid tiles', 'skipped as background', 'tiles inferred', 'seconds', 'tiles/s'],
            rows,
          },
        ],
        data,
      };
    } finally {
      if (server) await server.process.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
