// Synthetic CT-like volumes with known answers for the segmentation tests: ellipsoids and
// cylinders of a given HU in a noisy background, on a plain axis-aligned grid.
import type { Volume } from '../../src/volumes/volume.js';

export interface Blob {
  /** Centre (voxels) and semi-axes (voxels). */
  center: [number, number, number];
  radii: [number, number, number];
  hu: number;
}

/** A deterministic pseudo-random generator (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A volume with `blobs` (ellipsoids) over a `background` HU, uniform noise ±`noise`, and the truth. */
export function phantom(
  dims: [number, number, number],
  blobs: Blob[],
  options: { background?: number; noise?: number; spacing?: [number, number, number]; seed?: number } = {},
): { volume: Volume; truth: Uint8Array } {
  const [nx, ny, nz] = dims;
  const [sx, sy, sz] = options.spacing ?? [1, 1, 2];
  const rnd = random(options.seed ?? 1);
  const data = new Float32Array(nx * ny * nz);
  const truth = new Uint8Array(data.length);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const v = i + nx * (j + ny * k);
        let hu = options.background ?? -80;
        blobs.forEach((b, n) => {
          const d =
            ((i - b.center[0]) / b.radii[0]) ** 2 +
            ((j - b.center[1]) / b.radii[1]) ** 2 +
            ((k - b.center[2]) / b.radii[2]) ** 2;
          if (d <= 1) {
            hu = b.hu;
            truth[v] = n + 1;
          }
        });
        data[v] = hu + (rnd() * 2 - 1) * (options.noise ?? 10);
      }
    }
  }
  const affine = [sx, 0, 0, -10, 0, sy, 0, 20, 0, 0, sz, -30, 0, 0, 0, 1];
  return { volume: { dims, affine, data, source: { kind: 'nifti', geometry: geometryOf(affine) } }, truth };
}

function geometryOf(affine: number[]) {
  return {
    qformCode: 1,
    sformCode: 1,
    quaternion: {
      b: 0,
      c: 0,
      d: 0,
      qx: affine[3],
      qy: affine[7],
      qz: affine[11],
      dx: affine[0],
      dy: affine[5],
      dz: affine[10],
      qfac: 1,
    },
    srow: affine.slice(0, 12),
    pixdim: [1, affine[0], affine[5], affine[10], 0, 0, 0, 0],
    xyztUnits: 2,
  };
}

/** Dice (no smoothing) of a 0/1 mask against truth == label. */
export function diceOf(mask: Uint8Array, truth: Uint8Array, label = 1): number {
  let a = 0;
  let b = 0;
  let both = 0;
  for (let i = 0; i < mask.length; i++) {
    const p = mask[i] === 1;
    const t = truth[i] === label;
    a += p ? 1 : 0;
    b += t ? 1 : 0;
    both += p && t ? 1 : 0;
  }
  return (2 * both) / (a + b);
}
