// Nearest-neighbour resampling of a label volume onto another grid through both affines (for
// each target voxel, the source voxel at the same RAS point). Exact for grids that differ by axis
// flips and permutations, as a DICOM series and a NIfTI written from it by another tool do.

import type { Affine } from './affine.js';
import { applyAffine } from './affine.js';

/** The inverse of an affine (general 3x3 inverse plus translation). */
export function invertAffine(m: Affine): Affine {
  const [a, b, c, , d, e, f, , g, h, i] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (Math.abs(det) < 1e-12) throw new RangeError('affine is singular');
  // prettier-ignore
  const r = [
    (e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det,
    (f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det,
    (d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det,
  ];
  const t = [m[3], m[7], m[11]];
  const out = [r[0], r[1], r[2], 0, r[3], r[4], r[5], 0, r[6], r[7], r[8], 0, 0, 0, 0, 1];
  for (let row = 0; row < 3; row++)
    out[4 * row + 3] = -(r[3 * row] * t[0] + r[3 * row + 1] * t[1] + r[3 * row + 2] * t[2]);
  return out;
}

/** Labels of `source` (dims, affine) sampled at every voxel of the target grid (0 outside). */
export function resampleLabels(
  source: { dims: [number, number, number]; affine: Affine; data: ArrayLike<number> },
  target: { dims: [number, number, number]; affine: Affine },
): Uint8Array {
  const [nx, ny, nz] = target.dims;
  const [sx, sy, sz] = source.dims;
  const inv = invertAffine(source.affine);
  const out = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [x, y, z] = applyAffine(target.affine, i, j, k);
        const [u, v, w] = applyAffine(inv, x, y, z).map(Math.round);
        if (u >= 0 && v >= 0 && w >= 0 && u < sx && v < sy && w < sz)
          out[i + nx * (j + ny * k)] = source.data[u + sx * (v + sy * w)];
      }
    }
  }
  return out;
}
