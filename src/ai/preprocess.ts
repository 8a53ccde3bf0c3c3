// Preprocessing: 8-bit pixels (an uploaded image or a slide region) -> the float input tensor a
// model declared. Order: channels (RGBA/GA drop alpha; gray replicated to 3 channels, RGB to
// luminance for 1), resize (sharp, bilinear: stretch / letterbox / centre crop), scaling to 0..1
// (fixed, min-max or window), the value range, then (v - mean) / std per channel, in NCHW or NHWC.
// Radiology slices arrive as one channel of real-world values (HU) in a Float32Array: they are
// resized here by bilinear sampling (fit-geometry.ts, no 8-bit rounding) and windowed by the
// request's window, the declared one or the instance's VOI.

import sharp from 'sharp';
import type { ModelDeclaration } from './declaration.js';
import { fitGeometry, sampleBilinear } from './fit-geometry.js';

export interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
  channels: number;
}

/** A radiology slice: one channel of real-world values (HU for CT), row-major. */
export interface FloatPixels {
  values: Float32Array;
  width: number;
  height: number;
  /** The window the request asked for (wins over the declared one). */
  window?: RadiologyWindow;
  /** The instance's VOI window (used when neither the request nor the model gives one). */
  voi?: RadiologyWindow;
}

export interface RadiologyWindow {
  center: number;
  width: number;
}

/** ITU-R BT.601 luma weights, the ones most image libraries use for RGB -> gray. */
const LUMA = [0.299, 0.587, 0.114] as const;

/** The model's float input for one image: `channels * height * width` values in its layout. */
export async function preprocess(image: Pixels | FloatPixels, decl: ModelDeclaration): Promise<Float32Array> {
  if ('values' in image) return preprocessFloat(image, decl);
  const { width, height, channels } = decl.input;
  const sized = await resize(toColour(image), decl);
  const count = width * height;
  const plane = new Float32Array(count * channels);
  // Channel conversion on the resized 8-bit pixels, as floats (no rounding of the luma).
  const src = sized.data;
  const sc = sized.channels;
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < channels; c++) {
      let v: number;
      if (channels === 1)
        v = sc === 1 ? src[i] : LUMA[0] * src[i * 3] + LUMA[1] * src[i * 3 + 1] + LUMA[2] * src[i * 3 + 2];
      else v = sc === 1 ? src[i] : src[i * 3 + c];
      plane[c * count + i] = v;
    }
  }
  return normalise(plane, decl, scaler(decl, plane));
}

/** A radiology slice: bilinear resize of the real values, replicated to every model channel. */
function preprocessFloat(image: FloatPixels, decl: ModelDeclaration): Float32Array {
  const { width, height, channels } = decl.input;
  const count = width * height;
  const fit = fitGeometry(image.width, image.height, width, height, decl.preprocess.resize);
  const sized =
    image.width === width && image.height === height
      ? image.values
      : sampleBilinear(image.values, image.width, image.height, width, height, fit, decl.preprocess.pad);
  const plane = new Float32Array(count * channels);
  for (let c = 0; c < channels; c++) plane.set(sized, c * count);
  return normalise(plane, decl, scaler(decl, sized, image));
}

/** Scaling to 0..1, the range, then (v - mean) / std, in the declared layout. */
function normalise(plane: Float32Array, decl: ModelDeclaration, scale: (v: number) => number): Float32Array {
  const { width, height, channels, layout } = decl.input;
  const count = width * height;
  const [lo, hi] = decl.preprocess.range;
  const { mean, std } = decl.preprocess;
  const out = new Float32Array(count * channels);
  for (let c = 0; c < channels; c++) {
    const m = mean[c];
    const s = std[c];
    for (let i = 0; i < count; i++) {
      const v = (lo + scale(plane[c * count + i]) * (hi - lo) - m) / s;
      if (layout === 'NCHW') out[c * count + i] = v;
      else out[i * channels + c] = v;
    }
  }
  return out;
}

/**
 * value -> 0..1 for the declared scaling. A window comes from the request, else the declaration,
 * else the image's VOI; with none of them the image's min..max is used.
 */
function scaler(
  decl: ModelDeclaration,
  values: Float32Array,
  windows: { window?: RadiologyWindow; voi?: RadiologyWindow } = {},
): (v: number) => number {
  const s = decl.preprocess.scaling;
  const clamp = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
  if (s.type === 'fixed') return (v) => clamp((v - s.min) / (s.max - s.min));
  if (s.type === 'window') {
    const declared =
      s.center !== undefined && s.width !== undefined ? { center: s.center, width: s.width } : undefined;
    const w = windows.window ?? declared ?? windows.voi;
    if (w) {
      const low = w.center - w.width / 2;
      return (v) => clamp((v - low) / w.width);
    }
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  // A flat image has no range: every value maps to 0.
  return max > min ? (v) => (v - min) / (max - min) : () => 0;
}

/** Gray (1) or RGB (3) channels: alpha dropped. */
function toColour(image: Pixels): Pixels {
  if (image.channels === 1 || image.channels === 3) return image;
  const keep = image.channels === 2 ? 1 : 3;
  const count = image.width * image.height;
  const data = new Uint8Array(count * keep);
  for (let i = 0; i < count; i++)
    for (let c = 0; c < keep; c++) data[i * keep + c] = image.data[i * image.channels + c];
  return { data, width: image.width, height: image.height, channels: keep };
}

async function resize(image: Pixels, decl: ModelDeclaration): Promise<Pixels> {
  const { width, height } = decl.input;
  if (image.width === width && image.height === height) return image;
  const { resize: mode, pad } = decl.preprocess;
  const channels = image.channels as 1 | 3;
  const { data, info } = await sharp(image.data, {
    raw: { width: image.width, height: image.height, channels },
    limitInputPixels: false,
  })
    .resize(width, height, {
      fit: mode === 'stretch' ? 'fill' : mode === 'letterbox' ? 'contain' : 'cover',
      position: 'centre',
      kernel: 'linear',
      background: { r: pad, g: pad, b: pad, alpha: 1 },
    })
    .raw()
    .toBuffer({ resolveWithObject: true });
  // sharp may add or drop channels (gray kept as 1, padding as RGB): normalise again.
  return toColour({ data, width: info.width, height: info.height, channels: info.channels });
}
