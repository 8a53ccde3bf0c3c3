// Small native (explicit VR little endian) CT instances written by pydicom, one per series, with
// binary values of every byte-swapped width (SS/US, UL, FL, FD, AT, a sequence's items) and
// known pixels: the sources test/dicomweb/big-endian.test.ts and deflated.test.ts convert with
// dcmtk's dcmconv; a large square one (series <study>.9) for size limits; deflating with dcmconv;
// pydicom's writer of 8-bit colour instances (the colour suites); and what the suites read back
// (pydicom's decode, a single-part frame body).

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { python } from '../volumes/python.js';

/** Per series: bits stored, signed. */
export type NativeSeriesSpec = readonly (readonly [number, boolean])[];

/**
 * Writes `file`: one native 16-bit unsigned MONOCHROME2 CT instance `<study>.9.1` (series
 * `<study>.9`) of `size` x `size` pixels, given as a numpy expression of `size` and `np`.
 */
export function writeSquareInstance(file: string, study: string, size: number, pixels: string): void {
  python(
    `import sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
size = ${size}
ds = Dataset(); fm = FileMetaDataset()
fm.TransferSyntaxUID = '1.2.840.10008.1.2.1'; fm.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
fm.MediaStorageSOPInstanceUID = '${study}.9.1'; ds.file_meta = fm
ds.SOPClassUID = fm.MediaStorageSOPClassUID; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
ds.StudyInstanceUID = '${study}'; ds.SeriesInstanceUID = '${study}.9'; ds.Modality = 'CT'
ds.Rows = size; ds.Columns = size; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 0
ds.PixelData = (${pixels}).astype('<u2').tobytes()
ds.is_little_endian = True; ds.is_implicit_VR = False
ds.save_as(sys.argv[1], write_like_original=False)
print('true')`,
    [file],
  );
}

/** dcmtk's dcmconv +td: `src` rewritten as deflated explicit VR little endian at `dst`. */
export function deflateDicom(src: string, dst: string): void {
  execFileSync('dcmconv', ['+td', src, dst]);
}

/**
 * Python source for `python()` scripts: `write_colour(file, study, k, rows, columns, photometric,
 * planar, data)` saves one native 8-bit colour (SamplesPerPixel 3) OT instance `<study>.<k>.1`
 * of series `<study>.<k>` with the given PhotometricInterpretation, PlanarConfiguration and bytes.
 */
export const WRITE_COLOUR_PY = `from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
def write_colour(file, study, k, rows, columns, photometric, planar, data):
    ds = Dataset(); fm = FileMetaDataset()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    fm.MediaStorageSOPInstanceUID = f'{study}.{k}.1'
    ds.file_meta = fm
    ds.SOPClassUID = fm.MediaStorageSOPClassUID; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study; ds.SeriesInstanceUID = f'{study}.{k}'
    ds.Modality = 'OT'; ds.PatientID = 'COLOUR'; ds.SeriesNumber = k; ds.InstanceNumber = 1
    ds.Rows = rows; ds.Columns = columns; ds.SamplesPerPixel = 3; ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7; ds.PixelRepresentation = 0
    ds.PixelData = data
    ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as(file, write_like_original=False)
`;

/** Writes `<dir>/native-<k>.dcm` for series k = 1.. of `series`, in study `study`. */
export function writeNativeSeries(
  dir: string,
  study: string,
  series: NativeSeriesSpec,
  patientId: string,
  patientName: string,
): void {
  python(
    `import json, sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
out = sys.argv[1]
for k, (bits, signed) in enumerate(json.loads(sys.argv[2]), 1):
    ds = Dataset(); fm = FileMetaDataset()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
    fm.MediaStorageSOPInstanceUID = f'${study}.{k}.1'
    ds.file_meta = fm
    ds.SOPClassUID = fm.MediaStorageSOPClassUID; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = '${study}'; ds.SeriesInstanceUID = f'${study}.{k}'
    ds.Modality = 'CT'; ds.PatientID = '${patientId}'; ds.PatientName = '${patientName}'
    ds.SeriesNumber = k; ds.InstanceNumber = 1
    ds.ImagePositionPatient = [0, 0, 0]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]; ds.SliceThickness = 3
    ds.Rows = 40; ds.Columns = 24; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated = 16 if bits > 8 else 8; ds.BitsStored = bits; ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.WindowCenter = 40; ds.WindowWidth = 400; ds.RescaleSlope = 1; ds.RescaleIntercept = -1024
    # Binary numbers of every swapped width: SS/US, UL, FL, FD, AT, and a sequence's items.
    ds.add_new(0x00280106, 'SS' if signed else 'US', -3 if signed else 3)
    ds.add_new(0x00289001, 'UL', 123456789)
    ds.add_new(0x00700253, 'FL', 1.5)
    ds.add_new(0x00189306, 'FD', 0.625)
    ds.add_new(0x00280009, 'AT', 0x00181063)
    item = Dataset(); item.ReferencedSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
    item.ReferencedSOPInstanceUID = f'${study}.{k}.9'; item.add_new(0x00189306, 'FD', 2.25)
    ds.ReferencedImageSequence = Sequence([item])
    y, x = np.mgrid[0:40, 0:24]
    a = (x * 37 + y * 53 + (x * y) % 17) % (1 << bits)
    if signed: a = a - (1 << (bits - 1))
    ds.PixelData = a.astype(('<i2' if signed else '<u2') if bits > 8 else 'u1').tobytes()
    ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as(f'{out}/native-{k}.dcm', write_like_original=False)
print(json.dumps(True))`,
    [dir, JSON.stringify(series)],
  );
}

/** Bits stored and signedness of the three series the syntax suites store: 16 signed, 12, 8. */
export const NATIVE_SERIES = [
  [16, true],
  [12, false],
  [8, false],
] as const;

/**
 * Writes the native series of `series` into `dir` (writeNativeSeries), converts each with
 * `convert(native, stored)` to `<store>/<prefix>-<k>.dcm`, and answers each stored file with its
 * WADO-RS instance URL.
 */
export function writeConvertedSeries(
  dir: string,
  store: string,
  study: string,
  series: NativeSeriesSpec,
  patient: { id: string; name: string; prefix: string },
  convert: (native: string, stored: string) => void,
): Array<{ url: string; file: string }> {
  writeNativeSeries(dir, study, series, patient.id, patient.name);
  return series.map((_, i) => {
    const k = i + 1;
    const file = path.join(store, `${patient.prefix}-${k}.dcm`);
    convert(path.join(dir, `native-${k}.dcm`), file);
    return { url: `/dicomweb/studies/${study}/series/${study}.${k}/instances/${study}.${k}.1`, file };
  });
}

/** pydicom's decode of `paths`, as native little-endian bytes each, with each file's transfer syntax. */
export function pydicomNativePixels(paths: string[]): { pixels: Buffer[]; syntaxes: string[] } {
  const out = python<{ pixels: string[]; syntaxes: string[] }>(
    `import base64, json, sys, pydicom
r = []; s = []
for f in sys.argv[1:]:
    d = pydicom.dcmread(f)
    a = d.pixel_array
    t = ('<i' if d.PixelRepresentation else '<u') + str(d.BitsAllocated // 8)
    r.append(base64.b64encode(a.astype(t).tobytes()).decode())
    s.append(str(d.file_meta.TransferSyntaxUID))
print(json.dumps({"pixels": r, "syntaxes": s}))`,
    paths,
  );
  return { pixels: out.pixels.map((p) => Buffer.from(p, 'base64')), syntaxes: out.syntaxes };
}

/** The body of the one part of a multipart/related answer. */
export function bodyOfPart(res: { body: Buffer; headers: Headers }): Buffer {
  const text = res.body.toString('latin1');
  const boundary = /boundary=([^;]+)/.exec(res.headers.get('content-type')!)![1];
  return res.body.subarray(text.indexOf('\r\n\r\n') + 4, text.lastIndexOf(`\r\n--${boundary}--`));
}
