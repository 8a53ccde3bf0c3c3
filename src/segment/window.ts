// Windowing as MedSAM2 does it: clip to [lower, upper], scale min-max to 0..255 (uint8). The
// window comes from the request, else the series' VOI (DICOM WindowCenter/Width), else a preset.

import { BadRequest } from '../errors.js';

/** The abdomen soft-tissue preset MedSAM2's CT scripts use when a lesion has no window of its own. */
export const DEFAULT_CT_WINDOW: [number, number] = [-160, 240];

/** Parses `lo,hi` (numbers, lo < hi). */
export function parseWindow(text: string): [number, number] {
  const parts = text.split(',').map((s) => Number(s.trim()));
  if (parts.length !== 2 || parts.some((v) => !Number.isFinite(v)) || parts[0] >= parts[1]) {
    throw new BadRequest(`window "${text}" is not "lo,hi" with lo < hi (e.g. -160,240)`);
  }
  return [parts[0], parts[1]];
}

/** Clips to the window and scales to 0..255 (rounded). */
export function applyWindow(values: Float32Array, [lo, hi]: [number, number]): Uint8Array {
  const out = new Uint8Array(values.length);
  const scale = 255 / (hi - lo);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = v <= lo ? 0 : v >= hi ? 255 : Math.round((v - lo) * scale);
  }
  return out;
}
