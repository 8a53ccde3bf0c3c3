// Shared by the viewer tests: a temporary slide directory with three real slides (one in a
// folder), Debian's Chromium driven by playwright-core, what a page did (requests, errors), and
// polling a page expression; DICOM JSON attribute access for the radiology viewer tests.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { fixture } from '../support/fixtures.js';

export const CMU = 'CMU-1-Small-Region.svs';
export const PYRAMID = 'pyramid-jpeg.tif';
/** In a folder, for prefix navigation. */
export const COG = 'cases/cog.tif';

export async function makeSlideDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-viewer-'));
  await mkdir(path.join(dir, 'cases'));
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, CMU));
  await copyFile(fixture('wsi/generated/pyramid-jpeg.tif'), path.join(dir, PYRAMID));
  await copyFile(fixture('wsi/cog/cog.tif'), path.join(dir, COG));
  return dir;
}

export async function removeSlideDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

/** What a page did: every request URL, console errors and uncaught exceptions. */
export interface PageLog {
  requests: string[];
  errors: string[];
}

export function watch(page: Page): PageLog {
  const log: PageLog = { requests: [], errors: [] };
  page.on('request', (r) => log.requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') log.errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => log.errors.push(`pageerror: ${e.message}`));
  return log;
}

/** Requests that went anywhere but `origin` (data: and blob: URLs stay in the page). */
export function foreignRequests(log: PageLog, origin: string): string[] {
  return log.requests.filter((u) => !u.startsWith(`${origin}/`) && !/^(data|blob):/.test(u));
}

/** Deep Zoom levels of the tile requests in `urls`. */
export function dziLevels(urls: string[]): number[] {
  return urls.flatMap((u) => {
    const m = /\/dzi_files\/(\d+)\//.exec(u);
    return m ? [Number(m[1])] : [];
  });
}

/** Longest wait for one condition: generous, for a slow, busy 2-core machine. */
export const T = 90_000;

/**
 * Polls the expression `js` in the page (through the DevTools protocol, not the page's eval: its
 * CSP stays on) until `ok` holds for its value, every `every` ms, for at most `ms`.
 */
export async function untilPage<R>(
  page: Page,
  js: string,
  ok: (r: R) => boolean,
  ms = T,
  every = 100,
): Promise<R> {
  const end = Date.now() + ms;
  for (;;) {
    const r = (await page.evaluate(js)) as R;
    if (ok(r)) return r;
    if (Date.now() > end) throw new Error(`timed out; last ${JSON.stringify(r)}`);
    await page.waitForTimeout(every);
  }
}

/** A DICOM JSON object (QIDO-RS / metadata): attributes by tag. */
export type Json = Record<string, { Value?: unknown[] }>;
/** The first value of attribute `tag` of `o`. */
export const first = (o: Json, tag: string): unknown => o[tag]?.Value?.[0];

/** The first study QIDO-RS lists at `origin` and the first series of it (their instance UIDs). */
export async function firstSeries(
  origin: string,
  headers: Record<string, string> = {},
): Promise<{ study: string; series: string }> {
  const get = async (p: string) => (await (await fetch(`${origin}${p}`, { headers })).json()) as Json[];
  const [s] = await get('/dicomweb/studies');
  const study = first(s, '0020000D') as string;
  const [se] = await get(`/dicomweb/studies/${study}/series`);
  return { study, series: first(se, '0020000E') as string };
}

export async function waitReady(page: Page): Promise<void> {
  await page.waitForFunction(`document.body.dataset.state === 'ready'`, undefined, { timeout: T });
}

/** Waits until the viewport stopped moving, the hash is written and no tile is loading. */
export async function waitSettled(page: Page): Promise<void> {
  await page.waitForFunction(
    `(() => {
      const v = window.medstreamViewer && window.medstreamViewer.viewport;
      if (!v || document.body.dataset.loading !== 'false') return false;
      return Math.abs(v.getZoom(true) - v.getZoom(false)) < 1e-9 &&
        v.getCenter(true).distanceTo(v.getCenter(false)) < 1e-9;
    })()`,
    undefined,
    { timeout: T },
  );
}

/** Share of pixels in the centre of the viewer that are not its black background, and their spread. */
export async function centrePixels(page: Page): Promise<{ share: number; spread: number }> {
  const png = await page.locator('#osd').screenshot();
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const x0 = Math.floor(info.width * 0.3);
  const x1 = Math.floor(info.width * 0.7);
  const y0 = Math.floor(info.height * 0.3);
  const y1 = Math.floor(info.height * 0.7);
  let n = 0;
  let lit = 0;
  let min = 255;
  let max = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const i = (y * info.width + x) * 3;
      const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
      n++;
      if (Math.max(data[i], data[i + 1], data[i + 2]) > 24) lit++;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  return { share: lit / n, spread: max - min };
}
