// The whole-slide viewer's heat-map layer in Chromium: a synthetic slide whose colour encodes
// position (red = column band, green = row band), a model with known weights whose output is
// therefore a known function of position, a heat-map job over it, and the rendered page read back
// pixel by pixel: every probed cell centre shows the ramp colour of f(column, row) at the home
// view and zoomed in, and the slide itself when the layer is switched off.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rampColour } from '../../src/ai/heatmap-pyramid.js';
import type { RunningServer } from '../../src/cli/serve.js';
import { modelsDir } from '../ai/model-dir.js';
import { request, startTestServer } from '../support/server.js';
import {
  gridColour,
  gridValue,
  positionJob,
  positionModel,
  writeGridSlide,
  type Grid,
} from './heatmap-grid.js';
import { launchChromium, T, waitReady } from './helpers.js';

const CELL = 32;
const COLUMNS = 16;
const ROWS = 12;
const SLIDE = 'grid.tif';
const GRID: Grid = { columns: COLUMNS, rows: ROWS, cell: CELL, step: 16 };
/** Slide colour of cell (c, r). */
const colour = (c: number, r: number) => gridColour(GRID, c, r);
/** The model's value on cell (c, r). */
const f = (c: number, r: number) => gridValue(GRID, c, r);

let dir: string;
let models: Awaited<ReturnType<typeof modelsDir>>;
let server: RunningServer;
let browser: Browser;
let jobId: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-heatmap-view-'));
  const width = COLUMNS * CELL;
  await writeGridSlide(GRID, path.join(dir, SLIDE));
  models = await modelsDir({ position: positionModel(CELL) });
  [server, browser] = await Promise.all([
    startTestServer(dir, ['--models-dir', models.dir]),
    launchChromium(),
  ]);
  const meta = (await request(server, `/slides/${SLIDE}`)).json() as { mpp_x: number; width: number };
  expect(meta.width).toBe(width);
  jobId = await positionJob(server, SLIDE, meta.mpp_x, CELL, T);
}, T);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await models?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Colours on the viewer's canvas at the centres of the given cells (slide level-0 pixels). */
async function probe(page: Page, cells: [number, number][]): Promise<(number[] | null)[]> {
  // A string: the test's TypeScript has no DOM types, and the page's OpenSeadragon is bundled.
  return page.evaluate(`(() => {
    const viewer = window.medstreamViewer;
    const item = viewer.world.getItemAt(0);
    const canvas = viewer.drawer.canvas;
    const ctx = canvas.getContext('2d');
    const ratio = canvas.width / canvas.clientWidth;
    return ${JSON.stringify(cells)}.map(([c, r]) => {
      const vp = item.imageToViewportCoordinates((c + 0.5) * ${CELL}, (r + 0.5) * ${CELL});
      const p = viewer.viewport.viewportToViewerElementCoordinates(vp);
      const x = Math.round(p.x * ratio);
      const y = Math.round(p.y * ratio);
      if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return null;
      return [...ctx.getImageData(x, y, 1, 1).data.slice(0, 3)];
    });
  })()`);
}

async function settled(page: Page): Promise<void> {
  await page.waitForFunction(
    `(() => {
      const v = window.medstreamViewer;
      if (!v || document.body.dataset.heatmap !== 'ready' || document.body.dataset.loading !== 'false') return false;
      const vp = v.viewport;
      return Math.abs(vp.getZoom(true) - vp.getZoom(false)) < 1e-9 && vp.getCenter(true).distanceTo(vp.getCenter(false)) < 1e-9;
    })()`,
    undefined,
    { timeout: T },
  );
  // One more frame drawn after the last tile arrived.
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
}

const near = (got: number[] | null, want: number[], tolerance = 3) =>
  got !== null && got.every((v, i) => Math.abs(v - want[i]) <= tolerance);

describe('heat-map layer in the whole-slide viewer', () => {
  it('draws f(position) in the ramp colours aligned with the slide at every zoom, and toggles off', async () => {
    const job = (await request(server, `/ai/jobs/${jobId}`)).json() as {
      state: string;
      columns: number;
      rows: number;
      values: number[];
    };
    expect([job.state, job.columns, job.rows]).toEqual(['done', COLUMNS, ROWS]);
    job.values.forEach((v, i) => expect(v).toBeCloseTo(f(i % COLUMNS, Math.floor(i / COLUMNS)), 5));

    const context = await browser.newContext({ viewport: { width: 1024, height: 700 }, bypassCSP: true });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${server.url}/view/${SLIDE}?heatmap=${jobId}`);
      await waitReady(page);
      await page.waitForSelector('.heatmap-controls', { timeout: T });
      expect(await page.locator('.heatmap-title').innerText()).toContain('position');
      // Colours as they are: normal blend, fully opaque.
      await page.selectOption('#heatmap-blend', 'source-over');
      await page.locator('#heatmap-opacity').fill('1');
      await settled(page);

      const all: [number, number][] = [];
      for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLUMNS; c++) all.push([c, r]);
      const home = await probe(page, all);
      const wrongHome = all.filter(([c, r], i) => !near(home[i], rampColour(f(c, r))));
      expect(wrongHome, JSON.stringify(wrongHome.slice(0, 5))).toEqual([]);

      // Zoomed in around cell (11, 7): a few cells fill the view, still each its own colour.
      await page.evaluate(`(() => {
        const v = window.medstreamViewer;
        v.viewport.zoomTo(v.viewport.getZoom() * 6, undefined, true);
        v.viewport.panTo(v.world.getItemAt(0).imageToViewportCoordinates(${11.5 * CELL}, ${7.5 * CELL}), true);
      })()`);
      await settled(page);
      const zoomed = await probe(page, all);
      const visible = all.filter((_, i) => zoomed[i] !== null);
      expect(visible.length).toBeGreaterThan(3);
      expect(visible.length).toBeLessThan(40);
      const wrongZoomed = visible.filter(
        ([c, r]) => !near(zoomed[all.findIndex(([cc, rr]) => cc === c && rr === r)], rampColour(f(c, r))),
      );
      expect(wrongZoomed).toEqual([]);

      // Switched off: the slide's own colours.
      await page.locator('#heatmap-show').uncheck();
      await settled(page);
      const off = await probe(page, visible);
      visible.forEach(([c, r], i) => expect(near(off[i], colour(c, r), 4), `cell ${c},${r}`).toBe(true));
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
