// Writes `--models-dir` folders for the AI tests: one folder per model with a model.onnx from the
// test ONNX writer and a model.json; removed by `cleanup()`.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { linearClassifier } from '../support/onnx-writer.js';

export interface ModelFolder {
  onnx: Buffer;
  json: Record<string, unknown>;
}

export async function modelsDir(
  models: Record<string, ModelFolder>,
): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-models-'));
  for (const [name, m] of Object.entries(models)) {
    await mkdir(path.join(dir, name));
    await writeFile(path.join(dir, name, 'model.onnx'), m.onnx);
    await writeFile(path.join(dir, name, 'model.json'), JSON.stringify(m.json, null, 2));
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The heat-map tests' `redness` classifier on `tile` x `tile` RGB patches: labels other/red, the
 * softmax of (0, 4 R - 2 G - 2 B) over the patch's channel means (the model applies the softmax,
 * so the server's activation is none).
 */
export function rednessModel(tile: number): ModelFolder {
  return {
    onnx: linearClassifier({
      channels: 3,
      size: tile,
      weights: [
        [0, 0, 0],
        [4, -2, -2],
      ],
      bias: [0, 0],
    }),
    json: {
      task: 'classification',
      input: { name: 'image', width: tile, height: tile, channels: 3 },
      labels: ['other', 'red'],
      output: { name: 'scores', activation: 'none' },
    },
  };
}

/** RGB (or gray) pixels -> PNG bytes. */
export async function png(
  data: number[],
  width: number,
  height: number,
  channels: 1 | 3 = 3,
): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  return sharp(Uint8Array.from(data), { raw: { width, height, channels } }).png().toBuffer();
}

export function softmax(z: number[]): number[] {
  const max = Math.max(...z);
  const e = z.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
