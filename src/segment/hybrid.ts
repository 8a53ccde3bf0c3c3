// The `hybrid` engine: SAM's shape, prompted by the classical engine's intensity model. Key slice:
// the classical (threshold-and-grow) region inside the user's box gives a tight box (its bounding
// box, widened by 1 px) and a positive point at its deepest pixel, and SAM segments from those
// instead of the user's loose box; sides of that box the SAM mask reaches are widened (2 px a
// round, within the user's box) until it no longer does. Propagation: each slice is prompted
// from the previous slice's (filtered) mask the same way (bounding box + 1 px, deepest point), and
// SAM's mask is kept only within 3 mm of classical support (`supportedMask`). The pipeline's HU
// filter and stopping rule apply as for every engine. Measured on the fixtures in BENCHMARKS.md (issue 18).

import { columnNorm } from '../volumes/affine.js';
import { ClassicalEngine } from './classical.js';
import type { Box, EngineInput, EngineSession, SegmentationEngine, SliceMask } from './engine.js';
import { type Plane, boundingBox, deepestPoint, dilate, largestComponent2d } from './mask2d.js';
import type { PromptPoint, SamEngine, SamSession } from './sam.js';

/** Pixels the prompt box reaches past the reference mask's bounding box (see BENCHMARKS.md). */
export const BOX_MARGIN = 1;

/**
 * The bounding box of `mask` widened by `margin` px (clipped to the plane) and a positive point at
 * the mask's deepest pixel; `fallback` and no point when the mask is empty.
 */
export function promptFromMask(
  mask: SliceMask,
  plane: Plane,
  fallback: Box,
  margin = BOX_MARGIN,
): { box: Box; points: PromptPoint[] } {
  const tight = boundingBox(mask, plane);
  const point = deepestPoint(mask, plane);
  if (!tight || !point) return { box: fallback, points: [] };
  const box = {
    x0: Math.max(0, tight.x0 - margin),
    y0: Math.max(0, tight.y0 - margin),
    x1: Math.min(plane.width - 1, tight.x1 + margin),
    y1: Math.min(plane.height - 1, tight.y1 + margin),
  };
  return { box, points: [{ ...point, label: 1 }] };
}

/** Pixels a side of the key slice's prompt box moves per refit round, and the most rounds. */
export const REFIT_STEP = 2;
export const REFIT_ROUNDS = 10;

/**
 * One refit round of the key slice's prompt box: every side that the mask reaches is moved out by
 * `step` px (the structure goes on past it), never beyond `limit` (the user's box). Returns the
 * same box object when nothing moves.
 */
export function widenWhereTouching(prompt: Box, mask: Box | undefined, limit: Box, step = REFIT_STEP): Box {
  if (!mask) return prompt;
  const next = {
    x0: mask.x0 <= prompt.x0 ? Math.max(limit.x0, prompt.x0 - step) : prompt.x0,
    y0: mask.y0 <= prompt.y0 ? Math.max(limit.y0, prompt.y0 - step) : prompt.y0,
    x1: mask.x1 >= prompt.x1 ? Math.min(limit.x1, prompt.x1 + step) : prompt.x1,
    y1: mask.y1 >= prompt.y1 ? Math.min(limit.y1, prompt.y1 + step) : prompt.y1,
  };
  const same =
    next.x0 === prompt.x0 && next.y0 === prompt.y0 && next.x1 === prompt.x1 && next.y1 === prompt.y1;
  return same ? prompt : next;
}

/** Ring (px) around SAM's key-slice mask whose intensities the second support region rejects. */
export const SUPPORT_RING = 6;
/** How far (px) SAM's mask may reach past the support regions, by default. */
export const SUPPORT_MARGIN = 1;
/** The engine's reach past the support regions, mm (1 px of a 3 mm slice, 3 px of a 1 mm one). */
export const SUPPORT_MARGIN_MM = 3;

/**
 * SAM's mask kept where the classical engine supports it: `sam` ∩ (the union of the `supports`
 * dilated by `margin` px). SAM's shape follows outlines the intensity test cannot see (a kidney's
 * sinus, a lower pole next to muscle); the classical regions drop what SAM adds past the structure's
 * own intensities (a band of body wall along the liver, vessels at its hilum). A new array.
 */
export function supportedMask(
  sam: SliceMask,
  supports: SliceMask[],
  plane: Plane,
  margin = SUPPORT_MARGIN,
): SliceMask {
  const union = new Uint8Array(sam.length);
  for (const s of supports) for (let i = 0; i < s.length; i++) union[i] |= s[i];
  const near = dilate(union, plane, margin);
  const out = new Uint8Array(sam.length);
  for (let i = 0; i < out.length; i++) out[i] = sam[i] & near[i];
  return out;
}

export class HybridEngine implements SegmentationEngine {
  readonly name = 'hybrid';
  /** Support regions: classical propagation with the box's intensity test, and one re-learnt from SAM's key mask. */
  private readonly classical = new ClassicalEngine({ keepAllSeeded: true });
  constructor(private readonly sam: SamEngine) {}

  async open(input: EngineInput): Promise<EngineSession> {
    const plane: Plane = { width: input.volume.dims[0], height: input.volume.dims[1] };
    const { affine } = input.volume;
    const pixel = Math.min(columnNorm(affine, 0), columnNorm(affine, 1)) || 1;
    const margin = Math.max(1, Math.round(SUPPORT_MARGIN_MM / pixel));
    // Both support sessions see the same volume and pipeline intensity model; they differ in their
    // contrast test: the user's box core against its border, or SAM's key mask against a ring around it.
    const boxSupport = await this.classical.open(input);
    const maskSupport = await this.classical.open(input);
    let sam: SamSession;
    try {
      sam = await this.sam.open(input);
    } catch (e) {
      await Promise.allSettled([boxSupport.close(), maskSupport.close()]);
      throw e;
    }
    const decode = async (k: number, box: Box, points: PromptPoint[]): Promise<SliceMask> =>
      largestComponent2d(await sam.segmentPrompt(k, box, points), plane);
    const ask = async (k: number, reference: SliceMask, fallback: Box): Promise<SliceMask> => {
      const { box, points } = promptFromMask(reference, plane, fallback);
      return decode(k, box, points);
    };
    return {
      async segmentBox(k, box) {
        // The classical region is the prompt's source only; SAM's mask is what comes back.
        const region = await boxSupport.segmentBox(k, box);
        const first = promptFromMask(region, plane, box);
        let prompt = first.box;
        let mask = await decode(k, prompt, first.points);
        // A classical region covering only part of the structure gives too small a box: widen the
        // sides SAM's mask reaches (the structure goes on there), within the user's box.
        for (let round = 0; round < REFIT_ROUNDS; round++) {
          const next = widenWhereTouching(prompt, boundingBox(mask, plane), box);
          if (next === prompt) break;
          prompt = next;
          mask = await decode(k, prompt, first.points);
        }
        // The key slice keeps SAM's mask (the classical region may hold only part of the structure
        // there: that is what the refit is for); the second support learns its intensities from it.
        await maskSupport.segmentBox(k, box);
        maskSupport.learnFrom(k, mask, SUPPORT_RING);
        return mask;
      },
      async propagate(k, previous, from) {
        const box = boundingBox(previous, plane);
        if (!box) return new Uint8Array(previous.length);
        const supports = [
          await boxSupport.propagate(k, previous, from),
          await maskSupport.propagate(k, previous, from),
        ];
        return supportedMask(await ask(k, previous, box), supports, plane, margin);
      },
      reset() {
        boxSupport.reset();
        maskSupport.reset();
        sam.reset();
      },
      async close() {
        await Promise.allSettled([boxSupport.close(), maskSupport.close(), sam.close()]);
      },
    };
  }

  async close(): Promise<void> {
    await this.classical.close();
    await this.sam.close();
  }
}
