// Shared by the viewer tests: a temporary slide directory with three real slides (one in a
// folder), and Debian's Chromium driven by playwright-core.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
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
