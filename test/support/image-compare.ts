// Pixel comparison for tests against reference renderings (OpenSlide's read_region PNGs): JPEG
// decoders differ slightly (IDCT, chroma upsampling), so images are compared by mean absolute
// difference per channel and a high percentile of the per-sample difference, not for equality.
import sharp from 'sharp';
import type { DecodedImage } from '../../src/codecs/types.js';

export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface ImageDifference {
  /** Mean absolute difference of R, G and B. */
  mad: [number, number, number];
  /** 99th percentile of |a - b| over all samples. */
  p99: number;
  max: number;
}

/** A PNG (or any image sharp reads) as RGB, flattened onto white like OpenSlide's references. */
export async function loadRgb(file: string): Promise<RgbImage> {
  const { data, info } = await sharp(file, { ignoreIcc: true })
    .flatten({ background: '#ffffff' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3)
    throw new Error(`${file}: expected RGB after flattening, got ${info.channels} channels`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
  };
}

/** Compares two RGB images of the same size. */
export function compareRgb(actual: RgbImage | DecodedImage, expected: RgbImage): ImageDifference {
  if ('channels' in actual && actual.channels !== 3)
    throw new Error(`actual has ${actual.channels} channels, not 3`);
  if (actual.width !== expected.width || actual.height !== expected.height) {
    throw new Error(
      `size ${actual.width}x${actual.height} differs from ${expected.width}x${expected.height}`,
    );
  }
  const histogram = new Uint32Array(256);
  const sums = [0, 0, 0];
  const a = actual.data;
  const b = expected.data;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    histogram[d]++;
    sums[i % 3] += d;
  }
  const pixels = actual.width * actual.height;
  const rank = Math.ceil(a.length * 0.99);
  let seen = 0;
  let p99 = 0;
  for (let d = 0; d < 256; d++) {
    seen += histogram[d];
    if (seen >= rank) {
      p99 = d;
      break;
    }
  }
  let max = 0;
  for (let d = 255; d >= 0; d--) {
    if (histogram[d] > 0) {
      max = d;
      break;
    }
  }
  return { mad: [sums[0] / pixels, sums[1] / pixels, sums[2] / pixels], p99, max };
}

/** OpenSlide's sub-pixel level origin, as the region API reproduces it (src/tiles/subpixel.ts). */
export { sampleBilinear } from '../../src/tiles/subpixel.js';
