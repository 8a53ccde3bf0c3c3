// The pipeline's 3D mask logic on synthetic volumes with known answers: OR of two passes and the
// largest 6-connected component (diagonal contact does not connect), plus the 2D helpers.
import { describe, expect, it } from 'vitest';
import {
  area,
  boundingBox,
  dilate,
  erode,
  fillHoles,
  largestComponent2d,
  open,
} from '../../src/segment/mask2d.js';
import { largestComponent3d, orMasks } from '../../src/segment/volume-mask.js';

const dims: [number, number, number] = [6, 5, 4];
const at = (i: number, j: number, k: number) => i + 6 * (j + 5 * k);

describe('3D mask logic', () => {
  it('OR keeps the union of both passes', () => {
    const a = new Uint8Array(120);
    const b = new Uint8Array(120);
    a[at(1, 1, 0)] = 1;
    a[at(1, 1, 1)] = 1;
    b[at(1, 1, 1)] = 1;
    b[at(1, 1, 2)] = 1;
    const or = orMasks(a, b);
    expect(area(or)).toBe(3);
    expect([or[at(1, 1, 0)], or[at(1, 1, 1)], or[at(1, 1, 2)]]).toEqual([1, 1, 1]);
    expect(() => orMasks(a, new Uint8Array(3))).toThrow(RangeError);
  });

  it('keeps the largest 6-connected component; diagonal neighbours are separate', () => {
    const m = new Uint8Array(120);
    // Component A: 4 voxels in a column through the slices.
    for (let k = 0; k < 4; k++) m[at(0, 0, k)] = 1;
    // Component B: 5 voxels, an L in slice 2.
    for (const [i, j] of [
      [3, 2],
      [4, 2],
      [5, 2],
      [5, 3],
      [5, 4],
    ])
      m[at(i, j, 2)] = 1;
    // Touches B only diagonally (edge), so not part of it.
    m[at(4, 3, 3)] = 1;
    const out = largestComponent3d(m, dims);
    expect(area(out)).toBe(5);
    expect(out[at(5, 4, 2)]).toBe(1);
    expect(out[at(0, 0, 0)]).toBe(0);
    expect(out[at(4, 3, 3)]).toBe(0);
    // A sixth voxel joining A through a face makes A + it (5) tie... add two: A wins.
    m[at(1, 0, 1)] = 1;
    m[at(1, 0, 2)] = 1;
    const out2 = largestComponent3d(m, dims);
    expect(area(out2)).toBe(6);
    expect(out2[at(0, 0, 3)]).toBe(1);
    expect(area(largestComponent3d(new Uint8Array(120), dims))).toBe(0);
  });
});

describe('2D mask helpers', () => {
  const plane = { width: 7, height: 7 };
  it('fills holes, dilates, erodes, opens and measures', () => {
    const ring = new Uint8Array(49);
    for (let y = 1; y <= 5; y++)
      for (let x = 1; x <= 5; x++) if (x === 1 || x === 5 || y === 1 || y === 5) ring[y * 7 + x] = 1;
    expect(area(ring)).toBe(16);
    expect(area(fillHoles(ring, plane))).toBe(25);
    expect(boundingBox(ring, plane)).toEqual({ x0: 1, y0: 1, x1: 5, y1: 5 });
    const dot = new Uint8Array(49);
    dot[3 * 7 + 3] = 1;
    expect(area(dilate(dot, plane, 1))).toBe(9);
    expect(area(erode(dilate(dot, plane, 1), plane, 1))).toBe(1);
    expect(area(open(dot, plane, 1))).toBe(0);
    const two = new Uint8Array(49);
    two[0] = 1;
    two[10] = 1;
    two[11] = 1;
    expect(area(largestComponent2d(two, plane))).toBe(2);
    const seed = new Uint8Array(49);
    seed[0] = 1;
    expect(largestComponent2d(two, plane, seed)[0]).toBe(1);
  });
});
