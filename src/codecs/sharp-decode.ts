// Decodes a complete image stream (JPEG, WebP) to raw 8-bit pixels with sharp/libvips, off the
// main thread on libuv's pool. Embedded ICC profiles are ignored: like OpenSlide, MedStream
// hands out stored pixel values and reports the profile as a slide property instead.

import sharp from 'sharp';
import { DecodeError } from '../errors.js';
import type { DecodedImage } from './types.js';

/**
 * `maxPixels` bounds the dimensions a stream may declare before any pixel memory is allocated.
 * `gray` keeps single-channel output (sharp otherwise widens it to sRGB). Two-channel output
 * (grey + alpha) is widened to RGBA so callers only see 1, 3 or 4 channels.
 */
export async function decodeWithSharp(
  stream: Uint8Array,
  maxPixels: number,
  what: string,
  gray = false,
): Promise<DecodedImage> {
  let result: { data: Buffer; info: sharp.OutputInfo };
  try {
    const pipeline = sharp(stream, {
      ignoreIcc: true,
      limitInputPixels: Math.max(1, Math.floor(maxPixels)),
      // libjpeg warnings (e.g. extraneous bytes before a marker) are common in real slides and
      // harmless; errors and truncated data are not.
      failOn: 'error',
    });
    if (gray) pipeline.toColourspace('b-w');
    result = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DecodeError(`${what} data is corrupt: ${(e as Error).message}`, { cause: e });
  }
  const { data, info } = result;
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (info.channels === 1 || info.channels === 3 || info.channels === 4) {
    return { data: pixels, width: info.width, height: info.height, channels: info.channels };
  }
  if (info.channels === 2) {
    const count = info.width * info.height;
    const rgba = new Uint8Array(count * 4);
    for (let i = 0; i < count; i++) {
      const v = pixels[i * 2];
      rgba.set([v, v, v, pixels[i * 2 + 1]], i * 4);
    }
    return { data: rgba, width: info.width, height: info.height, channels: 4 };
  }
  throw new DecodeError(`${what} decoded to ${info.channels} channels`);
}
