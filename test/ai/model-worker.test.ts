// One model's worker thread: runs counted by the worker itself, and a close while a batch runs
// waits for it (terminating a thread inside an onnxruntime-node run aborts the whole process).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelWorker } from '../../src/ai/model-worker.js';
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
});
