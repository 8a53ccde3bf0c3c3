// Writes the screenshots the docs show — docs/images/viewer.png, the viewer on
// CMU-1-Small-Region.svs at 1280x800 — from a real server and Debian's Chromium, with the same
// slides and waits as test/viewer/browser.test.ts (which checks the pages and writes nothing into
// the working tree). Run it after a visible change to the viewer and commit the image:
//   npm run screenshots

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { parseConfig } from '../src/cli/config.js';
import { startServer } from '../src/cli/serve.js';
import {
  CMU,
  launchChromium,
  makeSlideDir,
  removeSlideDir,
  T,
  waitReady,
  waitSettled,
} from '../test/viewer/helpers.js';
import { buildViewer } from './build-viewer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VIEWER_PNG = path.join(ROOT, 'docs/images/viewer.png');

async function main(): Promise<void> {
  await buildViewer();
  const dir = await makeSlideDir();
  const { config } = parseConfig([dir, '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'], {});
  const server = await startServer(config);
  const browser = await launchChromium();
  try {
    // bypassCSP: playwright's string predicates use eval, which the pages' CSP forbids.
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    const page = await context.newPage();
    await page.goto(`${server.url}/view/${encodeURIComponent(CMU)}`);
    await waitReady(page);
    await waitSettled(page);
    await page.waitForFunction(
      `(() => { const i = document.querySelector('[data-associated="label"] img'); return i && i.complete && i.naturalWidth > 0; })()`,
      undefined,
      { timeout: T },
    );
    // The "Loading tiles…" badge fades out (0.3 s opacity transition) after the last tile.
    await page.waitForFunction(
      `getComputedStyle(document.querySelector('.progress')).opacity === '0'`,
      undefined,
      { timeout: T },
    );
    const shot = await page.screenshot();
    // A palette PNG keeps the repository small.
    const info = await sharp(shot).png({ palette: true, colours: 256, effort: 10 }).toFile(VIEWER_PNG);
    process.stdout.write(
      `${path.relative(ROOT, VIEWER_PNG)}: ${info.width}x${info.height}, ${info.size} bytes\n`,
    );
  } finally {
    await browser.close();
    await server.close();
    await removeSlideDir(dir);
  }
}

await main();
