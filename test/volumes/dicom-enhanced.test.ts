// Enhanced multi-frame CT -> volume: a generated instance whose frames are stored out of order,
// with the orientation and pixel spacing in the shared functional groups and each frame's
// position and rescale in its own; the volume sorts them along the normal, applies each frame's
// rescale, places slices at their positions, and a SEG of it references the source frame numbers
// (read back by pydicom). A temporal instance (two frames at one position) is refused.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { BadRequest } from '../../src/errors.js';
import { encodeSegmentation } from '../../src/segment/dicom-seg.js';
import { LocalStorage } from '../../src/storage/local.js';
import { openSeriesSources, readDicomSeries } from '../../src/volumes/dicom-series.js';
import { FrameSampleDecoder } from '../../src/volumes/frame-samples.js';
import { volumeSliceGeometry, volumeSpacing } from '../../src/volumes/volume.js';
import { type ElementSpec, writeDicomFile } from '../support/dicom-writer.js';
import { python } from './python.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-enhanced-'));
const decoder = new FrameSampleDecoder({ workers: 1 });
afterAll(async () => {
  await decoder.close();
  rmSync(tmp, { recursive: true, force: true });
});

const W = 8;
const H = 6;
const Z = [20, 10, 30, 15, 25]; // frame f's z (mm): sorted order is frames 1, 3, 0, 4, 2
const RESCALE = [
  [1, -1024],
  [1, -1024],
  [1, -1024],
  [2, -1000],
  [1, -1024],
];
const stored = (f: number, i: number) => f * 100 + i;

async function writeEnhanced(dir: string, zs: number[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const seq = (t: number, items: ElementSpec[][]): ElementSpec => ({ tag: t, vr: 'SQ', items });
  const frames = zs.map((_, f) => {
    const px = new Uint8Array(W * H * 2);
    const view = new DataView(px.buffer);
    for (let i = 0; i < W * H; i++) view.setUint16(2 * i, stored(f, i), true);
    return px;
  });
  await writeDicomFile(path.join(dir, 'enhanced.dcm'), {
    transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
    elements: [
      { tag: Tag.SopClassUid, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2.1' },
      { tag: Tag.SopInstanceUid, vr: 'UI', value: '1.2.826.0.1.77.1' },
      { tag: Tag.PatientName, vr: 'PN', value: 'Enhanced^Test' },
      { tag: Tag.StudyInstanceUid, vr: 'UI', value: '1.2.826.0.1.77.2' },
      { tag: Tag.SeriesInstanceUid, vr: 'UI', value: '1.2.826.0.1.77.3' },
      { tag: tag(0x0020, 0x0052), vr: 'UI', value: '1.2.826.0.1.77.4' },
      { tag: Tag.SamplesPerPixel, vr: 'US', value: [1] },
      { tag: Tag.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
      { tag: Tag.NumberOfFrames, vr: 'IS', value: String(zs.length) },
      { tag: Tag.Rows, vr: 'US', value: [H] },
      { tag: Tag.Columns, vr: 'US', value: [W] },
      { tag: Tag.BitsAllocated, vr: 'US', value: [16] },
      { tag: Tag.BitsStored, vr: 'US', value: [16] },
      { tag: Tag.HighBit, vr: 'US', value: [15] },
      { tag: Tag.PixelRepresentation, vr: 'US', value: [0] },
      seq(Tag.SharedFunctionalGroupsSequence, [
        [
          seq(Tag.PixelMeasuresSequence, [[{ tag: Tag.PixelSpacing, vr: 'DS', value: '0.5\\0.7' }]]),
          seq(tag(0x0020, 0x9116), [[{ tag: tag(0x0020, 0x0037), vr: 'DS', value: '1\\0\\0\\0\\1\\0' }]]),
        ],
      ]),
      seq(
        Tag.PerFrameFunctionalGroupsSequence,
        zs.map((z, f) => [
          seq(tag(0x0020, 0x9113), [[{ tag: tag(0x0020, 0x0032), vr: 'DS', value: `-40\\-30\\${z}` }]]),
          seq(tag(0x0028, 0x9145), [
            [
              { tag: tag(0x0028, 0x1052), vr: 'DS', value: String(RESCALE[f][1]) },
              { tag: tag(0x0028, 0x1053), vr: 'DS', value: String(RESCALE[f][0]) },
            ],
          ]),
        ]),
      ),
    ],
    pixel: { kind: 'native', frames },
  });
}

async function read(dir: string) {
  const storage = await LocalStorage.create(dir);
  try {
    return await readDicomSeries(await openSeriesSources(storage, ''), decoder);
  } finally {
    await storage.close();
  }
}

describe('enhanced multi-frame CT -> volume', () => {
  it('sorts frames along the normal, rescales each, places slices at their positions', async () => {
    const dir = path.join(tmp, 'ok');
    await writeEnhanced(dir, Z);
    const vol = await read(dir);
    expect(vol.dims).toEqual([W, H, 5]);
    const order = [1, 3, 0, 4, 2];
    order.forEach((f, k) => {
      const [slope, intercept] = RESCALE[f];
      for (let i = 0; i < W * H; i++) expect(vol.data[k * W * H + i]).toBe(stored(f, i) * slope + intercept);
      expect(volumeSliceGeometry(vol, k).imagePositionPatient.map(Number)).toEqual([-40, -30, Z[f]]);
    });
    const [si, sj, sk] = volumeSpacing(vol);
    expect([si, sj, sk].map((v) => Number(v.toFixed(6)))).toEqual([0.7, 0.5, 5]);
    expect(vol.source.kind === 'dicom' && vol.source.instances.map((r) => r.frameNumber)).toEqual(
      order.map((f) => f + 1),
    );

    // A SEG of it references the source frames.
    const mask = new Uint8Array(W * H * 5);
    mask.fill(1, 0, W * H); // slice 0 = frame 2
    mask.fill(1, 3 * W * H, 4 * W * H); // slice 3 = frame 5
    const segFile = path.join(tmp, 'seg.dcm');
    writeFileSync(segFile, encodeSegmentation(vol, mask, { algorithmName: 'test' }));
    const refs = python<[string, number][]>(
      `
import sys, json, pydicom
ds = pydicom.dcmread(sys.argv[1])
print(json.dumps([(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID,
  int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)) for f in ds.PerFrameFunctionalGroupsSequence]))
`,
      [segFile],
    );
    expect(refs).toEqual([
      ['1.2.826.0.1.77.1', 2],
      ['1.2.826.0.1.77.1', 5],
    ]);
  });

  it('refuses two frames at one position (a temporal instance)', async () => {
    const dir = path.join(tmp, 'temporal');
    await writeEnhanced(dir, [10, 15, 10, 15, 20]);
    const error = await read(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequest);
    expect((error as Error).message).toMatch(
      /lie at the same position \(a temporal or multi-echo instance\)/,
    );
  });
});
