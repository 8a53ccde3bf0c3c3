// A finished heat-map grid as a slide: each cell becomes a `cellPixels` square of colour (the
// ramp of colour-ramp.ts; background cells white), written as a tiled pyramidal TIFF
// (sharp/libvips, 256 tiles, lossless deflate) that the slide registry opens like a stored slide.
// Placed over the source slide, the map covers level-0 pixels [0, width) x [0, height).

import sharp from 'sharp';
import { rampColour } from './colour-ramp.js';

/** Where the map lies on its source slide, in the source's level-0 pixels. */
export interface HeatmapOverlay {
  /** The derived slide's id (tile, IIIF and Deep Zoom routes). */
  slide: string;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Map pixels per grid cell (nearest-neighbour upscaling, so cells stay crisp at every zoom). */
  cellPixels: number;
  /** The colour ramp, low to high, as [value, "#rrggbb"] stops. Background cells are white. */
  legend: [number, string][];
}

// The ramp lives in colour-ramp.ts (the radiology viewer bundles it too).
export { RAMP, legend, rampColour } from './colour-ramp.js';

/** Map side targeted: cells are upscaled by an integer factor up to about this many pixels. */
const TARGET_SIDE = 4096;

/** The cell upscaling for a grid: 1..64, the map's longer side at most ~TARGET_SIDE. */
export function cellPixelsFor(columns: number, rows: number): number {
  return Math.max(1, Math.min(64, Math.floor(TARGET_SIDE / Math.max(columns, rows))));
}

/** The colour-mapped grid as a tiled pyramidal TIFF. */
export async function heatmapTiff(
  values: (number | null)[],
  columns: number,
  rows: number,
  cellPixels: number,
): Promise<Buffer> {
  const width = columns * cellPixels;
  const height = rows * cellPixels;
  const rgb = Buffer.alloc(width * height * 3, 255);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      const v = values[r * columns + c];
      if (v === null || v === undefined) continue;
      const colour = rampColour(v);
      for (let y = r * cellPixels; y < (r + 1) * cellPixels; y++)
        for (let x = c * cellPixels; x < (c + 1) * cellPixels; x++) rgb.set(colour, (y * width + x) * 3);
    }
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .tiff({
      tile: true,
      tileWidth: 256,
      tileHeight: 256,
      pyramid: true,
      compression: 'deflate',
      predictor: 'none',
    })
    .toBuffer();
}
