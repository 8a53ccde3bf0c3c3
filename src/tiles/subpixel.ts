// Sub-pixel origins. OpenSlide's read_region places a level at level-0 x / downsample, which is
// fractional for levels whose downsample is not a whole number (2.0003, 4.002...), and
// interpolates bilinearly; the region API reproduces that so ML pipelines get OpenSlide's pixels.

import type { DecodedImage } from '../codecs/types.js';

/**
 * Bilinear samples of `source` at (originX + i, originY + j) for a `w` x `h` grid, where `source`
 * (3-channel) holds the integer pixels from (floor(originX), floor(originY)), at least w+1 x h+1.
 */
export function sampleBilinear(
  source: Pick<DecodedImage, 'data' | 'width'>,
  originX: number,
  originY: number,
  w: number,
  h: number,
): DecodedImage {
  const fx = originX - Math.floor(originX);
  const fy = originY - Math.floor(originY);
  const out = new Uint8Array(w * h * 3);
  const data = source.data;
  const stride = source.width * 3;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * stride + x * 3;
      for (let c = 0; c < 3; c++) {
        const top = (1 - fx) * data[i + c] + fx * data[i + 3 + c];
        const bottom = (1 - fx) * data[i + stride + c] + fx * data[i + stride + 3 + c];
        out[(y * w + x) * 3 + c] = Math.round((1 - fy) * top + fy * bottom);
      }
    }
  }
  return { data: out, width: w, height: h, channels: 3 };
}
