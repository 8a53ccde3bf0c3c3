// Every slide format in the viewer, in Chromium: a Hamamatsu NDPI and a DICOM WSI series
// (addressed by its folder) open, draw tiles and show their metadata, with no console errors
// and no request leaving 127.0.0.1.
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { startTestServer } from '../support/server.js';
import {
  centrePixels,
  foreignRequests,
  launchChromium,
  T,
  waitReady,
  waitSettled,
  watch,
} from './helpers.js';

const NDPI = 'test3-DAPI-2.ndpi';
const DICOM = 'cases/cmu-dicom/';

let dir: string;
let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-viewer-formats-'));
  await copyFile(fixture(`wsi/ndpi/${NDPI}`), path.join(dir, NDPI));
  const series = fixture('wsi/dicom-wsi/cmu-1-small-region');
  await mkdir(path.join(dir, DICOM), { recursive: true });
  for (const file of await readdir(series))
    await copyFile(path.join(series, file), path.join(dir, DICOM, file));
  [server, browser] = await Promise.all([startTestServer(dir), launchChromium()]);
}, T);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the viewer on every format', () => {
  it.each([
    [NDPI, 'hamamatsu', 0.01],
    [DICOM, 'dicom-wsi', 0.9],
  ])(
    '%s opens, draws tiles and shows its metadata',
    async (id, vendor, lit) => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
      const page = await context.newPage();
      const log = watch(page);
      await page.goto(`${server.url}/view/${encodeURIComponent(id)}`);
      await waitReady(page);
      await waitSettled(page);
      // DAPI fluorescence is mostly dark: the NDPI only needs some lit nuclei and contrast.
      const centre = await centrePixels(page);
      expect(centre.share).toBeGreaterThan(lit);
      expect(centre.spread).toBeGreaterThan(20);
      expect(await page.locator('[data-field="vendor"]').innerText()).toBe(vendor);
      expect(await page.locator('[data-field="mpp"]').innerText()).toMatch(/µm\/px$/);
      expect(log.requests.some((u) => u.includes('/dzi_files/'))).toBe(true);
      expect(log.errors).toEqual([]);
      expect(foreignRequests(log, server.url)).toEqual([]);
      await page.screenshot({ path: path.resolve('test-results', `viewer-${vendor}.png`) });
      await context.close();
    },
    T * 2,
  );
});
