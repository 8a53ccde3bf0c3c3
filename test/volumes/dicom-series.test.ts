// The DICOM series reader against pydicom + GDCM on the 20-slice JPEG 2000 CT fixture: slice
// order along the normal, the LPS affine, every decoded HU value; and the refusals (mixed sizes,
// duplicate positions, a folder without DICOM).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BadRequest } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local.js';
import { applyAffine, flipRasLps } from '../../src/volumes/affine.js';
import { openSeriesSources, readDicomSeries } from '../../src/volumes/dicom-series.js';
import { FrameSampleDecoder } from '../../src/volumes/frame-samples.js';
import { readNiftiVolume } from '../../src/volumes/nifti.js';
import type { Volume } from '../../src/volumes/volume.js';
import { fixture } from '../support/fixtures.js';
import { python } from './python.js';

const CT = fixture('volumes/ct-dicom-j2k');
const decoder = new FrameSampleDecoder({ workers: 2 });
const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-series-'));
afterAll(async () => {
  await decoder.close();
  rmSync(tmp, { recursive: true, force: true });
});

const REFERENCE = `
import sys, glob, json, os, numpy as np, pydicom
ds = [pydicom.dcmread(f) for f in sorted(glob.glob(sys.argv[1] + '/*'))]
iop = np.array(ds[0].ImageOrientationPatient, float)
normal = np.cross(iop[:3], iop[3:])
ds.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
hu = np.stack([d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
hu.astype('<i2').tofile(sys.argv[2])
print(json.dumps({'positions': [[float(x) for x in d.ImagePositionPatient] for d in ds],
  'uids': [d.file_meta.MediaStorageSOPInstanceUID for d in ds], 'shape': list(hu.shape)}))
`;

describe('DICOM series -> volume', () => {
  let read: Volume | undefined;
  it('matches pydicom + GDCM voxel for voxel, sorted along the normal', async () => {
    const raw = path.join(tmp, 'hu.raw');
    const ref = python<{ positions: number[][]; uids: string[]; shape: number[] }>(REFERENCE, [CT, raw]);
    const storage = await LocalStorage.create(CT);
    const sources = await openSeriesSources(storage, '');
    let progress = 0;
    const vol = await readDicomSeries(sources, decoder, { onSlice: (done) => (progress = done) });
    await storage.close();
    read = vol;
    expect(progress).toBe(20);
    expect(vol.dims).toEqual([512, 512, 20]);
    expect(ref.shape).toEqual([20, 512, 512]);
    const expected = new Int16Array(new Uint8Array(readFileSync(raw)).buffer);
    let mismatches = 0;
    for (let i = 0; i < expected.length; i++) if (vol.data[i] !== expected[i]) mismatches++;
    expect(mismatches).toBe(0);
    // The affine puts every slice's first voxel at its ImagePositionPatient (LPS).
    const lps = flipRasLps(vol.affine);
    ref.positions.forEach((p, k) => {
      const [x, y, z] = applyAffine(lps, 0, 0, k);
      expect([x, y, z].map((v, a) => Math.abs(v - p[a]) < 1e-4)).toEqual([true, true, true]);
    });
    expect(lps[0]).toBeCloseTo(0.9765625, 7);
    expect(lps[5]).toBeCloseTo(0.9765625, 7);
    expect(lps[10]).toBeCloseTo(2, 6);
    if (vol.source.kind !== 'dicom') throw new Error('expected a DICOM source');
    // SOPInstanceUID is empty in the data set: the file meta's copy is used.
    expect(vol.source.instances.map((i) => i.sopInstanceUid)).toEqual(ref.uids);
    expect(vol.source.instances[0].sopClassUid).toBe('1.2.840.10008.5.1.4.1.1.2');
    expect(vol.source.frameOfReferenceUid).toBe('1.3.12.2.1107.5.1.4.60064.30000022120807274275100000041');
    expect(vol.defaultWindow).toEqual([-110, 190]);
  });

  it('lies in the same space as example_seg_dicom (whose rows are flipped)', () => {
    const vol = read as Volume;
    const seg = readNiftiVolume(readFileSync(fixture('volumes/nifti/example_seg_dicom.nii.gz')));
    for (const [i, j, k] of [
      [0, 0, 0],
      [100, 200, 7],
      [511, 511, 19],
    ]) {
      const a = applyAffine(vol.affine, i, j, k);
      const b = applyAffine(seg.affine, i, 511 - j, k);
      a.forEach((v, n) => expect(v).toBeCloseTo(b[n], 3));
    }
  });

  it('refuses duplicate positions and folders without DICOM', async () => {
    const dir = path.join(tmp, 'dup');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const files = (await import('node:fs')).readdirSync(CT).slice(0, 2);
    await copyFile(path.join(CT, files[0]), path.join(dir, 'a.dcm'));
    await copyFile(path.join(CT, files[0]), path.join(dir, 'b.dcm'));
    await copyFile(path.join(CT, files[1]), path.join(dir, 'c.dcm'));
    await writeFile(path.join(dir, 'notes.txt'), 'not dicom');
    const storage = await LocalStorage.create(dir);
    const sources = await openSeriesSources(storage, '');
    expect(sources).toHaveLength(3);
    await expect(readDicomSeries(sources, decoder)).rejects.toThrow(/same position/);
    await storage.close();
    const empty = path.join(tmp, 'empty');
    await mkdir(empty);
    await writeFile(path.join(empty, 'x.txt'), 'hello');
    const none = await LocalStorage.create(empty);
    await expect(openSeriesSources(none, '')).rejects.toThrow(BadRequest);
    await none.close();
  });
});
