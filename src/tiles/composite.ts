// Pixel compositing for region reads: background fills, and copying decoded tiles (gray, RGB or
// RGBA) into an RGB canvas with gray expanded and alpha blended onto the background, the way
// OpenSlide's read_region output looks once composited on its background colour.

import type { DecodedImage } from '../codecs/types.js';

export type Rgb = readonly [number, number, number];

/** `RRGGBB` (optionally with `#`) to RGB; white for anything else. */
export function parseBackground(hex: string | undefined): Rgb {
  const match = /^#?([0-9a-f]{6})$/i.exec(hex ?? '');
  if (!match) return [255, 255, 255];
  const value = parseInt(match[1], 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

/** A `w`x`h` RGB canvas of one colour. */
export function filled(w: number, h: number, [r, g, b]: Rgb): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  if (r === g && g === b) return out.fill(r);
  for (let i = 0; i < out.length; i += 3) {
    out[i] = r;
    out[i + 1] = g;
    out[i + 2] = b;
  }
  return out;
}

/**
 * Copies the part of `tile` (placed at level position tileX, tileY) inside the clip rectangle
 * [x0, x1) x [y0, y1) into `out` (a `outWidth`-wide RGB image whose origin is level position
 * originX, originY). Gray is expanded, alpha composited on the background.
 */
export function composite(
  out: Uint8Array,
  outWidth: number,
  originX: number,
  originY: number,
  tile: DecodedImage,
  tileX: number,
  tileY: number,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  [br, bg, bb]: Rgb,
): void {
  const left = Math.max(x0, tileX);
  const top = Math.max(y0, tileY);
  const right = Math.min(x1, tileX + tile.width);
  const bottom = Math.min(y1, tileY + tile.height);
  if (left >= right || top >= bottom) return;
  const n = right - left;
  const c = tile.channels;
  const src = tile.data;
  for (let ly = top; ly < bottom; ly++) {
    let s = ((ly - tileY) * tile.width + (left - tileX)) * c;
    let o = ((ly - originY) * outWidth + (left - originX)) * 3;
    if (c === 3) {
      out.set(src.subarray(s, s + n * 3), o);
      continue;
    }
    for (let i = 0; i < n; i++, s += c, o += 3) {
      if (c === 1) {
        out[o] = out[o + 1] = out[o + 2] = src[s];
      } else {
        const a = src[s + 3];
        const inv = 255 - a;
        out[o] = (src[s] * a + br * inv + 127) / 255;
        out[o + 1] = (src[s + 1] * a + bg * inv + 127) / 255;
        out[o + 2] = (src[s + 2] * a + bb * inv + 127) / 255;
      }
    }
  }
}
