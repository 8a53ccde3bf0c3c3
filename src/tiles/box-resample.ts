// Area-average ("box") resampling weights: each output pixel is the mean of the source pixels
// its footprint covers, weighted by the covered fraction. Unlike a Lanczos or cubic kernel it
// reads nothing outside the footprint, so synthesised pyramid tiles rendered independently join
// without seams, and it never rings at sharp tissue/background edges.

/** For one output pixel: the first source index and the weights of consecutive sources. */
export interface Footprint {
  first: number;
  weights: Float32Array;
}

/**
 * Footprints of output pixels `start .. start + count - 1` on an axis where output pixel i
 * covers source [i * scale, (i + 1) * scale), clipped to the source pixels `sourceStart ..
 * sourceEnd - 1` (indices returned relative to `sourceStart`). Weights of each footprint sum to 1.
 */
export function footprints(
  start: number,
  count: number,
  scale: number,
  sourceStart: number,
  sourceEnd: number,
): Footprint[] {
  const out: Footprint[] = [];
  for (let i = start; i < start + count; i++) {
    const from = Math.max(sourceStart, i * scale);
    const to = Math.min(sourceEnd, (i + 1) * scale);
    const first = Math.floor(from);
    const last = Math.max(first, Math.ceil(to) - 1);
    const weights = new Float32Array(last - first + 1);
    let total = 0;
    for (let j = first; j <= last; j++) {
      const covered = Math.max(0, Math.min(to, j + 1) - Math.max(from, j));
      weights[j - first] = covered;
      total += covered;
    }
    if (total > 0) for (let k = 0; k < weights.length; k++) weights[k] /= total;
    else weights[0] = 1; // footprint entirely outside the source: nearest pixel
    out.push({ first: Math.min(first, sourceEnd - 1) - sourceStart, weights });
  }
  return out;
}

/**
 * Resamples rows of interleaved RGB horizontally: `rows` source rows of `sourceWidth` pixels to
 * rows of `columns.length` pixels, as floats (kept unrounded for the vertical pass).
 */
export function resampleRows(
  source: Uint8Array,
  sourceWidth: number,
  rows: number,
  columns: Footprint[],
): Float32Array {
  const outWidth = columns.length;
  const out = new Float32Array(outWidth * rows * 3);
  for (let y = 0; y < rows; y++) {
    const rowBase = y * sourceWidth * 3;
    for (let x = 0; x < outWidth; x++) {
      const { first, weights } = columns[x];
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0, s = rowBase + first * 3; k < weights.length; k++, s += 3) {
        const w = weights[k];
        r += source[s] * w;
        g += source[s + 1] * w;
        b += source[s + 2] * w;
      }
      const o = (y * outWidth + x) * 3;
      out[o] = r;
      out[o + 1] = g;
      out[o + 2] = b;
    }
  }
  return out;
}
