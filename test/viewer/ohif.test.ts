// The OHIF viewer (npm run ohif:install) served by MedStream at /ohif/, in Debian's Chromium
// against a real server indexed over the QIDO test studies and the fixture CT: the study list
// shows every study with its description and modalities; the CT opens with its pixels in the
// viewport (read back from the viewport's canvas, and on a screenshot); the MPR layout shows the
// three planes with the slab shape the series geometry implies. Every page: no failed request,
// no HTTP error, no request off 127.0.0.1, no uncaught exception, no console error.
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { STUDIES, writeStudies } from '../support/radiology-studies.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { startIndexedServer, startTestServer, until } from '../support/server.js';
import { launchChromium, T } from './helpers.js';

const RESULTS = path.resolve('test-results');
const DESKTOP = { width: 1280, height: 800 };
const CT_SLICES = 20;
const SECRET = 'ohif-viewer-test-secret-0123456789abcdef-01234';

let dir: string;
let server: RunningServer;
let browser: Browser;
/** One context for the file: OHIF's scripts come from its cache after the first page. */
let context: BrowserContext;
let ctStudy: string;

beforeAll(async () => {
  await mkdir(RESULTS, { recursive: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'ohif-viewer-'));
  const store = path.join(dir, 'store');
  await writeStudies(store);
  await cp(fixture('volumes/ct-dicom-j2k'), path.join(store, 'ct'), { recursive: true });
  [server, browser] = await Promise.all([startIndexedServer(store, ['--ohif']), launchChromium()]);
  const res = await fetch(`${server.url}/dicomweb/studies?StudyDate=20221208`);
  const [study] = (await res.json()) as Array<Record<string, { Value: string[] }>>;
  ctStudy = study['0020000D'].Value[0];
  context = await browser.newContext({ viewport: DESKTOP });
}, T);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** What went wrong on a page: failed requests, HTTP errors, foreign requests, errors. */
interface PageProblems {
  requests: string[];
  problems: string[];
}

function watchOhif(page: Page, origin: string): PageProblems {
  const log: PageProblems = { requests: [], problems: [] };
  page.on('request', (r) => {
    log.requests.push(r.url());
    if (!r.url().startsWith(`${origin}/`) && !/^(data|blob):/.test(r.url()))
      log.problems.push(`foreign request: ${r.url()}`);
  });
  page.on('requestfailed', (r) => log.problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) log.problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  page.on('pageerror', (e) => log.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') log.problems.push(`console: ${m.text()}`);
  });
  return log;
}

/** Luminance statistics of a viewport's 2D canvas (Cornerstone3D copies each render into it). */
interface CanvasStats {
  width: number;
  height: number;
  mean: number;
  stdev: number;
  /** Pixels brighter than the black background. */
  lit: number;
  /** Bounding box of the pixels brighter than the black background. */
  box: { width: number; height: number };
}

// A string, not a function: the test code has no DOM types, and the page evaluates it as is.
const CANVAS_STATS = `[...document.querySelectorAll('canvas.cornerstone-canvas')].map((canvas) => {
  const { width, height } = canvas;
  const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  let sum = 0, sum2 = 0, lit = 0, x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
      sum += v;
      sum2 += v * v;
      if (v > 20) {
        lit++;
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  const n = width * height;
  const mean = sum / n;
  return {
    width, height, mean, lit,
    stdev: Math.sqrt(Math.max(0, sum2 / n - mean * mean)),
    box: { width: x1 - x0 + 1, height: y1 - y0 + 1 },
  };
})`;

function canvasStats(page: Page): Promise<CanvasStats[]> {
  return page.evaluate(CANVAS_STATS) as Promise<CanvasStats[]>;
}

/** Waits until `count` viewports all show an image (more than a few lit pixels, not a uniform canvas). */
async function waitForImages(page: Page, count: number): Promise<CanvasStats[]> {
  const end = Date.now() + T - 15_000;
  for (;;) {
    const stats = await canvasStats(page);
    if (stats.length === count && stats.every((s) => s.lit > 1000 && s.stdev > 5)) return stats;
    if (Date.now() > end) throw new Error(`viewports never showed images: ${JSON.stringify(stats)}`);
    await page.waitForTimeout(250);
  }
}

const framesOf = (log: PageProblems) => log.requests.filter((u) => /\/frames\/\d+/.test(u));

describe('OHIF at /ohif/ in Chromium', () => {
  it(
    'lists the fixture studies with their descriptions and modalities',
    async () => {
      const page = await context.newPage();
      const log = watchOhif(page, server.url);
      try {
        await page.goto(`${server.url}/ohif/`);
        await page.getByText('CT ABDOMEN').waitFor({ timeout: T });
        const rows = await page.locator('tr').allInnerTexts();
        for (const study of STUDIES) {
          const row = rows.find((r) => r.includes(study.description));
          expect(row, study.description).toBeDefined();
          for (const series of study.series) expect(row).toContain(series.modality);
          // OHIF shows names as "Family, Given".
          expect(row).toContain(study.patientName.split('^')[0]);
        }
        // The fixture CT has no description: its row shows the date, CT and its 20 instances.
        const ct = rows.find((r) => r.includes('08-Dec-2022'));
        expect(ct).toMatch(/\bCT\b/);
        expect(ct).toMatch(/\b20\b/);
        expect(rows.filter((r) => /\d{2}-[A-Z][a-z]{2}-\d{4}/.test(r))).toHaveLength(STUDIES.length + 1);
        await page.screenshot({ path: path.join(RESULTS, 'ohif-study-list.png') });
        expect(log.requests.some((u) => u.includes('/dicomweb/studies?'))).toBe(true);
        expect(log.problems).toEqual([]);
      } finally {
        await page.close();
      }
    },
    T,
  );

  it(
    'opens the CT with its pixels in the viewport, read over WADO-RS',
    async () => {
      const page = await context.newPage();
      const log = watchOhif(page, server.url);
      try {
        await page.goto(`${server.url}/ohif/viewer?StudyInstanceUIDs=${ctStudy}`);
        const [stats] = await waitForImages(page, 1);
        // A CT slice at OHIF's default CT window: a bright body on black air.
        expect(stats.mean).toBeGreaterThan(15);
        expect(stats.stdev).toBeGreaterThan(30);
        expect(stats.box.width).toBeGreaterThan(stats.width * 0.5);
        // The same on the screen: the viewport pane's screenshot is not uniform either.
        const png = await page.locator('[data-cy="viewport-pane"]').first().screenshot();
        const shot = await sharp(png).greyscale().stats();
        expect(shot.channels[0].stdev).toBeGreaterThan(30);
        await page.screenshot({ path: path.join(RESULTS, 'ohif-ct.png') });
        expect(log.requests.some((u) => u.endsWith('/metadata'))).toBe(true);
        expect(framesOf(log).length).toBeGreaterThan(0);
        expect(log.problems).toEqual([]);
      } finally {
        await page.close();
      }
    },
    T,
  );

  it(
    'loads the MPR layout: axial, sagittal and coronal from the whole series',
    async () => {
      const page = await context.newPage();
      const log = watchOhif(page, server.url);
      try {
        await page.goto(`${server.url}/ohif/viewer?hangingprotocolId=mpr&StudyInstanceUIDs=${ctStudy}`);
        const [axial, sagittal, coronal] = await waitForImages(page, 3);
        // 20 slices of 3 mm (60 mm) against a 500 mm field: the reformatted planes are flat slabs,
        // the axial plane is not.
        for (const plane of [sagittal, coronal]) {
          expect(plane.box.height / plane.box.width).toBeGreaterThan(0.05);
          expect(plane.box.height / plane.box.width).toBeLessThan(0.25);
        }
        expect(axial.box.height / axial.box.width).toBeGreaterThan(0.5);
        await page.screenshot({ path: path.join(RESULTS, 'ohif-mpr.png') });
        // The volume needs every slice.
        const instances = () => new Set(framesOf(log).map((u) => u.replace(/\/frames\/.*/, ''))).size;
        await until(() => instances() >= CT_SLICES, T / 3).catch(() => undefined);
        expect(instances()).toBe(CT_SLICES);
        expect(log.problems).toEqual([]);
      } finally {
        await page.close();
      }
    },
    T,
  );
});

describe('OHIF with DICOMweb tokens (--auth-enabled)', () => {
  it(
    'opened once with ?token=, lists the studies and opens the CT with the token on every DICOMweb request',
    async () => {
      const secured = await startTestServer(path.join(dir, 'store'), [
        '--ohif',
        '--auth-enabled',
        '--auth-secret',
        SECRET,
        '--index-at-start',
      ]);
      const token = issueDicomwebToken(SECRET, { expiresAt: Math.floor(Date.now() / 1000) + 600 });
      const authorization = `Bearer ${token}`;
      const page = await context.newPage();
      const log = watchOhif(page, secured.url);
      const unauthorized: string[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/dicomweb/') && r.headers()['authorization'] !== authorization)
          unauthorized.push(r.url());
      });
      try {
        await until(async () => {
          const res = await fetch(`${secured.url}/dicomweb/studies`, { headers: { authorization } });
          return res.ok && ((await res.json()) as unknown[]).length === STUDIES.length + 1;
        }, T);
        // Without a token the study list gets nothing.
        expect((await fetch(`${secured.url}/dicomweb/studies`)).status).toBe(401);
        await page.goto(`${secured.url}/ohif/?token=${token}`);
        await page.getByText('CT ABDOMEN').waitFor({ timeout: T });
        // Later pages of the same tab need no token in their URL.
        await page.goto(`${secured.url}/ohif/viewer?StudyInstanceUIDs=${ctStudy}`);
        const [stats] = await waitForImages(page, 1);
        expect(stats.stdev).toBeGreaterThan(30);
        expect(framesOf(log).length).toBeGreaterThan(0);
        expect(unauthorized).toEqual([]);
        expect(log.problems).toEqual([]);
      } finally {
        await page.close();
        await secured.close();
      }
    },
    2 * T,
  );
});
