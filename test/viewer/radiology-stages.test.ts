// The radiology viewer's progressive stages in Debian's Chromium against a real MedStream server:
// by default the stack loads HTJ2K by byte range (a 64,000-byte Range request, then the rest) and
// the MPR volume HTJ2K streaming, both showing pixels (the volume identical to the one loaded from
// /frames/); `#stages=off` loads /frames/ only; a colour series (JPEG baseline from dcmtk's
// img2dcm, for which the server answers 415) falls back to /frames/ and still shows its image.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { startIndexedServer } from '../support/server.js';
import { foreignRequests, launchChromium, T, watch, untilPage, first, type Json } from './helpers.js';

let dir: string;
let server: RunningServer;
let browser: Browser;
const ct = { study: '', series: '' };
const colour = { study: '', series: '' };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'radiology-stages-'));
  const store = path.join(dir, 'store');
  await mkdir(path.join(store, 'ct'), { recursive: true });
  await mkdir(path.join(store, 'sc'), { recursive: true });
  const src = fixture('volumes/ct-dicom-j2k');
  for (const f of await readdir(src)) await copyFile(path.join(src, f), path.join(store, 'ct', f));
  // A colour gradient as a JPEG baseline secondary capture: no derived representation (415).
  const w = 128;
  const rgb = Buffer.alloc(w * w * 3);
  for (let i = 0; i < w * w; i++) rgb.set([(i % w) * 2, Math.floor(i / w) * 2, 128], i * 3);
  const jpg = path.join(dir, 'colour.jpg');
  await writeFile(
    jpg,
    await sharp(rgb, { raw: { width: w, height: w, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  const sc = path.join(store, 'sc', 'colour.dcm');
  execFileSync('img2dcm', [jpg, sc]);
  // With an image plane (Cornerstone3D's metadata provider needs one).
  execFileSync('dcmodify', [
    '-nb',
    ...[
      '(0020,0032)=0\\0\\0',
      '(0020,0037)=1\\0\\0\\0\\1\\0',
      '(0028,0030)=1\\1',
      '(0020,0052)=1.2.826.0.1.99',
    ].flatMap((v) => ['-i', v]),
    sc,
  ]);
  [[server, browser]] = await Promise.all([Promise.all([startIndexedServer(store), launchChromium()])]);
  for (const s of (await (await fetch(`${server.url}/dicomweb/studies`)).json()) as Json[]) {
    const study = first(s, '0020000D') as string;
    const [se] = (await (await fetch(`${server.url}/dicomweb/studies/${study}/series`)).json()) as Json[];
    const target = first(se, '00080060') === 'CT' ? ct : colour;
    target.study = study;
    target.series = first(se, '0020000E') as string;
  }
  expect(ct.series).not.toBe('');
  expect(colour.series).not.toBe('');
}, T);
afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface FrameRequest {
  kind: string;
  range?: string;
}

/** Opens `hash` and records the page's frame requests (`frames`, `htj2k`, ...) with their Range. */
async function open(
  hash: string,
  frames: number,
): Promise<{ page: Page; requests: FrameRequest[]; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const log = watch(page);
  const requests: FrameRequest[] = [];
  page.on('request', (r) => {
    const m = /\/instances\/[^/]+\/([A-Za-z0-9]+)\/\d+/.exec(r.url());
    if (m) requests.push({ kind: m[1], range: r.headers().range });
  });
  await page.goto(`${server.url}/radiology/${hash}`);
  await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
  await untilPage(
    page,
    'window.medstreamRadiology.view?.display?.loadedCount ?? 0',
    (n: number) => n === frames,
  );
  // The image is on screen: a good share of the main viewport's pixels are not black.
  await untilPage(
    page,
    'window.medstreamRadiology.view.display.samples.some((x) => x.lit > 0.05)',
    (ok: boolean) => ok,
  );
  expect(foreignRequests(log, server.url)).toEqual([]);
  return { page, requests, errors: log.errors };
}

/** Length and a checksum of the MPR volume's scalars. */
const VOLUME_SUM = `(() => {
  const v = window.medstreamRadiology.view.display.pixelValues();
  let s = 0;
  for (let i = 0; i < v.length; i++) s = (s + v[i] * ((i % 977) + 1)) % 1e12;
  return [v.length, s];
})()`;

describe('radiology viewer progressive stages in Chromium', () => {
  let volumeFromFrames: [number, number];

  it(
    'stages=off: every frame comes from /frames/, and the link keeps it',
    async () => {
      const { page, requests, errors } = await open(`#study=${ct.study}&series=${ct.series}&stages=off`, 20);
      expect(await page.evaluate('document.body.dataset.stages')).toBe('off');
      expect(requests.length).toBeGreaterThanOrEqual(20);
      expect(new Set(requests.map((r) => r.kind))).toEqual(new Set(['frames']));
      expect(await page.evaluate('location.hash')).toContain('stages=off');
      expect(errors).toEqual([]);
      await page.close();
      const mpr = await open(`#study=${ct.study}&series=${ct.series}&layout=mpr&stages=off`, 20);
      expect(new Set(mpr.requests.map((r) => r.kind))).toEqual(new Set(['frames']));
      volumeFromFrames = (await mpr.page.evaluate(VOLUME_SUM)) as [number, number];
      await mpr.page.close();
    },
    T,
  );

  it(
    'default stack: HTJ2K by byte range (64,000 bytes, then the rest), pixels on screen',
    async () => {
      const { page, requests, errors } = await open(`#study=${ct.study}&series=${ct.series}`, 20);
      expect(await page.evaluate('document.body.dataset.stages')).toBe('on');
      expect(requests.filter((r) => r.kind === 'frames')).toEqual([]);
      expect(requests.filter((r) => r.kind === 'htj2k').length).toBeGreaterThanOrEqual(20);
      expect(requests.some((r) => r.kind === 'htj2k' && r.range === 'bytes=0-63999')).toBe(true);
      expect(errors).toEqual([]);
      await page.close();
    },
    T,
  );

  it(
    'default MPR: HTJ2K streaming, the volume identical to the one from /frames/',
    async () => {
      const { page, requests, errors } = await open(`#study=${ct.study}&series=${ct.series}&layout=mpr`, 20);
      expect(await page.evaluate('document.body.dataset.stages')).toBe('on');
      expect(requests.filter((r) => r.kind === 'frames')).toEqual([]);
      expect(requests.filter((r) => r.kind === 'htj2k').length).toBeGreaterThanOrEqual(20);
      expect(await page.locator('.rad-viewport').count()).toBe(3);
      expect(volumeFromFrames[0]).toBeGreaterThan(0);
      expect(await page.evaluate(VOLUME_SUM)).toEqual(volumeFromFrames);
      expect(errors).toEqual([]);
      await page.close();
    },
    T,
  );

  it(
    'a series the server makes no HTJ2K of (415) falls back to /frames/ and shows its image',
    async () => {
      const { page, requests, errors } = await open(`#study=${colour.study}&series=${colour.series}`, 1);
      expect(await page.evaluate('document.body.dataset.stages')).toBe('unavailable');
      // One probe of the derived path, refused; the frame itself from /frames/.
      expect(requests.filter((r) => r.kind === 'htj2k')).toHaveLength(1);
      expect(requests.filter((r) => r.kind === 'frames').length).toBeGreaterThanOrEqual(1);
      expect(await page.locator('#rad-error').isVisible()).toBe(false);
      // Chromium logs the refused probe (415) as a console error; nothing else.
      expect(errors.filter((e) => !/status of 415/.test(e))).toEqual([]);
      await page.close();
    },
    T,
  );
});
