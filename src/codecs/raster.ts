// Turns decompressed TIFF sample bytes (chunky, 8 or 16 bits per sample) into a `DecodedImage`:
// horizontal predictor, 16 -> 8 bit reduction, photometric interpretation and alpha. Shared by
// every codec that yields raw samples (none, LZW, Deflate, ZSTD, PackBits).

import { DecodeError, UnsupportedFormat } from '../errors.js';
import { undoHorizontalPredictor } from './predictor.js';
import { Photometric } from './types.js';
import type { DecodedImage, TileEncoding } from './types.js';

/** What the sample bytes of one stored tile look like. */
export interface SampleLayout {
  bitsPerSample: 8 | 16;
  samplesPerPixel: number;
  /** Bytes of `width * height` pixels. */
  byteLength: number;
  /** Channels of the decoded image. */
  channels: 1 | 3 | 4;
}

/**
 * Checks that an encoding is one the raw-sample path can render and returns its layout. Throws
 * `UnsupportedFormat` naming what is not supported.
 */
export function sampleLayout(encoding: TileEncoding, width: number, height: number): SampleLayout {
  const spp = encoding.samplesPerPixel;
  const bits = encoding.bitsPerSample[0];
  if (!encoding.bitsPerSample.every((b) => b === bits) || (bits !== 8 && bits !== 16)) {
    throw new UnsupportedFormat(`${encoding.bitsPerSample.join(',')} bits per sample is not supported`);
  }
  if (encoding.sampleFormat !== 1 && encoding.sampleFormat !== 0) {
    throw new UnsupportedFormat(
      `sample format ${encoding.sampleFormat} (signed or floating point) is not supported`,
    );
  }
  if (encoding.planarConfiguration === 2 && spp > 1) {
    throw new UnsupportedFormat('planar (separate) sample planes are not supported');
  }
  if (encoding.predictor !== 1 && encoding.predictor !== 2) {
    throw new UnsupportedFormat(`TIFF predictor ${encoding.predictor} is not supported`);
  }
  const alpha = hasAlpha(encoding);
  let channels: 1 | 3 | 4;
  switch (encoding.photometric) {
    case Photometric.MinIsBlack:
    case Photometric.MinIsWhite:
      if (spp < 1) throw new UnsupportedFormat(`grayscale with ${spp} samples per pixel`);
      channels = alpha && spp >= 2 ? 4 : 1;
      break;
    case Photometric.RGB:
      if (spp < 3) throw new UnsupportedFormat(`RGB with ${spp} samples per pixel`);
      channels = alpha && spp >= 4 ? 4 : 3;
      break;
    default:
      throw new UnsupportedFormat(
        `photometric interpretation ${encoding.photometric} is not supported for this compression`,
      );
  }
  return {
    bitsPerSample: bits,
    samplesPerPixel: spp,
    byteLength: (width * height * spp * bits) / 8,
    channels,
  };
}

/** Whether the first extra sample is alpha (associated or unassociated). */
function hasAlpha(encoding: TileEncoding): boolean {
  const first = encoding.extraSamples?.[0];
  return first === 1 || first === 2;
}

/**
 * Builds the decoded image from `layout.byteLength` (or more) bytes of chunky samples. The input
 * may be modified (the predictor is undone in place).
 */
export function samplesToImage(
  bytes: Uint8Array,
  encoding: TileEncoding,
  layout: SampleLayout,
  width: number,
  height: number,
): DecodedImage {
  if (bytes.length < layout.byteLength) {
    throw new DecodeError(`tile data holds ${bytes.length} bytes, ${layout.byteLength} expected`);
  }
  const spp = layout.samplesPerPixel;
  let samples8: Uint8Array;
  if (layout.bitsPerSample === 8) {
    samples8 = bytes;
    if (encoding.predictor === 2) undoHorizontalPredictor(samples8, width, height, spp);
  } else {
    const count = width * height * spp;
    const samples16 = new Uint16Array(count);
    const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
    const littleEndian = encoding.littleEndian ?? true;
    for (let i = 0; i < count; i++) samples16[i] = view.getUint16(i * 2, littleEndian);
    if (encoding.predictor === 2) undoHorizontalPredictor(samples16, width, height, spp);
    // libtiff's TIFFRGBAImage (and so OpenSlide) keeps the high byte of 16-bit samples.
    samples8 = new Uint8Array(count);
    for (let i = 0; i < count; i++) samples8[i] = samples16[i] >> 8;
  }
  return toChannels(samples8, encoding, spp, layout.channels, width, height);
}

function toChannels(
  samples: Uint8Array,
  encoding: TileEncoding,
  spp: number,
  channels: 1 | 3 | 4,
  width: number,
  height: number,
): DecodedImage {
  const pixels = width * height;
  const invert = encoding.photometric === Photometric.MinIsWhite;
  const colourSamples = channels === 1 ? 1 : encoding.photometric === Photometric.RGB ? 3 : 1;
  if (spp === channels && !invert && !(channels === 4 && encoding.extraSamples?.[0] === 1)) {
    return { data: samples.subarray(0, pixels * spp), width, height, channels };
  }
  const out = new Uint8Array(pixels * channels);
  const associated = encoding.extraSamples?.[0] === 1;
  for (let p = 0, s = 0, o = 0; p < pixels; p++, s += spp, o += channels) {
    if (colourSamples === 3) {
      out[o] = samples[s];
      out[o + 1] = samples[s + 1];
      out[o + 2] = samples[s + 2];
    } else {
      const v = invert ? 255 - samples[s] : samples[s];
      out[o] = v;
      if (channels > 1) {
        out[o + 1] = v;
        out[o + 2] = v;
      }
    }
    if (channels === 4) {
      const a = samples[s + colourSamples];
      out[o + 3] = a;
      // Associated (premultiplied) alpha is undone so every DecodedImage means the same thing.
      if (associated && a !== 0 && a !== 255) {
        out[o] = Math.min(255, Math.round((out[o] * 255) / a));
        out[o + 1] = Math.min(255, Math.round((out[o + 1] * 255) / a));
        out[o + 2] = Math.min(255, Math.round((out[o + 2] * 255) / a));
      }
    }
  }
  return { data: out, width, height, channels };
}
