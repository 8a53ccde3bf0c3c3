// NIfTI volumes in the catalog: each .nii / .nii.gz is one study with one series of one instance
// per slice, found by QIDO like any CT; the synthesised geometry equals nibabel's affine turned
// into DICOM (RAS -> LPS); a sidecar .json names the modality and descriptions; a 4D or corrupt
// file is an index error, not a crash.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { decodeHtj2k } from '../support/j2k-decode.js';
import { request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';
import { dicomwebClient, value, type DicomJsonObject, type TestDicomwebClient } from './client.js';

let dir: string;
let server: RunningServer;
let client: TestDicomwebClient;

/** A NIfTI-1 header of a 4D volume (dim[0] = 4, 2x2x2x3), for the refusal test. */
function fourD(): Buffer {
  const b = Buffer.alloc(352);
  b.writeInt32LE(348, 0);
  [4, 2, 2, 2, 3, 1, 1, 1].forEach((d, i) => b.writeInt16LE(d, 40 + i * 2));
  b.writeInt16LE(4, 70); // int16
  b.writeInt16LE(16, 72);
  [1, 1, 1, 1, 1, 0, 0, 0].forEach((p, i) => b.writeFloatLE(p, 76 + i * 4));
  b.writeFloatLE(352, 108);
  b.write('n+1\0', 344, 'latin1');
  return Buffer.concat([b, Buffer.alloc(2 * 2 * 2 * 3 * 2)]);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nifti-'));
  const store = path.join(dir, 'store');
  await mkdir(path.join(store, 'ct'), { recursive: true });
  await mkdir(path.join(store, 'mr'), { recursive: true });
  await copyFile(
    fixture('volumes/nifti/example_ct_sm.nii.gz'),
    path.join(store, 'ct', 'example_ct_sm.nii.gz'),
  );
  await copyFile(
    fixture('volumes/nifti/example_mr_sm.nii.gz'),
    path.join(store, 'mr', 'example_mr_sm.nii.gz'),
  );
  await writeFile(
    path.join(store, 'mr', 'example_mr_sm.json'),
    JSON.stringify({
      Modality: 'MR',
      SeriesDescription: 'T1 sagittal',
      PatientName: 'Anon^MR',
      EchoTime: 0.01,
    }),
  );
  // The same CT volume uncompressed: its slices are range reads instead of a cached inflate.
  await mkdir(path.join(store, 'plain'));
  await writeFile(
    path.join(store, 'plain', 'ct_plain.nii'),
    gunzipSync(await readFile(fixture('volumes/nifti/example_ct_sm.nii.gz'))),
  );
  await writeFile(path.join(store, 'four-d.nii.gz'), gzipSync(fourD()));
  await writeFile(path.join(store, 'broken.nii.gz'), gzipSync(fourD()).subarray(0, 40));
  await writeFile(path.join(store, 'other.tar.gz'), gzipSync(Buffer.from('just some archive')));
  server = await startIndexedServer(store, ['--nifti-modality', 'CT']);
  client = dicomwebClient(server.url + '/dicomweb');
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('NIfTI in the catalog', () => {
  it('serves each slice as a native frame equal to nibabel’s stored samples, from .nii.gz and .nii', async () => {
    const reference = python<{ slices: string[] }>(
      `import base64, json, sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
a = np.asanyarray(img.dataobj.get_unscaled())
print(json.dumps({"slices": [base64.b64encode(a[:, :, k].T.astype('<i2').tobytes()).decode() for k in (0, 13, 29)]}))`,
      [fixture('volumes/nifti/example_ct_sm.nii.gz')],
    );
    for (const description of ['example_ct_sm', 'ct_plain']) {
      const [study] = await client.searchForStudies({ queryParams: { StudyDescription: description } });
      const studyUid = value(study, '0020000D') as string;
      const instances = await client.searchForInstances({
        studyInstanceUID: studyUid,
        queryParams: { limit: 30 },
      });
      const byNumber = new Map(instances.map((i) => [value(i, '00200013') as number, i]));
      for (const [n, k] of [0, 13, 29].entries()) {
        const i = byNumber.get(k + 1)!;
        const frame = await request(
          server,
          `/dicomweb/studies/${studyUid}/series/${value(i, '0020000E')}/instances/${value(i, '00080018')}/frames/1`,
          { headers: { Accept: 'application/octet-stream' } },
        );
        expect(frame.status, `${description} slice ${k}`).toBe(200);
        expect(frame.headers.get('content-type')).toBe(
          'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1',
        );
        expect(
          frame.body.equals(Buffer.from(reference.slices[n], 'base64')),
          `${description} slice ${k}`,
        ).toBe(true);
      }
      const thumbnail = await request(server, `/dicomweb/studies/${studyUid}/thumbnail`);
      expect(thumbnail.status).toBe(200);
      expect(thumbnail.headers.get('content-type')).toBe('image/jpeg');
    }
  });

  it('derives each slice its own HTJ2K (the slices share one stored object): equal to nibabel', async () => {
    const reference = python<{ slices: number[][] }>(
      `import json, sys, numpy as np, nibabel as nib
a = np.asanyarray(nib.load(sys.argv[1]).dataobj.get_unscaled())
print(json.dumps({"slices": [a[:, :, k].T.ravel().astype(int).tolist() for k in (0, 13, 29)]}))`,
      [fixture('volumes/nifti/example_ct_sm.nii.gz')],
    );
    const [study] = await client.searchForStudies({ queryParams: { StudyDescription: 'example_ct_sm' } });
    const studyUid = value(study, '0020000D') as string;
    const instances = await client.searchForInstances({
      studyInstanceUID: studyUid,
      queryParams: { limit: 30 },
    });
    const byNumber = new Map(instances.map((i) => [value(i, '00200013') as number, i]));
    // Slice 0 first, so a cache keyed by the object alone would answer it for the others.
    for (const [n, k] of [0, 13, 29].entries()) {
      const i = byNumber.get(k + 1)!;
      const res = await request(
        server,
        `/dicomweb/studies/${studyUid}/series/${value(i, '0020000E')}/instances/${value(i, '00080018')}/htj2k/1?accept=image/jhc`,
      );
      expect(res.status, `slice ${k}`).toBe(200);
      expect((await decodeHtj2k(res.body)).samples, `slice ${k}`).toEqual(reference.slices[n]);
    }
  });

  it('lists each volume as a study with one series of one instance per slice', async () => {
    const studies = await client.searchForStudies({ queryParams: { includefield: '00081030' } });
    expect(studies).toHaveLength(3);
    const ct = studies.find((s) => value(s, '00081030') === 'example_ct_sm')!;
    expect(value(ct, '0020000D')).toMatch(/^2\.25\.\d+$/);
    expect(ct['00080061'].Value).toEqual(['CT']); // --nifti-modality
    expect(value(ct, '00201206')).toBe(1);
    expect(value(ct, '00201208')).toBe(30);
    const mr = studies.find((s) => value(s, '00081030') === 'example_mr_sm')!;
    expect(mr['00080061'].Value).toEqual(['MR']); // the sidecar wins
    expect(value(mr, '00100010')).toBe('Anon^MR');
    const series = await client.searchForSeries({ studyInstanceUID: value(mr, '0020000D') as string });
    expect(value(series[0], '0008103E')).toBe('T1 sagittal');
  });

  it('synthesises per-slice geometry equal to nibabel’s affine in LPS', async () => {
    const [ct] = await client.searchForStudies({ queryParams: { StudyDescription: 'example_ct_sm' } });
    const page1 = await client.searchForInstances({
      studyInstanceUID: value(ct, '0020000D') as string,
      queryParams: { includefield: 'all', limit: 30 },
    });
    expect(page1).toHaveLength(30);
    const reference = python<{ shape: number[]; affine: number[][] }>(
      `import json, sys, nibabel as nib
img = nib.load(sys.argv[1])
print(json.dumps({"shape": list(img.shape), "affine": img.affine.tolist()}))`,
      [fixture('volumes/nifti/example_ct_sm.nii.gz')],
    );
    const [nx, ny, nz] = reference.shape;
    const A = reference.affine;
    const lps = (v: number[]) => [-v[0], -v[1], v[2]];
    const byNumber = new Map(page1.map((i) => [value(i, '00200013') as number, i]));
    expect([...byNumber.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: nz }, (_, k) => k + 1));
    for (const k of [0, 7, nz - 1]) {
      const slice = byNumber.get(k + 1) as DicomJsonObject;
      expect(value(slice, '00280011')).toBe(nx); // Columns: first array axis
      expect(value(slice, '00280010')).toBe(ny); // Rows: second array axis
      const position = lps([0, 1, 2].map((r) => A[r][2] * k + A[r][3]));
      (slice['00200032'].Value as number[]).forEach((v, i) => expect(v).toBeCloseTo(position[i], 3));
      const row = lps([A[0][0], A[1][0], A[2][0]]).map((v) => v / 3);
      const col = lps([A[0][1], A[1][1], A[2][1]]).map((v) => v / 3);
      (slice['00200037'].Value as number[]).forEach((v, i) => expect(v).toBeCloseTo([...row, ...col][i], 6));
      expect(slice['00280030'].Value).toEqual([3, 3]);
      expect(value(slice, '00280100')).toBe(16);
      expect(value(slice, '00280103')).toBe(1); // int16: signed
      expect(value(slice, '00080016')).toBe('1.2.840.10008.5.1.4.1.1.2');
    }
  });

  it('records 4D and corrupt volumes as index errors, and leaves other gzip files alone', async () => {
    const res = await request(server, '/admin/index/errors');
    const problems = (res.json() as { problems: { key: string; reason: string }[] }).problems;
    expect(problems.map((p) => p.key).sort()).toEqual(['broken.nii.gz', 'four-d.nii.gz']);
    expect(problems.find((p) => p.key === 'four-d.nii.gz')!.reason).toMatch(/only 3D/);
    const status = (await request(server, '/admin/index')).json() as {
      counts: { objects: number; errors: number };
    };
    expect(status.counts.objects).toBe(7);
    expect(status.counts.errors).toBe(2);
  });
});
