// Validation of what a segmentation request may ask: a 3D, finite volume; a key slice inside
// it; a box with area that overlaps the slice (clipped to it). Every refusal is a `BadRequest`
// with a message naming the value, so the CLI can exit 2 before writing anything.

import { BadRequest } from '../errors.js';
import type { Volume } from '../volumes/volume.js';
import type { Box } from './engine.js';

/** Parses `x0,y0,x1,y1` (integers; corners inclusive). */
export function parseBox(text: string): Box {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map(Number);
  if (parts.length !== 4 || parts.some((p) => p === '') || values.some((v) => !Number.isInteger(v))) {
    throw new BadRequest(`box "${text}" is not four integers x0,y0,x1,y1`);
  }
  const [x0, y0, x1, y1] = values;
  if (x1 <= x0 || y1 <= y0) throw new BadRequest(`box "${text}" is empty: need x1 > x0 and y1 > y0`);
  return { x0, y0, x1, y1 };
}

/** Parses a slice index (a non-negative integer). */
export function parseSlice(text: string): number {
  const k = Number(text.trim());
  if (text.trim() === '' || !Number.isInteger(k) || k < 0)
    throw new BadRequest(`slice "${text}" is not a non-negative integer`);
  return k;
}

/** Refuses volumes the pipeline cannot segment: 2D (one slice), empty, or with NaN/infinite voxels. */
export function checkVolume(volume: Volume): void {
  const [nx, ny, nz] = volume.dims;
  if (nx < 2 || ny < 2) throw new BadRequest(`the image is ${nx}x${ny}: too small to segment`);
  if (nz < 2)
    throw new BadRequest(`the input is 2D (${nx}x${ny}x${nz}); box-prompted 3D segmentation needs a volume`);
  const { data } = volume;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const x = i % nx;
      const y = Math.floor(i / nx) % ny;
      const z = Math.floor(i / (nx * ny));
      throw new BadRequest(`the volume has a non-finite voxel (${data[i]}) at (${x}, ${y}, ${z})`);
    }
  }
}

/** Checks the key slice and box against the volume; returns the box clipped to the slice. */
export function checkPrompt(volume: Volume, key: number, box: Box): Box {
  const [nx, ny, nz] = volume.dims;
  if (!Number.isInteger(key) || key < 0 || key >= nz)
    throw new BadRequest(`slice ${key} is out of range 0..${nz - 1}`);
  if (![box.x0, box.y0, box.x1, box.y1].every(Number.isFinite))
    throw new BadRequest('the box has a non-finite coordinate');
  if (box.x1 <= box.x0 || box.y1 <= box.y0)
    throw new BadRequest(`box ${boxText(box)} is empty: need x1 > x0 and y1 > y0`);
  if (box.x1 < 0 || box.y1 < 0 || box.x0 > nx - 1 || box.y0 > ny - 1) {
    throw new BadRequest(
      `box ${boxText(box)} lies outside the ${nx}x${ny} slice (x 0..${nx - 1}, y 0..${ny - 1})`,
    );
  }
  const clipped = {
    x0: Math.max(0, Math.round(box.x0)),
    y0: Math.max(0, Math.round(box.y0)),
    x1: Math.min(nx - 1, Math.round(box.x1)),
    y1: Math.min(ny - 1, Math.round(box.y1)),
  };
  if (clipped.x1 <= clipped.x0 || clipped.y1 <= clipped.y0) {
    throw new BadRequest(`box ${boxText(box)} is empty once clipped to the ${nx}x${ny} slice`);
  }
  return clipped;
}

export function boxText(box: Box): string {
  return `${box.x0},${box.y0},${box.x1},${box.y1}`;
}
