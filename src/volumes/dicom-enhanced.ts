// One enhanced multi-frame CT/MR instance (PS3.3 C.7.6.16, functional groups) read from a parsed
// file as a volume (`medstream segment`): the frames placed by enhanced-geometry.ts, decoded in
// sorted order with their own rescale. Every slice references the instance and its frame number,
// so a SEG can point at the source frame. (multiframe-volume.ts is the same from DICOM JSON.)

import { BadRequest, CorruptFile, UnsupportedFormat, throwIfAborted } from '../errors.js';
import { frameTable } from '../dicom/frames.js';
import type { DicomHeader } from '../dicom/parser.js';
import { Tag, tag } from '../dicom/tags.js';
import type { ByteSource } from '../storage/types.js';
import { flipRasLps } from './affine.js';
import { type FrameGroups, FunctionalGroup, placeEnhancedFrames } from './enhanced-geometry.js';
import type { FrameSampleDecoder } from './frame-samples.js';
import { type DicomInstanceRef, type Volume, windowRange } from './volume.js';

const Group = {
  FrameOfReferenceUid: tag(0x0020, 0x0052),
  MediaStorageSopClassUid: tag(0x0002, 0x0002),
  MediaStorageSopInstanceUid: tag(0x0002, 0x0003),
  WindowCenter: tag(0x0028, 0x1050),
  WindowWidth: tag(0x0028, 0x1051),
} as const;

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
  if (count < 2) throw new BadRequest(`${key}: one frame is not a volume`);
  const groups: FrameGroups = {
    count,
    values: (f, group, attribute) =>
      (perFrame[f].item(group) ?? shared?.item(group))?.numbers(attribute) ?? [],
  };
  const { frames, lps } = placeEnhancedFrames(groups, key);
  const nz = frames.length;
  const voxels = rows * columns * nz;
  if (voxels > (options.maxVoxels ?? 2 ** 28))
    throw new BadRequest(
      `the instance has ${voxels} voxels, over the limit of ${options.maxVoxels ?? 2 ** 28}`,
    );

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
  const voi = shared?.item(FunctionalGroup.FrameVoiLut) ?? perFrame[0].item(FunctionalGroup.FrameVoiLut);
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
    defaultWindow: windowRange(center, width),
  };
}
