// `volume.nii.gz`: the fixture CT series (20 JPEG 2000 slices) as one NIfTI volume, read back
// with nibabel and compared with a volume built from pydicom + GDCM in numpy (slices sorted along
// the normal, LPS -> RAS affine, Rescale Slope/Intercept); a NIfTI volume served as a series
// answers its stored file; unknown series 404.

import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';
import { dicomwebClient, value, type TestDicomwebClient } from './client.js';

const CT_DIR = fixture('volumes/ct-dicom-j2k');
const NIFTI = fixture('volumes/nifti/example_ct_sm.nii.gz');
const MF = '1.2.826.0.1.3680043.8.498.4545';
let dir: string;
let server: RunningServer;
let client: TestDicomwebClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'volume-'));
  const store = path.join(dir, 'store');
  await cp(CT_DIR, path.join(store, 'ct'), { recursive: true });
  await mkdir(path.join(store, 'nifti'));
  await copyFile(NIFTI, path.join(store, 'nifti', 'example_ct_sm.nii.gz'));
  await mkdir(path.join(store, 'mf'));
  // An Enhanced CT multi-frame instance: sagittal, frames stored out of order along the normal,
  // slope 2 / intercept -100 in the shared functional groups.
  python(
    `import json, sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
ds = Dataset(); fm = FileMetaDataset()
fm.TransferSyntaxUID = ExplicitVRLittleEndian
fm.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2.1'
fm.MediaStorageSOPInstanceUID = '${MF}.1.1'
ds.file_meta = fm
ds.SOPClassUID = fm.MediaStorageSOPClassUID; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
ds.StudyInstanceUID = '${MF}'; ds.SeriesInstanceUID = '${MF}.1'; ds.FrameOfReferenceUID = '${MF}.9'
ds.Modality = 'CT'; ds.PatientID = 'MULTIFRAME'; ds.StudyDate = '20240101'
ds.Rows = 24; ds.Columns = 32; ds.NumberOfFrames = 4; ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = 'MONOCHROME2'; ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15
ds.PixelRepresentation = 1
def item(**kw):
    d = Dataset()
    for k, v in kw.items(): setattr(d, k, v)
    return d
shared = item(PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.8, 0.6], SliceThickness=2.5)]),
  PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=[0, 1, 0, 0, 0, -1])]),
  PixelValueTransformationSequence=Sequence([item(RescaleSlope=2, RescaleIntercept=-100, RescaleType='HU')]))
ds.SharedFunctionalGroupsSequence = Sequence([shared])
order = [2, 0, 3, 1]
ds.PerFrameFunctionalGroupsSequence = Sequence([item(PlanePositionSequence=Sequence([item(ImagePositionPatient=[10 + 2.5 * k, -20, 30])])) for k in order])
y, x = np.mgrid[0:24, 0:32]
ds.PixelData = np.stack([(x * 11 - y * 7 + 100 * k) for k in order]).astype('<i2').tobytes()
ds.is_little_endian = True; ds.is_implicit_VR = False
ds.save_as(sys.argv[1], write_like_original=False)
print(json.dumps(True))`,
    [path.join(store, 'mf', 'mf.dcm')],
  );
  server = await startIndexedServer(store);
  client = dicomwebClient(server.url + '/dicomweb');
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function seriesOf(modalityStudyDate: Record<string, string>): Promise<string> {
  const [study] = await client.searchForStudies({ queryParams: modalityStudyDate });
  const studyUid = value(study, '0020000D') as string;
  const [series] = await client.searchForSeries({ studyInstanceUID: studyUid });
  return `/dicomweb/studies/${studyUid}/series/${value(series, '0020000E')}`;
}

describe('series as NIfTI', () => {
  it('writes the CT series with the affine and values of pydicom + numpy, read by nibabel', async () => {
    const url = await seriesOf({ StudyDate: '20221208' });
    const res = await request(server, `${url}/volume.nii.gz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toMatch(/attachment; filename=".*\.nii\.gz"/);
    const file = path.join(dir, 'ct.nii.gz');
    await writeFile(file, res.body);
    const check = python<{ shape: number[]; dtype: string; affineError: number; dataError: number }>(
      `import glob, json, sys, numpy as np, pydicom, nibabel as nib
ds = [pydicom.dcmread(f) for f in glob.glob(sys.argv[1] + '/*')]
iop = np.array(ds[0].ImageOrientationPatient, float)
n = np.cross(iop[:3], iop[3:])
ds.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), n)))
vol = np.stack([d.pixel_array * float(getattr(d, 'RescaleSlope', 1)) + float(getattr(d, 'RescaleIntercept', 0)) for d in ds], axis=-1)
vol = vol.transpose(1, 0, 2)  # (columns, rows, slices): NIfTI's i, j, k
ps = [float(x) for x in ds[0].PixelSpacing]
p0 = np.array(ds[0].ImagePositionPatient, float)
pn = np.array(ds[-1].ImagePositionPatient, float)
lps = np.eye(4)
lps[:3, 0] = iop[:3] * ps[1]; lps[:3, 1] = iop[3:] * ps[0]; lps[:3, 2] = (pn - p0) / (len(ds) - 1); lps[:3, 3] = p0
ras = np.diag([-1, -1, 1, 1]) @ lps
img = nib.load(sys.argv[2])
data = np.asanyarray(img.dataobj)
print(json.dumps({"shape": list(img.shape), "dtype": str(data.dtype),
  "affineError": float(np.abs(img.affine - ras).max()), "dataError": float(np.abs(img.get_fdata() - vol).max())}))`,
      [CT_DIR, file],
    );
    expect(check.shape).toEqual([512, 512, 20]);
    expect(check.dtype).toBe('int16'); // HU are integers: stored as int16
    expect(check.affineError).toBeLessThan(1e-4); // float32 header fields
    expect(check.dataError).toBe(0);
  });

  it('answers a NIfTI volume served as a series with its stored file', async () => {
    // NIfTI volumes without a sidecar are Modality OT.
    const [series] = await client.searchForSeries({ queryParams: { Modality: 'OT' } });
    expect(series).toBeDefined();
    const url = `/dicomweb/studies/${value(series, '0020000D')}/series/${value(series, '0020000E')}`;
    const res = await request(server, `${url}/volume.nii.gz`);
    expect(res.status).toBe(200);
    expect(res.body.equals(await readFile(NIFTI))).toBe(true);
  });

  it('writes a multi-frame instance from its functional groups, frames sorted along the normal', async () => {
    const res = await request(server, `/dicomweb/studies/${MF}/series/${MF}.1/volume.nii.gz`);
    expect(res.status, res.body.toString().slice(0, 300)).toBe(200);
    const file = path.join(dir, 'mf.nii.gz');
    await writeFile(file, res.body);
    const check = python<{ shape: number[]; affineError: number; dataError: number }>(
      `import json, sys, numpy as np, nibabel as nib
y, x = np.mgrid[0:24, 0:32]
# The normal (row x column direction) is -x: frames run from x = 17.5 down to 10.
vol = np.stack([(x * 11 - y * 7 + 100 * k) * 2 - 100 for k in (3, 2, 1, 0)], axis=-1).transpose(1, 0, 2)
lps = np.array([[0, 0, -2.5, 17.5], [0.6, 0, 0, -20], [0, -0.8, 0, 30], [0, 0, 0, 1]], float)
ras = np.diag([-1, -1, 1, 1]) @ lps
img = nib.load(sys.argv[1])
print(json.dumps({"shape": list(img.shape), "affineError": float(np.abs(img.affine - ras).max()),
  "dataError": float(np.abs(img.get_fdata() - vol).max())}))`,
      [file],
    );
    expect(check.shape).toEqual([32, 24, 4]);
    expect(check.affineError).toBeLessThan(1e-4);
    expect(check.dataError).toBe(0);
  });

  it('404s an unknown series', async () => {
    const url = await seriesOf({ StudyDate: '20221208' });
    const res = await request(server, `${url.replace(/series\/.*/, 'series/1.2.3')}/volume.nii.gz`);
    expect(res.status).toBe(404);
  });
});
