// One stored DICOM object -> the catalog's instance record: the identifying UIDs (derived where
// the file lacks them), the attributes QIDO matches on, where the pixel data starts, and the
// whole header as DICOM JSON, so metadata is served later without touching storage.
//
// Missing UIDs (docs/catalog.md, "Files without UIDs"): real files come with empty Study,
// Series or SOP Instance UIDs. They are indexed with deterministic `2.25.` UIDs (PS3.5 §B.2):
//   SOP Instance UID: the file meta header's MediaStorageSOPInstanceUID when present, else a
//                     hash of the object key;
//   Series UID:       a hash of the object's folder, SeriesNumber and Modality;
//   Study UID:        a hash of the object's folder's parent, PatientID, StudyDate and StudyID.
// so every object of one folder lands in one series, a re-scan gives the same UIDs, and each
// derivation is recorded as a warning on the instance.

import { createHash } from 'node:crypto';
import type { DicomHeader, PixelDataLocation } from '../dicom/parser.js';
import { firstString, toDicomJson, type DicomJson } from '../dicom/json.js';
import { Tag } from '../dicom/tags.js';
import { STUDY_LEVEL_TAGS, SERIES_LEVEL_TAGS, pick } from './levels.js';

export interface InstanceRecord {
  /** The instance's key: the object's key, or `<object key>#<slice>` for a NIfTI slice. */
  key: string;
  /** The stored object the instance comes from (default: `key`). */
  objectKey?: string;
  version: string;
  size: number;
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  sopClassUid?: string;
  instanceNumber?: number;
  rows?: number;
  columns?: number;
  bitsAllocated?: number;
  numberOfFrames?: number;
  transferSyntax: string;
  /** Where the pixels are: a DICOM object's Pixel Data, or a NIfTI volume's slice. */
  pixelData?: PixelDataLocation | NiftiSliceLocation;
  warnings: string[];
  /** The instance's whole header (UIDs filled in where derived). */
  json: DicomJson;
  study: StudyAttributes;
  series: SeriesAttributes;
}

/** Where slice `slice` of a NIfTI volume lies (WADO-RS serves it as an uncompressed frame). */
export interface NiftiSliceLocation {
  nifti: {
    slice: number;
    datatype: number;
    bitpix: number;
    voxOffset: number;
    littleEndian: boolean;
    gzip: boolean;
    /** Columns (i), rows (j), slices (k). */
    dims: [number, number, number];
    /** Float volumes: served as int16 q with stored value = slope * q + intercept; NaN/Inf -> min. */
    float?: { slope: number; intercept: number; min: number };
  };
}

export interface StudyAttributes {
  studyUid: string;
  patientName?: string;
  patientId?: string;
  patientBirthDate?: string;
  patientSex?: string;
  studyDate?: string;
  studyTime?: string;
  accessionNumber?: string;
  studyId?: string;
  referringPhysicianName?: string;
  studyDescription?: string;
  json: DicomJson;
}

export interface SeriesAttributes {
  seriesUid: string;
  studyUid: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  ppsStartDate?: string;
  ppsStartTime?: string;
  json: DicomJson;
}

/** A `2.25.` UID (a UUID-sized integer, PS3.5 §B.2) derived from the given parts. */
export function derivedUid(...parts: string[]): string {
  const digest = createHash('sha256').update(parts.join('\0')).digest();
  // 128 bits, like a UUID; the decimal form keeps the UID within 64 characters.
  return `2.25.${BigInt('0x' + digest.subarray(0, 16).toString('hex')).toString()}`;
}

const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;

function validUid(value: string | undefined): string | undefined {
  return value !== undefined && value.length <= 64 && UID_PATTERN.test(value) ? value : undefined;
}

function folderOf(key: string): string {
  const slash = key.lastIndexOf('/');
  return slash < 0 ? '' : key.slice(0, slash);
}

function int(json: DicomJson, tagKey: string): number | undefined {
  const value = json[tagKey]?.Value?.[0];
  return typeof value === 'number' && Number.isFinite(value) ? Math.trunc(value) : undefined;
}

function uidAttribute(json: DicomJson, tagKey: string, value: string): void {
  json[tagKey] = { vr: 'UI', Value: [value] };
}

/** Builds the record of one parsed DICOM object. */
export function instanceRecord(
  object: { key: string; version: string; size: number },
  header: DicomHeader,
  /** A namespace for derived UIDs: the storage's location, so two buckets never collide. */
  namespace: string,
): InstanceRecord {
  const json = toDicomJson(header.dataset);
  const warnings: string[] = [];
  const s = (tagKey: string) => firstString(json, tagKey);

  let sopUid = validUid(s('00080018'));
  if (!sopUid) {
    const fromMeta = validUid(header.meta.string(Tag.MediaStorageSopInstanceUid));
    sopUid = fromMeta ?? derivedUid(namespace, 'sop', object.key);
    warnings.push(
      fromMeta
        ? 'SOPInstanceUID empty or invalid: taken from MediaStorageSOPInstanceUID'
        : 'SOPInstanceUID empty or invalid: derived from the object key',
    );
    uidAttribute(json, '00080018', sopUid);
  }
  let sopClassUid = validUid(s('00080016'));
  if (!sopClassUid) {
    sopClassUid = validUid(header.meta.string(Tag.MediaStorageSopClassUid));
    if (sopClassUid) {
      warnings.push('SOPClassUID empty: taken from MediaStorageSOPClassUID');
      uidAttribute(json, '00080016', sopClassUid);
    }
  }
  const folder = folderOf(object.key);
  let studyUid = validUid(s('0020000D'));
  if (!studyUid) {
    studyUid = derivedUid(
      namespace,
      'study',
      folderOf(folder),
      s('00100020') ?? '',
      s('00080020') ?? '',
      s('00200010') ?? '',
    );
    warnings.push(
      "StudyInstanceUID empty or invalid: derived from the folder's parent and the study attributes",
    );
    uidAttribute(json, '0020000D', studyUid);
  }
  let seriesUid = validUid(s('0020000E'));
  if (!seriesUid) {
    seriesUid = derivedUid(namespace, 'series', studyUid, folder, s('00200011') ?? '', s('00080060') ?? '');
    warnings.push('SeriesInstanceUID empty or invalid: derived from the folder and the series attributes');
    uidAttribute(json, '0020000E', seriesUid);
  }

  const patientName = s('00100010');
  return {
    ...object,
    sopUid,
    seriesUid,
    studyUid,
    sopClassUid,
    instanceNumber: int(json, '00200013'),
    rows: int(json, '00280010'),
    columns: int(json, '00280011'),
    bitsAllocated: int(json, '00280100'),
    numberOfFrames: int(json, '00280008') ?? (header.pixelData ? 1 : undefined),
    transferSyntax: header.transferSyntax,
    pixelData: header.pixelData,
    warnings,
    json,
    study: {
      studyUid,
      patientName,
      patientId: s('00100020'),
      patientBirthDate: s('00100030'),
      patientSex: s('00100040'),
      studyDate: s('00080020'),
      studyTime: s('00080030'),
      accessionNumber: s('00080050'),
      studyId: s('00200010'),
      referringPhysicianName: s('00080090'),
      studyDescription: s('00081030'),
      json: pick(json, STUDY_LEVEL_TAGS),
    },
    series: {
      seriesUid,
      studyUid,
      modality: s('00080060'),
      seriesNumber: int(json, '00200011'),
      seriesDescription: s('0008103E'),
      ppsStartDate: s('00400244'),
      ppsStartTime: s('00400245'),
      json: pick(json, SERIES_LEVEL_TAGS),
    },
  };
}

/** Person names compared case- and caret-insensitively (QIDO fuzzymatching). */
export function fuzzyName(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  return name
    .toLowerCase()
    .replace(/[\^=]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
