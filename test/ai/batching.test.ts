// Dynamic batching, backpressure and cancellation on a real server, counted by the worker's own
// ONNX Runtime `run` calls (medstream_ai_runs_total) and the batch-size histogram on /metrics:
// concurrent requests share runs and each still gets its own answer; a full queue answers 503
// with Retry-After; a client that goes away leaves the queue before its batch runs.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { linearClassifier } from '../support/onnx-writer.js';
import { metric, request, startTestServer, until } from '../support/server.js';
import { modelsDir, png, softmax } from './model-dir.js';

const WEIGHTS = [
  [1, 0, 0],
  [0, 1, 0],
];
const onnx = linearClassifier({ channels: 3, size: 2, weights: WEIGHTS, bias: [0, 0] });
const json = (batching: Record<string, number | boolean>) => ({
  task: 'classification',
  input: { name: 'image', width: 2, height: 2, channels: 3 },
  labels: ['red', 'green'],
  output: { name: 'scores', activation: 'none' },
  batching,
});

let server: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;

beforeAll(async () => {
  models = await modelsDir({
    batched: { onnx, json: json({ maxBatch: 4, maxWaitMs: 2000, eager: false }) },
    eager: { onnx, json: json({ maxBatch: 4, maxWaitMs: 5000 }) },
    single: { onnx, json: json({ maxBatch: 1 }) },
    small: { onnx, json: json({ maxBatch: 8, maxWaitMs: 3000, maxQueue: 2, eager: false }) },
    slow: { onnx, json: json({ maxBatch: 8, maxWaitMs: 3000, eager: false }) },
  });
  server = await startTestServer(fixture('wsi'), ['--models-dir', models.dir]);
});

afterAll(async () => {
  await server?.close();
  await models?.cleanup();
});

/** A 2x2 image of one colour, and the scores the model gives it. */
async function image(r: number, g: number) {
  const body = await png([r, g, 0, r, g, 0, r, g, 0, r, g, 0], 2, 2);
  return { body, expected: softmax([r / 255, g / 255]) };
}

function infer(model: string, body: Buffer, signal?: AbortSignal) {
  return request(server, `/ai/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: new Uint8Array(body),
    signal,
  });
}

const runs = (model: string) => metric(server, `medstream_ai_runs_total{model="${model}"}`);

describe('dynamic batching', () => {
  it('answers 8 concurrent requests with 2 runs of 4, each with its own scores', async () => {
    const images = await Promise.all(Array.from({ length: 8 }, (_, i) => image(i * 30, 255 - i * 30)));
    const answers = await Promise.all(images.map((im) => infer('batched', im.body)));
    answers.forEach((res, i) => {
      expect(res.status).toBe(200);
      const scores = (res.json() as { scores: { score: number }[] }).scores.map((s) => s.score);
      scores.forEach((s, k) => expect(s).toBeCloseTo(images[i].expected[k], 5));
    });
    expect(await runs('batched')).toBe(2);
    expect(await metric(server, 'medstream_ai_batch_size_count{model="batched"}')).toBe(2);
    expect(await metric(server, 'medstream_ai_batch_size_sum{model="batched"}')).toBe(8);
    expect(await metric(server, 'medstream_ai_batch_size_bucket{model="batched",le="2"}')).toBe(0);
    expect(await metric(server, 'medstream_ai_batch_size_bucket{model="batched",le="4"}')).toBe(2);
    expect(await metric(server, 'medstream_ai_request_duration_seconds_count{model="batched"}')).toBe(8);
  });

  it('sends a lone request at once instead of waiting for its batch to fill (eager)', async () => {
    const im = await image(50, 60);
    const started = performance.now();
    const res = await infer('eager', im.body);
    expect(res.status).toBe(200);
    // maxWaitMs is 5000: a wait for the batch would show.
    expect(performance.now() - started).toBeLessThan(2500);
    expect(await runs('eager')).toBe(1);
    expect(await metric(server, 'medstream_ai_batch_size_sum{model="eager"}')).toBe(1);
  });

  it('runs once per request with a batch size of 1', async () => {
    const images = await Promise.all(Array.from({ length: 6 }, (_, i) => image(i * 40, 10)));
    const answers = await Promise.all(images.map((im) => infer('single', im.body)));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(200));
    expect(await runs('single')).toBe(6);
    expect(await metric(server, 'medstream_ai_batch_size_sum{model="single"}')).toBe(6);
  });

  it('refuses with 503 and Retry-After when the queue is full, then runs the queued pair as one batch', async () => {
    const im = await image(200, 100);
    const queued = [infer('small', im.body), infer('small', im.body)];
    await until(async () => (await metric(server, 'medstream_ai_queue_depth{model="small"}')) === 2);
    const refused = await infer('small', im.body);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.json()).toMatchObject({ error: 'overloaded', status: 503 });
    expect((refused.json() as { message: string }).message).toMatch(
      /model small: 2 requests already queued \(max 2\)/,
    );
    expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200]);
    expect(await runs('small')).toBe(1);
    expect(await metric(server, 'medstream_ai_rejected_total{model="small"}')).toBe(1);
  });

  it('drops a request from the queue when its client goes away', async () => {
    const im = await image(10, 20);
    const controller = new AbortController();
    const gone = infer('slow', im.body, controller.signal).catch((e: unknown) => e);
    await until(async () => (await metric(server, 'medstream_ai_queue_depth{model="slow"}')) === 1);
    controller.abort();
    expect(await gone).toBeInstanceOf(Error);
    await until(async () => (await metric(server, 'medstream_ai_cancelled_total{model="slow"}')) === 1);
    expect(await metric(server, 'medstream_ai_queue_depth{model="slow"}')).toBe(0);
    // Past the batch's wait: nothing ran for the request that left.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await runs('slow')).toBe(0);
    // The model still serves the next client.
    const next = await infer('slow', im.body);
    expect(next.status).toBe(200);
    expect(await runs('slow')).toBe(1);
  });
});
