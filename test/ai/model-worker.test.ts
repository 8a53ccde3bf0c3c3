// One model's worker thread: runs counted by the worker itself, and a close while a batch runs
// waits for it (terminating a thread inside an onnxruntime-node run aborts the whole process).
// With a batch time limit, the model runs in a child process: a batch past the limit fails with
// model_timeout, the process is killed and a new one loads the model, and the next batch works.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelTimeout, ModelWorker } from '../../src/ai/model-worker.js';
import { convClassifier } from '../support/onnx-writer.js';

const SIZE = 128;
let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-worker-'));
  modelPath = path.join(dir, 'model.onnx');
  await writeFile(modelPath, convClassifier({ size: SIZE, filters: 32, classes: 2 }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const batch = (n: number) => new Float32Array(n * 3 * SIZE * SIZE).fill(0.5);

describe('ModelWorker', () => {
  it('counts its runs and, closed during a long batch, lets it finish and then refuses work', async () => {
    const worker = new ModelWorker(modelPath, 1, 'heavy');
    const graph = await worker.load();
    expect(graph.inputs[0].shape).toEqual(['N', 3, SIZE, SIZE]);
    const small = await worker.run('image', 'scores', batch(1), [1, 3, SIZE, SIZE]);
    expect(small.dims).toEqual([1, 2]);
    expect(worker.runs).toBe(1);
    // ~10 G multiply-adds on one thread: long enough for close() to land mid-run.
    const long = worker.run('image', 'scores', batch(64), [64, 3, SIZE, SIZE]);
    await new Promise((r) => setTimeout(r, 50));
    await worker.close();
    const done = await long;
    expect(done.dims).toEqual([64, 2]);
    expect(done.data[0]).toBeCloseTo(small.data[0], 5);
    expect(worker.runs).toBe(2);
    await expect(worker.run('image', 'scores', batch(1), [1, 3, SIZE, SIZE])).rejects.toThrow(/closed/);
  });

  it('runs a model in a child process under a time limit, and kills and restarts it past the limit', async () => {
    const thread = new ModelWorker(modelPath, 1, 'thread');
    const reference = await thread.run('image', 'scores', batch(1), [1, 3, SIZE, SIZE]);
    // The limit is a quarter of what the heavy batch takes on this machine right now, so the
    // heavy batch runs past it however fast or busy the cores are (a fixed limit was not).
    const t = Date.now();
    await thread.run('image', 'scores', batch(128), [128, 3, SIZE, SIZE]);
    const heavyMs = Date.now() - t;
    await thread.close();
    const limitMs = Math.max(50, Math.floor(heavyMs / 4));

    const worker = new ModelWorker(modelPath, 1, 'limited', { timeoutMs: limitMs });
    try {
      await worker.load();
      const first = worker.pid as number;
      expect(first).toBeGreaterThan(0);
      expect(first).not.toBe(process.pid);
      const small = await worker.run('image', 'scores', batch(1), [1, 3, SIZE, SIZE]);
      expect([...small.data]).toEqual([...reference.data]);
      expect(worker.runs).toBe(1);

      // The heavy batch again, now under a limit of a quarter of its time.
      const started = Date.now();
      const error = await worker
        .run('image', 'scores', batch(128), [128, 3, SIZE, SIZE])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelTimeout);
      expect((error as ModelTimeout).code).toBe('model_timeout');
      expect(Date.now() - started).toBeLessThan(heavyMs + 5000);
      expect(worker.restarts).toBe(1);
      // Killed (SIGKILL) as the batch failed: gone once the kernel has reaped it.
      const alive = () => {
        try {
          process.kill(first, 0);
          return true;
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(alive()).toBe(false);

      // A fresh process loaded the model again: the next batch works.
      const again = await worker.run('image', 'scores', batch(1), [1, 3, SIZE, SIZE]);
      expect([...again.data]).toEqual([...reference.data]);
      expect(worker.pid).not.toBe(first);
    } finally {
      await worker.close();
    }
  });
});
