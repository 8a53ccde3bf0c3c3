// The `inference` suite: model serving throughput and latency with dynamic batching on and off.
// One `medstream serve` child process on 127.0.0.1 serves convolutional classifiers
// (test/support/onnx-writer.ts convClassifier: two 3x3 convolutions, global pooling, a linear
// layer, softmax) of two sizes — 64x64 input with 16 filters, 32x32 with 8 — each twice:
// `convN-batched` (max batch 32, max wait BENCH_AI_WAIT_MS) and `convN-single` (max batch 1).
// A closed-loop Node load generator (keep-alive HTTP, N clients each posting a PNG of the input
// size and waiting for the answer) drives one model at a time at 1, 8 and 32 clients; on and off
// alternate round by round (harness `interleaved`). Reported: requests/s, p50 and p99 latency,
// mean batch size and batch time from /metrics, the server's CPU time per request (its process
// tree, /proc: the figure that noise from other work on the machine moves least); the goal check (batching >= 2x throughput at 32
// clients; p99 with batching not above p99 without it plus the configured wait plus one batch);
// and the same closed loop without HTTP (the server stopped, callers in this process submitting
// ready tensors to the batcher: what batching does to the queue + worker path alone).
// Settings: BENCH_SHORT, BENCH_DURATION, BENCH_ROUNDS (LOAD_SETTINGS), BENCH_AI_CLIENTS
// (`1,8,32`), BENCH_AI_WAIT_MS (5), BENCH_AI_THREADS (intra-op threads, default min(cores, 2)).

import http from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ModelRegistry } from '../src/ai/registry.js';
import { convClassifier } from '../test/support/onnx-writer.js';
import {
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
import { heatmapJob } from './inference-heatmap.js';
import { CLIENTS, FIXTURES, MAX_BATCH, serve, THREADS, treeCpuSeconds, WAIT_MS } from './inference-server.js';
import type { ServerProcess } from './tiles.js';

/** The convolution models: input size and filters (compute per image ~14x apart). */
const MODELS = [
  { size: 64, filters: 16 },
  { size: 32, filters: 8 },
];

interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

/** N clients, each posting `body` and waiting for the answer, for `seconds` (after a 1 s warm-up). */
async function closedLoop(
  port: number,
  model: string,
  body: Buffer,
  clients: number,
  seconds: number,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const post = () =>
    new Promise<number>((resolve) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/ai/models/${model}/infer`,
          agent,
          headers: { 'content-type': 'image/png', 'content-length': body.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', () => resolve(0));
      req.end(body);
    });
  const latencies: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const client = async () => {
    while (!stop) {
      const started = performance.now();
      const status = await post();
      if (!measuring) continue;
      if (status === 200) latencies.push(performance.now() - started);
      else errors++;
    }
  };
  const running = Array.from({ length: clients }, client);
  await new Promise((r) => setTimeout(r, 1000));
  measuring = true;
  const began = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - began) / 1000;
  stop = true;
  await Promise.all(running);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pick = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { requests: latencies.length, errors, seconds: elapsed, p50Ms: pick(0.5), p99Ms: pick(0.99) };
}

/**
 * The same closed loop without HTTP, image decoding or preprocessing: `clients` callers each
 * submit a ready input tensor to the model's batcher and wait for its answer. Isolates what
 * batching does to the queue + worker + ONNX Runtime path.
 */
async function inProcessLoop(
  registry: ModelRegistry,
  name: string,
  clients: number,
  seconds: number,
): Promise<LoadResult & { meanBatch: number }> {
  const model = registry.get(name);
  const { width, height, channels } = model.declaration.input;
  const input = new Float32Array(width * height * channels).fill(0.25);
  const latencies: number[] = [];
  let measuring = false;
  let stop = false;
  const client = async () => {
    while (!stop) {
      const started = performance.now();
      await model.batcher.submit(input.slice());
      if (measuring) latencies.push(performance.now() - started);
    }
  };
  const running = Array.from({ length: clients }, client);
  await new Promise((r) => setTimeout(r, 500));
  measuring = true;
  const began = performance.now();
  const c1 = model.batcher.stats().batchSize;
  const [count1, sum1] = [c1.count, c1.sum];
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - began) / 1000;
  const c2 = model.batcher.stats().batchSize;
  stop = true;
  await Promise.all(running);
  latencies.sort((a, b) => a - b);
  const pick = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    requests: latencies.length,
    errors: 0,
    seconds: elapsed,
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    meanBatch: (c2.sum - sum1) / (c2.count - count1),
  };
}

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('medstream_ai_')) continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return values;
}

/** Batches and batch time of one model between two scrapes. */
function batchesBetween(before: Map<string, number>, after: Map<string, number>, model: string) {
  const d = (name: string) =>
    (after.get(`${name}{model="${model}"}`) ?? 0) - (before.get(`${name}{model="${model}"}`) ?? 0);
  const batches = d('medstream_ai_batch_size_count');
  return {
    batches,
    meanBatch: d('medstream_ai_batch_size_sum') / batches,
    meanBatchMs: (d('medstream_ai_batch_duration_seconds_sum') * 1000) / batches,
  };
}

const throughput: Benchmark = {
  name: 'inference',
  title:
    'Model serving: dynamic batching on and off (convolutional classifiers, PNG uploads of the input size)',
  async run(): Promise<BenchmarkResult> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-bench-models-'));
    let server: ServerProcess | undefined;
    try {
      const bodies = new Map<string, Buffer>();
      for (const { size, filters } of MODELS) {
        const onnx = convClassifier({ size, filters, classes: 2 });
        const declaration = (batching: Record<string, number>) => ({
          task: 'classification',
          description: 'benchmark convolution model',
          input: { name: 'image', width: size, height: size, channels: 3 },
          labels: ['a', 'b'],
          output: { name: 'scores', activation: 'none' },
          batching: { maxQueue: 256, ...batching },
        });
        for (const [mode, batching] of [
          ['batched', { maxBatch: MAX_BATCH, maxWaitMs: WAIT_MS }],
          ['single', { maxBatch: 1 }],
        ] as const) {
          const name = `conv${size}-${mode}`;
          await mkdir(path.join(dir, name));
          await writeFile(path.join(dir, name, 'model.onnx'), onnx);
          await writeFile(path.join(dir, name, 'model.json'), JSON.stringify(declaration(batching)));
        }
        const pixels = Buffer.alloc(size * size * 3);
        for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7919) % 251;
        bodies.set(
          `conv${size}`,
          await sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
            .png()
            .toBuffer(),
        );
      }
      const threads = THREADS;
      const started = await serve(path.join(FIXTURES, 'wsi'), dir, threads);
      server = started.process;
      const port = started.port;

      const tables: ResultTable[] = [];
      const data: unknown[] = [];
      for (const { size, filters } of MODELS) {
        const model = `conv${size}`;
        const body = bodies.get(model) as Buffer;
        const rows: string[][] = [];
        const goal: string[][] = [];
        for (const clients of CLIENTS) {
          const runOne = (name: string) => async () => {
            const before = await scrape(port);
            const cpu0 = await treeCpuSeconds(server!.pid);
            const load = await closedLoop(port, name, body, clients, LOAD_SETTINGS.durationS);
            const cpu1 = await treeCpuSeconds(server!.pid);
            // Server CPU per request (warm-up and drain included in both counts: approximate).
            const cpuMs =
              cpu0 === undefined || cpu1 === undefined ? NaN : ((cpu1 - cpu0) * 1000) / load.requests;
            return { ...load, cpuMs, ...batchesBetween(before, await scrape(port), name) };
          };
          const results = await interleaved(LOAD_SETTINGS.rounds, {
            on: runOne(`${model}-batched`),
            off: runOne(`${model}-single`),
          });
          const summary = (runs: typeof results.on) => ({
            rate: median(runs.map((r) => r.requests / r.seconds)),
            p50: median(runs.map((r) => r.p50Ms)),
            p99: median(runs.map((r) => r.p99Ms)),
            meanBatch: median(runs.map((r) => r.meanBatch)),
            meanBatchMs: median(runs.map((r) => r.meanBatchMs)),
            cpuMs: median(runs.map((r) => r.cpuMs)),
            errors: runs.reduce((a, r) => a + r.errors, 0),
          });
          const on = summary(results.on);
          const off = summary(results.off);
          for (const [mode, s] of [
            ['on', on],
            ['off', off],
          ] as const) {
            rows.push([
              String(clients),
              mode,
              formatRate(s.rate),
              formatMs(s.p50),
              formatMs(s.p99),
              s.meanBatch.toFixed(1),
              formatMs(s.meanBatchMs),
              formatMs(s.cpuMs),
              String(s.errors),
            ]);
          }
          const bound = off.p99 + WAIT_MS + on.meanBatchMs;
          goal.push([
            String(clients),
            formatRatio(on.rate / off.rate),
            formatRatio(off.cpuMs / on.cpuMs),
            `${formatMs(on.p99)} vs ${formatMs(bound)}`,
            on.p99 <= bound ? 'yes' : 'no',
          ]);
          data.push({ model, clients, on: results.on, off: results.off });
        }
        tables.push(
          {
            title: `${model}: ${size}x${size} RGB, two 3x3 convolutions of ${filters} filters; closed loop, ${LOAD_SETTINGS.durationS} s per run, median of ${LOAD_SETTINGS.rounds} interleaved rounds; batching on = max batch ${MAX_BATCH}, max wait ${WAIT_MS} ms; ${threads} intra-op threads`,
            columns: [
              'clients',
              'batching',
              'requests/s',
              'p50',
              'p99',
              'mean batch',
              'mean batch time',
              'server CPU / request',
              'errors',
            ],
            rows,
          },
          {
            title: `${model} goal: >= 2x throughput at 32 clients; p99 (on) <= p99 (off) + max wait + one batch`,
            columns: [
              'clients',
              'throughput on/off',
              'CPU per request off/on',
              'p99 on vs bound',
              'p99 within bound',
            ],
            rows: goal,
          },
        );
      }
      // The HTTP server is stopped first so the in-process loop has the cores to itself.
      await server.close();
      const registry = await ModelRegistry.load({
        modelsDir: dir,
        batching: { maxBatch: MAX_BATCH, maxWaitMs: WAIT_MS, maxQueue: 256 },
        intraOpThreads: threads,
      });
      try {
        const rows: string[][] = [];
        for (const { size } of MODELS) {
          for (const clients of CLIENTS) {
            const results = await interleaved(LOAD_SETTINGS.rounds, {
              on: () => inProcessLoop(registry, `conv${size}-batched`, clients, LOAD_SETTINGS.durationS / 2),
              off: () => inProcessLoop(registry, `conv${size}-single`, clients, LOAD_SETTINGS.durationS / 2),
            });
            const rate = (runs: typeof results.on) => median(runs.map((r) => r.requests / r.seconds));
            const p99 = (runs: typeof results.on) => median(runs.map((r) => r.p99Ms));
            rows.push([
              `conv${size}`,
              String(clients),
              formatRate(rate(results.on)),
              formatRate(rate(results.off)),
              formatRatio(rate(results.on) / rate(results.off)),
              median(results.on.map((r) => r.meanBatch)).toFixed(1),
              formatMs(p99(results.on)),
              formatMs(p99(results.off)),
            ]);
            data.push({ inProcess: true, model: `conv${size}`, clients, on: results.on, off: results.off });
          }
        }
        tables.push({
          title: `Without HTTP: callers submit ready tensors to the batcher (queue + worker thread + ONNX Runtime), ${LOAD_SETTINGS.durationS / 2} s per run, median of ${LOAD_SETTINGS.rounds} rounds`,
          columns: [
            'model',
            'clients',
            'images/s on',
            'images/s off',
            'on/off',
            'mean batch',
            'p99 on',
            'p99 off',
          ],
          rows,
        });
      } finally {
        await registry.close();
      }
      return { name: 'inference', title: this.title, tables, data };
    } finally {
      if (server) await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};

export const inferenceSuite: Suite = {
  name: 'inference',
  // run.ts uploads this to its stores; the benchmark itself reads no slide.
  file: path.join(FIXTURES, 'wsi/svs/CMU-1-Small-Region.svs'),
  benchmarks: [throughput, heatmapJob],
};
