// The classical engine's pieces the hybrid engine's support regions use, on synthetic slices with
// known answers: `keepAllSeeded` keeps both arcs of a ring that the opening cuts in two (the default
// keeps one), and `regionContrastModel` accepts the intensities of a region and rejects those of the
// ring around it.
import { describe, expect, it } from 'vitest';
import { ClassicalEngine, regionContrastModel } from '../../src/segment/classical.js';
import type { EngineInput, IntensityModel } from '../../src/segment/engine.js';
import { smoothSlice } from '../../src/segment/intensity.js';
import { sliceOf } from '../../src/segment/volume-mask.js';
import { applyWindow } from '../../src/segment/window.js';
import { phantom } from './phantom.js';

const N = 40;
const plane = { width: N, height: N };
const model: IntensityModel = { center: 40, spread: 15, lo: 10, hi: 70 };

function inAnnulus(x: number, y: number): boolean {
  const r = Math.hypot(x - 20, y - 20);
  return r <= 12 && r >= 7;
}

describe('ClassicalEngine keepAllSeeded', () => {
  // Slice 0: a whole annulus (40 HU on -20 HU). Slice 1: the same annulus whose top and bottom, at
  // x 19..21, keep only their outer 2 rows: bridges a 2 mm opening (1 px here) removes.
  const { volume } = phantom([N, N, 2], [], { background: -20, noise: 0, spacing: [2, 2, 2] });
  const arcs = new Uint8Array(N * N);
  for (let y = 0; y < N; y++) {
    for (let x = 0; x < N; x++) {
      if (!inAnnulus(x, y)) continue;
      volume.data[y * N + x] = 40;
      const bridge = x >= 19 && x <= 21;
      if (bridge && Math.abs(y - 20) < 11) continue;
      volume.data[N * N + y * N + x] = 40;
      if (!bridge) arcs[y * N + x] = x < 20 ? 1 : 2;
    }
  }
  const input: EngineInput = {
    volume,
    windowed: applyWindow(volume.data, [-160, 240]),
    window: [-160, 240],
    intensity: model,
    smoothed: (k) => smoothSlice(sliceOf(volume.data, volume.dims, k), plane),
  };
  const previous = Uint8Array.from({ length: N * N }, (_, i) =>
    inAnnulus(i % N, Math.floor(i / N)) ? 1 : 0,
  );
  const coverage = (mask: Uint8Array, arc: number) => {
    let hit = 0;
    let all = 0;
    for (let i = 0; i < arcs.length; i++) {
      if (arcs[i] !== arc) continue;
      all++;
      hit += mask[i];
    }
    return hit / all;
  };

  it('keeps both arcs of the cut ring; the default keeps the one holding most seeds', async () => {
    const all = await (
      await new ClassicalEngine({ keepAllSeeded: true }).open(input)
    ).propagate(1, previous, 0);
    expect(coverage(all, 1)).toBeGreaterThanOrEqual(0.9);
    expect(coverage(all, 2)).toBeGreaterThanOrEqual(0.9);
    const one = await (await new ClassicalEngine().open(input)).propagate(1, previous, 0);
    const covered = [coverage(one, 1), coverage(one, 2)].sort((a, b) => a - b);
    expect(covered[0]).toBeLessThan(0.1);
    expect(covered[1]).toBeGreaterThanOrEqual(0.9);
  });
});

describe('regionContrastModel', () => {
  it('accepts the region’s intensities and rejects those of the ring around it', () => {
    // A disc of 30..39 HU inside a ring of 10..19 HU (both inside the model's 10..70 range).
    const smoothed = new Float32Array(N * N);
    const region = new Uint8Array(N * N);
    for (let y = 0; y < N; y++) {
      for (let x = 0; x < N; x++) {
        const r = Math.hypot(x - 20, y - 20);
        const i = y * N + x;
        if (r <= 8) {
          region[i] = 1;
          smoothed[i] = 30 + ((x + y) % 10);
        } else smoothed[i] = 10 + ((x + 2 * y) % 10);
      }
    }
    const accept = regionContrastModel(smoothed, plane, region, model, 6);
    const bin = (hu: number) => accept[Math.floor((hu - model.lo) / 5)];
    expect([bin(12), bin(17)]).toEqual([0, 0]);
    expect([bin(32), bin(37)]).toEqual([1, 1]);
    // An empty ring (region filling the slice) rejects nothing the region holds.
    const full = regionContrastModel(smoothed, plane, new Uint8Array(N * N).fill(1), model, 6);
    expect(full[Math.floor((12 - model.lo) / 5)]).toBe(1);
  });
});
