// The radiology viewer's AI overlay in Chromium: a segmentation model with known weights (mask =
// HU >= -20) runs over the phantom CT series (an ellipsoid of 60 HU in -100 HU), and the viewer
// opened at `#study=…&series=…&ai={result}` with a window of width 2 around -20 HU shows the CT
// white exactly where the mask is. So on screen, wherever the CT canvas is clearly white the
// overlay canvas is coloured, and wherever it is black the overlay is clear — the layers line up,
// checked at every probed screen pixel away from edges, on the first slice shown and after
// scrolling to another one (which has a different mask), and zoomed in.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { modelsDir } from '../ai/model-dir.js';
import { phantom } from '../segment/phantom.js';
import { pointwiseConvSigmoid } from '../support/onnx-writer.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';
import { request, startIndexedServer, startTestServer } from '../support/server.js';
import { launchChromium, T, waitReady } from './helpers.js';

let dir: string;
let models: Awaited<ReturnType<typeof modelsDir>>;
let server: RunningServer;
let browser: Browser;
let ct: PhantomSeries;
let resultId: string;
/** The heat-map model's result over the DICOM phantom. */
let mapId: string;
let instances: string[];
/** The same phantom as a NIfTI volume (its own study) and its series result. */
let nifti: { study: string; series: string; result: string };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-ai-overlay-'));
  ct = await writePhantomSeries(path.join(dir, 'phantom'));
  const [nx, ny] = ct.dims;
  models = await modelsDir({
    lesion: {
      // x = (HU + 1000) / 2000; sigmoid(200 x - 98) >= 0.5  <=>  HU >= -20.
      onnx: pointwiseConvSigmoid({ channels: 1, size: nx, weights: [200], bias: -98 }),
      json: {
        task: 'segmentation',
        input: { name: 'image', width: nx, height: ny, channels: 1 },
        preprocess: { scaling: { type: 'fixed', min: -1000, max: 1000 } },
        labels: ['background', 'lesion'],
        output: { name: 'map', activation: 'none' },
      },
    },
    // The same function as a probability map: ~1 (red) in the lesion, ~0.0003 (0: clear) outside.
    lesionmap: {
      onnx: pointwiseConvSigmoid({ channels: 1, size: nx, weights: [200], bias: -98 }),
      json: {
        task: 'heatmap',
        input: { name: 'image', width: nx, height: ny, channels: 1 },
        preprocess: { scaling: { type: 'fixed', min: -1000, max: 1000 } },
        output: { name: 'map', activation: 'none' },
      },
    },
  });
  await mkdir(path.join(dir, 'nifti'));
  await writeFile(path.join(dir, 'nifti', 'phantom.nii.gz'), phantomNifti());
  await writeFile(path.join(dir, 'nifti', 'phantom.json'), JSON.stringify({ Modality: 'CT' }));
  [server, browser] = await Promise.all([
    startIndexedServer(dir, ['--models-dir', models.dir]),
    launchChromium(),
  ]);
  const res = await request(server, '/ai/models/lesion/infer', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ study: ct.studyUid, series: ct.seriesUid }),
  });
  expect(res.status).toBe(200);
  resultId = (res.json() as { result: { id: string } }).result.id;
  const info = (await request(server, `/ai/results/${resultId}.json`)).json() as {
    task: string;
    slices: { instance: string }[];
  };
  expect(info.task).toBe('segmentation');
  instances = info.slices.map((s) => s.instance);
  expect(new Set(instances).size).toBe(ct.dims[2]);
  const mapped = await request(server, '/ai/models/lesionmap/infer', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ study: ct.studyUid, series: ct.seriesUid }),
  });
  expect(mapped.status).toBe(200);
  mapId = (mapped.json() as { result: { id: string } }).result.id;

  // The NIfTI-backed series: its result names the slice instances the catalog serves.
  const studies = (await request(server, '/dicomweb/studies')).json() as Record<
    string,
    { Value: string[] }
  >[];
  const study = studies.map((x) => x['0020000D'].Value[0]).find((uid) => uid !== ct.studyUid)!;
  const [series] = (await request(server, `/dicomweb/studies/${study}/series`)).json() as Record<
    string,
    { Value: string[] }
  >[];
  const niftiSeries = series['0020000E'].Value[0];
  const inferred = await request(server, '/ai/models/lesion/infer', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ study, series: niftiSeries }),
  });
  expect(inferred.status).toBe(200);
  nifti = { study, series: niftiSeries, result: (inferred.json() as { result: { id: string } }).result.id };
  const niftiInfo = (await request(server, `/ai/results/${nifti.result}.json`)).json() as {
    format: string;
    slices: { instance?: string }[];
  };
  expect(niftiInfo.format).toBe('nifti');
  const served = (
    await request(server, `/dicomweb/studies/${study}/series/${niftiSeries}/instances`)
  ).json() as Record<string, { Value: string[] }>[];
  expect(new Set(niftiInfo.slices.map((x) => x.instance))).toEqual(
    new Set(served.map((x) => x['00080018'].Value[0])),
  );
}, T);

/** The phantom CT's HU as an int16 NIfTI-1 volume (1 x 1 x 2 mm, an sform), gzipped. */
function phantomNifti(): Buffer {
  const dims: [number, number, number] = [48, 48, 14];
  const { volume } = phantom(dims, [{ center: [24, 22, 7], radii: [11, 9, 5], hu: 60 }], {
    background: -100,
    noise: 8,
    seed: 3,
  });
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  [3, ...dims, 1, 1, 1, 1].forEach((d, i) => header.writeInt16LE(d, 40 + 2 * i));
  header.writeInt16LE(4, 70); // int16
  header.writeInt16LE(16, 72);
  [1, 1, 1, 2, 1, 0, 0, 0].forEach((p, i) => header.writeFloatLE(p, 76 + 4 * i));
  header.writeFloatLE(352, 108);
  header.writeInt16LE(1, 254); // sform_code
  [-1, 0, 0, 10, 0, -1, 0, -20, 0, 0, 2, -30].forEach((v, i) => header.writeFloatLE(v, 280 + 4 * i));
  header.write('n+1\0', 344, 'latin1');
  const data = Buffer.alloc(volume.data.length * 2);
  for (let p = 0; p < volume.data.length; p++) data.writeInt16LE(Math.round(volume.data[p]), 2 * p);
  return gzipSync(Buffer.concat([header, data]));
}

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await models?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Screen pixels of the viewport on a grid: the CT canvas grey (0..255) and the overlay canvas
 * alpha at the same place, skipping pixels whose 5x5 CT neighbourhood is not uniform (edges).
 */
async function layers(page: Page): Promise<{ white: number[]; black: number[] }> {
  return page.evaluate(`(() => {
    const el = document.querySelector('.rad-viewport');
    const ct = el.querySelector('canvas:not(.rad-ai-overlay)');
    const ai = el.querySelector('canvas.rad-ai-overlay');
    // Both canvases as pixels in CSS space (the CT canvas may be WebGL: copy it first).
    const w = el.clientWidth, h = el.clientHeight;
    const copy = (src) => {
      const c = document.createElement('canvas');
      c.width = w; c.height = h;
      const x = c.getContext('2d');
      x.drawImage(src, 0, 0, w, h);
      return x.getImageData(0, 0, w, h).data;
    };
    const a = copy(ct), b = copy(ai);
    const white = [], black = [];
    for (let y = 3; y < h - 3; y += 3) for (let x = 3; x < w - 3; x += 3) {
      const g = (xx, yy) => a[(yy * w + xx) * 4];
      const v = g(x, y);
      if (v > 40 && v < 215) continue;
      let uniform = true;
      for (let dy = -2; dy <= 2 && uniform; dy++) for (let dx = -2; dx <= 2; dx++)
        if ((g(x + dx, y + dy) > 127) !== (v > 127)) { uniform = false; break; }
      if (!uniform) continue;
      // Only the image: the black margin around it has neither.
      (v > 127 ? white : black).push(b[(y * w + x) * 4 + 3]);
    }
    return { white, black };
  })()`);
}

/** The composed canvas of an MPR viewport as RGBA pixels (CSS size). */
async function planePixels(page: Page, plane: string): Promise<{ w: number; h: number; data: number[] }> {
  return page.evaluate(`(() => {
    const el = document.querySelector('.rad-viewport[data-viewport=${plane}]');
    const src = el.querySelector('canvas');
    const w = el.clientWidth, h = el.clientHeight;
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const x = c.getContext('2d');
    x.drawImage(src, 0, 0, w, h);
    return { w, h, data: Array.from(x.getImageData(0, 0, w, h).data) };
  })()`);
}

/** An MPR viewport's pixels once rendering has settled (the same twice, 200 ms apart). */
async function settled(page: Page, plane: string): Promise<{ w: number; h: number; data: number[] }> {
  const sum = (): Promise<number> =>
    page.evaluate(`(() => {
      const el = document.querySelector('.rad-viewport[data-viewport=${plane}]');
      const src = el.querySelector('canvas');
      const c = document.createElement('canvas');
      c.width = el.clientWidth; c.height = el.clientHeight;
      const x = c.getContext('2d');
      x.drawImage(src, 0, 0, c.width, c.height);
      const d = x.getImageData(0, 0, c.width, c.height).data;
      let h = 0;
      for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0;
      return h;
    })()`);
  let last = await sum();
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const next = await sum();
    if (next === last) return planePixels(page, plane);
    last = next;
  }
  throw new Error(`${plane}: the viewport kept changing`);
}

/**
 * The MPR layer lines up: at screen pixels whose 5x5 CT neighbourhood (layer off) is uniformly
 * white the layer tints the pixel red; where it is black, the pixel stays black.
 */
function expectTinted(
  without: { w: number; h: number; data: number[] },
  withLayer: { data: number[] },
  plane: string,
): void {
  const { w, h } = without;
  const g = (x: number, y: number): number => without.data[(y * w + x) * 4];
  const tinted: boolean[] = [];
  const black: number[][] = [];
  for (let y = 3; y < h - 3; y += 3)
    for (let x = 3; x < w - 3; x += 3) {
      const v = g(x, y);
      if (v > 40 && v < 215) continue;
      let uniform = true;
      for (let dy = -2; dy <= 2 && uniform; dy++)
        for (let dx = -2; dx <= 2; dx++) if (g(x + dx, y + dy) > 127 !== v > 127) uniform = false;
      if (!uniform) continue;
      const i = (y * w + x) * 4;
      const [r, gg, b] = [withLayer.data[i], withLayer.data[i + 1], withLayer.data[i + 2]];
      if (v > 127) tinted.push(r - gg > 40 && r - b > 40);
      else black.push([r, gg, b]);
    }
  expect(tinted.length, `${plane}: white CT pixels probed`).toBeGreaterThan(20);
  expect(black.length, `${plane}: black CT pixels probed`).toBeGreaterThan(20);
  // Red over the lesion (class 1, or the ramp's top, at opacity 0.5), nothing over the background.
  expect(tinted.filter((t) => !t).length, `${plane}: untinted lesion pixels`).toBe(0);
  expect(
    black.filter((c) => Math.max(...c) > 8),
    `${plane}: coloured background pixels`,
  ).toEqual([]);
}

/** The paths of the page's requests under /ai/results/, in order (filled as they are made). */
function resultRequests(page: Page): string[] {
  const paths: string[] = [];
  page.on('request', (r) => {
    const { pathname } = new URL(r.url());
    if (pathname.startsWith('/ai/results/')) paths.push(pathname);
  });
  return paths;
}

async function nearest(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const vp = window.medstreamRadiology.view.display.mainViewport();
    vp.setProperties({ interpolationType: 0 });
    vp.render();
  })()`);
}

async function drawn(page: Page, slice?: number): Promise<void> {
  await page.waitForFunction(
    `document.body.dataset.aiOverlay === 'ready' && (${slice === undefined} || document.body.dataset.aiSlice === '${slice}')`,
    undefined,
    { timeout: T },
  );
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
}

function expectAligned(l: { white: number[]; black: number[] }, what: string): void {
  expect(l.white.length, `${what}: white CT pixels probed`).toBeGreaterThan(20);
  expect(l.black.length, `${what}: black CT pixels probed`).toBeGreaterThan(20);
  // Coloured where the CT is white (opacity 0.5 -> alpha ~128), clear where it is black.
  expect(
    l.white.filter((a) => a < 100),
    `${what}: clear overlay over lesion`,
  ).toEqual([]);
  expect(
    l.black.filter((a) => a > 0),
    `${what}: overlay outside the lesion`,
  ).toEqual([]);
}

describe('AI overlay in the radiology viewer', () => {
  it(
    'draws the mask of each slice over the CT, aligned, and follows scrolling and zoom',
    { timeout: T },
    async () => {
      const context = await browser.newContext({ viewport: { width: 900, height: 700 }, bypassCSP: true });
      try {
        const page = await context.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        const results = resultRequests(page);
        const key = ct.keySlice;
        await page.goto(
          `${server.url}/radiology/#study=${ct.studyUid}&series=${ct.seriesUid}&ww=2&wc=-20&slice=${key}&ai=${resultId}`,
        );
        await waitReady(page);
        // Crisp CT pixels (nearest neighbour), so pixel edges on screen are where the mask's are.
        await nearest(page);
        await drawn(page);
        const first = Number(await page.evaluate('document.body.dataset.aiSlice'));
        expectAligned(await layers(page), `slice ${first}`);

        // Another slice two steps away: a smaller cut through the ellipsoid, its own mask.
        await page.locator('.rad-viewport').first().hover();
        await page.keyboard.press('ArrowDown');
        await page.keyboard.press('ArrowDown');
        await page.waitForFunction(`document.body.dataset.aiSlice !== '${first}'`, undefined, { timeout: T });
        await nearest(page);
        await drawn(page);
        const second = Number(await page.evaluate('document.body.dataset.aiSlice'));
        expect(Math.abs(second - first)).toBe(2);
        expectAligned(await layers(page), `slice ${second}`);

        // Zoomed 2.5x: still aligned.
        await page.evaluate(`(() => {
        const vp = window.medstreamRadiology.view.display.mainViewport();
        vp.setZoom(vp.getZoom() * 2.5);
        vp.render();
      })()`);
        await drawn(page);
        expectAligned(await layers(page), 'zoomed');

        // Switched off: nothing drawn.
        await page.locator('#rad-ai-show').uncheck();
        await page.waitForFunction(`document.body.dataset.aiOverlay === 'hidden'`, undefined, { timeout: T });
        const off = await layers(page);
        expect(off.white.filter((a) => a > 0)).toEqual([]);
        // Lazy: the description, then the slices shown (the first, and at most the two scrolled through).
        expect(results[0]).toBe(`/ai/results/${resultId}.json`);
        const slices = results.filter((u) => u.includes('/slices/'));
        expect(slices.length).toBeGreaterThanOrEqual(2);
        expect(slices.length).toBeLessThanOrEqual(3);
        expect(results).toHaveLength(1 + slices.length);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    },
  );

  it.each([
    ['label map', () => resultId],
    ['probability map', () => mapId],
  ])(
    'shows a %s as a labelmap on the MPR planes, aligned in the sagittal one',
    { timeout: T },
    async (_, id) => {
      const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, bypassCSP: true });
      try {
        const page = await context.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        const results = resultRequests(page);
        await page.goto(
          `${server.url}/radiology/#study=${ct.studyUid}&series=${ct.seriesUid}&layout=mpr&ww=2&wc=-20&ai=${id()}`,
        );
        await waitReady(page);
        await page.waitForFunction(`document.body.dataset.aiOverlay === 'ready'`, undefined, { timeout: T });
        // The volume loaded (every frame written), then compare the plane without and with the layer.
        await page.waitForFunction(
          `(() => { const d = window.medstreamRadiology.view.display; return d.loadedCount === d.series.imageIds.length; })()`,
          undefined,
          { timeout: T },
        );
        const frames =
          'new Promise((r) => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(r)), 300))';
        await page.evaluate(frames);
        const cameras = `JSON.stringify(['sagittal', 'coronal'].map((v) =>
          window.medstreamRadiology.view.display.engine.getViewport(v).getCamera().focalPoint))`;
        const before = await page.evaluate(cameras);
        await page.locator('#rad-ai-show').uncheck();
        await page.evaluate(frames);
        // The sagittal plane: the labelmap resliced across the frames (the axial one is the stack's
        // geometry, checked above).
        const planes = ['sagittal'];
        const without = await Promise.all(planes.map((p) => settled(page, p)));
        await page.locator('#rad-ai-show').check();
        await page.evaluate(frames);
        const withLayer = await Promise.all(planes.map((p) => settled(page, p)));
        planes.forEach((plane, n) => expectTinted(without[n], withLayer[n], plane));
        // Clicks on the panel (on the axial viewport) left the crosshairs, so the planes, alone.
        expect(await page.evaluate(cameras)).toBe(before);
        // Two requests for the whole result, however many slices it has: no per-slice PNG.
        expect(results).toEqual([`/ai/results/${id()}.json`, `/ai/results/${id()}.raw`]);
        expect(errors).toEqual([]);
      } finally {
        await context.close();
      }
    },
  );

  it('draws a NIfTI-backed series result over its stack, aligned', { timeout: T }, async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 700 }, bypassCSP: true });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(
        `${server.url}/radiology/#study=${nifti.study}&series=${nifti.series}&ww=2&wc=-20&slice=${ct.keySlice}&ai=${nifti.result}`,
      );
      await waitReady(page);
      await nearest(page);
      await drawn(page);
      const slice = Number(await page.evaluate('document.body.dataset.aiSlice'));
      expectAligned(await layers(page), `NIfTI slice ${slice}`);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('fetches the result with the page DICOMweb token when auth is on', { timeout: T }, async () => {
    const SECRET = 'ai-overlay-secret-0123456789abcdef0123456789abcdef';
    const secured = await startTestServer(dir, [
      '--models-dir',
      models.dir,
      '--index-at-start',
      '--index-interval',
      '0',
      '--auth-enabled',
      '--auth-secret',
      SECRET,
    ]);
    const context = await browser.newContext({ viewport: { width: 900, height: 700 }, bypassCSP: true });
    try {
      const token = issueDicomwebToken(SECRET, {
        expiresAt: Math.floor(Date.now() / 1000) + 600,
        studies: [ct.studyUid],
      });
      const authorization = `Bearer ${token}`;
      let inferred: { status: number; json(): unknown } | undefined;
      for (let i = 0; i < 100; i++) {
        inferred = await request(secured, '/ai/models/lesion/infer', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization },
          body: JSON.stringify({ study: ct.studyUid, series: ct.seriesUid }),
        });
        if (inferred.status !== 404) break; // the catalog is still indexing
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(inferred!.status).toBe(200);
      const id = (inferred!.json() as { result: { id: string } }).result.id;
      // Without the token the result is refused: the page must send it.
      expect((await request(secured, `/ai/results/${id}.json`)).status).toBe(401);
      const page = await context.newPage();
      const refused: string[] = [];
      page.on('response', (r) => {
        if (r.status() === 401 || r.status() === 403) refused.push(`${r.status()} ${r.url()}`);
      });
      await page.goto(
        `${secured.url}/radiology/#study=${ct.studyUid}&series=${ct.seriesUid}&ai=${id}&token=${token}`,
      );
      await waitReady(page);
      await drawn(page);
      expect(refused).toEqual([]);
      // The deep link keeps the overlay (the token is taken out of it).
      const hash = (await page.evaluate('location.hash')) as string;
      expect(hash).toContain(`ai=${id}`);
      expect(hash).not.toContain('token=');
    } finally {
      await context.close();
      await secured.close();
    }
  });
});
