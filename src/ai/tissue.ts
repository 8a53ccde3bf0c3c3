// The built-in, weight-free `tissue` model: which pixels of a bright-field slide thumbnail are
// tissue. Otsu's threshold on luminance (tissue is darker than the glass), then a binary opening
// (drops dust and specks) and closing (fills small holes) with a square whose radius scales with
// the thumbnail. Used on its own (tissue fraction, a mask for ML tiling) and to skip background.
// Fluorescence slides (dark background) are not handled: their tissue is the brighter class.

import type { Pixels } from './preprocess.js';

export interface TissueMask {
  /** 1 = tissue, 0 = background, one byte per thumbnail pixel. */
  mask: Uint8Array;
  width: number;
  height: number;
  /** Luminance threshold (0-255): pixels at or below it are tissue before morphology. */
  threshold: number;
  /** Tissue pixels / all pixels, after morphology. */
  fraction: number;
  /** Radius of the square structuring element used. */
  radius: number;
}

/** Below this gap between the two classes' mean luminance the image is taken as all background. */
const MIN_CLASS_GAP = 8;

export function detectTissue(image: Pixels): TissueMask {
  const { width, height } = image;
  const count = width * height;
  const luma = luminance(image);
  const threshold = otsu(luma);
  const mask = new Uint8Array(count);
  let below = 0;
  let belowSum = 0;
  let aboveSum = 0;
  for (let i = 0; i < count; i++) {
    if (luma[i] <= threshold) {
      below++;
      belowSum += luma[i];
    } else aboveSum += luma[i];
  }
  const gap = below === 0 || below === count ? 0 : aboveSum / (count - below) - belowSum / below;
  const radius = Math.max(1, Math.round(Math.max(width, height) / 512));
  if (gap >= MIN_CLASS_GAP) {
    for (let i = 0; i < count; i++) mask[i] = luma[i] <= threshold ? 1 : 0;
    // Opening then closing.
    morph(mask, width, height, radius, 'min');
    morph(mask, width, height, radius, 'max');
    morph(mask, width, height, radius, 'max');
    morph(mask, width, height, radius, 'min');
  }
  let tissue = 0;
  for (let i = 0; i < count; i++) tissue += mask[i];
  return { mask, width, height, threshold, fraction: tissue / count, radius };
}

/** Rounded BT.601 luma of each pixel (gray passes through). */
export function luminance(image: Pixels): Uint8Array {
  const count = image.width * image.height;
  const out = new Uint8Array(count);
  const c = image.channels;
  const d = image.data;
  if (c < 3) {
    for (let i = 0; i < count; i++) out[i] = d[i * c];
    return out;
  }
  for (let i = 0; i < count; i++)
    out[i] = Math.round(0.299 * d[i * c] + 0.587 * d[i * c + 1] + 0.114 * d[i * c + 2]);
  return out;
}

/** Otsu (1979): the threshold t maximising the between-class variance of {<= t} and {> t}. */
export function otsu(values: Uint8Array): number {
  const hist = new Float64Array(256);
  for (const v of values) hist[v]++;
  const total = values.length;
  let sumAll = 0;
  for (let t = 0; t < 256; t++) sumAll += t * hist[t];
  let weightBelow = 0;
  let sumBelow = 0;
  let best = 0;
  let bestVariance = -1;
  for (let t = 0; t < 256; t++) {
    weightBelow += hist[t];
    if (weightBelow === 0) continue;
    const weightAbove = total - weightBelow;
    if (weightAbove === 0) break;
    sumBelow += t * hist[t];
    const meanBelow = sumBelow / weightBelow;
    const meanAbove = (sumAll - sumBelow) / weightAbove;
    const variance = weightBelow * weightAbove * (meanBelow - meanAbove) ** 2;
    if (variance > bestVariance) {
      bestVariance = variance;
      best = t;
    }
  }
  return best;
}

/**
 * Binary erosion ('min') or dilation ('max') in place with a (2r+1)² square, separably (rows,
 * then columns). Outside the image counts as background for dilation and as foreground for
 * erosion, so the border neither grows nor eats tissue (scipy.ndimage's border_value semantics
 * for opening/closing of a mask that touches the edge).
 */
function morph(mask: Uint8Array, width: number, height: number, r: number, op: 'min' | 'max'): void {
  const pass = (length: number, lines: number, index: (line: number, k: number) => number) => {
    const line = new Uint8Array(length);
    for (let l = 0; l < lines; l++) {
      for (let k = 0; k < length; k++) line[k] = mask[index(l, k)];
      // Running count of foreground pixels in the window.
      let ones = 0;
      for (let k = -r; k <= r; k++) ones += k >= 0 && k < length ? line[k] : op === 'min' ? 1 : 0;
      for (let k = 0; k < length; k++) {
        const size = 2 * r + 1;
        mask[index(l, k)] = op === 'min' ? (ones === size ? 1 : 0) : ones > 0 ? 1 : 0;
        const leaving = k - r;
        const entering = k + r + 1;
        ones -= leaving >= 0 ? line[leaving] : op === 'min' ? 1 : 0;
        ones += entering < length ? line[entering] : op === 'min' ? 1 : 0;
      }
    }
  };
  pass(width, height, (y, x) => y * width + x);
  pass(height, width, (x, y) => y * width + x);
}
