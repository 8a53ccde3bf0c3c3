// The weight-free engine: threshold-and-grow in pure TypeScript. Key slice: pixels of the box
// whose smoothed HU lies in the intensity model's range, the connected region holding most of
// the box core, opened (cuts thin bridges to neighbours) and hole-filled. Next slice: the same
// range, constrained to the previous mask dilated by a few millimetres, grown from the previous
// mask's interior. Strong on high-contrast organs (liver, spleen, kidneys); weak on gas-filled
// or mixed structures (stomach), as SEGMENTATION-NOTES.md measured.

import { columnNorm } from '../volumes/affine.js';
import type {
  Box,
  EngineInput,
  EngineSession,
  IntensityModel,
  SegmentationEngine,
  SliceMask,
} from './engine.js';
import { boxCore } from './intensity.js';
import { sliceOf } from './volume-mask.js';
import {
  type Plane,
  componentsTouching,
  dilate,
  erode,
  fillHoles,
  largestComponent2d,
  open,
} from './mask2d.js';

export interface ClassicalOptions {
  /** How far (mm) a structure's outline may move between neighbouring slices. Default 8. */
  reachMm?: number;
  /** Radius (mm) of the opening that cuts thin bridges. Default 2. */
  openMm?: number;
  /** Part of the box (width and height, around its centre) whose pixels seed the key slice's region. Default 0.25. */
  seedFraction?: number;
  /** Compare the box core's histogram with the box border's (default on); off = the range alone. */
  contrast?: boolean;
  /**
   * Propagation keeps every opened component touching the previous mask's interior, not only the
   * one holding most of it (default off): a ring- or C-shaped outline (a kidney around its sinus)
   * that the opening cuts into arcs stays whole. The hybrid engine's support regions use it.
   */
  keepAllSeeded?: boolean;
}

const BIN = 5;

/**
 * Per bin: 1 where the foreground's density (histogram smoothed over ±2 bins, over its pixel count)
 * is at least the background's.
 */
function acceptedBins(fg: Float64Array, nf: number, bg: Float64Array, nb: number): Uint8Array {
  const bins = fg.length;
  const smooth = (h: Float64Array, n: number) =>
    h.map((_, b) => {
      let sum = 0;
      for (let d = -2; d <= 2; d++) if (b + d >= 0 && b + d < bins) sum += h[b + d] * (3 - Math.abs(d));
      return sum / 9 / Math.max(1, n);
    });
  const f = smooth(fg, nf);
  const g = smooth(bg, nb);
  return Uint8Array.from(f, (density, b) => (density >= g[b] ? 1 : 0));
}

/**
 * Which intensities of the model's range belong to the structure rather than to what surrounds it:
 * the smoothed histogram of the box core (foreground) against that of the box's outer ring
 * (background: with a margin around the structure, the ring holds its neighbours). A bin is
 * accepted when the foreground density is at least the background's; bins the ring never shows
 * are accepted. Keeps a kidney's region out of the liver next to it although their HU ranges overlap.
 */
function contrastModel(
  smoothed: Float32Array,
  plane: Plane,
  box: Box,
  model: IntensityModel,
  seedFraction: number,
): Uint8Array {
  const bins = Math.max(1, Math.ceil((model.hi - model.lo) / BIN) + 1);
  const fg = new Float64Array(bins);
  const bg = new Float64Array(bins);
  const core = boxCore(box, Math.max(seedFraction, 0.5));
  const ring = Math.max(1, Math.round(Math.min(box.x1 - box.x0, box.y1 - box.y0) * 0.1));
  let nf = 0;
  let nb = 0;
  for (let y = box.y0; y <= box.y1; y++) {
    for (let x = box.x0; x <= box.x1; x++) {
      const v = smoothed[y * plane.width + x];
      const b = Math.floor((v - model.lo) / BIN);
      const inCore = x >= core.x0 && x <= core.x1 && y >= core.y0 && y <= core.y1;
      const onRing = x - box.x0 < ring || box.x1 - x < ring || y - box.y0 < ring || box.y1 - y < ring;
      if (inCore) nf++;
      else if (onRing) nb++;
      if (b < 0 || b >= bins) continue;
      if (inCore) fg[b]++;
      else if (onRing) bg[b]++;
    }
  }
  return acceptedBins(fg, nf, bg, nb);
}

/**
 * The same per-bin test as `contrastModel`, with the structure's own region as foreground and a
 * ring around it (`ring` px past a 1 px gap) as background: for a region known better than the
 * box's core (e.g. a model's mask on the key slice).
 */
export function regionContrastModel(
  smoothed: Float32Array,
  plane: Plane,
  region: Uint8Array,
  model: IntensityModel,
  ring = 3,
): Uint8Array {
  const bins = Math.max(1, Math.ceil((model.hi - model.lo) / BIN) + 1);
  const fg = new Float64Array(bins);
  const bg = new Float64Array(bins);
  const outer = dilate(region, plane, ring);
  const near = dilate(region, plane, 1);
  let nf = 0;
  let nb = 0;
  for (let i = 0; i < region.length; i++) {
    const inFg = region[i] === 1;
    if (!inFg && !(outer[i] && !near[i])) continue;
    const b = Math.floor((smoothed[i] - model.lo) / BIN);
    if (inFg) nf++;
    else nb++;
    if (b < 0 || b >= bins) continue;
    if (inFg) fg[b]++;
    else bg[b]++;
  }
  return acceptedBins(fg, nf, bg, nb);
}

/** A classical session that can re-learn its intensity test from a known region. */
export interface ClassicalSession extends EngineSession {
  /**
   * Replaces the box's core/ring contrast test with `region` (slice k) against a ring of `ring` px
   * around it (regionContrastModel). Call after segmentBox, which sets the box's test.
   */
  learnFrom(k: number, region: SliceMask, ring?: number): void;
}

export class ClassicalEngine implements SegmentationEngine {
  readonly name = 'classical';
  constructor(private readonly options: ClassicalOptions = {}) {}

  async open(input: EngineInput): Promise<ClassicalSession> {
    const seedFraction = this.options.seedFraction ?? 0.25;
    const useContrast = this.options.contrast;
    const keepAllSeeded = this.options.keepAllSeeded === true;
    const { volume, intensity } = input;
    const plane: Plane = { width: volume.dims[0], height: volume.dims[1] };
    const pixel = Math.min(columnNorm(volume.affine, 0), columnNorm(volume.affine, 1)) || 1;
    const reach = Math.max(1, Math.round((this.options.reachMm ?? 8) / pixel));
    const openRadius = Math.max(1, Math.round((this.options.openMm ?? 2) / pixel));

    /** Per 5-HU bin of the intensity range: whether the structure is likelier than its surroundings. */
    let accept: Uint8Array | undefined;
    /** Pixels of slice k inside the intensity range (and, once a box was seen, likelier inside than around). */
    const inRange = (k: number): Uint8Array => {
      const s = input.smoothed(k);
      const out = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) {
        const v = s[i];
        if (v < intensity.lo || v > intensity.hi) continue;
        out[i] = accept ? accept[Math.min(accept.length - 1, Math.floor((v - intensity.lo) / BIN))] : 1;
      }
      return out;
    };
    const refine = (k: number, candidate: Uint8Array, seeds: Uint8Array, all: boolean): SliceMask => {
      const opened = open(candidate, plane, openRadius);
      let grown = all ? componentsTouching(opened, seeds, plane) : largestComponent2d(opened, plane, seeds);
      // An opening can remove a thin structure entirely; then keep the unopened region.
      if (!grown.some((v) => v)) grown = largestComponent2d(candidate, plane, seeds);
      // Smoothing blurs the outline by a pixel: take back the ring whose unsmoothed values are in range.
      const raw = sliceOf(volume.data, volume.dims, k);
      const ring = dilate(grown, plane, 1);
      for (let i = 0; i < ring.length; i++) {
        if (ring[i] && !grown[i] && raw[i] >= intensity.lo && raw[i] <= intensity.hi) grown[i] = 1;
      }
      return fillHoles(grown, plane);
    };

    return {
      async segmentBox(k: number, box: Box): Promise<SliceMask> {
        accept =
          useContrast === false
            ? undefined
            : contrastModel(input.smoothed(k), plane, box, intensity, seedFraction);
        const candidate = inRange(k);
        const inBox = new Uint8Array(candidate.length);
        for (let y = box.y0; y <= box.y1; y++) {
          for (let x = box.x0; x <= box.x1; x++) inBox[y * plane.width + x] = 1;
        }
        for (let i = 0; i < candidate.length; i++) candidate[i] &= inBox[i];
        const core = boxCore(box, seedFraction);
        const seeds = new Uint8Array(candidate.length);
        for (let y = core.y0; y <= core.y1; y++) {
          for (let x = core.x0; x <= core.x1; x++) seeds[y * plane.width + x] = 1;
        }
        const mask = refine(k, candidate, seeds, false);
        for (let i = 0; i < mask.length; i++) mask[i] &= inBox[i];
        return mask;
      },
      async propagate(k: number, previous: SliceMask): Promise<SliceMask> {
        const candidate = inRange(k);
        const allowed = dilate(previous, plane, reach);
        for (let i = 0; i < candidate.length; i++) candidate[i] &= allowed[i];
        let seeds = erode(previous, plane, openRadius);
        if (!seeds.some((v) => v)) seeds = previous;
        const seeded = componentsTouching(candidate, seeds, plane);
        return refine(k, candidate, seeded, keepAllSeeded);
      },
      learnFrom(k: number, region: SliceMask, ring?: number): void {
        if (useContrast !== false && region.some((v) => v))
          accept = regionContrastModel(input.smoothed(k), plane, region, intensity, ring);
      },
      reset() {},
      async close() {},
    };
  }

  async close(): Promise<void> {}
}
