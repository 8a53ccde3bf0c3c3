// The pipeline on synthetic volumes: the classical engine finds a phantom organ and not its
// look-alike neighbour; MedSAM2's order (prompt, forward, reset, prompt, backward); the stopping
// rule against an engine that, like SAM, never returns an empty mask; and refused requests.
import { describe, expect, it } from 'vitest';
import { BadRequest } from '../../src/errors.js';
import { ClassicalEngine } from '../../src/segment/classical.js';
import type { Box, EngineSession, SegmentationEngine } from '../../src/segment/engine.js';
import { segmentVolume, stopReason } from '../../src/segment/pipeline.js';
import { diceOf, phantom } from './phantom.js';

/** Like SAM: answers every prompt with a full blob (the box, then the previous mask's box), never empty. */
class BlobEngine implements SegmentationEngine {
  readonly name = 'blob';
  readonly calls: string[] = [];
  async open(input: Parameters<SegmentationEngine['open']>[0]): Promise<EngineSession> {
    const [nx, ny] = input.volume.dims;
    const fill = (b: Box) => {
      const m = new Uint8Array(nx * ny);
      for (let y = b.y0; y <= b.y1; y++) for (let x = b.x0; x <= b.x1; x++) m[y * nx + x] = 1;
      return m;
    };
    const calls = this.calls;
    return {
      async segmentBox(k, box) {
        calls.push(`box ${k}`);
        return fill(box);
      },
      async propagate(k, previous, from) {
        calls.push(`propagate ${from}->${k}`);
        let x0 = nx;
        let y0 = ny;
        let x1 = -1;
        let y1 = -1;
        previous.forEach((v, i) => {
          if (!v) return;
          x0 = Math.min(x0, i % nx);
          x1 = Math.max(x1, i % nx);
          y0 = Math.min(y0, Math.floor(i / nx));
          y1 = Math.max(y1, Math.floor(i / nx));
        });
        return fill({ x0, y0, x1, y1 });
      },
      reset() {
        calls.push('reset');
      },
      async close() {
        calls.push('close');
      },
    };
  }
  async close() {}
}

describe('segmentVolume', () => {
  it('classical: finds the organ (Dice > 0.9) and not the look-alike beside it', async () => {
    const { volume, truth } = phantom(
      [64, 56, 24],
      [
        { center: [24, 28, 12], radii: [12, 10, 7], hu: 60 },
        { center: [52, 28, 12], radii: [7, 7, 7], hu: 60 },
      ],
    );
    const result = await segmentVolume(
      volume,
      { slice: 12, box: { x0: 10, y0: 16, x1: 38, y1: 40 } },
      new ClassicalEngine(),
    );
    expect(diceOf(result.mask, truth, 1)).toBeGreaterThan(0.9);
    expect(result.mask.some((v, i) => v === 1 && truth[i] === 2)).toBe(false);
    expect(result.slices?.[0]).toBeGreaterThanOrEqual(5);
    expect(result.slices?.[1]).toBeLessThanOrEqual(19);
    // 1 x 1 x 2 mm voxels.
    expect(result.millilitres).toBeCloseTo((result.voxels * 2) / 1000, 9);
  });

  it("runs MedSAM2's order: prompt, forward to the end, reset, prompt, backward to the start", async () => {
    const { volume } = phantom([20, 20, 6], [{ center: [10, 10, 3], radii: [6, 6, 10], hu: 60 }], {
      noise: 0,
    });
    const engine = new BlobEngine();
    const result = await segmentVolume(volume, { slice: 2, box: { x0: 6, y0: 6, x1: 14, y1: 14 } }, engine);
    expect(engine.calls).toEqual([
      'box 2',
      'propagate 2->3',
      'propagate 3->4',
      'propagate 4->5',
      'reset',
      'box 2',
      'propagate 2->1',
      'propagate 1->0',
      'close',
    ]);
    expect(result.stopped.forward.reason).toBe('end-of-volume');
    expect(result.slices).toEqual([0, 5]);
  });

  it('stops: a lesion ending 5 slices after the key slice does not give a 40-slice mask', async () => {
    // A cylinder of 60 HU on slices 20..24 in a 48-slice volume; the engine returns blobs everywhere.
    const { volume, truth } = phantom([32, 32, 48], [{ center: [16, 16, 22], radii: [6, 6, 2.4], hu: 60 }], {
      noise: 5,
    });
    const engine = new BlobEngine();
    const result = await segmentVolume(volume, { slice: 22, box: { x0: 9, y0: 9, x1: 23, y1: 23 } }, engine);
    expect(result.slices).toBeDefined();
    const [first, last] = result.slices as [number, number];
    expect(last - first + 1).toBeLessThanOrEqual(6);
    expect(first).toBeGreaterThanOrEqual(19);
    expect(last).toBeLessThanOrEqual(25);
    expect(result.slicesVisited).toBeLessThan(12);
    expect(diceOf(result.mask, truth, 1)).toBeGreaterThan(0.8);
    // Without the intensity filter the same engine runs to both ends of the volume.
    const unfiltered = await segmentVolume(
      volume,
      { slice: 22, box: { x0: 9, y0: 9, x1: 23, y1: 23 } },
      engine,
      { sigmas: 0 },
    );
    expect(unfiltered.slices).toEqual([0, 47]);
  });

  it('the stopping rule: vanished, shrank below a fraction of the key slice, grew like a leak', () => {
    expect(stopReason(0, 100, 100)).toBe('vanished');
    expect(stopReason(4, 100, 100)).toBe('shrank');
    expect(stopReason(6, 8, 100)).toBeUndefined();
    expect(stopReason(200, 100, 100)).toBe('grew');
    expect(stopReason(170, 100, 100)).toBeUndefined();
    expect(stopReason(30, 100, 100, { minAreaFraction: 0.5 })).toBe('shrank');
  });

  it('refuses bad requests before segmenting', async () => {
    const { volume } = phantom([16, 16, 4], [{ center: [8, 8, 2], radii: [4, 4, 2], hu: 60 }]);
    const engine = new BlobEngine();
    const run = (slice: number, box: Box, v = volume) => segmentVolume(v, { slice, box }, engine);
    await expect(run(1, { x0: 20, y0: 20, x1: 30, y1: 30 })).rejects.toThrow(/outside/);
    await expect(run(1, { x0: 5, y0: 5, x1: 5, y1: 9 })).rejects.toThrow(/empty/);
    await expect(run(1, { x0: -9, y0: 2, x1: 0, y1: 9 })).rejects.toThrow(/empty once clipped/);
    await expect(run(4, { x0: 2, y0: 2, x1: 9, y1: 9 })).rejects.toThrow(/slice 4 is out of range 0..3/);
    await expect(run(-1, { x0: 2, y0: 2, x1: 9, y1: 9 })).rejects.toThrow(BadRequest);
    const flat = phantom([16, 16, 1], []).volume;
    await expect(run(0, { x0: 2, y0: 2, x1: 9, y1: 9 }, flat)).rejects.toThrow(/2D/);
    const nan = phantom([16, 16, 4], []).volume;
    nan.data[100] = Number.NaN;
    await expect(run(1, { x0: 2, y0: 2, x1: 9, y1: 9 }, nan)).rejects.toThrow(
      /non-finite voxel \(NaN\) at \(4, 6, 0\)/,
    );
    expect(engine.calls).toEqual([]);
  });
});
