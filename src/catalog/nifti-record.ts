// A NIfTI volume (.nii or .nii.gz) as catalog records: one study with one series, one instance
// per slice, so DICOMweb clients (OHIF, Cornerstone3D) see it as any CT or MR series. The DICOM
// attributes are synthesised from the header: geometry per slice from the sform/qform (RAS ->
// LPS: ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness), Rows and
// Columns, the stored sample type (float volumes as int16 with a per-volume rescale), Rescale
// Slope/Intercept from scl_slope/scl_inter; UIDs are
// derived from the object key and version, so a replaced file becomes a new study. Modality and
// descriptive attributes come from a BIDS-style sidecar `<name>.json` when one exists, else from
// --nifti-modality and the file name (docs/catalog.md, "NIfTI").

import type { DicomJson, DicomJsonAttribute } from '../dicom/json.js';
import { sliceGeometry } from '../volumes/affine.js';
import type { FloatRange } from '../volumes/nifti-float.js';
import { FLOAT_BYTES, floatRescale } from '../volumes/nifti-float.js';
import type { NiftiHeader } from '../volumes/nifti-header.js';
import { STUDY_LEVEL_TAGS, SERIES_LEVEL_TAGS, pick } from './levels.js';
import { derivedUid, type InstanceRecord } from './record.js';

/** What a sidecar may say (BIDS JSON keys, and DICOM keywords for the descriptive ones). */
export interface NiftiSidecar {
  Modality?: string;
  PatientName?: string;
  PatientID?: string;
  StudyDescription?: string;
  SeriesDescription?: string;
  StudyDate?: string;
  BodyPartExamined?: string;
}

const SOP_CLASS: Record<string, string> = {
  CT: '1.2.840.10008.5.1.4.1.1.2',
  MR: '1.2.840.10008.5.1.4.1.1.4',
  PT: '1.2.840.10008.5.1.4.1.1.128',
};
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
/** NIfTI datatypes whose samples are integers, and whether they are signed. */
const INTEGER_TYPES: Record<number, boolean> = {
  2: false,
  4: true,
  8: true,
  256: true,
  512: false,
  768: false,
};

const text = (vr: string, value: string | undefined): DicomJsonAttribute =>
  value === undefined || value === '' ? { vr } : { vr, Value: [value] };
const num = (vr: string, ...values: number[]): DicomJsonAttribute => ({ vr, Value: values });
/** DS values as DICOM JSON numbers, rounded to what a 16-character DS can hold. */
const ds = (...values: number[]): DicomJsonAttribute => ({
  vr: 'DS',
  Value: values.map((v) => Number(v.toPrecision(10))),
});

function baseName(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return name.replace(/\.nii(\.gz)?$/i, '');
}

function dicomDate(date: Date | undefined): string | undefined {
  if (!date) return undefined;
  return date.toISOString().slice(0, 10).replace(/-/g, '');
}

export interface NiftiObject {
  key: string;
  version: string;
  size: number;
  lastModified?: Date;
}

/** The slices of a 3D NIfTI volume as instance records (throws for 4D and empty volumes). */
export function niftiRecords(
  object: NiftiObject,
  header: NiftiHeader,
  options: { namespace: string; modality: string; sidecar?: NiftiSidecar; floatRange?: FloatRange },
): InstanceRecord[] {
  const dim = header.dim;
  const at = (i: number) => (i <= dim[0] ? dim[i] : 1);
  const [columns, rows, slices] = [at(1), at(2), at(3)];
  for (let i = 4; i <= dim[0]; i++) {
    if (dim[i] > 1) throw new Error(`NIfTI with ${dim[0]} dimensions: only 3D volumes are served`);
  }
  if (columns < 1 || rows < 1 || slices < 1 || columns > 65535 || rows > 65535) {
    throw new Error(`NIfTI dimensions ${columns}x${rows}x${slices} cannot be DICOM images`);
  }
  const sidecar = options.sidecar ?? {};
  const modality = (sidecar.Modality ?? options.modality).toUpperCase();
  const name = baseName(object.key);
  const id = [options.namespace, object.key, object.version];
  const studyUid = derivedUid(...id, 'nifti-study');
  const seriesUid = derivedUid(...id, 'nifti-series');
  const frameOfReference = derivedUid(...id, 'nifti-frame-of-reference');
  const sopClassUid = SOP_CLASS[modality] ?? SECONDARY_CAPTURE;
  const signed = INTEGER_TYPES[header.datatype];
  const integer = signed !== undefined;
  // Float volumes are served as int16 with a per-volume rescale (volumes/nifti-float.ts).
  const isFloat = FLOAT_BYTES[header.datatype] !== undefined;
  if (isFloat && !options.floatRange) throw new Error('a float NIfTI volume needs its value range');
  const float =
    isFloat && options.floatRange
      ? { ...floatRescale(options.floatRange), min: options.floatRange.min }
      : undefined;
  const bits = integer ? header.bitpix : float ? 16 : 32;
  let slope = Number.isFinite(header.sclSlope) && header.sclSlope !== 0 ? header.sclSlope : undefined;
  let intercept = slope !== undefined && Number.isFinite(header.sclInter) ? header.sclInter : 0;
  if (float) {
    // real = scl_slope * (slope * q + intercept) + scl_inter
    intercept = (slope ?? 1) * float.intercept + intercept;
    slope = (slope ?? 1) * float.slope;
  }
  const spacingK = Math.hypot(header.affine[2], header.affine[6], header.affine[10]);
  const studyDate = sidecar.StudyDate?.replace(/-/g, '') ?? dicomDate(object.lastModified);

  const common: DicomJson = {
    '00080005': text('CS', 'ISO_IR 192'),
    '00080008': { vr: 'CS', Value: ['DERIVED', 'SECONDARY'] },
    '00080016': text('UI', sopClassUid),
    '00080020': text('DA', studyDate),
    '00080030': text('TM', undefined),
    '00080050': text('SH', undefined),
    '00080060': text('CS', modality),
    '00080064': text('CS', 'WSD'),
    '00080090': text('PN', undefined),
    '00081030': text('LO', sidecar.StudyDescription ?? name),
    '0008103E': text('LO', sidecar.SeriesDescription ?? (header.description || name)),
    '00100010': sidecar.PatientName
      ? { vr: 'PN', Value: [{ Alphabetic: sidecar.PatientName }] }
      : { vr: 'PN' },
    '00100020': text('LO', sidecar.PatientID ?? name.slice(0, 64)),
    '00180015': text('CS', sidecar.BodyPartExamined),
    '00180050': ds(spacingK || 1),
    '0020000D': text('UI', studyUid),
    '0020000E': text('UI', seriesUid),
    '00200010': text('SH', undefined),
    '00200011': num('IS', 1),
    '00200052': text('UI', frameOfReference),
    '00280002': num('US', 1),
    '00280004': text('CS', 'MONOCHROME2'),
    '00280010': num('US', rows),
    '00280011': num('US', columns),
    '00280100': num('US', bits),
    '00280101': num('US', bits),
    '00280102': num('US', bits - 1),
    '00280103': num('US', (integer && signed) || float ? 1 : 0),
  };
  if (slope !== undefined) {
    common['00281052'] = ds(intercept);
    common['00281053'] = ds(slope);
  }
  const warnings = [`synthesised from a NIfTI-${header.version} header (${header.affineSource} affine)`];
  const records: InstanceRecord[] = [];
  for (let k = 0; k < slices; k++) {
    const geometry = sliceGeometry(header.affine, k);
    const sopUid = derivedUid(...id, 'nifti-slice', String(k));
    const json: DicomJson = {
      ...common,
      '00080018': text('UI', sopUid),
      '00200013': num('IS', k + 1),
      '00200032': ds(...geometry.imagePositionPatient),
      '00200037': ds(...geometry.imageOrientationPatient),
      '00280030': ds(...geometry.pixelSpacing),
    };
    records.push({
      key: `${object.key}#${k}`,
      objectKey: object.key,
      version: object.version,
      size: object.size,
      sopUid,
      seriesUid,
      studyUid,
      sopClassUid,
      instanceNumber: k + 1,
      rows,
      columns,
      bitsAllocated: bits,
      numberOfFrames: 1,
      transferSyntax: EXPLICIT_VR_LITTLE_ENDIAN,
      pixelData: {
        nifti: {
          slice: k,
          datatype: header.datatype,
          bitpix: header.bitpix,
          voxOffset: header.voxOffset,
          littleEndian: header.littleEndian,
          gzip: header.gzip,
          dims: [columns, rows, slices],
          ...(float ? { float } : {}),
        },
      },
      warnings,
      json: Object.fromEntries(Object.entries(json).sort(([a], [b]) => (a < b ? -1 : 1))),
      study: {
        studyUid,
        patientName: sidecar.PatientName,
        patientId: sidecar.PatientID ?? name.slice(0, 64),
        studyDate,
        studyDescription: sidecar.StudyDescription ?? name,
        json: pick(json, STUDY_LEVEL_TAGS),
      },
      series: {
        seriesUid,
        studyUid,
        modality,
        seriesNumber: 1,
        seriesDescription: sidecar.SeriesDescription ?? (header.description || name),
        json: pick(json, SERIES_LEVEL_TAGS),
      },
    });
  }
  return records;
}
