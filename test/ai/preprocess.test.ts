// Preprocessing on its own: the exact float tensor for each scaling, layout and channel rule.

import { describe, expect, it } from 'vitest';
import { parseDeclaration } from '../../src/ai/declaration.js';
import { preprocess } from '../../src/ai/preprocess.js';

const decl = (input: Record<string, unknown>, pre: Record<string, unknown> = {}) =>
  parseDeclaration(
    't',
    JSON.stringify({
      task: 'heatmap',
      input: { name: 'x', ...input },
      preprocess: pre,
      output: { name: 'y' },
    }),
  );

describe('preprocess', () => {
  const rgb = { data: Uint8Array.from([10, 20, 30, 40, 50, 60]), width: 2, height: 1, channels: 3 };

  it('lays out NCHW and NHWC', async () => {
    const nchw = await preprocess(
      rgb,
      decl({ width: 2, height: 1 }, { scaling: { type: 'fixed', min: 0, max: 100 } }),
    );
    expect([...nchw].map((v) => +v.toFixed(6))).toEqual([0.1, 0.4, 0.2, 0.5, 0.3, 0.6]);
    const nhwc = await preprocess(
      rgb,
      decl({ width: 2, height: 1, layout: 'NHWC' }, { scaling: { type: 'fixed', min: 0, max: 100 } }),
    );
    expect([...nhwc].map((v) => +v.toFixed(6))).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
  });

  it('scales min-max over the image, then maps the range and applies mean/std', async () => {
    const out = await preprocess(
      rgb,
      decl(
        { width: 2, height: 1 },
        { scaling: { type: 'minmax' }, range: [-1, 1], mean: [0, 0.5, 1], std: [1, 2, 4] },
      ),
    );
    // min 10, max 60: v -> (v - 10) / 50 -> * 2 - 1 -> (x - mean) / std.
    const f = (v: number, c: number) => (((v - 10) / 50) * 2 - 1 - [0, 0.5, 1][c]) / [1, 2, 4][c];
    const expected = [f(10, 0), f(40, 0), f(20, 1), f(50, 1), f(30, 2), f(60, 2)];
    [...out].forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
  });

  it('turns RGB into BT.601 luma for a one-channel model and windows it', async () => {
    const out = await preprocess(
      rgb,
      decl({ width: 2, height: 1, channels: 1 }, { scaling: { type: 'window', center: 40, width: 20 } }),
    );
    const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;
    const w = (v: number) => Math.min(1, Math.max(0, (v - 30) / 20));
    expect(out[0]).toBeCloseTo(w(luma(10, 20, 30)), 6);
    expect(out[1]).toBeCloseTo(w(luma(40, 50, 60)), 6);
  });

  it('drops alpha and replicates gray', async () => {
    const ga = { data: Uint8Array.from([100, 255, 200, 0]), width: 2, height: 1, channels: 2 };
    const out = await preprocess(ga, decl({ width: 2, height: 1 }));
    expect([...out].map((v) => Math.round(v * 255))).toEqual([100, 200, 100, 200, 100, 200]);
  });

  it('crops the centre when resizing with crop', async () => {
    // 4x1 -> 2x1 with cover: the scale is 1, the middle two pixels stay.
    const wide = {
      data: Uint8Array.from([0, 0, 0, 90, 90, 90, 180, 180, 180, 255, 255, 255]),
      width: 4,
      height: 1,
      channels: 3,
    };
    const out = await preprocess(wide, decl({ width: 2, height: 1, channels: 1 }, { resize: 'crop' }));
    expect([...out].map((v) => Math.round(v * 255))).toEqual([90, 180]);
  });
});
