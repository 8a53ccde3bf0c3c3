// YCbCr <-> RGB conversion with the fixed-point tables libjpeg and OpenSlide use (JFIF / ITU-R
// BT.601 full range, TIFF 6.0 section 21), so pixels decoded from Aperio 33003 JPEG 2000 tiles
// match OpenSlide's `openslide-decode-jp2k.c` exactly instead of within a rounding step.

const SCALE_BITS = 16;
const ONE_HALF = 1 << (SCALE_BITS - 1);
const fix = (x: number): number => Math.round(x * (1 << SCALE_BITS));

/** Chroma contributions indexed by the stored (offset-128) Cb or Cr value. */
const R_FROM_CR = new Int16Array(256);
const B_FROM_CB = new Int16Array(256);
const G_FROM_CB = new Int32Array(256);
const G_FROM_CR = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  R_FROM_CR[i] = (fix(1.402) * x + ONE_HALF) >> SCALE_BITS;
  B_FROM_CB[i] = (fix(1.772) * x + ONE_HALF) >> SCALE_BITS;
  G_FROM_CB[i] = -fix(0.34414) * x + ONE_HALF;
  G_FROM_CR[i] = -fix(0.71414) * x;
}

const clamp = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Converts interleaved 8-bit YCbCr samples to RGB in place. */
export function ycbcrToRgbInPlace(pixels: Uint8Array): void {
  for (let i = 0; i + 2 < pixels.length; i += 3) {
    const y = pixels[i];
    const cb = pixels[i + 1];
    const cr = pixels[i + 2];
    pixels[i] = clamp(y + R_FROM_CR[cr]);
    pixels[i + 1] = clamp(y + ((G_FROM_CB[cb] + G_FROM_CR[cr]) >> SCALE_BITS));
    pixels[i + 2] = clamp(y + B_FROM_CB[cb]);
  }
}

/** Converts interleaved 8-bit RGB samples to YCbCr (JFIF full range, rounded) in place. */
export function rgbToYcbcrInPlace(pixels: Uint8Array): void {
  for (let i = 0; i + 2 < pixels.length; i += 3) {
    const r = pixels[i];
    const g = pixels[i + 1];
    const b = pixels[i + 2];
    pixels[i] = clamp(Math.round(0.299 * r + 0.587 * g + 0.114 * b));
    pixels[i + 1] = clamp(Math.round(-0.168736 * r - 0.331264 * g + 0.5 * b + 128));
    pixels[i + 2] = clamp(Math.round(0.5 * r - 0.418688 * g - 0.081312 * b + 128));
  }
}
