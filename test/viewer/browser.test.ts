// The slide browser and the viewer in Debian's Chromium (playwright-core), against a real
// MedStream server over three real slides: thumbnails, tiles on the canvas, finer tiles on
// zoom, the scale bar, the viewport in the URL hash, the metadata panel, the error page, the
// tile error indicator, a phone-sized viewport, no console errors, no request off 127.0.0.1,
// and (with a fake token issuer) the viewer token on every request.
import Fastify, { type FastifyInstance } from 'fastify';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { NotFound } from '../../src/errors.js';
import { registerViewerRoutes } from '../../src/server/routes/viewer.js';
import { startTestServer } from '../support/server.js';
import {
  centrePixels,
  CMU,
  COG,
  dziLevels,
  foreignRequests,
  launchChromium,
  makeSlideDir,
  PYRAMID,
  removeSlideDir,
  T,
  waitReady,
  waitSettled,
  watch,
} from './helpers.js';

const RESULTS = path.resolve('test-results');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
// Playwright evaluates string predicates with eval, which the pages' CSP forbids; the test
// 'the pages run under their Content-Security-Policy' checks the pages with it enforced.
const BYPASS = { bypassCSP: true };

const viewUrl = (base: string, id: string): string => `${base}/view/${encodeURIComponent(id)}`;

const hashOf = (page: Page): Promise<string> => page.evaluate('location.hash') as Promise<string>;
const scaleText = (page: Page): Promise<string> => page.locator('.scalebar-text').innerText();

// One server and one Chromium for the whole file.
let server: RunningServer;
let browser: Browser;
let dir: string;

beforeAll(async () => {
  await mkdir(RESULTS, { recursive: true });
  dir = await makeSlideDir();
  [server, browser] = await Promise.all([startTestServer(dir), launchChromium()]);
}, T);
afterAll(async () => {
  await browser?.close();
  await server?.close();
  await removeSlideDir(dir);
});

describe('viewer pages in Chromium', () => {
  let desktop: BrowserContext;

  beforeAll(async () => {
    desktop = await browser.newContext({ viewport: DESKTOP, ...BYPASS });
  }, T);
  afterAll(async () => {
    await desktop?.close();
  });

  it(
    'the browser lists the slides with thumbnails, searches, opens folders and pages',
    async () => {
      const page = await desktop.newPage();
      const log = watch(page);
      await page.goto(`${server.url}/`);
      await page.locator('.card').nth(1).waitFor();
      expect(await page.locator('.card').count()).toBe(2);
      await page.waitForFunction(
        `[...document.querySelectorAll('.card img')].filter((i) => i.complete && i.naturalWidth > 0).length === 2`,
        undefined,
        { timeout: T },
      );
      const cmu = page.locator(`.card[data-slide="${CMU}"]`);
      await expect.poll(() => cmu.locator('.meta').innerText(), { timeout: T }).toContain('µm/px');
      expect(await cmu.locator('.meta').innerText()).toMatch(/aperio · 2,220 × 2,967 px · 0\.499 µm\/px/i);
      expect(await page.locator('.folder').innerText()).toContain('cases');
      expect(log.requests.filter((u) => u.includes('/thumbnail?')).length).toBe(2);
      await page.screenshot({ path: path.join(RESULTS, 'browser-1280x800.png') });

      // Search is the server's `search`.
      await page.fill('#search', 'pyramid');
      await page.waitForFunction(`document.querySelectorAll('.card').length === 1`, undefined, {
        timeout: T,
      });
      expect(await page.locator('.card').getAttribute('data-slide')).toBe(PYRAMID);
      expect(log.requests.some((u) => /\/slides\?.*search=pyramid/.test(u))).toBe(true);
      expect(new URL(page.url()).searchParams.get('search')).toBe('pyramid');

      // Folders are `prefix`; the breadcrumb leads back.
      await page.fill('#search', '');
      await page.locator('.folder button').click();
      await page.waitForFunction(
        `document.querySelectorAll('.card').length === 1 && document.querySelector('.card').dataset.slide === ${JSON.stringify(COG)}`,
        undefined,
        { timeout: T },
      );
      expect(log.requests.some((u) => /\/slides\?.*prefix=cases%2F/.test(u))).toBe(true);
      await page.locator('#crumbs button', { hasText: 'All slides' }).click();
      await page.locator('.card').nth(1).waitFor();

      // Pagination follows `next_cursor`.
      await page.goto(`${server.url}/?limit=1`);
      await page.locator('.card').first().waitFor();
      await page.locator('#more').waitFor();
      expect(await page.locator('.card').count()).toBe(1);
      await page.click('#more');
      await page.locator('.card').nth(1).waitFor();
      expect(log.requests.some((u) => /\/slides\?.*cursor=/.test(u))).toBe(true);

      // A card opens the viewer.
      await page.locator(`.card[data-slide="${CMU}"] a, .card a`).first().click();
      await page.waitForURL(/\/view\//);
      await waitReady(page);
      expect(log.errors).toEqual([]);
      expect(foreignRequests(log, server.url)).toEqual([]);
      await page.close();
    },
    T * 2,
  );

  it(
    'the viewer shows tiles, zooms to finer levels, updates the scale bar and round-trips the hash',
    async () => {
      const page = await desktop.newPage();
      const log = watch(page);
      await page.goto(viewUrl(server.url, CMU));
      await waitReady(page);
      await waitSettled(page);
      const centre = await centrePixels(page);
      expect(centre.share).toBeGreaterThan(0.9);
      expect(centre.spread).toBeGreaterThan(40); // tissue, not a flat fill

      // The metadata panel: MPP, objective power, levels, label image, collapsed properties.
      expect(await page.locator('[data-field="mpp"]').innerText()).toBe('0.499 µm/px');
      expect(await page.locator('[data-field="vendor"]').innerText()).toBe('aperio');
      expect(await page.locator('[data-field="dimensions"]').innerText()).toBe('2,220 × 2,967 px');
      expect(await page.locator('[data-field="objective"]').innerText()).toBe('20×');
      const label = page.locator('[data-associated="label"] img');
      await page.waitForFunction(
        `(() => { const i = document.querySelector('[data-associated="label"] img'); return i && i.complete && i.naturalWidth > 0; })()`,
        undefined,
        { timeout: T },
      );
      expect(await label.getAttribute('src')).toContain('/associated/label.jpg');
      expect(await page.locator('details.properties').getAttribute('open')).toBeNull();
      expect(await page.locator('details.properties summary').textContent()).toMatch(/^Properties \(\d+\)$/);
      // For looking at after a run (test-results/ is not committed); the docs' screenshot comes from
      // `npm run screenshots` (scripts/screenshots.ts), never from a test.
      await page.screenshot({ path: path.join(RESULTS, 'viewer-1280x800.png') });

      // Zooming in asks for tiles of a finer level; the scale bar follows.
      const coarse = Math.max(...dziLevels(log.requests));
      const scale0 = await scaleText(page);
      const hash0 = await hashOf(page);
      expect(scale0).toMatch(/^\d+(\.\d+)? (µm|mm)$/);
      expect(hash0).toMatch(/^#x=\d+&y=\d+&z=[\d.]+$/);
      const finer = page.waitForRequest((r) => dziLevels([r.url()]).some((l) => l > coarse), { timeout: T });
      for (let i = 0; i < 3; i++) await page.keyboard.press('+');
      await finer;
      await waitSettled(page);
      const scale1 = await scaleText(page);
      expect(scale1).not.toBe(scale0);
      expect(Math.max(...dziLevels(log.requests))).toBeGreaterThan(coarse);

      // Arrow keys pan; `-` zooms out; the hash follows the viewport (it is written after the
      // animation settles, which on a loaded machine can come after the tiles).
      await page.waitForFunction(`location.hash !== ${JSON.stringify(hash0)}`, undefined, { timeout: T });
      const zoomed = await hashOf(page);
      expect(zoomed).not.toBe(hash0);
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('ArrowDown');
      await page.waitForFunction(`location.hash !== ${JSON.stringify(zoomed)}`, undefined, { timeout: T });
      await waitSettled(page);
      const panned = new URLSearchParams((await hashOf(page)).slice(1));
      const before = new URLSearchParams(zoomed.slice(1));
      expect(Number(panned.get('x'))).toBeGreaterThan(Number(before.get('x')));
      expect(Number(panned.get('y'))).toBeGreaterThan(Number(before.get('y')));
      const link = await hashOf(page);
      const linkScale = await scaleText(page);
      await page.screenshot({ path: path.join(RESULTS, 'viewer-zoomed-1280x800.png') });

      // A link with that hash reopens the same place.
      const again = await desktop.newPage();
      const log2 = watch(again);
      await again.goto(`${viewUrl(server.url, CMU)}${link}`);
      await waitReady(again);
      await waitSettled(again);
      expect(await hashOf(again)).toBe(link);
      expect(await scaleText(again)).toBe(linkScale);

      // Home goes back to the whole slide; `-` zooms out.
      await again.keyboard.press('Home');
      await again.waitForFunction(`location.hash !== ${JSON.stringify(link)}`, undefined, { timeout: T });
      await waitSettled(again);
      expect(await scaleText(again)).toBe(scale0);
      await again.keyboard.press('+');
      await waitSettled(again);
      await again.keyboard.press('-');
      await waitSettled(again);
      expect(await scaleText(again)).toBe(scale0);

      for (const l of [log, log2]) {
        expect(l.errors).toEqual([]);
        expect(foreignRequests(l, server.url)).toEqual([]);
      }
      await page.close();
      await again.close();
    },
    T * 2,
  );

  it(
    'a slide without MPP and a slide in a folder open too',
    async () => {
      const page = await desktop.newPage();
      const log = watch(page);
      await page.goto(viewUrl(server.url, PYRAMID));
      await waitReady(page);
      await waitSettled(page);
      expect((await centrePixels(page)).share).toBeGreaterThan(0.9);
      expect(await scaleText(page)).toMatch(/µm|mm/);
      // cog.tif: a dark GeoTIFF without MPP: no scale bar, MPP unknown, still pixels.
      await page.goto(viewUrl(server.url, COG));
      await waitReady(page);
      await waitSettled(page);
      expect((await centrePixels(page)).spread).toBeGreaterThan(10);
      expect(await page.locator('.scalebar').isVisible()).toBe(false);
      expect(await page.locator('[data-field="mpp"]').innerText()).toBe('unknown');
      // `F` toggles full screen (full page where the Fullscreen API is refused).
      await page.keyboard.press('f');
      await page.waitForFunction(`window.medstreamViewer.isFullPage()`, undefined, { timeout: T });
      await page.keyboard.press('F');
      await page.waitForFunction(`!window.medstreamViewer.isFullPage()`, undefined, { timeout: T });
      expect(log.errors).toEqual([]);
      expect(foreignRequests(log, server.url)).toEqual([]);
      await page.close();
    },
    T,
  );

  it(
    'the pages run under their Content-Security-Policy',
    async () => {
      const context = await browser.newContext({ viewport: DESKTOP });
      const page = await context.newPage();
      const log = watch(page);
      await page.goto(`${server.url}/`);
      await page.locator('.card.loaded').nth(1).waitFor({ timeout: T });
      await page.goto(viewUrl(server.url, CMU));
      await page.locator('body[data-state="ready"]').waitFor({ timeout: T });
      await page.locator('[data-field="mpp"]').waitFor({ timeout: T });
      // A CSP violation is a console error.
      expect(log.errors).toEqual([]);
      expect(foreignRequests(log, server.url)).toEqual([]);
      await context.close();
    },
    T,
  );

  it(
    'a missing slide shows an error page',
    async () => {
      const page = await desktop.newPage();
      const log = watch(page);
      const res = await page.goto(viewUrl(server.url, 'cases/no-such-slide.svs'));
      expect(res?.status()).toBe(404);
      expect(await page.locator('h1').innerText()).toBe('Slide not found');
      expect(await page.locator('#osd').count()).toBe(0);
      await page.screenshot({ path: path.join(RESULTS, 'viewer-missing.png') });
      // The document's own 404 is the only console message Chromium prints.
      expect(log.errors.filter((e) => !/404/.test(e))).toEqual([]);
      expect(foreignRequests(log, server.url)).toEqual([]);
      await page.close();
    },
    T,
  );

  it(
    'a failed tile shows the server message in the error indicator',
    async () => {
      const page = await desktop.newPage();
      // Every tile of the coarsest levels fails the way the server fails: JSON with a message.
      await page.route(/\/dzi_files\/[0-9]\//, (route) =>
        route.fulfill({
          status: 503,
          contentType: 'application/json',
          body: JSON.stringify({
            error: 'storage_error',
            message: 'storage is unavailable (test)',
            status: 503,
          }),
        }),
      );
      await page.goto(viewUrl(server.url, CMU));
      await page.locator('.tile-errors').waitFor({ timeout: T });
      await expect
        .poll(() => page.locator('.tile-errors').innerText(), { timeout: T })
        .toMatch(/⚠ \d+ tiles? failed: 503: storage is unavailable \(test\)/);
      await page.close();
    },
    T,
  );

  it(
    'works on a phone-sized viewport',
    async () => {
      const phone = await browser.newContext({ ...PHONE, ...BYPASS });
      const page = await phone.newPage();
      const log = watch(page);
      await page.goto(`${server.url}/`);
      await page.locator('.card').nth(1).waitFor();
      await page.waitForFunction(`document.querySelector('.card img')?.naturalWidth > 0`, undefined, {
        timeout: T,
      });
      await page.screenshot({ path: path.join(RESULTS, 'browser-phone.png') });

      await page.goto(viewUrl(server.url, CMU));
      await waitReady(page);
      await waitSettled(page);
      expect((await centrePixels(page)).share).toBeGreaterThan(0.9);
      // The panel starts closed and opens over the viewer.
      expect(await page.locator('#panel').isVisible()).toBe(false);
      const box = await page.locator('#osd').boundingBox();
      expect(box!.width).toBeGreaterThan(380);
      expect(box!.height).toBeGreaterThan(600);
      expect(await page.locator('.scalebar').isVisible()).toBe(true);
      await page.screenshot({ path: path.join(RESULTS, 'viewer-phone.png') });
      await page.tap('#info-toggle');
      await page.locator('[data-field="mpp"]').waitFor();
      expect(await page.locator('#panel').isVisible()).toBe(true);
      await page.screenshot({ path: path.join(RESULTS, 'viewer-phone-info.png') });
      expect(log.errors).toEqual([]);
      expect(foreignRequests(log, server.url)).toEqual([]);
      await phone.close();
    },
    T,
  );
});

describe('viewer with viewer tokens in Chromium', () => {
  const TOKEN = { vt: 'test-viewer-token', exp: 4102444800 };
  let front: FastifyInstance;
  let frontUrl: string;
  const rejected: string[] = [];
  const proxied: string[] = [];

  beforeAll(async () => {
    const backend = server;
    // The pages with a fake issuer, in front of the real API; the API part refuses any request
    // without the token, as the signed-URL check would.
    front = Fastify();
    registerViewerRoutes(front, {
      authEnabled: true,
      viewerTokens: { issue: () => TOKEN },
      slides: {
        async slide(id) {
          const res = await fetch(`${backend.url}/slides/${encodeURIComponent(id)}`);
          if (res.status === 404) throw new NotFound(`no slide ${id}`);
          if (!res.ok) throw new Error(`backend ${res.status}`);
          return res.json();
        },
      },
    });
    front.get('/*', async (request, reply) => {
      const url = new URL(request.url, 'http://front');
      if (url.searchParams.get('vt') !== TOKEN.vt || url.searchParams.get('exp') !== String(TOKEN.exp)) {
        rejected.push(request.url);
        return reply.code(401).send({ error: 'unauthorized', message: 'missing viewer token', status: 401 });
      }
      proxied.push(request.url);
      const res = await fetch(backend.url + request.url);
      return reply
        .code(res.status)
        .type(res.headers.get('content-type') ?? 'application/octet-stream')
        .send(Buffer.from(await res.arrayBuffer()));
    });
    frontUrl = await front.listen({ host: '127.0.0.1', port: 0 });
  }, T);
  afterAll(async () => {
    await front?.close();
  });

  it(
    'every request the viewer makes carries vt and exp; the browser page is disabled',
    async () => {
      const context = await browser.newContext({ viewport: DESKTOP, ...BYPASS });
      const page = await context.newPage();
      const log = watch(page);
      await page.goto(viewUrl(frontUrl, CMU));
      await waitReady(page);
      await page.waitForFunction(
        `document.querySelector('[data-associated="label"] img')?.naturalWidth > 0`,
        undefined,
        { timeout: T },
      );
      await waitSettled(page);
      const coarse = Math.max(...dziLevels(log.requests));
      const finer = page.waitForRequest((r) => dziLevels([r.url()]).some((l) => l > coarse), { timeout: T });
      for (let i = 0; i < 3; i++) await page.keyboard.press('+');
      await finer;
      await waitSettled(page);

      const api = log.requests.filter((u) => {
        const p = new URL(u).pathname;
        return !p.startsWith('/assets/') && !p.startsWith('/view/');
      });
      expect(api.some((u) => u.includes('/dzi?'))).toBe(true);
      expect(api.some((u) => u.includes('/dzi_files/'))).toBe(true);
      expect(api.some((u) => u.includes('/associated/label.jpg'))).toBe(true);
      expect(api.some((u) => new URL(u).pathname === `/slides/${CMU}`)).toBe(true);
      for (const u of api) {
        const q = new URL(u).searchParams;
        expect(q.get('vt'), u).toBe(TOKEN.vt);
        expect(q.get('exp'), u).toBe(String(TOKEN.exp));
      }
      expect(rejected).toEqual([]);
      expect(proxied.length).toBe(api.length);
      expect(log.errors).toEqual([]);
      expect(foreignRequests(log, frontUrl)).toEqual([]);

      // With signed URLs on, `/` does not list slides.
      const before = log.requests.length;
      await page.goto(`${frontUrl}/`);
      expect(await page.locator('h1').innerText()).toBe('The slide browser is disabled');
      expect(log.requests.slice(before).filter((u) => u.includes('/slides'))).toEqual([]);
      await context.close();
    },
    T * 2,
  );
});
