// The one interface every segmentation engine implements (classical, sam; medsam2 later), and
// the types the pipeline hands them. An engine sees one volume at a time through a session: a
// box prompt on the key slice, then slice-to-slice propagation, with `reset()` between MedSAM2's
// forward and backward passes. Engines return raw slice masks; the pipeline filters, stops and
// combines them (pipeline.ts), so every engine gets the same stopping rule and intensity filter.

import type { Volume } from '../volumes/volume.js';

/**
 * A box on the key slice in the pixel coordinates of the volume as stored, corners inclusive:
 * x = column = first array axis (NIfTI i), y = row = second axis (NIfTI j). See docs/segmentation.md.
 */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** HU range the structure is assumed to lie in, from the key slice's box centre. */
export interface IntensityModel {
  /** Median of the box core (smoothed HU). */
  center: number;
  /** Robust standard deviation (1.4826 x MAD) of the box core, at least `minSpread`. */
  spread: number;
  lo: number;
  hi: number;
}

export interface EngineInput {
  volume: Volume;
  /** The volume windowed to 0..255 (clip to `window`, min-max scale), same index order. */
  windowed: Uint8Array;
  window: [number, number];
  intensity: IntensityModel;
  /** Slice k of the volume, 3x3 mean-smoothed (computed once, shared with the pipeline's filter). */
  smoothed(k: number): Float32Array;
  signal?: AbortSignal;
}

/** One slice's mask: Uint8Array of width x height (nx x ny), 0/1. */
export type SliceMask = Uint8Array;

export interface EngineSession {
  /** The mask of slice `k` for a box prompt. */
  segmentBox(k: number, box: Box): Promise<SliceMask>;
  /**
   * The mask of slice `k` given the (filtered) mask of its neighbour `from` = k -/+ 1, already
   * segmented in this pass.
   */
  propagate(k: number, previous: SliceMask, from: number): Promise<SliceMask>;
  /** Forgets per-pass state (memory, cached prompts) before the other direction. */
  reset(): void;
  close(): Promise<void>;
}

export interface SegmentationEngine {
  readonly name: string;
  open(input: EngineInput): Promise<EngineSession>;
  /** Releases models and worker threads. */
  close(): Promise<void>;
}
