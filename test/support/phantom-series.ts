// A small CT series with a known answer for segmentation service tests: the phantom volume of
// test/segment/phantom.ts (an ellipsoid of soft tissue in noisy fat) written as real single-frame
// DICOM CT instances (explicit VR little endian, signed 16-bit, full geometry and UIDs).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { phantom } from '../segment/phantom.js';
import { writeDicomFile } from './dicom-writer.js';
import { CT_IMAGE_STORAGE } from './radiology-studies.js';

export interface PhantomSeries {
  studyUid: string;
  seriesUid: string;
  frameOfReferenceUid: string;
  sopUids: string[];
  dims: [number, number, number];
  /** 1 inside the ellipsoid, index i + nx * (j + ny * k) with k = slice in IPP order. */
  truth: Uint8Array;
  /** The ellipsoid's box on `keySlice` (x0, y0, x1, y1) with a 2-pixel margin. */
  box: [number, number, number, number];
  keySlice: number;
}

/** Writes the series under `dir` (instances in reverse file order, to show sorting by position). */
export async function writePhantomSeries(
  dir: string,
  root = '1.2.826.0.1.3680043.9.7777.90',
): Promise<PhantomSeries> {
  const dims: [number, number, number] = [48, 48, 14];
  const { volume, truth } = phantom(dims, [{ center: [24, 22, 7], radii: [11, 9, 5], hu: 60 }], {
    background: -100,
    noise: 8,
    seed: 3,
  });
  const [nx, ny, nz] = dims;
  const series: PhantomSeries = {
    studyUid: `${root}.1`,
    seriesUid: `${root}.1.1`,
    frameOfReferenceUid: `${root}.9`,
    sopUids: Array.from({ length: nz }, (_, k) => `${root}.1.1.${k + 1}`),
    dims,
    truth,
    box: [24 - 11 - 2, 22 - 9 - 2, 24 + 11 + 2, 22 + 9 + 2],
    keySlice: 7,
  };
  await mkdir(dir, { recursive: true });
  for (let k = 0; k < nz; k++) {
    const pixels = new Uint8Array(nx * ny * 2);
    const view = new DataView(pixels.buffer);
    for (let p = 0; p < nx * ny; p++)
      view.setInt16(2 * p, Math.round(volume.data[k * nx * ny + p]) + 1024, true);
    await writeDicomFile(path.join(dir, `${String(nz - k).padStart(3, '0')}.dcm`), {
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      elements: [
        { tag: Tag.SopClassUid, vr: 'UI', value: CT_IMAGE_STORAGE },
        { tag: Tag.SopInstanceUid, vr: 'UI', value: series.sopUids[k] },
        { tag: Tag.StudyDate, vr: 'DA', value: '20240105' },
        { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'CT' },
        { tag: Tag.PatientName, vr: 'PN', value: 'Phantom^One' },
        { tag: Tag.PatientId, vr: 'LO', value: 'PH1' },
        { tag: Tag.StudyInstanceUid, vr: 'UI', value: series.studyUid },
        { tag: Tag.SeriesInstanceUid, vr: 'UI', value: series.seriesUid },
        { tag: Tag.SeriesNumber, vr: 'IS', value: '3' },
        // Instance numbers run against the slice order: the reader must sort by position.
        { tag: Tag.InstanceNumber, vr: 'IS', value: String(nz - k) },
        { tag: tag(0x0020, 0x0032), vr: 'DS', value: `-10\\20\\${-30 + 2 * k}` },
        { tag: tag(0x0020, 0x0037), vr: 'DS', value: '1\\0\\0\\0\\1\\0' },
        { tag: tag(0x0020, 0x0052), vr: 'UI', value: series.frameOfReferenceUid },
        { tag: Tag.SamplesPerPixel, vr: 'US', value: [1] },
        { tag: Tag.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
        { tag: Tag.Rows, vr: 'US', value: [ny] },
        { tag: Tag.Columns, vr: 'US', value: [nx] },
        { tag: Tag.PixelSpacing, vr: 'DS', value: '1\\1' },
        { tag: Tag.BitsAllocated, vr: 'US', value: [16] },
        { tag: Tag.BitsStored, vr: 'US', value: [16] },
        { tag: Tag.HighBit, vr: 'US', value: [15] },
        { tag: Tag.PixelRepresentation, vr: 'US', value: [1] },
        { tag: tag(0x0028, 0x1052), vr: 'DS', value: '-1024' },
        { tag: tag(0x0028, 0x1053), vr: 'DS', value: '1' },
      ],
      pixel: { kind: 'native', frames: [pixels] },
    });
  }
  return series;
}
