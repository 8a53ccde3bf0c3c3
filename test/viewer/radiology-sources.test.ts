// The radiology viewer with DICOMweb tokens on (--auth-enabled) over the fixture CT and a NIfTI
// MR volume: the token from the link's hash goes with every request (studies, thumbnails,
// metadata, frames, the progressive stages' HTJ2K byte ranges and streaming), none is refused, a
// page without one shows the server's refusal, the NIfTI-backed series opens like a DICOM one
// (through the stages, and its auto window changes the pixels), and the phone layout puts the
// series list above a viewport that shows the image.
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { signUrl } from '../../src/server/auth.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer } from '../support/server.js';
import { foreignRequests, launchChromium, T, watch, untilPage, type Json } from './helpers.js';

const SECRET = 'a-radiology-viewer-test-secret-0123456789abcdef';

let dir: string;
let server: RunningServer;
let browser: Browser;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'radiology-viewer-'));
  const store = path.join(dir, 'store');
  await mkdir(path.join(store, 'ct'), { recursive: true });
  await mkdir(path.join(store, 'mr'), { recursive: true });
  const ct = fixture('volumes/ct-dicom-j2k');
  for (const f of await readdir(ct)) await copyFile(path.join(ct, f), path.join(store, 'ct', f));
  await copyFile(
    fixture('volumes/nifti/example_mr_sm.nii.gz'),
    path.join(store, 'mr', 'example_mr_sm.nii.gz'),
  );
  await writeFile(
    path.join(store, 'mr', 'example_mr_sm.json'),
    JSON.stringify({ Modality: 'MR', SeriesDescription: 'T1 NIfTI', PatientName: 'Anon^MR' }),
  );
  [server, browser] = await Promise.all([
    startTestServer(store, ['--index-interval', '0', '--auth-enabled', '--auth-secret', SECRET]),
    launchChromium(),
  ]);
  const exp = Math.floor(Date.now() / 1000) + 600;
  const reindex = signUrl({ path: '/admin/reindex', query: 'wait=true', exp, secret: SECRET });
  expect((await request(server, reindex.pathAndQuery, { method: 'POST' })).status).toBe(200);
  token = issueDicomwebToken(SECRET, { expiresAt: exp });
}, T);
afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function spread(page: Page): Promise<{ mean: number; sd: number }> {
  const png = await page.locator('.rad-viewport').first().screenshot();
  const { data } = await sharp(png).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  let sum = 0;
  let sq = 0;
  for (const v of data) {
    sum += v;
    sq += v * v;
  }
  return { mean: sum / data.length, sd: Math.sqrt(sq / data.length - (sum / data.length) ** 2) };
}

/** The page's DICOMweb requests: URL, Authorization, Range, and the answer's status once it comes. */
interface DicomwebRequest {
  url: string;
  auth: string | undefined;
  range: string | undefined;
  status?: number;
}

function recordDicomweb(page: Page): DicomwebRequest[] {
  const requests: DicomwebRequest[] = [];
  const byRequest = new Map<unknown, DicomwebRequest>();
  page.on('request', (r) => {
    if (!r.url().includes('/dicomweb/')) return;
    const e = { url: r.url(), auth: r.headers()['authorization'], range: r.headers()['range'] };
    requests.push(e);
    byRequest.set(r, e);
  });
  page.on('response', (res) => {
    const e = byRequest.get(res.request());
    if (e) e.status = res.status();
  });
  return requests;
}

/** Every request carried the token, as a Bearer header or `?token=`, and none was refused. */
function expectAuthorized(requests: DicomwebRequest[]): void {
  for (const r of requests) {
    expect(r.auth === `Bearer ${token}` || r.url.includes(`token=${encodeURIComponent(token)}`), r.url).toBe(
      true,
    );
    expect([401, 403], r.url).not.toContain(r.status);
  }
}

const FRAME = /\/instances\/[^/]+\/(frames|htj2k)\/\d+/;

async function studies(): Promise<Json[]> {
  const res = await fetch(`${server.url}/dicomweb/studies`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return (await res.json()) as Json[];
}

describe('radiology viewer with tokens, NIfTI and a phone', () => {
  it('sends the token from the link with every request; without one it shows the refusal', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    const log = watch(page);
    const dicomweb = recordDicomweb(page);
    await page.goto(`${server.url}/radiology/#token=${token}`);
    await page.locator('li.rad-study').nth(1).waitFor({ timeout: T });
    // The token left the address bar (it stays in the tab's session storage).
    expect(await page.evaluate('location.hash')).toBe('');
    await untilPage(
      page,
      `[...document.querySelectorAll('.rad-series-link img')].every((i) => i.naturalWidth > 0)`,
      (ok: boolean) => ok,
    );
    await page.locator('.rad-series-link').first().click();
    await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
    await untilPage(page, 'window.medstreamRadiology.view?.display?.loadedCount ?? 0', (n: number) => n > 0);
    // The stack loads through the progressive stages: HTJ2K, its first range of 64,000 bytes.
    expect(await page.evaluate('document.body.dataset.stages')).toBe('on');
    expect(dicomweb.some((r) => r.url.includes('/htj2k/') && r.range === 'bytes=0-63999')).toBe(true);
    expect(dicomweb.some((r) => FRAME.test(r.url))).toBe(true);
    expectAuthorized(dicomweb);
    expect(foreignRequests(log, server.url)).toEqual([]);
    expect(log.errors).toEqual([]);
    await page.close();

    const anonymous = await browser.newPage();
    await anonymous.goto(`${server.url}/radiology/`);
    await anonymous.locator('#status', { hasText: /Search failed/ }).waitFor({ timeout: T });
    await anonymous.close();
  });

  it('pages the study list and filters it by patient name', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    const log = watch(page);
    await page.goto(`${server.url}/radiology/?limit=1#token=${token}`);
    await page.locator('li.rad-study').first().waitFor({ timeout: T });
    expect(await page.locator('li.rad-study').count()).toBe(1);
    await page.click('#more');
    await page.locator('li.rad-study').nth(1).waitFor({ timeout: T });
    expect(await page.locator('#more').isHidden()).toBe(true);
    const uids = await page
      .locator('li.rad-study')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-study')));
    expect(new Set(uids).size).toBe(2);
    await page.fill('input[name=patient]', 'anon');
    await page.click('#study-search button[type=submit]');
    await page.locator('#status', { hasText: /^1 study$/ }).waitFor({ timeout: T });
    expect(await page.locator('.rad-modalities').innerText()).toBe('MR');
    expect(log.errors).toEqual([]);
    await page.close();
  });

  it('opens a NIfTI-backed series like a DICOM one; the auto window changes its pixels', async () => {
    const mr = (await studies()).find((s) => (s['00080061']?.Value ?? []).includes('MR'))!;
    expect(mr).toBeDefined();
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    const log = watch(page);
    const dicomweb = recordDicomweb(page);
    await page.goto(`${server.url}/radiology/#study=${mr['0020000D'].Value![0] as string}&token=${token}`);
    await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
    await untilPage(page, 'window.medstreamRadiology.view?.display?.loadedCount ?? 0', (n: number) => n > 0);
    await page.waitForTimeout(300);
    // Its slices come as HTJ2K made from the NIfTI volume, by byte range with the token.
    expect(await page.evaluate('document.body.dataset.stages')).toBe('on');
    expect(dicomweb.some((r) => r.url.includes('/htj2k/') && r.range === 'bytes=0-63999')).toBe(true);
    expect(dicomweb.filter((r) => r.url.includes('/frames/'))).toEqual([]);
    const first = await spread(page);
    expect(first.sd).toBeGreaterThan(5);
    await page.keyboard.press('4'); // brain 80/40: far too narrow for MR values
    await untilPage(page, 'location.hash', (h: string) => h.includes('ww=80&wc=40'));
    await page.waitForTimeout(300);
    const brain = await spread(page);
    await page.keyboard.press('5'); // auto
    await untilPage(page, 'location.hash', (h: string) => !h.includes('ww=80&'));
    await page.waitForTimeout(300);
    const auto = await spread(page);
    expect(Math.abs(auto.mean - brain.mean) + Math.abs(auto.sd - brain.sd)).toBeGreaterThan(5);
    expect(await page.locator('#rad-error').isHidden()).toBe(true);
    expectAuthorized(dicomweb);
    expect(log.errors).toEqual([]);
    await page.close();
  });

  it('with a token, the MPR volume loads every slice by HTJ2K streaming, none refused', async () => {
    const ct = (await studies()).find((s) => (s['00080061']?.Value ?? []).includes('CT'))!;
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    const log = watch(page);
    const dicomweb = recordDicomweb(page);
    await page.goto(
      `${server.url}/radiology/#study=${ct['0020000D'].Value![0] as string}&layout=mpr&token=${token}`,
    );
    await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
    await untilPage(
      page,
      'window.medstreamRadiology.view?.display?.loadedCount ?? 0',
      (n: number) => n === 20,
    );
    expect(await page.evaluate('document.body.dataset.stages')).toBe('on');
    const frames = dicomweb.filter((r) => FRAME.test(r.url));
    expect(frames.filter((r) => r.url.includes('/htj2k/')).length).toBeGreaterThanOrEqual(20);
    expect(frames.filter((r) => r.url.includes('/frames/'))).toEqual([]);
    // Streaming requests go through beforeSend: the Bearer header, not the URL.
    expect(frames.every((r) => r.range !== undefined || r.auth === `Bearer ${token}`)).toBe(true);
    expectAuthorized(dicomweb);
    expect(await page.locator('#rad-error').isHidden()).toBe(true);
    expect(log.errors).toEqual([]);
    await page.close();
  });

  it('phone layout: series list above, the viewport fills the width and shows the image', async () => {
    const ct = (await studies()).find((s) => (s['00080061']?.Value ?? []).includes('CT'))!;
    const page = await browser.newPage({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
    });
    const log = watch(page);
    await page.goto(`${server.url}/radiology/#study=${ct['0020000D'].Value![0] as string}&token=${token}`);
    await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
    await untilPage(page, 'window.medstreamRadiology.view?.display?.loadedCount ?? 0', (n: number) => n > 0);
    await page.waitForTimeout(300);
    const side = (await page.locator('.rad-side').boundingBox())!;
    const vp = (await page.locator('.rad-viewport').boundingBox())!;
    expect(side.y + side.height).toBeLessThanOrEqual(vp.y + 1);
    expect(vp.width).toBeGreaterThan(370);
    expect(vp.height).toBeGreaterThan(300);
    expect((await spread(page)).sd).toBeGreaterThan(10);
    expect(log.errors).toEqual([]);
    await page.close();
  });
});
