// Label resampling through affines: a grid with its rows flipped (as example_seg_dicom is
// against its DICOM series) maps back voxel for voxel; points outside the source become 0.
import { describe, expect, it } from 'vitest';
import { multiplyAffine } from '../../src/volumes/affine.js';
import { invertAffine, resampleLabels } from '../../src/volumes/resample.js';

describe('resampleLabels', () => {
  it('inverts affines', () => {
    const m = [0, -2, 0, 10, 3, 0, 0, -4, 0, 0, 1.5, 7, 0, 0, 0, 1];
    const product = multiplyAffine(m, invertAffine(m));
    product.forEach((v, i) => expect(v).toBeCloseTo([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1][i], 12));
    expect(() => invertAffine([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])).toThrow(RangeError);
  });

  it('maps a row-flipped grid exactly, and outside points to 0', () => {
    const dims: [number, number, number] = [4, 3, 2];
    const data = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
    const source = { dims, affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1], data };
    // Same space, rows stored bottom-up.
    const flipped = { dims, affine: [1, 0, 0, 0, 0, -1, 0, 2, 0, 0, 2, 0, 0, 0, 0, 1] };
    const out = resampleLabels(source, flipped);
    for (let k = 0; k < 2; k++)
      for (let j = 0; j < 3; j++)
        for (let i = 0; i < 4; i++) expect(out[i + 4 * (j + 3 * k)]).toBe(data[i + 4 * (2 - j + 3 * k)]);
    const shifted = resampleLabels(source, {
      dims,
      affine: [1, 0, 0, 2, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1],
    });
    expect(shifted[0]).toBe(data[2]);
    expect(shifted[2]).toBe(0);
  });
});
