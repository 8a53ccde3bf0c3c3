// The radiology viewer's stack shows a series in the standard display orientation its
// ImageOrientationPatient implies, as the MPR's axial plane does: the same anatomy stored in RAS
// voxel order (nibabel's usual) and in LPS order (DICOM's usual) appears the same way up, the
// patient's left on the screen's right and anterior at the top, also after a scroll, a reset, and
// with the progressive stages (a partial first image, then the final one). Before this, the RAS
// volume's stack showed its stored pixel grid: rotated 180°. Debian's Chromium, a real server.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { encodeNiftiVolume } from '../../src/volumes/nifti.js';
import { startIndexedServer } from '../support/server.js';
import { launchChromium, T, untilPage, watch, type Json } from './helpers.js';

const N = 48;
const SLICES = 3;

/**
 * A 48×48×3 volume (2 mm voxels) that is zero except for a square at the patient's left-anterior
 * (RAS x −40..−18 mm, y 16..38 mm), stored in RAS voxel order or, flipped along i and j, in LPS.
 */
function volume(order: 'RAS' | 'LPS'): Uint8Array {
  const data = new Float32Array(N * N * SLICES);
  for (let k = 0; k < SLICES; k++)
    for (let j = 32; j < 44; j++)
      for (let i = 4; i < 16; i++) {
        const [ii, jj] = order === 'RAS' ? [i, j] : [N - 1 - i, N - 1 - j];
        data[ii + N * (jj + N * k)] = 1000;
      }
  // RAS: i runs to the right, j to the front; LPS: i to the left, j to the back (same mm).
  const s = order === 'RAS' ? 2 : -2;
  const o = order === 'RAS' ? -48 : 46;
  const affine = [s, 0, 0, o, 0, s, 0, o, 0, 0, 3, 0, 0, 0, 0, 1];
  const source = {
    kind: 'dicom' as const,
    instances: [],
    frameOfReferenceUid: '',
    studyInstanceUid: '',
    seriesInstanceUid: '',
    patient: {},
  };
  return encodeNiftiVolume({ dims: [N, N, SLICES], affine, data, source }, `${order} marker`);
}

let dir: string;
let server: RunningServer;
let browser: Browser;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'radiology-orientation-'));
  for (const order of ['RAS', 'LPS'] as const) {
    await mkdir(path.join(dir, order));
    await writeFile(path.join(dir, order, 'marker.nii.gz'), volume(order));
    await writeFile(
      path.join(dir, order, 'marker.json'),
      JSON.stringify({ Modality: 'MR', SeriesDescription: `marker ${order}` }),
    );
  }
  [server, browser] = await Promise.all([startIndexedServer(dir), launchChromium()]);
}, T);
afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The study of the series described `marker <order>`. */
async function studyOf(order: string): Promise<string> {
  const studies = (await (
    await fetch(`${server.url}/dicomweb/studies?includefield=00081030`)
  ).json()) as Json[];
  for (const s of studies) {
    const uid = s['0020000D'].Value![0] as string;
    const series = (await (
      await fetch(`${server.url}/dicomweb/studies/${uid}/series?includefield=0008103E`)
    ).json()) as Json[];
    if (series.some((x) => x['0008103E']?.Value?.[0] === `marker ${order}`)) return uid;
  }
  throw new Error(`no series "marker ${order}"`);
}

/** Centre of the bright pixels of the first viewport's canvas, as fractions of its width and height. */
const BRIGHT_CENTRE = `(() => {
  const c = document.querySelector('.rad-viewport canvas');
  const ctx = c && c.width > 0 ? c.getContext('2d', { willReadFrequently: true }) : null;
  if (!ctx) return null;
  const { data } = ctx.getImageData(0, 0, c.width, c.height);
  let n = 0, sx = 0, sy = 0;
  for (let p = 0; p < data.length; p += 4) {
    if (data[p] > 128) { const q = p / 4; n++; sx += q % c.width; sy += Math.floor(q / c.width); }
  }
  return n === 0 ? null : [sx / n / c.width, sy / n / c.height];
})()`;

const RENDERS = 'window.medstreamRadiology.view?.display?.samples.length ?? 0';

describe('radiology viewer: display orientation of the stack', () => {
  for (const [order, layout, stages] of [
    ['RAS', 'stack', 'off'],
    ['RAS', 'stack', 'on'],
    ['LPS', 'stack', 'off'],
    ['RAS', 'mpr', 'off'],
  ] as const) {
    it(
      `${order}-stored volume, ${layout}, stages ${stages}: the patient's left-anterior marker is at the top right`,
      async () => {
        const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
        const log = watch(page);
        /** Where the marker is on screen (after `action`, once the page has drawn again). */
        const marker = async (action?: () => Promise<void>): Promise<[number, number]> => {
          if (action) {
            const renders = await untilPage(page, RENDERS, (n: number) => n > 0, 20_000);
            await action();
            await untilPage(page, RENDERS, (n: number) => n > renders, 20_000);
          }
          const c = await untilPage<[number, number] | null>(page, BRIGHT_CENTRE, (v) => v !== null, 20_000);
          return c!;
        };
        try {
          const study = await studyOf(order);
          await page.goto(
            `${server.url}/radiology/#study=${study}&layout=${layout}${stages === 'off' ? '&stages=off' : ''}`,
          );
          await untilPage(page, 'document.body.dataset.state', (s: string) => s === 'ready');
          const shown = [await marker()];
          if (layout === 'stack') {
            // The next slice, then the toolbar's reset (r): the orientation holds.
            const slice = 'window.medstreamRadiology.view.display.slice().slice';
            const before = await untilPage(page, slice, (n: number) => n >= 0);
            shown.push(await marker(() => page.keyboard.press('ArrowUp')));
            expect(await untilPage(page, slice, (n: number) => n !== before, 20_000)).toBe(before + 1);
            shown.push(await marker(() => page.keyboard.press('r')));
          }
          for (const [x, y] of shown) {
            expect(x).toBeGreaterThan(0.5);
            expect(y).toBeLessThan(0.5);
          }
          expect(log.errors).toEqual([]);
        } finally {
          await page.close();
        }
      },
      T,
    );
  }
});
