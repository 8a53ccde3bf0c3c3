// Shared by the heat-map layer viewer tests: a synthetic slide whose colour encodes position (cell
// (c, r) is [step c + 8, step r + 8, 128]), written as a tiled pyramidal TIFF, and the `position`
// model whose value on a cell is therefore a known function of (c, r), and a heat-map job of it.
import sharp from 'sharp';
import { expect } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import type { ModelFolder } from '../ai/model-dir.js';
import { pointwiseConvSigmoid } from '../support/onnx-writer.js';
import { request, until } from '../support/server.js';

/** A grid of `columns` x `rows` cells of `cell` pixels, the colour stepping by `step` a cell. */
export interface Grid {
  columns: number;
  rows: number;
  cell: number;
  step: number;
}

/** Slide colour of cell (c, r). */
export const gridColour = (g: Grid, c: number, r: number): number[] => [g.step * c + 8, g.step * r + 8, 128];

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** The `position` model's value on cell (c, r): sigmoid(4 R/255 + 2 G/255 - 3). */
export const gridValue = (g: Grid, c: number, r: number): number =>
  sigmoid((4 * (g.step * c + 8)) / 255 + (2 * (g.step * r + 8)) / 255 - 3);

/** Writes the grid as a tiled pyramidal TIFF (128 tiles, deflate, 2 pixels per cm) to each file. */
export async function writeGridSlide(g: Grid, ...files: string[]): Promise<void> {
  const width = g.columns * g.cell;
  const height = g.rows * g.cell;
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      rgb.set(gridColour(g, Math.floor(x / g.cell), Math.floor(y / g.cell)), (y * width + x) * 3);
  for (const file of files)
    await sharp(rgb, { raw: { width, height, channels: 3 } })
      .tiff({
        tile: true,
        tileWidth: 128,
        tileHeight: 128,
        pyramid: true,
        compression: 'deflate',
        predictor: 'none',
        resolutionUnit: 'cm',
        xres: 2,
        yres: 2,
      })
      .toFile(file);
}

/** The heat-map model over `cell` x `cell` patches: sigmoid(4 R + 2 G - 3), R and G in 0..1. */
export function positionModel(cell: number): ModelFolder {
  return {
    onnx: pointwiseConvSigmoid({ channels: 3, size: cell, weights: [4, 2, 0], bias: -3 }),
    json: {
      task: 'heatmap',
      input: { name: 'image', width: cell, height: cell, channels: 3 },
      output: { name: 'map', activation: 'none' },
    },
  };
}

/**
 * Starts a heat-map job of the `position` model over `slide` (one patch a cell, at `mpp`, every
 * cell) and waits up to `ms` until it is done or failed; `sign` turns each path into the one
 * requested (a signed URL with auth on). Returns the job's id.
 */
export async function positionJob(
  server: RunningServer,
  slide: string,
  mpp: number,
  cell: number,
  ms: number,
  sign: (path: string) => string = (p) => p,
): Promise<string> {
  const started = await request(server, sign(`/ai/models/position/slides/${slide}/heatmap`), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ mpp, tileSize: cell, minTissue: 0 }),
  });
  expect(started.status).toBe(202);
  const { id } = started.json() as { id: string };
  await until(async () => {
    const job = (await request(server, sign(`/ai/jobs/${id}`))).json() as { state: string };
    return job.state === 'done' || job.state === 'failed';
  }, ms);
  return id;
}
