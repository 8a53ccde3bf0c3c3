// The `hybrid` engine (SAM prompted by the classical region) and its prompt helpers: the deepest
// point of synthetic masks with known answers (a rectangle's centre; inside a C shape whose
// centroid lies outside it), the prompt built from a mask, and the whole pipeline on a phantom
// whose loose box also holds a brighter neighbour (IoU >= 0.85 with the structure under the box's
// centre); the key-slice box refit (sides the mask reaches move out, within the user's box); the
// classical support check (SAM's pixels within a margin of the supports' union). Kept to a handful
// of encodings (~0.7 s each on an idle machine).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HybridEngine, promptFromMask, supportedMask, widenWhereTouching } from '../../src/segment/hybrid.js';
import { deepestPoint } from '../../src/segment/mask2d.js';
import { segmentVolume } from '../../src/segment/pipeline.js';
import { createEngine } from '../../src/cli/segment-engines.js';
import { diceOf, phantom } from './phantom.js';

const plane = { width: 20, height: 16 };
function rect(x0: number, y0: number, x1: number, y1: number, into = new Uint8Array(20 * 16)) {
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) into[y * 20 + x] = 1;
  return into;
}

describe('deepestPoint and promptFromMask', () => {
  it('finds the centre of a rectangle', () => {
    expect(deepestPoint(rect(3, 4, 13, 10), plane)).toEqual({ x: 8, y: 7 });
  });

  it('stays inside a C shape whose centroid is outside it', () => {
    // A C: left bar x 2..5, top and bottom arms y 1..4 and 11..14 reaching x 17; centroid in the gap.
    const c = rect(2, 1, 5, 14);
    rect(2, 1, 17, 4, c);
    rect(2, 11, 17, 14, c);
    const p = deepestPoint(c, plane);
    expect(p).toBeDefined();
    expect(c[(p as { y: number }).y * 20 + (p as { x: number }).x]).toBe(1);
  });

  it('handles an empty mask and one covering the whole image', () => {
    expect(deepestPoint(new Uint8Array(20 * 16), plane)).toBeUndefined();
    const full = new Uint8Array(20 * 16).fill(1);
    const p = deepestPoint(full, plane) as { x: number; y: number };
    expect(Math.abs(p.x - 9.5)).toBeLessThanOrEqual(0.5);
    expect(Math.abs(p.y - 7.5)).toBeLessThanOrEqual(0.5);
  });

  it('builds a box 1 px around the mask (clipped) and a positive point, or falls back to the given box', () => {
    const fallback = { x0: 0, y0: 0, x1: 19, y1: 15 };
    expect(promptFromMask(rect(3, 4, 13, 10), plane, fallback)).toEqual({
      box: { x0: 2, y0: 3, x1: 14, y1: 11 },
      points: [{ x: 8, y: 7, label: 1 }],
    });
    expect(promptFromMask(rect(0, 4, 19, 10), plane, fallback, 2).box).toEqual({
      x0: 0,
      y0: 2,
      x1: 19,
      y1: 12,
    });
    expect(promptFromMask(new Uint8Array(20 * 16), plane, fallback)).toEqual({ box: fallback, points: [] });
  });
});

describe('widenWhereTouching', () => {
  const limit = { x0: 0, y0: 0, x1: 30, y1: 30 };
  const prompt = { x0: 10, y0: 10, x1: 20, y1: 20 };

  it('moves out only the sides the mask reaches, by the step, within the limit', () => {
    expect(widenWhereTouching(prompt, { x0: 10, y0: 12, x1: 18, y1: 20 }, limit)).toEqual({
      x0: 8,
      y0: 10,
      x1: 20,
      y1: 22,
    });
    const nearEdge = { x0: 1, y0: 10, x1: 29, y1: 20 };
    expect(widenWhereTouching(nearEdge, nearEdge, limit, 3)).toEqual({ x0: 0, y0: 7, x1: 30, y1: 23 });
  });

  it('returns the same box when the mask stays inside, is empty, or the limit is reached', () => {
    expect(widenWhereTouching(prompt, { x0: 11, y0: 11, x1: 19, y1: 19 }, limit)).toBe(prompt);
    expect(widenWhereTouching(prompt, undefined, limit)).toBe(prompt);
    expect(widenWhereTouching(limit, limit, limit)).toBe(limit);
  });
});

describe('supportedMask', () => {
  it('keeps SAM’s pixels within 1 px of the union of the support regions', () => {
    const sam = rect(2, 2, 17, 13);
    // Supports: the left part (x <= 8) and the top right (x 12..17, y <= 6); dilated by 1 px they
    // reach x <= 9 and, on the right, x >= 11 for y <= 7.
    const out = supportedMask(sam, [rect(2, 2, 8, 13), rect(12, 2, 17, 6)], plane);
    expect(out.reduce((a, v) => a + v, 0)).toBe(8 * 12 + 7 * 6);
    const at = (x: number, y: number) => out[y * 20 + x];
    expect([at(9, 13), at(10, 3), at(11, 7), at(11, 8), at(17, 2)]).toEqual([1, 0, 1, 0, 1]);
    // Support outside SAM's mask adds nothing; no support keeps nothing.
    expect(supportedMask(rect(2, 2, 4, 4), [rect(0, 0, 19, 15)], plane)).toEqual(rect(2, 2, 4, 4));
    expect(supportedMask(sam, [], plane).some((v) => v)).toBe(false);
  });
});

describe('hybrid engine', () => {
  let engine: HybridEngine;
  beforeAll(async () => {
    // Through the CLI's engine registry (`--engine hybrid`).
    const created = await createEngine('hybrid');
    expect(created).toBeInstanceOf(HybridEngine);
    engine = created as HybridEngine;
  }, 60_000);
  afterAll(async () => {
    await engine?.close();
  });

  it('segments the structure under a loose box, not its brighter neighbour (IoU >= 0.85)', async () => {
    // Lesion at 60 HU; a 200 HU neighbour to its right, inside the loose box's edge.
    const { volume, truth } = phantom(
      [64, 64, 3],
      [
        { center: [28, 32, 1], radii: [12, 9, 8], hu: 60 },
        { center: [50, 32, 1], radii: [6, 6, 8], hu: 200 },
      ],
      { noise: 5, background: -60 },
    );
    const lesion = Uint8Array.from(truth, (v) => (v === 1 ? 1 : 0));
    const box = { x0: 10, y0: 17, x1: 54, y1: 47 };
    const result = await segmentVolume(volume, { slice: 1, box, window: [-160, 240] }, engine);
    const dice = diceOf(result.mask, lesion);
    expect(dice / (2 - dice)).toBeGreaterThanOrEqual(0.85);
    expect(result.slices).toEqual([0, 2]);
  }, 120_000);
});
