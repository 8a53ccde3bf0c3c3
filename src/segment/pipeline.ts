// Box-prompted 3D segmentation, step by step as MedSAM2's medsam2_infer_3D_CT.py runs it:
// window the volume, prompt the key slice with the box, propagate forward to the last slice,
// reset, prompt again and propagate backward to the first, OR both passes, keep the largest 3D
// connected component. The mask comes back in the volume's own index order and geometry, so
// writers (NIfTI, DICOM SEG) only copy the source's geometry. Engine specifics stay behind
// `SegmentationEngine`; what every engine gets from here is the intensity (HU) filter and the
// stopping rule (SEGMENTATION-NOTES.md: models never stop at an organ's end by themselves).

import { throwIfAborted } from '../errors.js';
import type { Volume } from '../volumes/volume.js';
import { voxelMillilitres } from '../volumes/volume.js';
import type { Box, IntensityModel, SegmentationEngine, SliceMask } from './engine.js';
import { applyIntensityFilter, intensityModel, smoothSlice } from './intensity.js';
import { type Plane, area, fillHoles, largestComponent2d } from './mask2d.js';
import { checkPrompt, checkVolume } from './request.js';
import { largestComponent3d, orMasks, sliceOf } from './volume-mask.js';
import { DEFAULT_CT_WINDOW, applyWindow } from './window.js';

export interface SegmentRequest {
  /** Key slice index k (third array axis). */
  slice: number;
  box: Box;
  /** [lower, upper]; default: the volume's VOI window, else DEFAULT_CT_WINDOW. */
  window?: [number, number];
}

export interface PipelineOptions {
  /** Width of the intensity filter in robust σ around the box core's median (0 = no filter). Default 2. */
  sigmas?: number;
  /** Part of the box (width and height) whose values make the intensity model. Default 0.5. */
  coreFraction?: number;
  /** Smallest σ of the intensity model, HU. Default 15. */
  minSpread?: number;
  /** Stop a pass when a slice's area falls below this fraction of the key slice's. Default 0.05. */
  minAreaFraction?: number;
  /** Stop a pass when a slice's area grows past this factor of the previous slice's (a leak). Default 1.8. */
  maxGrowth?: number;
  /** Called after each slice segmented (for progress bars). */
  onSlice?: (event: { slice: number; direction: 'forward' | 'backward'; area: number }) => void;
  signal?: AbortSignal;
}

export type StopReason = 'end-of-volume' | 'vanished' | 'shrank' | 'grew';

export interface SegmentResult {
  /** 0/1 per voxel, index i + nx * (j + ny * k) like the volume. */
  mask: Uint8Array;
  voxels: number;
  millilitres: number;
  /** First and last slice holding the mask (undefined when empty). */
  slices?: [number, number];
  window: [number, number];
  intensity: IntensityModel;
  /** Why each pass ended, and at which slice (the first slice not kept). */
  stopped: { forward: { reason: StopReason; at: number }; backward: { reason: StopReason; at: number } };
  /** Slices the engine was asked for. */
  slicesVisited: number;
  seconds: number;
}

/** Segments one structure of `volume` from a box on one slice. */
export async function segmentVolume(
  volume: Volume,
  request: SegmentRequest,
  engine: SegmentationEngine,
  options: PipelineOptions = {},
): Promise<SegmentResult> {
  const started = performance.now();
  checkVolume(volume);
  const key = request.slice;
  const box = checkPrompt(volume, key, request.box);
  const { dims } = volume;
  const plane: Plane = { width: dims[0], height: dims[1] };

  // 1. Window: clip and scale to 0..255 (what image models see).
  const window = request.window ?? volume.defaultWindow ?? DEFAULT_CT_WINDOW;
  const windowed = applyWindow(volume.data, window);

  // 2. The intensity model from the key slice's box centre (the HU filter of every slice).
  const smoothedCache = new Map<number, Float32Array>();
  const smoothed = (k: number): Float32Array => {
    let s = smoothedCache.get(k);
    if (!s) smoothedCache.set(k, (s = smoothSlice(sliceOf(volume.data, dims, k), plane)));
    return s;
  };
  const intensity = intensityModel(smoothed(key), plane, box, {
    sigmas: options.sigmas ?? 2,
    coreFraction: options.coreFraction ?? 0.5,
    minSpread: options.minSpread ?? 15,
  });
  const filter = (mask: SliceMask, k: number): SliceMask => {
    if ((options.sigmas ?? 2) > 0)
      applyIntensityFilter(mask, smoothed(k), sliceOf(volume.data, dims, k), intensity);
    return fillHoles(largestComponent2d(mask, plane), plane);
  };

  const session = await engine.open({
    volume,
    windowed,
    window,
    intensity,
    smoothed,
    signal: options.signal,
  });
  let visited = 0;
  try {
    // 3. Prompt on the key slice and propagate forward to the last slice.
    const pass = async (direction: 1 | -1) => {
      const mask = new Uint8Array(volume.data.length);
      const name = direction === 1 ? 'forward' : 'backward';
      let previous = filter(await session.segmentBox(key, box), key);
      visited++;
      const keyArea = area(previous);
      sliceOf(mask, dims, key).set(previous);
      options.onSlice?.({ slice: key, direction: name, area: keyArea });
      let stop: { reason: StopReason; at: number } = {
        reason: 'end-of-volume',
        at: direction === 1 ? dims[2] : -1,
      };
      if (keyArea === 0) return { mask, stop: { reason: 'vanished' as StopReason, at: key } };
      for (let k = key + direction; k >= 0 && k < dims[2]; k += direction) {
        throwIfAborted(options.signal);
        const current = filter(await session.propagate(k, previous, k - direction), k);
        visited++;
        const reason = stopReason(area(current), area(previous), keyArea, options);
        if (reason) {
          stop = { reason, at: k };
          break;
        }
        sliceOf(mask, dims, k).set(current);
        options.onSlice?.({ slice: k, direction: name, area: area(current) });
        previous = current;
      }
      return { mask, stop };
    };
    const forward = await pass(1);
    // 4. Reset, prompt again, propagate backward to the first slice.
    session.reset();
    const backward = await pass(-1);

    // 5. OR of both passes, then the largest 3D connected component.
    const mask = largestComponent3d(orMasks(forward.mask, backward.mask), dims);

    const voxels = area(mask);
    return {
      mask,
      voxels,
      millilitres: voxels * voxelMillilitres(volume),
      slices: sliceExtent(mask, dims),
      window,
      intensity,
      stopped: { forward: forward.stop, backward: backward.stop },
      slicesVisited: visited,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await session.close();
  }
}

/**
 * The stopping rule: a pass ends when the mask vanishes, shrinks below a fraction of the key
 * slice's area (an organ's tapering end, or a model's residual blob), or jumps in area (a leak
 * into a neighbour of similar intensity).
 */
export function stopReason(
  current: number,
  previous: number,
  keyArea: number,
  options: Pick<PipelineOptions, 'minAreaFraction' | 'maxGrowth'> = {},
): StopReason | undefined {
  if (current === 0) return 'vanished';
  if (current < (options.minAreaFraction ?? 0.05) * keyArea) return 'shrank';
  if (current > (options.maxGrowth ?? 1.8) * previous && current > 16) return 'grew';
  return undefined;
}

function sliceExtent(mask: Uint8Array, dims: [number, number, number]): [number, number] | undefined {
  let first = -1;
  let last = -1;
  for (let k = 0; k < dims[2]; k++) {
    if (area(sliceOf(mask, dims, k)) > 0) {
      if (first < 0) first = k;
      last = k;
    }
  }
  return first < 0 ? undefined : [first, last];
}
