// The whole-slide viewer's heat-map layer with --auth-enabled, in Chromium: the page opened from a
// signed /view link gets a viewer token for its slide, and that token (sent as `vt` like the
// tile requests) reads the heat-map job made over that slide and its pyramid's tiles, so the
// layer draws each cell in the ramp colour of the model's value with no 401. Over HTTP: the token
// of another slide, no credential, and a DELETE with a viewer token are refused.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rampColour } from '../../src/ai/heatmap-pyramid.js';
import type { RunningServer } from '../../src/cli/serve.js';
import { signUrl, viewerToken } from '../../src/server/auth.js';
import { modelsDir } from '../ai/model-dir.js';
import { request, startTestServer } from '../support/server.js';
import { gridValue, positionJob, positionModel, writeGridSlide, type Grid } from './heatmap-grid.js';
import { launchChromium, T, waitReady } from './helpers.js';

const SECRET = 'heatmap-auth-secret-0123456789abcdef0123456789';
const CELL = 32;
const COLUMNS = 8;
const ROWS = 6;
const SLIDE = 'grid.tif';
const OTHER = 'other.tif';
const GRID: Grid = { columns: COLUMNS, rows: ROWS, cell: CELL, step: 32 };
/** The model's value on cell (c, r). */
const f = (c: number, r: number) => gridValue(GRID, c, r);

let dir: string;
let models: Awaited<ReturnType<typeof modelsDir>>;
let server: RunningServer;
let browser: Browser;
let jobId: string;

const exp = () => Math.floor(Date.now() / 1000) + 600;
const signed = (p: string, query = '') =>
  signUrl({ path: p, query, exp: exp(), secret: SECRET }).pathAndQuery;
const withVt = (p: string, slide: string) => {
  const e = exp();
  return `${p}${p.includes('?') ? '&' : '?'}vt=${viewerToken(SECRET, slide, e)}&exp=${e}`;
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-heatmap-auth-'));
  await writeGridSlide(GRID, path.join(dir, SLIDE), path.join(dir, OTHER));
  models = await modelsDir({ position: positionModel(CELL) });
  [server, browser] = await Promise.all([
    startTestServer(dir, ['--models-dir', models.dir, '--auth-enabled', '--auth-secret', SECRET]),
    launchChromium(),
  ]);
  const meta = (await request(server, signed(`/slides/${SLIDE}`))).json() as { mpp_x: number };
  jobId = await positionJob(server, SLIDE, meta.mpp_x, CELL, T, (p) => signed(p));
}, T);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await models?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('heat-map layer with auth on', () => {
  it(
    'reads the job and its tiles with the page viewer token and draws the ramp colours',
    { timeout: T },
    async () => {
      const context = await browser.newContext({ viewport: { width: 900, height: 700 }, bypassCSP: true });
      try {
        const page = await context.newPage();
        const refused: string[] = [];
        const jobReads: string[] = [];
        page.on('response', (r) => {
          if (r.status() === 401 || r.status() === 403) refused.push(`${r.status()} ${r.url()}`);
          if (r.url().includes(`/ai/jobs/${jobId}`)) jobReads.push(`${r.status()} ${r.url()}`);
        });
        await page.goto(server.url + signed(`/view/${SLIDE}`, `heatmap=${jobId}`));
        await waitReady(page);
        await page.waitForSelector('.heatmap-controls', { timeout: T });
        await page.selectOption('#heatmap-blend', 'source-over');
        await page.locator('#heatmap-opacity').fill('1');
        await page.waitForFunction(`document.body.dataset.heatmap === 'ready'`, undefined, { timeout: T });
        await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
        // The job was read with the page's viewer token, as the tiles are.
        expect(jobReads).toHaveLength(1);
        expect(jobReads[0]).toMatch(/^200 .*[?&]vt=[0-9a-f]{64}&exp=\d+/);
        const cells: [number, number][] = [];
        for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLUMNS; c++) cells.push([c, r]);
        const got = (await page.evaluate(`(() => {
        const viewer = window.medstreamViewer;
        const item = viewer.world.getItemAt(0);
        const canvas = viewer.drawer.canvas;
        const ctx = canvas.getContext('2d');
        const ratio = canvas.width / canvas.clientWidth;
        return ${JSON.stringify(cells)}.map(([c, r]) => {
          const p = viewer.viewport.viewportToViewerElementCoordinates(
            item.imageToViewportCoordinates((c + 0.5) * ${CELL}, (r + 0.5) * ${CELL}));
          return [...ctx.getImageData(Math.round(p.x * ratio), Math.round(p.y * ratio), 1, 1).data.slice(0, 3)];
        });
      })()`)) as number[][];
        const wrong = cells.filter(([c, r], i) =>
          rampColour(f(c, r)).some((v, k) => Math.abs(v - got[i][k]) > 3),
        );
        expect(wrong, JSON.stringify(wrong.slice(0, 4))).toEqual([]);
        expect(refused).toEqual([]);
      } finally {
        await context.close();
      }
    },
  );

  it('lets only a viewer token of the job slide read it, and never cancel it', async () => {
    const job = (await request(server, withVt(`/ai/jobs/${jobId}`, SLIDE))).json() as {
      state: string;
      overlay: { dzi: string; slide: string };
      map: string;
    };
    expect(job.state).toBe('done');
    expect((await request(server, withVt(job.map, SLIDE))).status).toBe(200);
    expect((await request(server, withVt(job.overlay.dzi, SLIDE))).status).toBe(200);
    const overlayTile = `/slides/${encodeURIComponent(job.overlay.slide)}/dzi_files/0/0_0.png`;
    expect((await request(server, withVt(overlayTile, SLIDE))).status).toBe(200);
    for (const url of [
      withVt(`/ai/jobs/${jobId}`, OTHER),
      withVt(job.map, OTHER),
      withVt(job.overlay.dzi, OTHER),
      `/ai/jobs/${jobId}`,
      job.overlay.dzi,
      withVt('/ai/jobs/0b9f4a3e-0000-4000-8000-000000000000', SLIDE),
    ])
      expect((await request(server, url)).status, url).toBe(401);
    expect((await request(server, withVt(`/ai/jobs/${jobId}`, SLIDE), { method: 'DELETE' })).status).toBe(
      401,
    );
    expect((await request(server, signed(`/ai/jobs/${jobId}`))).json()).toMatchObject({ state: 'done' });
  });
});
