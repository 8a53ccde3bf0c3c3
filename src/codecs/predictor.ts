// TIFF Predictor 2 (horizontal differencing, TIFF 6.0 section 14): each sample is stored as the
// difference from the same sample of the pixel to its left. Undone per row, per sample; the
// typed array's own wrap-around gives the modulo-2^bits addition the spec requires.

/** Undoes horizontal differencing in place on chunky samples (8- or 16-bit). */
export function undoHorizontalPredictor(
  samples: Uint8Array | Uint16Array,
  width: number,
  height: number,
  samplesPerPixel: number,
): void {
  const rowLength = width * samplesPerPixel;
  if (samples.length < rowLength * height) {
    throw new RangeError(`predictor needs ${rowLength * height} samples, got ${samples.length}`);
  }
  for (let row = 0; row < height; row++) {
    const start = row * rowLength;
    const end = start + rowLength;
    for (let i = start + samplesPerPixel; i < end; i++) {
      samples[i] += samples[i - samplesPerPixel];
    }
  }
}
