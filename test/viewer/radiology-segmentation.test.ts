// The radiology viewer's box-prompted segmentation, end to end in Debian's Chromium against a real
// server over the fixture CT (9 of its JPEG 2000 slices, classical engine): a box drawn with the mouse
// around the liver on slice 9 becomes a job with the box in that slice's pixel indices, the key
// slice's instance and the window on screen; the job's SEG is shown as a labelmap overlay that
// covers the liver on the key slice and the slices above and below (its voxels, and coloured
// pixels on the canvas); NIfTI and SEG download; re-run with the box's corner dragged in, the new job gets the new box;
// accepted, the SEG is stored and QIDO lists it as a series of the study; shown again from the
// study's SEG series; in MPR the overlay is on all three planes, a box on the sagittal plane is
// refused and one on the axial plane is sent with its slice's instance; discarded, it is gone. Auth is on:
// every request of the page to /segmentations and DICOMweb carries the page's (write) token.
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { signUrl } from '../../src/server/auth.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { request, startTestServer } from '../support/server.js';
import {
  foreignRequests,
  launchChromium,
  T,
  watch,
  untilPage,
  first,
  firstSeries,
  type Json,
} from './helpers.js';

/**
 * The liver on slice 9 of the fixture CT (docs/segmentation.md). The test serves its 9 slices
 * 5..13 (files sorted by name run head to feet: names 6..14), so the job reads and segments half
 * the series, and the key slice is 4 of 9.
 */
const KEY = 4;
const BOX = [102, 191, 274, 379] as const;
/** The box after its lower right corner is dragged in. */
const SMALLER = [102, 191, 250, 360] as const;
const SECRET = 'a-radiology-segmentation-test-secret-0123456789';

const RESULTS = path.resolve('test-results');
let dir: string;
let server: RunningServer;
let browser: Browser;
let study: string;
let series: string;
/** Series slice index → SOP Instance UID, in slice-position order. */
let sops: string[];
let token: string;
/** GET with the test's token. */
const api = async <R>(p: string): Promise<R> =>
  (await (await fetch(`${server.url}${p}`, { headers: { authorization: `Bearer ${token}` } })).json()) as R;

beforeAll(async () => {
  await mkdir(RESULTS, { recursive: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-radseg-'));
  await mkdir(path.join(dir, 'ct'));
  const names = (await readdir(fixture('volumes/ct-dicom-j2k'))).sort().slice(6, 15);
  for (const name of names)
    await cp(path.join(fixture('volumes/ct-dicom-j2k'), name), path.join(dir, 'ct', name));
  [server, browser] = await Promise.all([
    startTestServer(dir, ['--index-interval', '0', '--auth-enabled', '--auth-secret', SECRET]),
    launchChromium(),
  ]);
  const exp = Math.floor(Date.now() / 1000) + 900;
  const reindex = signUrl({ path: '/admin/reindex', query: 'wait=true', exp, secret: SECRET });
  expect((await request(server, reindex.pathAndQuery, { method: 'POST' })).status).toBe(200);
  // Writing: accepting a segment stores its SEG (STOW-RS).
  token = issueDicomwebToken(SECRET, { expiresAt: exp, write: true });
  ({ study, series } = await firstSeries(server.url, { authorization: `Bearer ${token}` }));
  const meta = await api<Json[]>(`/dicomweb/studies/${study}/series/${series}/metadata`);
  sops = meta
    .map((m) => ({ z: Number(m['00200032'].Value![2]), sop: first(m, '00080018') as string }))
    .sort((a, b) => a.z - b.z)
    .map((m) => m.sop);
}, T);
afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const VIEW = 'window.medstreamRadiology.view';

/**
 * Page coordinates of the centre of pixel (x, y) of series slice `k` in viewport `n`, through the
 * image's geometry (Cornerstone's metadata) and the viewport's worldToCanvas.
 */
function pagePoint(page: Page, k: number, x: number, y: number, n = 0): Promise<[number, number]> {
  return page.evaluate(`(() => {
    const d = ${VIEW}.display;
    const vp = d.viewports()[${n}];
    const id = d.series.imageIds[${k}];
    const el = document.querySelectorAll('.rad-viewport')[${n}];
    const m = window.medstreamRadiology.imagePlane(id);
    const w = [0, 1, 2].map((i) => m.imagePositionPatient[i] + ${x} * m.columnPixelSpacing * m.rowCosines[i] + ${y} * m.rowPixelSpacing * m.columnCosines[i]);
    const c = vp.worldToCanvas(w);
    const r = el.getBoundingClientRect();
    return [r.left + c[0], r.top + c[1]];
  })()`) as Promise<[number, number]>;
}

/** A mouse drag with the primary button from `a` to `b` (page coordinates). */
async function drag(page: Page, a: [number, number], b: [number, number]): Promise<void> {
  await page.mouse.move(a[0], a[1]);
  await page.mouse.down();
  await page.mouse.move(a[0] + 2, a[1] + 2);
  await page.mouse.move(b[0], b[1], { steps: 8 });
  await page.mouse.up();
}

/** Canvas pixels of each viewport that carry the overlay's green (and CT grey never does). */
const GREEN = `[...document.querySelectorAll('.rad-viewport canvas.cornerstone-canvas')].map((canvas) => {
  const { width, height } = canvas;
  const data = canvas.getContext('2d', { willReadFrequently: true }).getImageData(0, 0, width, height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 1] > data[i] + 40 && data[i + 1] > data[i + 2] + 40) n++;
  return n;
})`;

describe('box-prompted segmentation in the radiology viewer', () => {
  it(
    'draws a box, runs the job, overlays the mask on the key slice and its neighbours, stores the SEG',
    async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      const log = watch(page);
      const posts: string[] = [];
      const unauthorized: string[] = [];
      page.on('request', (r) => {
        if (r.method() === 'POST' && r.url().endsWith('/segmentations')) posts.push(r.postData() ?? '');
        const guarded = r.url().includes('/segmentations') || r.url().includes('/dicomweb/');
        const carries =
          r.headers()['authorization'] === `Bearer ${token}` ||
          r.url().includes(`token=${encodeURIComponent(token)}`);
        if (guarded && !carries) unauthorized.push(`${r.method()} ${r.url()}`);
      });
      try {
        await page.goto(
          `${server.url}/radiology/#study=${study}&series=${series}&slice=${KEY}&ww=400&wc=40&token=${token}`,
        );
        await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
        await untilPage(page, `${VIEW}.display.slice().slice`, (s: number) => s === KEY);
        expect(await page.evaluate(GREEN)).toEqual([0]);

        await page.keyboard.press('b');
        const [ax, ay] = await pagePoint(page, KEY, BOX[0], BOX[1]);
        const [bx, by] = await pagePoint(page, KEY, BOX[2], BOX[3]);
        await page.mouse.move(ax, ay);
        await page.mouse.down();
        await page.mouse.move(ax + 2, ay + 2);
        await page.mouse.move(bx, by, { steps: 8 });
        await page.mouse.up();

        type Item = { state: string; message: string; placed?: unknown; job: string };
        const item = await untilPage<Item>(
          page,
          `(() => { const i = ${VIEW}.segmentation.items[0]; return i && { state: i.state, message: i.message, placed: i.placed, job: i.job && i.job.id }; })()`,
          (i) =>
            !!i && (i.state === 'failed' || i.state === 'cancelled' || (i.state === 'done' && !!i.placed)),
        );
        expect(item.state, JSON.stringify(item)).toBe('done');

        // The request: the key slice's instance, the box in its pixel indices, the window on screen.
        expect(posts).toHaveLength(1);
        const sent = JSON.parse(posts[0]) as {
          instance: string;
          box: number[];
          window: number[];
          store: boolean;
        };
        expect(sent.instance).toBe(sops[KEY]);
        sent.box.forEach((v, i) => expect(Math.abs(v - BOX[i]), `box ${sent.box}`).toBeLessThanOrEqual(1));
        expect(sent.window).toEqual([-160, 240]);
        expect(sent.store).toBe(false);

        // The overlay's voxels: on the key slice and the slices above and below, inside the box.
        const perSlice = (await page.evaluate(
          `${VIEW}.segmentation.voxelsPerSlice('medstream-seg-1')`,
        )) as number[];
        expect(perSlice).toHaveLength(sops.length);
        for (const k of [KEY - 2, KEY - 1, KEY, KEY + 1, KEY + 2])
          expect(perSlice[k], `slice ${k}`).toBeGreaterThan(3000);
        const job = await api<{ result: { voxels: number } }>(`/segmentations/${item.job}`);
        expect(perSlice.reduce((a, b) => a + b, 0)).toBe(job.result.voxels);

        // On screen: green pixels on the key slice and on its neighbours, none where it was grey before.
        await page.waitForTimeout(200);
        const onKey = ((await page.evaluate(GREEN)) as number[])[0];
        expect(onKey).toBeGreaterThan(2000);
        await page.screenshot({ path: path.join(RESULTS, 'radiology-segmentation-stack.png') });
        // Fill off: only the outline stays green; fill on again: the filled overlay is back.
        await page.uncheck('input[name=seg-fill]');
        const outlineOnly = await untilPage(page, GREEN, (g: number[]) => g[0] < onKey / 3);
        expect(outlineOnly[0]).toBeGreaterThan(100);
        await page.check('input[name=seg-fill]');
        await untilPage(page, GREEN, (g: number[]) => g[0] > onKey * 0.9);
        for (const k of [KEY - 1, KEY + 1]) {
          await page.evaluate(`${VIEW}.display.setSlice(${k})`);
          await untilPage(page, `${VIEW}.display.slice().slice`, (s: number) => s === k);
          await untilPage(page, GREEN, (g: number[]) => g[0] > 1000);
        }

        // Downloads: the mask as NIfTI (gzip) and the SEG (DICM), fetched with the token.
        for (const [action, magic, at] of [
          ['nifti', [0x1f, 0x8b], 0],
          ['seg', [0x44, 0x49, 0x43, 0x4d], 128],
        ] as const) {
          const [download] = await Promise.all([
            page.waitForEvent('download'),
            page.click(`#seg-list [data-action=${action}]`),
          ]);
          const bytes = await readFile(await download.path());
          expect([...bytes.subarray(at, at + magic.length)], action).toEqual([...magic]);
        }

        // Re-run with an adjusted box: its lower right corner dragged in, on the key slice.
        await page.evaluate(`${VIEW}.display.setSlice(${KEY})`);
        await untilPage(page, `${VIEW}.display.slice().slice`, (s: number) => s === KEY);
        const [cx, cy] = await pagePoint(page, KEY, BOX[2], BOX[3]);
        const [dx, dy] = await pagePoint(page, KEY, SMALLER[2], SMALLER[3]);
        await page.mouse.move(cx, cy);
        await page.mouse.down();
        await page.mouse.move(dx, dy, { steps: 6 });
        await page.mouse.up();
        await page.click('#seg-list [data-action=rerun]');
        const rerun = await untilPage<Item>(
          page,
          `(() => { const i = ${VIEW}.segmentation.items[0]; return { state: i.state, message: i.message, placed: i.placed, job: i.job && i.job.id }; })()`,
          (i) => i.job !== item.job && (i.state === 'failed' || (i.state === 'done' && !!i.placed)),
        );
        expect(rerun.state, JSON.stringify(rerun)).toBe('done');
        expect(posts).toHaveLength(2);
        const resent = JSON.parse(posts[1]) as { instance: string; box: number[] };
        expect(resent.instance).toBe(sops[KEY]);
        resent.box.forEach((v, i) =>
          expect(Math.abs(v - SMALLER[i]), `box ${resent.box}`).toBeLessThanOrEqual(1),
        );
        const job2 = await api<{ result: { voxels: number } }>(`/segmentations/${rerun.job}`);
        expect(job2.result.voxels).not.toBe(job.result.voxels);
        const perSlice2 = (await page.evaluate(
          `${VIEW}.segmentation.voxelsPerSlice('medstream-seg-1')`,
        )) as number[];
        expect(perSlice2.reduce((a, b) => a + b, 0)).toBe(job2.result.voxels);

        // Accept: the SEG goes into the study (STOW-RS) and QIDO lists it.
        expect(await api<unknown[]>(`/dicomweb/studies/${study}/series?Modality=SEG`)).toHaveLength(0);
        await page.click('#seg-list [data-action=accept]');
        await page.locator('#seg-study-list [data-seg-series]').waitFor({ timeout: T });
        const segSeries = await api<Json[]>(`/dicomweb/studies/${study}/series?Modality=SEG`);
        expect(segSeries).toHaveLength(1);
        expect(first(segSeries[0], '00080060')).toBe('SEG');

        // The stored SEG, read back over WADO-RS, as an overlay of its own: the same voxels.
        await page.click('#seg-study-list [data-action=show-seg]');
        const stored = await untilPage(
          page,
          `(() => { const i = ${VIEW}.segmentation.items.find((x) => x.kind === 'study'); return i && { state: i.state, voxels: i.placed && i.placed.voxels }; })()`,
          (i: { state: string } | undefined) => !!i && (i.state === 'shown' || i.state === 'failed'),
        );
        expect(stored).toEqual({ state: 'shown', voxels: job2.result.voxels });

        // MPR: the overlays follow, on all three planes.
        await page.keyboard.press('m');
        await untilPage(page, 'document.body.dataset.layout', (l: string) => l === 'mpr');
        await untilPage(page, `${VIEW}.display.loadedCount`, (n: number) => n === sops.length);
        await page.evaluate(`${VIEW}.display.setSlice(${KEY})`);
        const planes = await untilPage(
          page,
          GREEN,
          (g: number[]) => g.length === 3 && g.every((n) => n > 50),
        );
        expect(planes[0]).toBeGreaterThan(1000);
        await page.screenshot({ path: path.join(RESULTS, 'radiology-segmentation-mpr.png') });

        // A box on the sagittal plane has no key slice: refused, nothing sent.
        await page.keyboard.press('b');
        // The crosshair lines are shown but not grabbable while the Box tool is on: a drag that
        // starts on one of them (where it would move it) on the sagittal plane draws a box and
        // leaves them in place.
        expect(await page.evaluate(`${VIEW}.display.toolMode('crosshairs')`)).toBe('Enabled');
        // (Once the lines are drawn again: switching the tool re-centres and re-renders them.)
        const cross = (await untilPage(
          page,
          `(() => {
            const c = ${VIEW}.display.crosshairGrip(1);
            const r = document.querySelectorAll('.rad-viewport')[1].getBoundingClientRect();
            return c ? [r.left + c[0], r.top + c[1]] : null;
          })()`,
          (p: [number, number] | null) => p !== null,
        )) as [number, number];
        const center = (await page.evaluate(`${VIEW}.display.crosshairCenter()`)) as number[];
        await drag(page, cross, [cross[0] + 60, cross[1] + 40]);
        expect(await page.evaluate(`${VIEW}.display.crosshairCenter()`)).toEqual(center);
        await page.locator('#seg-status', { hasText: 'axial plane' }).waitFor({ timeout: T });
        expect(posts).toHaveLength(2);
        // A box on the axial plane: the displayed slice's instance and the box in its pixels.
        const shown = (await page.evaluate(`${VIEW}.display.mainViewport().getCurrentImageId()`)) as string;
        await drag(page, await pagePoint(page, KEY, 110, 200), await pagePoint(page, KEY, 200, 300));
        for (let i = 0; i < 100 && posts.length < 3; i++) await page.waitForTimeout(100);
        expect(posts).toHaveLength(3);
        const onAxial = JSON.parse(posts[2]) as { instance: string; box: number[] };
        expect(shown).toContain(`/instances/${sops[KEY]}/`);
        expect(onAxial.instance).toBe(sops[KEY]);
        onAxial.box.forEach((v, i) =>
          expect(Math.abs(v - [110, 200, 200, 300][i]), `box ${onAxial.box}`).toBeLessThanOrEqual(1),
        );
        // The box draws no statistics text (area, mean HU) over the anatomy.
        expect(
          await page.evaluate(
            `document.querySelectorAll('.rad-viewport')[0].querySelectorAll('svg text').length`,
          ),
        ).toBe(0);
        // Back to window/level: the crosshair lines are draggable again.
        await page.keyboard.press('w');
        expect(await page.evaluate(`${VIEW}.display.toolMode('crosshairs')`)).toBe('Passive');

        // Discard: the job's overlay and its item are gone; the stored SEG's stays.
        await page.click('#seg-list li[data-id="medstream-seg-1"] [data-action=discard]');
        expect(await page.evaluate(`${VIEW}.segmentation.voxelsPerSlice('medstream-seg-1')`)).toEqual([]);
        expect(await page.evaluate(`${VIEW}.segmentation.items.map((i) => i.id)`)).not.toContain(
          'medstream-seg-1',
        );
        expect(await page.evaluate(`${VIEW}.segmentation.items.map((i) => i.kind)`)).toContain('study');
        expect(unauthorized).toEqual([]);

        expect(foreignRequests(log, server.url)).toEqual([]);
        expect(log.errors).toEqual([]);
      } finally {
        await page.close();
      }
    },
    3 * T,
  );
});
