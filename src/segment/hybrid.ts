// The `hybrid` engine: SAM's shape, prompted by the classical engine's intensity model. Key slice:
// the classical (threshold-and-grow) region inside the user's box gives a tight box (its bounding
// box, widened by 1 px) and a positive point at its deepest pixel, and SAM segments from those
// instead of the user's loose box; sides of that box the SAM mask reaches are widened (2 px a
// round, within the user's box) until it no longer does. Propagation: each slice is prompted
// from the previous slice's (filtered) mask the same way (bounding box + 1 px, deepest point). The pipeline's HU filter and
// stopping rule apply as for every engine. Measured on the fixtures in BENCHMARKS.md (issue 18).

import { ClassicalEngine } from './classical.js';
import type { Box, EngineInput, EngineSession, SegmentationEngine, SliceMask } from './engine.js';
import { type Plane, boundingBox, deepestPoint, largestComponent2d } from './mask2d.js';
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

export class HybridEngine implements SegmentationEngine {
  readonly name = 'hybrid';
  constructor(
    private readonly sam: SamEngine,
    private readonly classical: SegmentationEngine = new ClassicalEngine(),
  ) {}

  async open(input: EngineInput): Promise<EngineSession> {
    const plane: Plane = { width: input.volume.dims[0], height: input.volume.dims[1] };
    const classical = await this.classical.open(input);
    let sam: SamSession;
    try {
      sam = await this.sam.open(input);
    } catch (e) {
      await classical.close();
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
        const region = await classical.segmentBox(k, box);
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
        return mask;
      },
      async propagate(k, previous) {
        const box = boundingBox(previous, plane);
        if (!box) return new Uint8Array(previous.length);
        return ask(k, previous, box);
      },
      reset() {
        classical.reset();
        sam.reset();
      },
      async close() {
        await Promise.allSettled([classical.close(), sam.close()]);
      },
    };
  }

  async close(): Promise<void> {
    await this.classical.close();
    await this.sam.close();
  }
}
