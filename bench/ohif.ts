// Time to OHIF's first image on localhost (docs/ohif.md): MedStream serving OHIF at /ohif/ over
// the 20-slice fixture CT (JPEG 2000, decoded in the browser), Debian's Chromium driven by
// playwright-core. For each run: the study list until the CT's row shows, then the viewer until
// the viewport's canvas shows the slice; cold (a fresh browser context: OHIF's 17 MB bundle
// fetched and compiled) and warm (the same context again: scripts from its cache).
//   npx tsx bench/ohif.ts [runs]
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { fixture } from '../test/support/fixtures.js';
import { startIndexedServer } from '../test/support/server.js';
import { launchChromium } from '../test/viewer/helpers.js';

const runs = Number(process.argv[2] ?? 3);
// Lit pixels on the viewport canvas (Cornerstone3D copies each render into it).
const SHOWN = `(() => {
  const c = document.querySelector('canvas.cornerstone-canvas');
  if (!c || !c.width) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < d.length; i += 16) if (d[i] > 20) lit++;
  return lit > 1000;
})()`;

const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-ohif-'));
await cp(fixture('volumes/ct-dicom-j2k'), path.join(dir, 'store', 'ct'), { recursive: true });
const [server, browser] = await Promise.all([
  startIndexedServer(path.join(dir, 'store'), ['--ohif']),
  launchChromium(),
]);
try {
  const res = await fetch(`${server.url}/dicomweb/studies`);
  const study = ((await res.json()) as Array<Record<string, { Value: string[] }>>)[0]['0020000D'].Value[0];

  async function time(page: Page): Promise<{ list: number; image: number }> {
    let start = performance.now();
    await page.goto(`${server.url}/ohif/`);
    await page.getByText('08-Dec-2022').first().waitFor({ timeout: 120_000 });
    const list = performance.now() - start;
    start = performance.now();
    await page.goto(`${server.url}/ohif/viewer?StudyInstanceUIDs=${study}`);
    await page.waitForFunction(SHOWN, undefined, { timeout: 120_000, polling: 50 });
    return { list, image: performance.now() - start };
  }

  const rows: Array<{ kind: string; list: number; image: number }> = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    rows.push({ kind: 'cold', ...(await time(page)) });
    rows.push({ kind: 'warm', ...(await time(page)) });
    await context.close();
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`OHIF first image, fixture CT (20 × 512², JPEG 2000), ${runs} runs, ${os.cpus().length} cores`);
  for (const kind of ['cold', 'warm']) {
    const mine = rows.filter((r) => r.kind === kind);
    console.log(
      `${kind}: study list ${median(mine.map((r) => r.list)).toFixed(0)} ms, ` +
        `viewer to first image ${median(mine.map((r) => r.image)).toFixed(0)} ms (median; all: ${mine
          .map((r) => r.image.toFixed(0))
          .join(', ')})`,
    );
  }
} finally {
  await browser.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
