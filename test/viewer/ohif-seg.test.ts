// OHIF (served at /ohif/, npm run ohif:install) opens a study holding a SEG that MedStream's
// segmentation service stored (POST /segmentations, classical engine, store: true, on 9 slices of
// the fixture CT): the study browser shows the SEG series beside the CT, and OHIF's own
// cornerstone-dicom-seg extension (packed in the app) loads it over WADO-RS and draws its labelmap
// on the CT (the segment's green, from the SEG's RecommendedDisplayCIELabValue, on the canvas).
// No failed request, HTTP error, foreign request, uncaught exception or console error.
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { startIndexedServer } from '../support/server.js';
import { firstSeries, launchChromium, T, untilPage } from './helpers.js';

const RESULTS = path.resolve('test-results');

let dir: string;
let server: RunningServer;
let browser: Browser;
let study: string;
let stored: { seriesUid: string; sopUid: string };

beforeAll(async () => {
  await mkdir(RESULTS, { recursive: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ohif-seg-'));
  await mkdir(path.join(dir, 'ct'));
  // Slices 5..13 of the fixture CT (names sort head to feet): the liver at slice 4 of 9.
  const names = (await readdir(fixture('volumes/ct-dicom-j2k'))).sort().slice(6, 15);
  for (const n of names) await cp(path.join(fixture('volumes/ct-dicom-j2k'), n), path.join(dir, 'ct', n));
  [server, browser] = await Promise.all([startIndexedServer(dir, ['--ohif']), launchChromium()]);
  let series: string;
  ({ study, series } = await firstSeries(server.url));
  let job = (await (
    await fetch(`${server.url}/segmentations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ series, slice: 4, box: [102, 191, 274, 379], label: 'liver', color: '#00e040' }),
    })
  ).json()) as { id: string; state: string; result?: { stored?: typeof stored } };
  const end = Date.now() + T;
  while ((job.state === 'queued' || job.state === 'running') && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 250));
    job = (await (await fetch(`${server.url}/segmentations/${job.id}`)).json()) as typeof job;
  }
  if (job.state !== 'done' || !job.result?.stored)
    throw new Error(`the job did not store a SEG: ${JSON.stringify(job)}`);
  stored = job.result.stored;
}, 2 * T);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Canvas pixels of each viewport that are clearly green (a CT's greys never are). */
const GREEN = `[...document.querySelectorAll('canvas.cornerstone-canvas')].map((canvas) => {
  const { width, height } = canvas;
  const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 1] > data[i] + 40 && data[i + 1] > data[i + 2] + 40) n++;
  return n;
})`;

/** Polls `js` in the page every 250 ms (OHIF is heavier than the radiology viewer). */
const until = <R>(page: Page, js: string, ok: (r: R) => boolean, ms = T): Promise<R> =>
  untilPage(page, js, ok, ms, 250);

describe('OHIF loads a SEG stored by the segmentation service', () => {
  it(
    'lists the SEG series, loads it over WADO-RS and draws its labelmap on the CT',
    async () => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('request', (r) => {
        requests.push(r.url());
        if (!r.url().startsWith(`${server.url}/`) && !/^(data|blob):/.test(r.url()))
          problems.push(`foreign request: ${r.url()}`);
      });
      page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
      page.on('response', (r) => {
        if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      try {
        await page.goto(`${server.url}/ohif/viewer?StudyInstanceUIDs=${study}`);
        const seg = page.getByText('Segmentation: liver');
        await seg.waitFor({ timeout: T });
        // The CT is shown, without the overlay yet.
        // (OHIF may mount a second cornerstone canvas while it lays the viewport out.)
        await until(page, GREEN, (g: number[]) => g.length >= 1);
        await page.waitForTimeout(500);
        const before = (await page.evaluate(GREEN)) as number[];
        expect(before.length).toBeGreaterThanOrEqual(1);
        expect(before.every((g) => g === 0)).toBe(true);
        await page
          .getByText('Skip all')
          .click({ timeout: 2000 })
          .catch(() => undefined);
        // Double-clicking the SEG thumbnail loads it; OHIF asks before hydrating it.
        await seg.dblclick();
        await page.getByRole('button', { name: 'Yes' }).click({ timeout: T });
        const after = await until(page, GREEN, (g: number[]) => g.some((n) => n > 2000));
        expect(Math.max(...after)).toBeGreaterThan(2000);
        await page.screenshot({ path: path.join(RESULTS, 'ohif-seg.png') });
        // Read over WADO-RS, from the series MedStream stored.
        expect(requests.some((u) => u.includes(`/series/${stored.seriesUid}`))).toBe(true);
        expect(problems).toEqual([]);
      } finally {
        await page.close();
      }
    },
    2 * T,
  );
});
