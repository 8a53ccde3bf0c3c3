// The `inference` benchmark's load generators: a closed loop of N keep-alive HTTP clients each
// posting an image to a model and waiting for the answer, and the same loop without HTTP (callers
// in this process submitting ready tensors to a model's batcher).

import http from 'node:http';
import type { ModelRegistry } from '../src/ai/registry.js';

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

/** N clients, each posting `body` and waiting for the answer, for `seconds` (after a 1 s warm-up). */
export async function closedLoop(
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
export async function inProcessLoop(
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
