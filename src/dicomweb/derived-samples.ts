// Sample arithmetic for derived frames (derived.ts): the box-average reduction behind the 1/4-per-side
// thumbnails, and packing decoded samples into the little-endian bytes the encoders take.

/** Box-average reduction by `factor` per side (edge blocks average what they hold), rounded. */
export function reduce(
  samples: ArrayLike<number>,
  width: number,
  height: number,
  factor: number,
): { samples: Int32Array; width: number; height: number } {
  const w = Math.ceil(width / factor);
  const h = Math.ceil(height / factor);
  const out = new Int32Array(w * h);
  for (let y = 0; y < h; y++) {
    const y1 = Math.min(height, (y + 1) * factor);
    for (let x = 0; x < w; x++) {
      const x1 = Math.min(width, (x + 1) * factor);
      let sum = 0;
      let n = 0;
      for (let yy = y * factor; yy < y1; yy++) {
        for (let xx = x * factor; xx < x1; xx++) sum += samples[yy * width + xx];
        n += x1 - x * factor;
      }
      out[y * w + x] = Math.round(sum / n);
    }
  }
  return { samples: out, width: w, height: h };
}

/** Samples as little-endian bytes of 8 or 16 bits (two's complement when negative). */
export function pack(samples: ArrayLike<number>, count: number, bits: 8 | 16): Uint8Array {
  if (bits === 8) {
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i++) out[i] = samples[i] & 0xff;
    return out;
  }
  const out = new Uint8Array(count * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) view.setUint16(2 * i, samples[i] & 0xffff, true);
  return out;
}
