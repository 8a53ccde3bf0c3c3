// One enhanced multi-frame CT/MR instance (PS3.3 C.7.6.16, functional groups) as a volume: each
// frame's ImagePositionPatient from its Plane Position group, the orientation, pixel spacing and
// rescale from its own or the shared groups; frames sorted along the slice normal, evenly spaced,
// one frame per position (a temporal or multi-echo instance is refused: not one volume). Every
// slice references the instance and its frame number, so a SEG can point at the source frame.

import { BadRequest, CorruptFile, UnsupportedFormat, throwIfAborted } from '../errors.js';
import type { DataSet } from '../dicom/dataset.js';
import { frameTable } from '../dicom/frames.js';
import type { DicomHeader } from '../dicom/parser.js';
import { Tag, tag } from '../dicom/tags.js';
import type { ByteSource } from '../storage/types.js';
import { type Affine, flipRasLps } from './affine.js';
import type { FrameSampleDecoder } from './frame-samples.js';
import type { DicomInstanceRef, Volume } from './volume.js';

const Group = {
  PlanePositionSequence: tag(0x0020, 0x9113),
  PlaneOrientationSequence: tag(0x0020, 0x9116),
  PixelValueTransformationSequence: tag(0x0028, 0x9145),
  ImagePositionPatient: tag(0x0020, 0x0032),
  ImageOrientationPatient: tag(0x0020, 0x0037),
  FrameOfReferenceUid: tag(0x0020, 0x0052),
  RescaleIntercept: tag(0x0028, 0x1052),
  RescaleSlope: tag(0x0028, 0x1053),
  MediaStorageSopClassUid: tag(0x0002, 0x0002),
  MediaStorageSopInstanceUid: tag(0x0002, 0x0003),
  WindowCenter: tag(0x0028, 0x1050),
  WindowWidth: tag(0x0028, 0x1051),
} as const;

const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

export interface EnhancedOptions {
  maxVoxels?: number;
  onSlice?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Patient/study attributes to copy (dicom-series.ts PATIENT_STUDY_TAGS). */
  patientTags: Record<string, number>;
}

/** Reads an enhanced multi-frame instance into a volume (values after the per-frame rescale). */
export async function readEnhancedVolume(
  source: ByteSource,
  header: DicomHeader,
  decoder: FrameSampleDecoder,
  options: EnhancedOptions,
): Promise<Volume> {
  const ds = header.dataset;
  const key = source.key;
  const count = ds.number(Tag.NumberOfFrames) ?? 1;
  if ((ds.number(Tag.SamplesPerPixel) ?? 1) !== 1)
    throw new UnsupportedFormat(`${key}: only single-channel (greyscale) images form volumes`);
  const rows = ds.number(Tag.Rows) ?? 0;
  const columns = ds.number(Tag.Columns) ?? 0;
  if (rows < 1 || columns < 1) throw new CorruptFile(`${key}: Rows/Columns missing`);
  const shared = ds.item(Tag.SharedFunctionalGroupsSequence);
  const perFrame = ds.items(Tag.PerFrameFunctionalGroupsSequence);
  if (perFrame.length !== count)
    throw new CorruptFile(`${key}: ${perFrame.length} per-frame functional groups for ${count} frames`);
  /** A functional group macro of frame f: its own, else the shared one. */
  const group = (f: number, t: number): DataSet | undefined => perFrame[f].item(t) ?? shared?.item(t);
  const numbers = (f: number, seq: number, t: number, n: number, what: string): number[] => {
    const values = group(f, seq)?.numbers(t) ?? [];
    if (values.length < n || values.slice(0, n).some((v) => !Number.isFinite(v)))
      throw new UnsupportedFormat(`${key}: frame ${f + 1} has no ${what}; cannot place it in 3D`);
    return values.slice(0, n);
  };

  const iop = numbers(
    0,
    Group.PlaneOrientationSequence,
    Group.ImageOrientationPatient,
    6,
    'ImageOrientationPatient',
  );
  const spacing = numbers(0, Tag.PixelMeasuresSequence, Tag.PixelSpacing, 2, 'PixelSpacing');
  const normal = [
    iop[1] * iop[5] - iop[2] * iop[4],
    iop[2] * iop[3] - iop[0] * iop[5],
    iop[0] * iop[4] - iop[1] * iop[3],
  ];
  const frames = perFrame.map((_, f) => {
    const o = numbers(
      f,
      Group.PlaneOrientationSequence,
      Group.ImageOrientationPatient,
      6,
      'ImageOrientationPatient',
    );
    if (o.some((v, i) => Math.abs(v - iop[i]) > 1e-4))
      throw new BadRequest(`${key}: frame ${f + 1} has another orientation; not one volume`);
    const s = numbers(f, Tag.PixelMeasuresSequence, Tag.PixelSpacing, 2, 'PixelSpacing');
    if (Math.abs(s[0] - spacing[0]) > 1e-4 || Math.abs(s[1] - spacing[1]) > 1e-4)
      throw new BadRequest(`${key}: frame ${f + 1} has another PixelSpacing; not one volume`);
    const position = numbers(
      f,
      Group.PlanePositionSequence,
      Group.ImagePositionPatient,
      3,
      'ImagePositionPatient',
    );
    const transform = group(f, Group.PixelValueTransformationSequence);
    return {
      index: f,
      position,
      distance: dot(position, normal),
      slope: transform?.number(Group.RescaleSlope) ?? 1,
      intercept: transform?.number(Group.RescaleIntercept) ?? 0,
    };
  });
  frames.sort((a, b) => a.distance - b.distance);
  const nz = frames.length;
  if (nz < 2) throw new BadRequest(`${key}: one frame is not a volume`);
  const mean = (frames[nz - 1].distance - frames[0].distance) / (nz - 1);
  for (let k = 1; k < nz; k++) {
    const gap = frames[k].distance - frames[k - 1].distance;
    if (gap < 1e-3)
      throw new BadRequest(
        `${key}: frames ${frames[k - 1].index + 1} and ${frames[k].index + 1} lie at the same position (a temporal or multi-echo instance): not one volume`,
      );
    if (Math.abs(gap - mean) > 0.01 * mean + 0.01)
      throw new UnsupportedFormat(
        `${key}: uneven frame spacing (${gap.toFixed(3)} mm, mean ${mean.toFixed(3)} mm)`,
      );
  }
  const voxels = rows * columns * nz;
  if (voxels > (options.maxVoxels ?? 2 ** 28))
    throw new BadRequest(
      `the instance has ${voxels} voxels, over the limit of ${options.maxVoxels ?? 2 ** 28}`,
    );

  const origin = frames[0].position;
  const last = frames[nz - 1].position;
  const kStep = [0, 1, 2].map((a) => (last[a] - origin[a]) / (nz - 1));
  // prettier-ignore
  const lps: Affine = [
    iop[0] * spacing[1], iop[3] * spacing[0], kStep[0], origin[0],
    iop[1] * spacing[1], iop[4] * spacing[0], kStep[1], origin[1],
    iop[2] * spacing[1], iop[5] * spacing[0], kStep[2], origin[2],
    0, 0, 0, 1,
  ];
  const bitsAllocated = ds.number(Tag.BitsAllocated) ?? 16;
  const plane = rows * columns;
  const table = frameTable(source, header, count, plane * (bitsAllocated / 8));
  const data = new Float32Array(voxels);
  let done = 0;
  for (let k = 0; k < nz; k++) {
    throwIfAborted(options.signal);
    const frame = frames[k];
    await decoder.decodeInto(
      await table.read(frame.index, options.signal),
      header.transferSyntax,
      {
        rows,
        columns,
        bitsAllocated,
        bitsStored: ds.number(Tag.BitsStored) ?? bitsAllocated,
        pixelRepresentation: ds.number(Tag.PixelRepresentation) ?? 0,
        rescaleSlope: frame.slope,
        rescaleIntercept: frame.intercept,
      },
      data,
      k * plane,
      options.signal,
    );
    options.onSlice?.(++done, nz);
  }

  const sopClassUid = ds.string(Tag.SopClassUid) ?? header.meta.string(Group.MediaStorageSopClassUid) ?? '';
  const sopInstanceUid =
    ds.string(Tag.SopInstanceUid) ?? header.meta.string(Group.MediaStorageSopInstanceUid) ?? '';
  const instances: DicomInstanceRef[] = frames.map((f) => ({
    key,
    sopClassUid,
    sopInstanceUid,
    frameNumber: f.index + 1,
  }));
  const patient: Record<string, string> = {};
  for (const [name, t] of Object.entries(options.patientTags)) {
    const value = ds.string(t);
    if (value !== undefined) patient[name] = value;
  }
  const voi = shared?.item(tag(0x0028, 0x9132)) ?? perFrame[0].item(tag(0x0028, 0x9132));
  const center = voi?.number(Group.WindowCenter);
  const width = voi?.number(Group.WindowWidth);
  return {
    dims: [columns, rows, nz],
    affine: flipRasLps(lps),
    data,
    source: {
      kind: 'dicom',
      instances,
      frameOfReferenceUid: ds.string(Group.FrameOfReferenceUid) ?? '',
      studyInstanceUid: ds.string(Tag.StudyInstanceUid) ?? '',
      seriesInstanceUid: ds.string(Tag.SeriesInstanceUid) ?? '',
      patient,
    },
    defaultWindow:
      center !== undefined && width !== undefined && width > 0
        ? [center - width / 2, center + width / 2]
        : undefined,
  };
}
