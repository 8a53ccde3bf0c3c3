// A multi-frame instance (Enhanced CT/MR/PET: one frame per slice) as one `Volume`, from its
// DICOM JSON (the catalog's copy of the header, for WADO-RS volume.nii.gz) and its frames: the
// functional groups read from the JSON, the frames placed by enhanced-geometry.ts, the affine
// stored as RAS. (dicom-enhanced.ts is the same from a parsed file, for `medstream segment`.)

import type { DicomJson } from '../dicom/json.js';
import { BadRequest, UnsupportedFormat, throwIfAborted } from '../errors.js';
import { flipRasLps } from './affine.js';
import { type FrameGroups, placeEnhancedFrames } from './enhanced-geometry.js';
import type { FrameSampleDecoder } from './frame-samples.js';
import type { Volume } from './volume.js';

const SHARED = '52009229';
const PER_FRAME = '52009230';

/** A tag as the DICOM JSON model keys it (8 upper-case hex digits). */
const key = (tag: number) => tag.toString(16).toUpperCase().padStart(8, '0');

function numbers(item: DicomJson | undefined, tag: string): number[] {
  const values = item?.[tag]?.Value ?? [];
  return values.map((v) => (typeof v === 'number' ? v : Number(v)));
}

/** The first item of a sequence in an item, if any. */
function item(parent: DicomJson | undefined, tag: string): DicomJson | undefined {
  const first = parent?.[tag]?.Value?.[0];
  return first && typeof first === 'object' && !('Alphabetic' in first) ? (first as DicomJson) : undefined;
}

/** The functional groups of a multi-frame instance's DICOM JSON. */
function jsonGroups(json: DicomJson, count: number): FrameGroups {
  const shared = item(json, SHARED);
  const perFrame = (json[PER_FRAME]?.Value ?? []) as DicomJson[];
  return {
    count,
    values(frame, group, attribute) {
      const own = numbers(item(perFrame[frame], key(group)), key(attribute));
      return own.length > 0 ? own : numbers(item(shared, key(group)), key(attribute));
    },
  };
}

export interface MultiFrameVolumeOptions {
  signal?: AbortSignal;
  maxVoxels?: number;
}

/** Reads a multi-frame instance's frames (1-based `read`) into a volume of real-world values. */
export async function readMultiFrameVolume(
  json: DicomJson,
  transferSyntax: string,
  read: (frameNumbers: number[]) => Promise<Uint8Array[]>,
  decoder: FrameSampleDecoder,
  options: MultiFrameVolumeOptions = {},
): Promise<Volume> {
  const top = (tag: string) => numbers(json, tag);
  const count = top('00280008')[0] ?? 1;
  const rows = top('00280010')[0] ?? 0;
  const columns = top('00280011')[0] ?? 0;
  if ((top('00280002')[0] ?? 1) !== 1)
    throw new UnsupportedFormat('only single-channel (greyscale) images form volumes');
  const { frames, lps } = placeEnhancedFrames(jsonGroups(json, count), 'the instance', {
    thickness: top('00180050')[0],
    slope: top('00281053')[0],
    intercept: top('00281052')[0],
  });
  const nz = frames.length;
  const voxels = rows * columns * nz;
  const maxVoxels = options.maxVoxels ?? 2 ** 28;
  if (voxels > maxVoxels)
    throw new BadRequest(`the volume has ${voxels} voxels, over the limit of ${maxVoxels}`);
  const data = new Float32Array(voxels);
  const sliceSize = rows * columns;
  const bitsAllocated = top('00280100')[0] ?? 16;
  // A few frames per read: bounded memory, and the worker pool bounds decoding.
  for (let start = 0; start < nz; start += 16) {
    throwIfAborted(options.signal);
    const batch = frames.slice(start, start + 16);
    const bytes = await read(batch.map((f) => f.index + 1));
    await Promise.all(
      batch.map((f, i) =>
        decoder.decodeInto(
          bytes[i],
          transferSyntax,
          {
            rows,
            columns,
            bitsAllocated,
            bitsStored: top('00280101')[0] ?? bitsAllocated,
            pixelRepresentation: top('00280103')[0] ?? 0,
            rescaleSlope: f.slope,
            rescaleIntercept: f.intercept,
          },
          data,
          (start + i) * sliceSize,
          options.signal,
        ),
      ),
    );
  }
  const text = (tag: string) => {
    const v = json[tag]?.Value?.[0];
    return typeof v === 'string' ? v : '';
  };
  return {
    dims: [columns, rows, nz],
    affine: flipRasLps(lps),
    data,
    source: {
      kind: 'dicom',
      instances: [{ key: text('00080018'), sopClassUid: text('00080016'), sopInstanceUid: text('00080018') }],
      frameOfReferenceUid: text('00200052'),
      studyInstanceUid: text('0020000D'),
      seriesInstanceUid: text('0020000E'),
      patient: {},
    },
  };
}
