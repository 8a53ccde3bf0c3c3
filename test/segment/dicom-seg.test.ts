// The DICOM SEG writer against pydicom and dcmtk: a binary SEG over a CT series (the fixture with
// UIDs filled in by pydicom) references every source instance, the series and the Frame of
// Reference; each frame sits at its source slice's ImagePositionPatient and holds exactly the mask;
// inconsistent input (NIfTI source, missing UIDs, empty mask) is refused before anything is encoded.
// A SEG given an identity (a result's seed and date) is the same bytes each time, its UIDs the
// name-based UUIDs Python's uuid5 makes, valid for pydicom; without one its UIDs are new each time.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadRequest } from '../../src/errors.js';
import { encodeSegmentation } from '../../src/segment/dicom-seg.js';
import { segUids } from '../../src/segment/seg-dataset.js';
import { uidFromName } from '../../src/volumes/dicom-encode.js';
import { LocalStorage } from '../../src/storage/local.js';
import { openSeriesSources, readDicomSeries } from '../../src/volumes/dicom-series.js';
import { FrameSampleDecoder } from '../../src/volumes/frame-samples.js';
import type { Volume } from '../../src/volumes/volume.js';
import { fixture } from '../support/fixtures.js';
import { python } from '../volumes/python.js';
import { phantom } from './phantom.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-seg-'));
const decoder = new FrameSampleDecoder({ workers: 2 });
let volume: Volume;
let fixtureVolume: Volume;

beforeAll(async () => {
  // Six slices of the fixture CT with Study/Series/SOP UIDs filled in (the fixture's are empty).
  python(
    `import sys, glob, pydicom
from pydicom.uid import generate_uid
study, series = generate_uid(), generate_uid()
for n, f in enumerate(sorted(glob.glob(sys.argv[1] + '/*'))[:6]):
    d = pydicom.dcmread(f)
    d.StudyInstanceUID, d.SeriesInstanceUID = study, series
    d.SOPClassUID = d.file_meta.MediaStorageSOPClassUID
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID
    d.PatientName, d.PatientID = 'Test^Patient', 'P123'
    d.save_as(sys.argv[2] + '/ct%d.dcm' % n)
print('{}')`,
    [fixture('volumes/ct-dicom-j2k'), tmp],
  );
  const storage = await LocalStorage.create(tmp);
  volume = await readDicomSeries(await openSeriesSources(storage, ''), decoder);
  await storage.close();
  const original = await LocalStorage.create(fixture('volumes/ct-dicom-j2k'));
  fixtureVolume = await readDicomSeries((await openSeriesSources(original, '')).slice(0, 3), decoder);
  await original.close();
}, 60_000);
afterAll(async () => {
  await decoder.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('DICOM SEG', () => {
  it('references the source and holds the mask frame by frame (pydicom, dcmdump)', () => {
    const [nx, ny] = volume.dims;
    const mask = new Uint8Array(volume.data.length);
    // A rectangle on slices 1..3, a single voxel on slice 3; slices 0, 4, 5 empty.
    for (let k = 1; k <= 3; k++)
      for (let j = 200; j < 260; j++) for (let i = 100; i < 180 + k; i++) mask[i + nx * (j + ny * k)] = 1;
    mask[5 + nx * (7 + ny * 3)] = 1;
    const file = path.join(tmp, 'seg.dcm');
    writeFileSync(
      file,
      encodeSegmentation(volume, mask, { label: 'liver', algorithmName: 'medstream classical' }),
    );
    const dump = execFileSync('dcmdump', ['-q', file], { encoding: 'utf8' });
    expect(dump).toMatch(/\(0008,0016\) UI =SegmentationStorage/);
    const r = python<{
      sop: string;
      frames: number;
      study: string;
      forUid: string;
      refSeries: string;
      refInstances: string[];
      frameRefs: string[];
      positions: number[][];
      sums: number[];
      pixel: number[];
      label: string;
      patient: string;
    }>(
      `import sys, json, glob, pydicom, numpy as np
s = pydicom.dcmread(sys.argv[1])
a = s.pixel_array
print(json.dumps({'sop': s.SOPClassUID, 'frames': int(s.NumberOfFrames), 'study': s.StudyInstanceUID,
  'forUid': s.FrameOfReferenceUID, 'refSeries': s.ReferencedSeriesSequence[0].SeriesInstanceUID,
  'refInstances': [i.ReferencedSOPInstanceUID for i in s.ReferencedSeriesSequence[0].ReferencedInstanceSequence],
  'frameRefs': [f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID for f in s.PerFrameFunctionalGroupsSequence],
  'positions': [[float(x) for x in f.PlanePositionSequence[0].ImagePositionPatient] for f in s.PerFrameFunctionalGroupsSequence],
  'sums': [int(x) for x in a.reshape(a.shape[0], -1).sum(axis=1)], 'pixel': [int(a[2, 7, 5]), int(a[0, 200, 100]), int(a[0, 199, 100])],
  'label': s.SegmentSequence[0].SegmentLabel, 'patient': str(s.PatientName)}))`,
      [file],
    );
    if (volume.source.kind !== 'dicom') throw new Error('expected DICOM');
    const src = volume.source;
    expect(r.sop).toBe('1.2.840.10008.5.1.4.1.1.66.4');
    expect(r.frames).toBe(3);
    expect(r.study).toBe(src.studyInstanceUid);
    expect(r.forUid).toBe(src.frameOfReferenceUid);
    expect(r.refSeries).toBe(src.seriesInstanceUid);
    expect(r.refInstances).toEqual(src.instances.map((i) => i.sopInstanceUid));
    expect(r.frameRefs).toEqual([1, 2, 3].map((k) => src.instances[k].sopInstanceUid));
    // Each frame's position is its source slice's ImagePositionPatient.
    const sourcePositions = python<number[][]>(
      `import sys, json, pydicom
print(json.dumps([[float(x) for x in pydicom.dcmread(sys.argv[1] + '/' + f).ImagePositionPatient] for f in sys.argv[2:]]))`,
      [tmp, ...src.instances.slice(1, 4).map((i) => i.key)],
    );
    r.positions.forEach((p, n) => p.forEach((v, a) => expect(v).toBeCloseTo(sourcePositions[n][a], 4)));
    expect(r.sums).toEqual([60 * 81, 60 * 82, 60 * 83 + 1]);
    expect(r.pixel).toEqual([1, 1, 0]);
    expect(r.label).toBe('liver');
    expect(r.patient).toBe('Test^Patient');
  });

  it('writes the same bytes for the same identity, new UIDs without one (pydicom, dcm2json)', () => {
    const mask = new Uint8Array(volume.data.length);
    const [nx, ny] = volume.dims;
    for (let k = 2; k <= 4; k++)
      for (let j = 100; j < 140; j++) mask.fill(1, nx * (j + ny * k) + 50, nx * (j + ny * k) + 90);
    const description = { label: 'lesion', algorithmName: 'medstream test' };
    const identity = {
      seed: 'medstream/test/0f8e5c52-1b7a-4d3e-9c2f-6a5b4c3d2e1f',
      created: new Date('2026-12-06T09:08:07.654Z'),
    };
    const once = encodeSegmentation(volume, mask, description, identity);
    const again = encodeSegmentation(volume, mask, description, { ...identity });
    expect(Buffer.from(again).equals(once)).toBe(true);
    const fresh = [1, 2].map(() => encodeSegmentation(volume, mask, description));
    const files = {
      once,
      other: encodeSegmentation(volume, mask, description, { ...identity, seed: `${identity.seed}x` }),
      fresh0: fresh[0],
      fresh1: fresh[1],
    };
    for (const [name, bytes] of Object.entries(files))
      writeFileSync(path.join(tmp, `uids-${name}.dcm`), bytes);
    const read = python<
      Record<
        string,
        {
          sop: string;
          meta: string;
          series: string;
          dim: string;
          date: string;
          time: string;
          valid: boolean;
          frames: number;
        }
      >
    >(
      `import sys, json, pydicom
out = {}
for name in sys.argv[2:]:
    s = pydicom.dcmread(sys.argv[1] + '/uids-' + name + '.dcm')
    uids = [s.SOPInstanceUID, s.SeriesInstanceUID, s.DimensionOrganizationSequence[0].DimensionOrganizationUID]
    out[name] = {'sop': s.SOPInstanceUID, 'meta': s.file_meta.MediaStorageSOPInstanceUID, 'series': s.SeriesInstanceUID,
      'dim': uids[2], 'date': s.ContentDate, 'time': s.ContentTime, 'frames': int(s.NumberOfFrames),
      'valid': all(pydicom.uid.UID(u).is_valid and len(u) <= 64 for u in uids)}
print(json.dumps(out))`,
      [tmp, ...Object.keys(files)],
    );
    const uids = segUids(identity);
    expect(read.once).toMatchObject({
      sop: uids.instance,
      meta: uids.instance,
      series: uids.series,
      dim: uids.dimensionOrganization,
    });
    expect(read.once).toMatchObject({ date: '20261206', time: '090807', frames: 3, valid: true });
    // The same UIDs as Python's name-based (version 5) UUIDs in MedStream's namespace (PS3.5 §B.2).
    const reference = python<string[]>(
      `import sys, json, uuid
ns = uuid.UUID('6f1c2d0e9a7b4e3c8d5f0a1b2c3d4e5f')
print(json.dumps(['2.25.%d' % uuid.uuid5(ns, sys.argv[1] + '/' + r).int for r in ('series', 'instance', 'dimension-organization')]))`,
      [identity.seed],
    );
    expect(reference).toEqual([uids.series, uids.instance, uids.dimensionOrganization]);
    expect(uidFromName('')).toMatch(/^2\.25\.[1-9]\d{0,38}$/);
    // Another seed, or none: other objects.
    const all = Object.values(read);
    expect(all.every((r) => r.valid)).toBe(true);
    expect(new Set(all.map((r) => r.sop)).size).toBe(4);
    expect(new Set(all.map((r) => r.series)).size).toBe(4);
    // dcmtk reads it whole (dcm2json fails on a malformed data set).
    const json = JSON.parse(
      execFileSync('dcm2json', [path.join(tmp, 'uids-once.dcm')], { encoding: 'utf8' }),
    ) as Record<string, { Value?: unknown[] }>;
    expect(json['00080018'].Value).toEqual([uids.instance]);
    expect(json['0020000E'].Value).toEqual([uids.series]);
  });

  it('refuses inconsistent input before encoding', () => {
    const empty = new Uint8Array(volume.data.length);
    expect(() => encodeSegmentation(volume, empty, { algorithmName: 'x' })).toThrow(/mask is empty/);
    expect(() => encodeSegmentation(volume, new Uint8Array(10), { algorithmName: 'x' })).toThrow(
      /mask has 10 voxels/,
    );
    const nifti = phantom([8, 8, 3], []).volume;
    expect(() => encodeSegmentation(nifti, new Uint8Array(192).fill(1), { algorithmName: 'x' })).toThrow(
      /needs a DICOM series/,
    );
    // The fixture's own Study/Series/SOP UIDs are empty: no SEG can reference them.
    const some = new Uint8Array(fixtureVolume.data.length).fill(1);
    expect(() => encodeSegmentation(fixtureVolume, some, { algorithmName: 'x' })).toThrow(BadRequest);
    expect(() => encodeSegmentation(fixtureVolume, some, { algorithmName: 'x' })).toThrow(
      /no StudyInstanceUID, SeriesInstanceUID/,
    );
    expect(readdirSync(tmp).filter((f) => f.startsWith('seg'))).toEqual(['seg.dcm']);
  });
});
