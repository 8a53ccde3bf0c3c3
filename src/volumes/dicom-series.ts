// A DICOM series (single-frame CT/MR instances) as one `Volume`: headers parsed with dicom/,
// instances sorted along the slice normal (not by InstanceNumber or file name), uniform spacing
// checked, the LPS affine built from ImagePositionPatient / ImageOrientationPatient /
// PixelSpacing and stored as RAS like every Volume, frames decoded to HU (frame-samples.ts).
//
//   sources -> parseDicomHeader each -> check one series, one size, one orientation
//           -> sort by IPP · (row x col) -> spacing -> decode frames -> Volume

import { BadRequest, CorruptFile, UnsupportedFormat, throwIfAborted } from '../errors.js';
import type { DataSet } from '../dicom/dataset.js';
import { frameTable } from '../dicom/frames.js';
import { type DicomHeader, isDicomPart10, parseDicomHeader } from '../dicom/parser.js';
import { Tag, tag } from '../dicom/tags.js';
import { mapConcurrent } from '../storage/tree-listing.js';
import type { ByteSource, Storage } from '../storage/types.js';
import { type Affine, flipRasLps } from './affine.js';
import { readEnhancedVolume } from './dicom-enhanced.js';
import type { FrameSampleDecoder } from './frame-samples.js';
import { type DicomInstanceRef, type Volume, windowRange } from './volume.js';

/** Attributes this reader needs beyond dicom/tags.ts (PS3.6). */
export const VolumeTag = {
  MediaStorageSopClassUid: tag(0x0002, 0x0002),
  MediaStorageSopInstanceUid: tag(0x0002, 0x0003),
  StudyTime: tag(0x0008, 0x0030),
  Modality: tag(0x0008, 0x0060),
  SliceThickness: tag(0x0018, 0x0050),
  ImagePositionPatient: tag(0x0020, 0x0032),
  ImageOrientationPatient: tag(0x0020, 0x0037),
  FrameOfReferenceUid: tag(0x0020, 0x0052),
  WindowCenter: tag(0x0028, 0x1050),
  WindowWidth: tag(0x0028, 0x1051),
  RescaleIntercept: tag(0x0028, 0x1052),
  RescaleSlope: tag(0x0028, 0x1053),
} as const;

/** Patient and study attributes a derived object (SEG) copies from its source. */
export const PATIENT_STUDY_TAGS: Record<string, number> = {
  PatientName: Tag.PatientName,
  PatientID: Tag.PatientId,
  PatientBirthDate: Tag.PatientBirthDate,
  PatientSex: Tag.PatientSex,
  StudyDate: Tag.StudyDate,
  StudyTime: VolumeTag.StudyTime,
  StudyID: Tag.StudyId,
  AccessionNumber: Tag.AccessionNumber,
  ReferringPhysicianName: Tag.ReferringPhysicianName,
  Manufacturer: Tag.Manufacturer,
};

export interface ReadSeriesOptions {
  signal?: AbortSignal;
  /** Largest volume accepted in voxels (default 2^28). */
  maxVoxels?: number;
  /** Called after each decoded slice (for progress bars). */
  onSlice?: (done: number, total: number) => void;
}

interface Instance {
  source: ByteSource;
  header: DicomHeader;
  position: [number, number, number];
  /** Distance along the slice normal. */
  distance: number;
}

/**
 * The DICOM Part 10 objects under `prefix` in a store (all depths), opened; other files are
 * skipped. Throws `BadRequest` when there is none.
 */
export async function openSeriesSources(
  storage: Storage,
  prefix: string,
  signal?: AbortSignal,
): Promise<ByteSource[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await storage.list({ prefix, cursor, signal });
    keys.push(...page.objects.map((o) => o.key));
    cursor = page.nextCursor;
    if (keys.length > 100_000) throw new BadRequest(`${prefix}: more than 100000 objects; not one series`);
  } while (cursor);
  const sources: ByteSource[] = [];
  for (const key of keys.sort()) {
    const source = await storage.open(key, { signal });
    if (await isDicomPart10(source, signal)) sources.push(source);
  }
  if (sources.length === 0)
    throw new BadRequest(`no DICOM files under ${prefix === '' ? 'the folder' : prefix}`);
  return sources;
}

const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: number[], b: number[]) => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];

function required(ds: DataSet, t: number, count: number, what: string, key: string): number[] {
  const values = ds.numbers(t);
  if (values.length < count || values.slice(0, count).some((v) => !Number.isFinite(v))) {
    throw new UnsupportedFormat(`${key}: ${what} is missing or malformed; cannot place the slice in 3D`);
  }
  return values.slice(0, count);
}

/** Reads a single-frame series into a volume (values after the Modality LUT: HU for CT). */
export async function readDicomSeries(
  sources: ByteSource[],
  decoder: FrameSampleDecoder,
  options: ReadSeriesOptions = {},
): Promise<Volume> {
  const { signal } = options;
  if (sources.length === 0) throw new BadRequest('the series has no instances');
  const instances: Instance[] = [];
  let orientation: number[] | undefined;
  let normal: number[] = [0, 0, 1];
  for (const source of sources) {
    throwIfAborted(signal);
    const header = await parseDicomHeader(source, { signal });
    const ds = header.dataset;
    const frames = ds.number(Tag.NumberOfFrames) ?? 1;
    if (frames > 1 && sources.length === 1)
      return readEnhancedVolume(source, header, decoder, { ...options, patientTags: PATIENT_STUDY_TAGS });
    if (frames > 1)
      throw new UnsupportedFormat(
        `${source.key}: a multi-frame instance (${frames} frames) among other instances: give it alone`,
      );
    if ((ds.number(Tag.SamplesPerPixel) ?? 1) !== 1)
      throw new UnsupportedFormat(`${source.key}: only single-channel (greyscale) images form volumes`);
    const iop = required(ds, VolumeTag.ImageOrientationPatient, 6, 'ImageOrientationPatient', source.key);
    if (!orientation) {
      orientation = iop;
      normal = cross(iop.slice(0, 3), iop.slice(3, 6));
    } else if (iop.some((v, i) => Math.abs(v - (orientation as number[])[i]) > 1e-4)) {
      throw new BadRequest(
        `${source.key}: ImageOrientationPatient differs from the other instances; not one volume`,
      );
    }
    const position = required(ds, VolumeTag.ImagePositionPatient, 3, 'ImagePositionPatient', source.key) as [
      number,
      number,
      number,
    ];
    instances.push({ source, header, position, distance: dot(position, normal) });
  }
  const first = instances[0].header.dataset;
  const rows = first.number(Tag.Rows) ?? 0;
  const columns = first.number(Tag.Columns) ?? 0;
  if (rows < 1 || columns < 1) throw new CorruptFile(`${instances[0].source.key}: Rows/Columns missing`);
  const spacing = required(first, Tag.PixelSpacing, 2, 'PixelSpacing', instances[0].source.key);
  const series = first.string(Tag.SeriesInstanceUid) ?? '';
  const frame = first.string(VolumeTag.FrameOfReferenceUid) ?? '';
  for (const { source, header } of instances) {
    const ds = header.dataset;
    if (ds.number(Tag.Rows) !== rows || ds.number(Tag.Columns) !== columns) {
      throw new BadRequest(
        `${source.key}: ${ds.number(Tag.Columns)}x${ds.number(Tag.Rows)} differs from ${columns}x${rows}; not one volume`,
      );
    }
    if ((ds.string(Tag.SeriesInstanceUid) ?? '') !== series)
      throw new BadRequest(`${source.key}: belongs to another series (SeriesInstanceUID differs)`);
    if ((ds.string(VolumeTag.FrameOfReferenceUid) ?? '') !== frame)
      throw new BadRequest(`${source.key}: FrameOfReferenceUID differs; not one volume`);
    const ps = ds.numbers(Tag.PixelSpacing);
    if (Math.abs(ps[0] - spacing[0]) > 1e-4 || Math.abs(ps[1] - spacing[1]) > 1e-4)
      throw new BadRequest(`${source.key}: PixelSpacing differs; not one volume`);
  }
  instances.sort((a, b) => a.distance - b.distance);
  const sliceStep = sliceSpacing(instances, first);
  const nz = instances.length;
  const voxels = rows * columns * nz;
  const maxVoxels = options.maxVoxels ?? 2 ** 28;
  if (voxels > maxVoxels)
    throw new BadRequest(`the series has ${voxels} voxels, over the limit of ${maxVoxels}`);

  const iop = orientation as number[];
  const origin = instances[0].position;
  // Direction of k: from the first to the last position (equal to the normal for a straight stack,
  // and keeps a sheared (gantry-tilted) stack's real positions).
  const last = instances[nz - 1].position;
  const kStep =
    nz > 1 ? [0, 1, 2].map((a) => (last[a] - origin[a]) / (nz - 1)) : normal.map((n) => n * sliceStep);
  // prettier-ignore
  const lps: Affine = [
    iop[0] * spacing[1], iop[3] * spacing[0], kStep[0], origin[0],
    iop[1] * spacing[1], iop[4] * spacing[0], kStep[1], origin[1],
    iop[2] * spacing[1], iop[5] * spacing[0], kStep[2], origin[2],
    0, 0, 0, 1,
  ];

  const data = new Float32Array(voxels);
  const sliceSize = rows * columns;
  let done = 0;
  // Decode a few slices at a time (never more than a bounded decoder queue takes), each into its place.
  await mapConcurrent(
    instances.map((instance, k) => ({ ...instance, k })),
    8,
    async ({ source, header, k }) => {
      const ds = header.dataset;
      const bitsAllocated = ds.number(Tag.BitsAllocated) ?? 16;
      const table = frameTable(source, header, 1, sliceSize * (bitsAllocated / 8));
      const bytes = await table.read(0, signal);
      await decoder.decodeInto(
        bytes,
        header.transferSyntax,
        {
          rows,
          columns,
          bitsAllocated,
          bitsStored: ds.number(Tag.BitsStored) ?? bitsAllocated,
          pixelRepresentation: ds.number(Tag.PixelRepresentation) ?? 0,
          rescaleSlope: ds.number(VolumeTag.RescaleSlope) ?? 1,
          rescaleIntercept: ds.number(VolumeTag.RescaleIntercept) ?? 0,
        },
        data,
        k * sliceSize,
        signal,
      );
      options.onSlice?.(++done, nz);
    },
  );

  const refs: DicomInstanceRef[] = instances.map(({ source, header }) => ({
    key: source.key,
    sopClassUid:
      header.dataset.string(Tag.SopClassUid) ?? header.meta.string(VolumeTag.MediaStorageSopClassUid) ?? '',
    sopInstanceUid:
      header.dataset.string(Tag.SopInstanceUid) ??
      header.meta.string(VolumeTag.MediaStorageSopInstanceUid) ??
      '',
  }));
  const patient: Record<string, string> = {};
  for (const [name, t] of Object.entries(PATIENT_STUDY_TAGS)) {
    const value = first.string(t);
    if (value !== undefined) patient[name] = value;
  }
  const center = first.number(VolumeTag.WindowCenter);
  const width = first.number(VolumeTag.WindowWidth);
  return {
    dims: [columns, rows, nz],
    affine: flipRasLps(lps),
    data,
    source: {
      kind: 'dicom',
      instances: refs,
      frameOfReferenceUid: frame,
      studyInstanceUid: first.string(Tag.StudyInstanceUid) ?? '',
      seriesInstanceUid: series,
      patient,
    },
    defaultWindow: windowRange(center, width),
  };
}

/** The distance between slices; refuses duplicates and uneven gaps (the affine cannot hold them). */
function sliceSpacing(sorted: Instance[], first: DataSet): number {
  if (sorted.length === 1) return first.number(VolumeTag.SliceThickness) ?? 1;
  const gaps: number[] = [];
  for (let k = 1; k < sorted.length; k++) gaps.push(sorted[k].distance - sorted[k - 1].distance);
  const mean = (sorted[sorted.length - 1].distance - sorted[0].distance) / (sorted.length - 1);
  for (let k = 0; k < gaps.length; k++) {
    if (gaps[k] < 1e-3) {
      throw new BadRequest(
        `${sorted[k + 1].source.key}: two instances at the same position; the folder holds more than one volume`,
      );
    }
  }
  for (let k = 0; k < gaps.length; k++) {
    if (Math.abs(gaps[k] - mean) > 0.01 * mean + 0.01) {
      throw new UnsupportedFormat(
        `uneven slice spacing (${gaps[k].toFixed(3)} mm between slices ${k} and ${k + 1}, mean ${mean.toFixed(3)} mm); a missing slice?`,
      );
    }
  }
  return mean;
}
