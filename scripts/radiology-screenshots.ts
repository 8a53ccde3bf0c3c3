// Writes the radiology viewer's screenshots for the docs — docs/images/radiology-mpr.png (the
// fixture CT in the MPR layout) and docs/images/radiology-stack.png (the stack with the lung
// preset) at 1280x800 — from a real server over the fixture CT and Debian's Chromium. Run it
// after a visible change to the radiology viewer and commit the images:
//   npx tsx scripts/radiology-screenshots.ts

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture } from '../test/support/fixtures.js';
import { startIndexedServer } from '../test/support/server.js';
import { launchChromium } from '../test/viewer/helpers.js';
import { buildViewer } from './build-viewer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function main(): Promise<void> {
  await buildViewer();
  const server = await startIndexedServer(fixture('volumes/ct-dicom-j2k'));
  const browser = await launchChromium();
  try {
    const [study] = (await (await fetch(`${server.url}/dicomweb/studies`)).json()) as Record<
      string,
      { Value: string[] }
    >[];
    const uid = study['0020000D'].Value[0];
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const loaded = async (): Promise<void> => {
      for (let i = 0; i < 600; i++) {
        const n = (await page.evaluate(
          'window.medstreamRadiology.view?.display?.loadedCount ?? 0',
        )) as number;
        if (n === 20) break;
        await page.waitForTimeout(100);
      }
      await page.waitForTimeout(500);
    };
    await page.goto(`${server.url}/radiology/#study=${uid}&layout=mpr`);
    await loaded();
    await page.screenshot({ path: path.join(ROOT, 'docs/images/radiology-mpr.png') });
    await page.goto('about:blank');
    await page.goto(`${server.url}/radiology/#study=${uid}&slice=8&ww=1500&wc=-600`);
    await loaded();
    await page.screenshot({ path: path.join(ROOT, 'docs/images/radiology-stack.png') });
  } finally {
    await browser.close();
    await server.close();
  }
}

await main();
