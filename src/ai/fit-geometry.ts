// Where a source image lands in a model's input for each resize mode (stretch, letterbox, centre
// crop), as one scale and offset per axis; used both ways: bilinear sampling of real-valued
// radiology slices into the input, and nearest-neighbour sampling of a model's output (mask or
// map) back onto the source's pixel grid, so results have the source's geometry.

import type { ResizeMode } from './declaration.js';

/** Input coordinate (pixel edges) of source coordinate x: u = x * sx + ox (and v = y * sy + oy). */
export interface Fit {
  sx: number;
  sy: number;
  ox: number;
  oy: number;
}

export function fitGeometry(
  sourceWidth: number,
  sourceHeight: number,
  inputWidth: number,
  inputHeight: number,
  mode: ResizeMode,
): Fit {
  const sx = inputWidth / sourceWidth;
  const sy = inputHeight / sourceHeight;
  if (mode === 'stretch') return { sx, sy, ox: 0, oy: 0 };
  const s = mode === 'letterbox' ? Math.min(sx, sy) : Math.max(sx, sy);
  return {
    sx: s,
    sy: s,
    ox: (inputWidth - sourceWidth * s) / 2,
    oy: (inputHeight - sourceHeight * s) / 2,
  };
}

/**
 * Bilinear resampling of a one-channel float image into `outWidth x outHeight` (pixel centres
 * aligned, edges clamped); input pixels outside the source's footprint (letterbox) get `pad`.
 */
export function sampleBilinear(
  values: Float32Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  fit: Fit,
  pad: number,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight);
  for (let v = 0; v < outHeight; v++) {
    const y = (v + 0.5 - fit.oy) / fit.sy - 0.5;
    for (let u = 0; u < outWidth; u++) {
      const x = (u + 0.5 - fit.ox) / fit.sx - 0.5;
      if (x < -0.5 || y < -0.5 || x > width - 0.5 || y > height - 0.5) {
        out[v * outWidth + u] = pad;
        continue;
      }
      const cx = Math.min(Math.max(x, 0), width - 1);
      const cy = Math.min(Math.max(y, 0), height - 1);
      const x0 = Math.floor(cx);
      const y0 = Math.floor(cy);
      const x1 = Math.min(x0 + 1, width - 1);
      const y1 = Math.min(y0 + 1, height - 1);
      const fx = cx - x0;
      const fy = cy - y0;
      const top = values[y0 * width + x0] * (1 - fx) + values[y0 * width + x1] * fx;
      const bottom = values[y1 * width + x0] * (1 - fx) + values[y1 * width + x1] * fx;
      out[v * outWidth + u] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/**
 * A model output plane (`planeWidth x planeHeight`, covering the model's input) sampled back onto
 * the `width x height` source grid, nearest neighbour: each source pixel takes the output pixel
 * under its centre (source pixels a crop cut away take the nearest edge pixel).
 */
export function toSourceGrid(
  plane: Uint8Array,
  planeWidth: number,
  planeHeight: number,
  width: number,
  height: number,
  inputWidth: number,
  inputHeight: number,
  fit: Fit,
): Uint8Array {
  if (planeWidth === width && planeHeight === height && inputWidth === width && inputHeight === height)
    return plane;
  const out = new Uint8Array(width * height);
  const kx = planeWidth / inputWidth;
  const ky = planeHeight / inputHeight;
  const column = new Int32Array(width);
  for (let x = 0; x < width; x++)
    column[x] = Math.min(planeWidth - 1, Math.max(0, Math.floor(((x + 0.5) * fit.sx + fit.ox) * kx)));
  for (let y = 0; y < height; y++) {
    const row = Math.min(planeHeight - 1, Math.max(0, Math.floor(((y + 0.5) * fit.sy + fit.oy) * ky)));
    for (let x = 0; x < width; x++) out[y * width + x] = plane[row * planeWidth + column[x]];
  }
  return out;
}
