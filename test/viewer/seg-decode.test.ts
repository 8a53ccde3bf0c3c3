// The radiology viewer's SEG reader (src/viewer/radiology/seg-decode.ts), in Node on SEGs written
// by MedStream's own writer (src/segment/dicom-seg.ts) over the phantom series: every frame lands
// on the instance and position it references with exactly the mask's pixels (also when a frame is
// not a whole number of bytes, so frames start mid-byte), and the segment keeps its label and
// colour (CIELab back to sRGB). Not a SEG, or not a binary one, is refused.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSegmentation } from '../../src/segment/dicom-seg.js';
import { dicomLab } from '../../src/segment/service-request.js';
import { LocalStorage } from '../../src/storage/local.js';
import { decodeSeg, labToRgb } from '../../src/viewer/radiology/seg-decode.js';
import { openSeriesSources, readDicomSeries } from '../../src/volumes/dicom-series.js';
import { FrameSampleDecoder } from '../../src/volumes/frame-samples.js';
import { volumeSliceGeometry, type Volume } from '../../src/volumes/volume.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';

const dir = mkdtempSync(path.join(tmpdir(), 'medstream-segdecode-'));
const decoder = new FrameSampleDecoder({ workers: 1 });
let storage: LocalStorage;
let ct: PhantomSeries;
let volume: Volume;

beforeAll(async () => {
  ct = await writePhantomSeries(dir);
  storage = await LocalStorage.create(dir);
  volume = await readDicomSeries(await openSeriesSources(storage, ''), decoder);
});
afterAll(async () => {
  await decoder.close();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

function check(v: Volume, mask: Uint8Array): void {
  const bytes = encodeSegmentation(v, mask, {
    label: 'lesion',
    algorithmName: 'test',
    labColor: dicomLab([0, 224, 64]),
  });
  const seg = decodeSeg(bytes);
  const [nx, ny, nz] = v.dims;
  expect([seg.columns, seg.rows]).toEqual([nx, ny]);
  expect(seg.segments).toHaveLength(1);
  expect(seg.segments[0].label).toBe('lesion');
  seg.segments[0].color!.forEach((c, i) => expect(Math.abs(c - [0, 224, 64][i])).toBeLessThanOrEqual(1));
  if (v.source.kind !== 'dicom') throw new Error('a DICOM source');
  const instances = v.source.instances;
  const nonEmpty = [...Array(nz).keys()].filter((k) =>
    mask.subarray(k * nx * ny, (k + 1) * nx * ny).some(Boolean),
  );
  expect(seg.frames.map((f) => f.sopUid)).toEqual(nonEmpty.map((k) => instances[k].sopInstanceUid));
  for (const [n, k] of nonEmpty.entries()) {
    const frame = seg.frames[n];
    expect(frame.segment).toBe(1);
    expect([...frame.mask]).toEqual([...mask.subarray(k * nx * ny, (k + 1) * nx * ny)]);
    const ipp = volumeSliceGeometry(v, k).imagePositionPatient;
    frame.position!.forEach((p, i) => expect(p).toBeCloseTo(ipp[i], 3));
  }
}

describe('decodeSeg', () => {
  it('reads back every frame of a SEG of the phantom: its instance, position and pixels', () => {
    check(volume, ct.truth);
  });

  it('reads frames that start mid-byte (47 x 49 pixels a frame)', () => {
    const [nx, ny, nz] = [47, 49, volume.dims[2]];
    const mask = new Uint8Array(nx * ny * nz);
    for (let k = 2; k < nz - 3; k++)
      for (let y = 5 + k; y < 30; y++) for (let x = 3; x < 20 + k; x++) mask[x + nx * (y + ny * k)] = 1;
    check({ ...volume, dims: [nx, ny, nz] }, mask);
  });

  it('refuses what is not a binary SEG', () => {
    expect(() => decodeSeg(new Uint8Array(200))).toThrow();
    const bytes = encodeSegmentation(volume, ct.truth, { label: 'x', algorithmName: 'test' });
    // SegmentationType BINARY -> FRACTIONAL (same length: the element keeps its size).
    const text = Buffer.from(bytes).toString('latin1').replace('BINARY', 'FRACTN');
    expect(() => decodeSeg(new Uint8Array(Buffer.from(text, 'latin1')))).toThrow(/only binary SEGs/);
  });

  it('converts DICOM CIELab back to the sRGB it came from', () => {
    for (const rgb of [
      [255, 0, 0],
      [0, 0, 255],
      [128, 128, 128],
      [255, 255, 255],
    ] as [number, number, number][])
      labToRgb(dicomLab(rgb)).forEach((c, i) => expect(Math.abs(c - rgb[i])).toBeLessThanOrEqual(1));
  });
});
