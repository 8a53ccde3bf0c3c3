// Time to first image of the radiology viewer (/radiology/, Cornerstone3D) on localhost, in
// Debian's Chromium: the fixture CT (20 JPEG 2000 slices, 512²) and a generated 174-slice CT (the
// fixture's slices repeated along z with new UIDs, via pydicom), opened by deep link in a fresh
// browser context per run (no HTTP cache). Reports the median of the runs: navigation start to
// the first rendered frame with pixels, and to the whole series loaded (stack prefetch; MPR
// streaming volume). Also the gzip size of the bundle the page loads.
//   npx tsx bench/radiology-viewer.ts [--runs 5]

import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildViewer, VIEWER_OUT_DIR } from '../scripts/build-viewer.js';
import { fixture } from '../test/support/fixtures.js';
import { startIndexedServer } from '../test/support/server.js';
import { launchChromium } from '../test/viewer/helpers.js';

const PYTHON = '/usr/bin/python3';
const GENERATE = `
import sys, os, pydicom
from pydicom.uid import generate_uid
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = sorted((pydicom.dcmread(os.path.join(src, f)) for f in os.listdir(src)), key=lambda d: float(d.ImagePositionPatient[2]))
study, series = generate_uid(), generate_uid()
z0 = float(files[0].ImagePositionPatient[2])
for i in range(n):
    d = files[i % len(files)]
    d.StudyInstanceUID, d.SeriesInstanceUID = study, series
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    d.InstanceNumber = i + 1
    d.ImagePositionPatient = [d.ImagePositionPatient[0], d.ImagePositionPatient[1], z0 + 3.0 * i]
    d.SeriesDescription = f'generated {n} slices'
    d.save_as(os.path.join(out, f'ct{i:04d}.dcm'))
`;

interface Sample {
  at: number;
  loaded: number;
  total: number;
  lit: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : 5;
  await buildViewer();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-radiology-'));
  const small = path.join(dir, 'ct20');
  const large = path.join(dir, 'ct174');
  await mkdir(small);
  await mkdir(large);
  const ct = fixture('volumes/ct-dicom-j2k');
  for (const f of await readdir(ct)) await copyFile(path.join(ct, f), path.join(small, f));
  execFileSync(PYTHON, ['-c', GENERATE, ct, large, '174']);
  const server = await startIndexedServer(dir);
  const browser = await launchChromium();
  try {
    const studies = (await (
      await fetch(`${server.url}/dicomweb/series?includefield=00201209`)
    ).json()) as Record<string, { Value?: unknown[] }>[];
    console.log('| series | layout | runs | first image (median ms) | all frames (median ms) |');
    console.log('| ------ | ------ | ---- | ----------------------- | ---------------------- |');
    for (const s of studies) {
      const study = s['0020000D'].Value![0] as string;
      const series = s['0020000E'].Value![0] as string;
      const n = Number(s['00201209'].Value![0]);
      for (const layout of ['stack', 'mpr']) {
        const first: number[] = [];
        const all: number[] = [];
        for (let r = 0; r < runs; r++) {
          const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
          const page = await context.newPage();
          await page.goto(`${server.url}/radiology/#study=${study}&series=${series}&layout=${layout}`);
          const end = Date.now() + 240_000;
          let state: { samples: Sample[]; completeAt?: number; loaded: number } = { samples: [], loaded: 0 };
          while (Date.now() < end) {
            state = (await page.evaluate(
              `(() => { const d = window.medstreamRadiology.view?.display; return d ? { samples: d.samples, completeAt: d.completeAt, loaded: d.loadedCount } : { samples: [], loaded: 0 }; })()`,
            )) as typeof state;
            if (state.completeAt !== undefined && state.samples.some((x) => x.lit > 0.01)) break;
            await page.waitForTimeout(50);
          }
          const lit = state.samples.find((x) => x.lit > 0.01);
          if (!lit || state.completeAt === undefined)
            throw new Error(`${n}-slice ${layout}: ${state.loaded} frames loaded, lit ${String(!!lit)}`);
          first.push(lit.at);
          all.push(state.completeAt);
          await context.close();
        }
        console.log(
          `| CT ${n} slices (JPEG 2000, 512²) | ${layout} | ${runs} | ${median(first).toFixed(0)} | ${median(all).toFixed(0)} |`,
        );
      }
    }
    console.log('\n| asset | bytes | gzip |');
    console.log('| ----- | ----- | ---- |');
    for (const f of [
      'radiology.js',
      'radiology-style.css',
      'radiology-decode-worker.js',
      'codecs/openjpegwasm_decode.wasm',
    ]) {
      const body = await readFile(path.join(VIEWER_OUT_DIR, f));
      console.log(`| ${f} | ${body.length} | ${gzipSync(body).length} |`);
    }
  } finally {
    await browser.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
