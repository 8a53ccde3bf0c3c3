// Float NIfTI volumes (written here with nibabel) served as int16 frames: decoded with the
// synthesised Rescale Slope/Intercept they equal nibabel's values within slope/2 (NaN/Inf at the
// minimum), integer-valued floats stay exact, scl_slope/scl_inter compose with the rescale, and
// rendered images and volume.nii.gz still work.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';
import { value, type DicomJsonObject } from './client.js';

let dir: string;
let server: RunningServer;

interface Reference {
  /** Real values (nibabel's get_fdata) per slice, rows of columns flattened; null = NaN/Inf. */
  slices: (number | null)[][];
  min: number;
}
let references: Record<string, Reference>;

// float32 with NaN/±Inf (.nii.gz), integer-valued float32 (.nii), float64 with scl_slope 2 and
// scl_inter 10 patched into the header (.nii, big-endian to exercise the swap).
const WRITE = `import json, sys, numpy as np, nibabel as nib
out = sys.argv[1]
rng = np.random.default_rng(7)
refs = {}
def save(name, data, patch=None, big=False):
    header = nib.Nifti1Header(endianness='>' if big else '<')
    img = nib.Nifti1Image(data, np.diag([0.9, 0.9, 2.5, 1]), header=header)
    nib.save(img, f"{out}/{name}")
    if patch:
        raw = bytearray(open(f"{out}/{name}", "rb").read())
        e = '<' if raw[0] == 92 else '>'
        assert (e == '>') == big
        raw[112:120] = np.array(patch, dtype=e + 'f4').tobytes()
        open(f"{out}/{name}", "wb").write(bytes(raw))
    a = nib.load(f"{out}/{name}").get_fdata()
    fin = a[np.isfinite(a)]
    refs[name.split('.')[0]] = {"min": float(fin.min()), "slices": [
        [None if not np.isfinite(v) else float(v) for v in a[:, :, k].T.ravel()] for k in range(a.shape[2])]}
f = rng.uniform(-1000.5, 2500.25, (7, 5, 4)).astype(np.float32)
f[1, 2, 0] = np.nan; f[3, 1, 2] = np.inf; f[0, 0, 3] = -np.inf
save("floats.nii.gz", f)
save("integers.nii", rng.integers(-500, 1200, (6, 4, 3)).astype(np.float32))
save("scaled.nii", rng.uniform(0, 1, (5, 5, 3)).astype(np.float64), patch=[2.0, 10.0], big=True)
print(json.dumps(refs))`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nifti-float-'));
  references = python<Record<string, Reference>>(WRITE, [dir]);
  // A float volume cut short: its value range cannot be found, so it is an index error.
  const whole = await readFile(path.join(dir, 'floats.nii.gz'));
  await writeFile(path.join(dir, 'cut.nii.gz'), whole.subarray(0, whole.length - 200));
  server = await startIndexedServer(dir, ['--nifti-modality', 'MR']);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The series of a volume and its instances' metadata, by instance number. */
async function seriesOf(name: string) {
  const studies = (
    await request(server, `/dicomweb/studies?StudyDescription=${name}`)
  ).json() as DicomJsonObject[];
  expect(studies).toHaveLength(1);
  const study = value(studies[0], '0020000D') as string;
  const series = (await request(server, `/dicomweb/studies/${study}/series`)).json() as DicomJsonObject[];
  const url = `/dicomweb/studies/${study}/series/${value(series[0], '0020000E')}`;
  const metadata = (await request(server, `${url}/metadata`)).json() as DicomJsonObject[];
  const byNumber = new Map(metadata.map((m) => [value(m, '00200013') as number, m]));
  return { url, byNumber };
}

/** Frame 1 of an instance as int16 samples. */
async function frame(url: string, instance: DicomJsonObject): Promise<Int16Array> {
  const res = await request(server, `${url}/instances/${value(instance, '00080018')}/frames/1`, {
    headers: { Accept: 'application/octet-stream' },
  });
  expect(res.status).toBe(200);
  return new Int16Array(res.body.buffer.slice(res.body.byteOffset, res.body.byteOffset + res.body.length));
}

describe('float NIfTI volumes', () => {
  it('serves int16 frames that decode with the synthesised rescale to nibabel’s values within slope/2', async () => {
    for (const name of ['floats', 'integers', 'scaled']) {
      const reference = references[name];
      const { url, byNumber } = await seriesOf(name);
      expect(byNumber.size).toBe(reference.slices.length);
      for (const [k, expected] of reference.slices.entries()) {
        const instance = byNumber.get(k + 1)!;
        expect(value(instance, '00280100')).toBe(16);
        expect(value(instance, '00280101')).toBe(16);
        expect(value(instance, '00280103')).toBe(1);
        const slope = value(instance, '00281053') as number;
        const intercept = value(instance, '00281052') as number;
        expect(typeof slope).toBe('number');
        expect(typeof intercept).toBe('number');
        const samples = await frame(url, instance);
        expect(samples.length).toBe(expected.length);
        samples.forEach((q, i) => {
          const real = q * slope + intercept;
          const want = expected[i] ?? reference.min; // NaN/Inf are served as the minimum
          expect(Math.abs(real - want), `${name} slice ${k} voxel ${i}`).toBeLessThanOrEqual(
            slope / 2 + 1e-9,
          );
        });
        if (name === 'floats') {
          // The finite range spans (nearly) all of int16: the most precision a 16-bit frame gives.
          expect(slope).toBeLessThan((2500.25 + 1000.5) / 60000);
        }
        if (name === 'integers') {
          expect([slope, intercept]).toEqual([1, 0]);
          samples.forEach((q, i) => expect(q).toBe(expected[i]));
        }
        if (name === 'scaled') expect(slope).toBeGreaterThan(1 / 65535); // 2 x the volume's own step
      }
    }
  });

  it('records a truncated float volume as an index error', async () => {
    const res = await request(server, '/admin/index/errors');
    const problems = (res.json() as { problems: { key: string; reason: string }[] }).problems;
    expect(problems.map((p) => [p.key, p.reason.split(':')[0]])).toEqual([['cut.nii.gz', 'corrupt_file']]);
  });

  it('renders a float slice and answers volume.nii.gz as the stored volume', async () => {
    for (const [name, file] of [
      ['floats', 'floats.nii.gz'],
      ['scaled', 'scaled.nii'],
    ]) {
      const { url, byNumber } = await seriesOf(name);
      const rendered = await request(
        server,
        `${url}/instances/${value(byNumber.get(2)!, '00080018')}/rendered`,
        {
          headers: { Accept: 'image/png' },
        },
      );
      expect(rendered.status).toBe(200);
      expect(rendered.headers.get('content-type')).toBe('image/png');
      const stats = await sharp(rendered.body).stats();
      expect(stats.channels[0].stdev).toBeGreaterThan(10); // an image, not a flat window
      const volume = await request(server, `${url}/volume.nii.gz`);
      expect(volume.status).toBe(200);
      const stored = await readFile(path.join(dir, file));
      expect(gunzipSync(volume.body).equals(file.endsWith('.gz') ? gunzipSync(stored) : stored)).toBe(true);
    }
  });
});
