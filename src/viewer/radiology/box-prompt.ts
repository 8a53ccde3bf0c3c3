// A box drawn with the Box tool (Cornerstone3D's RectangleROI) as the segmentation service wants
// it (docs/segmentation.md, "The box and slice convention"): the key slice as the SOP Instance UID
// of the image it was drawn on, the box as inclusive pixel indices (x = column, y = row) of that
// image, and the window on screen. Only the stack or the axial MPR plane (the acquisition plane)
// can carry one: a box on a reformatted plane has no key slice.

import { metaData, utilities as csUtilities, type Types } from '@cornerstonejs/core';
import type { Types as ToolTypes } from '@cornerstonejs/tools';
import type { SeriesDisplay } from './display.js';
import { instanceOfImageId } from './labelmaps.js';

export interface BoxPrompt {
  series: string;
  instance?: string;
  slice?: number;
  box: [number, number, number, number];
  window?: [number, number];
}

/** The box of a RectangleROI annotation in pixel indices of its image, corners inclusive. */
export function pixelBox(
  imageId: string,
  points: Types.Point3[],
  size: { rows: number; columns: number },
): [number, number, number, number] {
  const xy = points.map((p) => csUtilities.worldToImageCoords(imageId, p) as [number, number]);
  const xs = xy.map((p) => p[0]);
  const ys = xy.map((p) => p[1]);
  // worldToImageCoords puts 0 at the first pixel's outer edge: pixel i spans [i, i + 1), so the
  // pixels a box touches are floor(min) .. ceil(max) - 1.
  const clamp = (v: number, n: number) => Math.max(0, Math.min(n - 1, v));
  return [
    clamp(Math.floor(Math.min(...xs)), size.columns),
    clamp(Math.floor(Math.min(...ys)), size.rows),
    clamp(Math.ceil(Math.max(...xs)) - 1, size.columns),
    clamp(Math.ceil(Math.max(...ys)) - 1, size.rows),
  ];
}

/** The prompt of box annotation `a` on `display`, or why it cannot be one. */
export function boxPrompt(display: SeriesDisplay, a: ToolTypes.Annotation): BoxPrompt | { refused: string } {
  const main = display.mainViewport();
  if (display.layout === 'mpr') {
    const normal = main.getCamera().viewPlaneNormal ?? [0, 0, 0];
    const n = a.metadata?.viewPlaneNormal ?? [0, 0, 0];
    if (Math.abs(normal[0] * n[0] + normal[1] * n[1] + normal[2] * n[2]) < 0.999)
      return { refused: 'Draw the box on the axial plane (or in the stack).' };
  }
  const ids = display.series.imageIds;
  let imageId = a.metadata?.referencedImageId;
  if (!imageId || !ids.includes(imageId))
    imageId = (main as { getCurrentImageId?(): string }).getCurrentImageId?.();
  if (!imageId || !ids.includes(imageId)) return { refused: 'The box is not on a slice of this series.' };
  const size = metaData.get('imagePlaneModule', imageId) as { rows: number; columns: number };
  const box = pixelBox(imageId, (a.data.handles?.points ?? []) as Types.Point3[], size);
  if (box[2] <= box[0] || box[3] <= box[1])
    return { refused: 'The box is too small: draw it around the structure.' };
  const voi = main.getProperties()?.voiRange;
  const at = instanceOfImageId(imageId);
  return {
    series: display.series.seriesUid,
    // Single-frame images by instance; a frame of a multi-frame instance by its index.
    ...(at && at.frame === 1 ? { instance: at.sop } : { slice: ids.indexOf(imageId) }),
    box,
    window: voi ? [Math.round(voi.lower), Math.round(voi.upper)] : undefined,
  };
}
