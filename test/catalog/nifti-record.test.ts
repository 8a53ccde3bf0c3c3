// The DICOM geometry synthesised for NIfTI-backed series against nibabel: each slice's
// ImagePositionPatient, ImageOrientationPatient and PixelSpacing equal nibabel's affine converted
// to LPS, and a pixel served at (row, column) of slice k is nibabel's voxel (column, row, k), at the
// patient position the DICOM attributes give it (so every DICOMweb client places it where nibabel does).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { niftiRecords } from '../../src/catalog/nifti-record.js';
import type { NiftiSliceLocation } from '../../src/catalog/record.js';
import { parseNiftiHeader } from '../../src/volumes/nifti.js';
import { NiftiSliceReader } from '../../src/volumes/nifti-slices.js';
import { fixture } from '../support/fixtures.js';
import { MemorySource } from '../support/memory-source.js';
import { python } from '../volumes/python.js';

const NIFTI = fixture('volumes/nifti');
const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-nifti-record-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Reference {
  shape: number[];
  axcodes: string[];
  /** Per probed slice k: IPP, IOP (row then column direction) and PixelSpacing, from LPS = diag(-1,-1,1) · affine. */
  slices: { k: number; ipp: number[]; iop: number[]; spacing: number[] }[];
  /** Voxels (i = column, j = row, k): stored value and LPS position. */
  voxels: { i: number; j: number; k: number; value: number; lps: number[] }[];
}

const REFERENCE = `
import sys, json, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
lps = np.diag([-1, -1, 1, 1]) @ img.affine
nx, ny, nz = img.shape[:3]
data = np.asarray(img.dataobj.get_unscaled())
col = lambda c: lps[:3, c] / np.linalg.norm(lps[:3, c])
slices = [{'k': k, 'ipp': (lps @ [0, 0, k, 1])[:3].tolist(), 'iop': col(0).tolist() + col(1).tolist(),
           'spacing': [float(np.linalg.norm(lps[:3, 1])), float(np.linalg.norm(lps[:3, 0]))]}
          for k in sorted({0, nz // 2, nz - 1})]
probes = [(0, 0, 0), (nx - 1, 0, nz // 2), (0, ny - 1, nz - 1), (nx // 2, ny // 3, nz // 2), (nx // 3, ny // 2, nz - 1)]
voxels = [{'i': i, 'j': j, 'k': k, 'value': float(data[i, j, k]), 'lps': (lps @ [i, j, k, 1])[:3].tolist()}
          for i, j, k in probes]
print(json.dumps({'shape': list(img.shape), 'axcodes': list(nib.aff2axcodes(img.affine)),
                  'slices': slices, 'voxels': voxels}))
`;

type Json = Record<string, { Value?: unknown[] }>;
const values = (json: Json, tag: string): number[] => (json[tag]?.Value ?? []).map(Number);

/** The stored value at (row, column) of a served native frame. */
function pixel(frame: Uint8Array, json: Json, row: number, column: number): number {
  const [columns] = values(json, '00280011');
  const [bits] = values(json, '00280100');
  const [signed] = values(json, '00280103');
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const at = (row * columns + column) * (bits / 8);
  if (bits === 8) return signed ? view.getInt8(at) : view.getUint8(at);
  if (bits === 16) return signed ? view.getInt16(at, true) : view.getUint16(at, true);
  return signed ? view.getInt32(at, true) : view.getUint32(at, true);
}

describe('NIfTI-backed series: DICOM geometry against nibabel (LPS)', () => {
  const reader = new NiftiSliceReader({ dir: path.join(tmp, 'cache'), maxBytes: 64 * 1024 * 1024 });
  // Three storage orders: RAS (example_ct_sm: i runs to the patient's right, j to the front),
  // LPS (example_mr_sm: as DICOM stores axial slices) and LAS (example_seg_dicom, rows flipped).
  for (const [name, axcodes] of [
    ['example_ct_sm', ['R', 'A', 'S']],
    ['example_mr_sm', ['L', 'P', 'S']],
    ['example_seg_dicom', ['L', 'A', 'S']],
  ] as const) {
    it(`${name}.nii.gz: IPP, IOP, PixelSpacing and served pixels`, async () => {
      const file = path.join(NIFTI, `${name}.nii.gz`);
      const ref = python<Reference>(REFERENCE, [file]);
      expect(ref.axcodes).toEqual(axcodes);
      const bytes = readFileSync(file);
      const records = niftiRecords(
        { key: `vols/${name}.nii.gz`, version: 'v1', size: bytes.byteLength },
        parseNiftiHeader(bytes),
        { namespace: 'test', modality: 'CT' },
      );
      expect(records).toHaveLength(ref.shape[2]);
      for (const s of ref.slices) {
        const json = records[s.k].json as Json;
        values(json, '00200032').forEach((v, i) =>
          expect(v, `IPP[${i}] of slice ${s.k}`).toBeCloseTo(s.ipp[i], 3),
        );
        values(json, '00200037').forEach((v, i) =>
          expect(v, `IOP[${i}] of slice ${s.k}`).toBeCloseTo(s.iop[i], 6),
        );
        values(json, '00280030').forEach((v, i) =>
          expect(v, `PixelSpacing[${i}]`).toBeCloseTo(s.spacing[i], 6),
        );
      }
      const source = new MemorySource(bytes, { key: `vols/${name}.nii.gz` });
      for (const v of ref.voxels) {
        const record = records[v.k];
        const json = record.json as Json;
        // DICOM's pixel -> patient mapping (PS3.3 C.7.6.2.1.1) of (row j, column i) of this slice.
        const ipp = values(json, '00200032');
        const iop = values(json, '00200037');
        const [rowSpacing, columnSpacing] = values(json, '00280030');
        const at = [0, 1, 2].map(
          (a) => ipp[a] + iop[a] * columnSpacing * v.i + iop[3 + a] * rowSpacing * v.j,
        );
        at.forEach((x, a) => expect(x, `voxel ${v.i},${v.j},${v.k} axis ${a}`).toBeCloseTo(v.lps[a], 3));
        const frame = await reader.slice(source, 'v1', record.pixelData as NiftiSliceLocation);
        expect(pixel(frame, json, v.j, v.i), `value of voxel ${v.i},${v.j},${v.k}`).toBe(v.value);
      }
    });
  }

  // The affines are anatomically right, and so is what a DICOM client derives from the served
  // attributes: the liver lies on the patient's right of the spleen, i.e. at a smaller LPS x.
  for (const name of ['example_seg', 'example_seg_dicom']) {
    it(`${name}.nii.gz: the liver is on the patient's right (LPS x below the spleen's)`, () => {
      const file = path.join(NIFTI, `${name}.nii.gz`);
      const centroids = python<Record<'liver' | 'spleen', number[]>>(CENTROIDS, [file]);
      const bytes = readFileSync(file);
      const records = niftiRecords(
        { key: `vols/${name}.nii.gz`, version: 'v1', size: bytes.byteLength },
        parseNiftiHeader(bytes),
        { namespace: 'test', modality: 'SEG' },
      );
      const lpsX = ([i, j, k]: number[]): number => {
        const json = records[Math.round(k)].json as Json;
        const [ipp, iop, [rowSpacing, columnSpacing]] = ['00200032', '00200037', '00280030'].map((t) =>
          values(json, t),
        );
        return ipp[0] + iop[0] * columnSpacing * i + iop[3] * rowSpacing * j;
      };
      expect(lpsX(centroids.liver)).toBeLessThan(lpsX(centroids.spleen) - 50);
    });
  }
});

/** Voxel centroids (i, j, k) of the liver (5) and spleen (1) labels (TotalSegmentator's map). */
const CENTROIDS = `
import sys, json, numpy as np, nibabel as nib
d = np.asarray(nib.load(sys.argv[1]).dataobj)
print(json.dumps({n: np.argwhere(d == v).mean(0).tolist() for n, v in (('liver', 5), ('spleen', 1))}))
`;
