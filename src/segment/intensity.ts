// The intensity (HU) side of the pipeline: a 3x3 mean-smoothed slice (CT noise at 1 mm is
// ±20 HU), the intensity model taken from the key slice's box core (median ± k robust σ), and
// the filter that removes mask pixels outside it. SEGMENTATION-NOTES.md: this filter is what
// stops leaks into neighbours and drift past an organ's end, for model engines too.

import type { Box, IntensityModel } from './engine.js';
import type { Plane } from './mask2d.js';

/** 3x3 mean of one slice (edges use the pixels that exist). */
export function smoothSlice(values: Float32Array, { width, height }: Plane): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      let n = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          sum += values[yy * width + xx];
          n++;
        }
      }
      out[y * width + x] = sum / n;
    }
  }
  return out;
}

/** The central part of a box: `fraction` of its width and height around its centre (at least 1 px). */
export function boxCore(box: Box, fraction: number): Box {
  const cx = (box.x0 + box.x1) / 2;
  const cy = (box.y0 + box.y1) / 2;
  const hw = Math.max(0, ((box.x1 - box.x0) * fraction) / 2);
  const hh = Math.max(0, ((box.y1 - box.y0) * fraction) / 2);
  return {
    x0: Math.round(cx - hw),
    y0: Math.round(cy - hh),
    x1: Math.round(cx + hw),
    y1: Math.round(cy + hh),
  };
}

function median(values: number[]): number {
  const s = values.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The intensity model of the structure under a box: the dominant mode of the smoothed values in
 * the box core (a box around an organ also holds fat, vessels and neighbours, so a plain median
 * can fall between tissues), then the median and robust σ (1.4826 x MAD) of the values near that
 * mode; range median ± `sigmas` σ, σ at least `minSpread`.
 */
export function intensityModel(
  smoothed: Float32Array,
  plane: Plane,
  box: Box,
  options: { sigmas: number; coreFraction: number; minSpread: number },
): IntensityModel {
  const core = boxCore(box, options.coreFraction);
  const values: number[] = [];
  for (let y = core.y0; y <= core.y1; y++) {
    for (let x = core.x0; x <= core.x1; x++) values.push(smoothed[y * plane.width + x]);
  }
  const peak = dominantMode(values);
  // Refine around the mode: values within a window that shrinks to ±3σ of the estimate.
  let center = peak;
  let spread = Math.max(options.minSpread, 15);
  for (let round = 0; round < 3; round++) {
    const near = values.filter((v) => Math.abs(v - center) <= 2.5 * spread);
    if (near.length < 3) break;
    center = median(near);
    spread = Math.max(options.minSpread, 1.4826 * median(near.map((v) => Math.abs(v - center))));
  }
  return { center, spread, lo: center - options.sigmas * spread, hi: center + options.sigmas * spread };
}

/** The centre of the fullest 10-unit bin (histogram smoothed over ±2 bins) of the values. */
function dominantMode(values: number[]): number {
  const BIN = 10;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const bins = Math.max(1, Math.min(2000, Math.floor((max - min) / BIN) + 1));
  const counts = new Float64Array(bins);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - min) / BIN))]++;
  let best = 0;
  let bestScore = -1;
  for (let b = 0; b < bins; b++) {
    let score = 0;
    for (let d = -2; d <= 2; d++) if (b + d >= 0 && b + d < bins) score += counts[b + d] * (3 - Math.abs(d));
    if (score > bestScore) {
      bestScore = score;
      best = b;
    }
  }
  return min + (best + 0.5) * BIN;
}

/**
 * Clears mask pixels whose value lies outside the model's range both smoothed and as stored (in
 * place): the smoothed value rejects noise, the stored one keeps the outline that smoothing blurs.
 */
export function applyIntensityFilter(
  mask: Uint8Array,
  smoothed: Float32Array,
  raw: Float32Array,
  model: IntensityModel,
): void {
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const s = smoothed[i];
    const r = raw[i];
    if ((s < model.lo || s > model.hi) && (r < model.lo || r > model.hi)) mask[i] = 0;
  }
}
