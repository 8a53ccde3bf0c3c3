// Pixels in and out of the SAM2 / MedSAM2 modules: a windowed slice (0..255) resized to the
// model's square input (bilinear, aspect ratio not kept, as SAM2's video loader does), grey to
// RGB, /255 and ImageNet mean/std; mask logits resized back (bilinear, align_corners = false, as
// torch's F.interpolate in SAM2's postprocessing).

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Bilinear resize of one float plane (align_corners = false, edge-clamped). */
export function resizeBilinear(
  src: ArrayLike<number>,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight);
  const sx = width / outWidth;
  const sy = height / outHeight;
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, height - 1);
    const wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, width - 1);
      const wx = fx - x0;
      const top = src[y0 * width + x0] * (1 - wx) + src[y0 * width + x1] * wx;
      const bottom = src[y1 * width + x0] * (1 - wx) + src[y1 * width + x1] * wx;
      out[y * outWidth + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** A windowed grey slice (width x height, 0..255) as the image encoder's [1, 3, size, size] input. */
export function sam2Input(pixels: Uint8Array, width: number, height: number, size: number): Float32Array {
  const resized = resizeBilinear(pixels, width, height, size, size);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) out[c * plane + i] = (resized[i] / 255 - MEAN[c]) / STD[c];
  }
  return out;
}
