// A finished heat-map grid as a slide: each cell becomes a `cellPixels` square of colour (the
// ramp below; background cells white), written as a tiled pyramidal TIFF (sharp/libvips, 256
// tiles, lossless deflate) that the slide registry opens like a stored slide. Placed over the
// source slide, the map covers level-0 pixels [0, width) x [0, height) (`HeatmapOverlay`).

import sharp from 'sharp';

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

/** Red-yellow-blue (ColorBrewer RdYlBu, reversed): value 0 blue, 0.5 pale yellow, 1 red. */
export const RAMP: [number, [number, number, number]][] = [
  [0, [44, 123, 182]],
  [0.25, [171, 217, 233]],
  [0.5, [255, 255, 191]],
  [0.75, [253, 174, 97]],
  [1, [215, 25, 28]],
];

/** The ramp's colour for a value in 0..1 (clamped), linearly interpolated and rounded. */
export function rampColour(value: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, value));
  for (let i = 1; i < RAMP.length; i++) {
    const [v1, c1] = RAMP[i];
    if (v <= v1) {
      const [v0, c0] = RAMP[i - 1];
      const t = (v - v0) / (v1 - v0);
      return [0, 1, 2].map((k) => Math.round(c0[k] + (c1[k] - c0[k]) * t)) as [number, number, number];
    }
  }
  return RAMP[RAMP.length - 1][1];
}

const hex = (c: number[]) => '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');

export function legend(): [number, string][] {
  return RAMP.map(([v, c]) => [v, hex(c)]);
}

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
