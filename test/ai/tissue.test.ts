// The built-in `tissue` model on the fixture slides: its mask equals, pixel for pixel, an
// independent reference (NumPy Otsu + scipy.ndimage opening/closing, tissue-reference.py) on the
// same thumbnail, and the whole-slide call agrees with it on the tissue fraction.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer } from '../support/server.js';

const run = promisify(execFile);
const REFERENCE = fileURLToPath(new URL('./tissue-reference.py', import.meta.url));
const SLIDES = ['svs/CMU-1-Small-Region.svs', 'svs/tcga-cr-7395-01a-01-ts1.svs', 'openslide/small.svs'];

let server: RunningServer;
let tmp: string;

beforeAll(async () => {
  server = await startTestServer(fixture('wsi'));
  tmp = await mkdtemp(path.join(os.tmpdir(), 'medstream-tissue-'));
});

afterAll(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

interface TissueAnswer {
  tissueFraction: number;
  threshold: number;
  morphologyRadius: number;
  result: { mask: string; width: number; height: number };
}

async function reference(rgb: Buffer, width: number, height: number, radius: number) {
  const file = path.join(tmp, 'thumb.rgb');
  await writeFile(file, rgb);
  const { stdout } = await run(
    '/usr/bin/python3',
    [REFERENCE, file, String(width), String(height), String(radius)],
    {
      maxBuffer: 64 << 20,
    },
  );
  return JSON.parse(stdout) as { threshold: number; fraction: number; mask: number[] };
}

describe('built-in tissue model', () => {
  it.each(SLIDES)('%s: the mask of an uploaded thumbnail equals the NumPy/scipy reference', async (slide) => {
    const thumb = await request(server, `/slides/${encodeURIComponent(slide)}/thumbnail?max_size=512`);
    expect(thumb.status).toBe(200);
    const { data, info } = await sharp(thumb.body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const upload = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
      .png()
      .toBuffer();
    const res = await request(server, '/ai/models/tissue/infer', {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: new Uint8Array(upload),
    });
    expect(res.status).toBe(200);
    const answer = res.json() as TissueAnswer;
    const ref = await reference(data, info.width, info.height, answer.morphologyRadius);
    expect(answer.threshold).toBe(ref.threshold);
    expect(answer.tissueFraction).toBeCloseTo(ref.fraction, 10);
    // Tissue present and background present: a real split, not a trivial mask.
    expect(ref.fraction).toBeGreaterThan(0.02);
    expect(ref.fraction).toBeLessThan(0.98);
    const mask = await sharp((await request(server, answer.result.mask)).body)
      .extractChannel(0)
      .raw()
      .toBuffer();
    expect(mask.length).toBe(ref.mask.length);
    let differing = 0;
    for (let i = 0; i < mask.length; i++) if (mask[i] !== ref.mask[i] * 255) differing++;
    expect(differing).toBe(0);
  });

  it.each(SLIDES)(
    '%s: the whole-slide call agrees with the reference on the tissue fraction',
    async (slide) => {
      const res = await request(server, '/ai/models/tissue/infer', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ slide, size: 512 }),
      });
      expect(res.status).toBe(200);
      const answer = res.json() as TissueAnswer;
      expect(Math.max(answer.result.width, answer.result.height)).toBe(512);
      // The reference on the JPEG thumbnail of the same size: resampling and JPEG differ a little.
      const thumb = await request(server, `/slides/${encodeURIComponent(slide)}/thumbnail?max_size=512`);
      const { data, info } = await sharp(thumb.body)
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const ref = await reference(data, info.width, info.height, answer.morphologyRadius);
      expect(Math.abs(answer.tissueFraction - ref.fraction)).toBeLessThan(0.02);
    },
  );

  it('finds no tissue on a blank image', async () => {
    const blank = await sharp({
      create: { width: 64, height: 64, channels: 3, background: { r: 240, g: 240, b: 240 } },
    })
      .png()
      .toBuffer();
    const res = await request(server, '/ai/models/tissue/infer', {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: new Uint8Array(blank),
    });
    expect((res.json() as TissueAnswer).tissueFraction).toBe(0);
  });
});
