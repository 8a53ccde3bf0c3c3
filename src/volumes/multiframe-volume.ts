// A multi-frame instance (Enhanced CT/MR/PET: one frame per slice) as one `Volume`, from its
// DICOM JSON (the catalog's copy of the header) and its frames: per-frame positions from the
// Per-frame / Shared Functional Groups (Plane Position, Plane Orientation, Pixel Measures, Pixel
// Value Transformation), frames sorted along the slice normal, even spacing checked, the LPS
// affine built as for a single-frame series (dicom-series.ts) and stored as RAS.

import type { DicomJson } from '../dicom/json.js';
import { BadRequest, UnsupportedFormat, throwIfAborted } from '../errors.js';
import { type Affine, flipRasLps } from './affine.js';
import type { FrameSampleDecoder } from './frame-samples.js';
import type { Volume } from './volume.js';

const SHARED = '52009229';
const PER_FRAME = '52009230';
const PLANE_POSITION = '00209113';
const PLANE_ORIENTATION = '00209116';
const PIXEL_MEASURES = '00289110';
const VALUE_TRANSFORMATION = '00289145';

function numbers(item: DicomJson | undefined, tag: string): number[] {
  const values = item?.[tag]?.Value ?? [];
  return values.map((v) => (typeof v === 'number' ? v : Number(v)));
}

/** The first item of a sequence in an item, if any. */
function item(parent: DicomJson | undefined, tag: string): DicomJson | undefined {
  const first = parent?.[tag]?.Value?.[0];
  return first && typeof first === 'object' && !('Alphabetic' in first) ? (first as DicomJson) : undefined;
}

/** An attribute of a functional group, per frame when there, else shared. */
function group(
  frame: DicomJson | undefined,
  shared: DicomJson | undefined,
  seq: string,
  tag: string,
): number[] {
  const own = numbers(item(frame, seq), tag);
  return own.length > 0 ? own : numbers(item(shared, seq), tag);
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
  const shared = item(json, SHARED);
  const perFrame = (json[PER_FRAME]?.Value ?? []) as DicomJson[];
  const frames = Array.from({ length: count }, (_, k) => {
    const own = perFrame[k];
    const position = group(own, shared, PLANE_POSITION, '00200032');
    const orientation = group(own, shared, PLANE_ORIENTATION, '00200037');
    const spacing = group(own, shared, PIXEL_MEASURES, '00280030');
    if (position.length < 3 || orientation.length < 6 || spacing.length < 2) {
      throw new UnsupportedFormat(
        `frame ${k + 1} has no Plane Position / Plane Orientation / Pixel Spacing (functional groups): cannot place it in 3D`,
      );
    }
    const slope = group(own, shared, VALUE_TRANSFORMATION, '00281053')[0] ?? top('00281053')[0] ?? 1;
    const intercept = group(own, shared, VALUE_TRANSFORMATION, '00281052')[0] ?? top('00281052')[0] ?? 0;
    return { number: k + 1, position, orientation, spacing, slope, intercept, distance: 0 };
  });
  const iop = frames[0].orientation;
  const normal = [
    iop[1] * iop[5] - iop[2] * iop[4],
    iop[2] * iop[3] - iop[0] * iop[5],
    iop[0] * iop[4] - iop[1] * iop[3],
  ];
  for (const f of frames) {
    if (f.orientation.some((v, i) => Math.abs(v - iop[i]) > 1e-4))
      throw new BadRequest(`frame ${f.number}: ImageOrientationPatient differs; not one volume`);
    if (f.spacing.some((v, i) => Math.abs(v - frames[0].spacing[i]) > 1e-4))
      throw new BadRequest(`frame ${f.number}: PixelSpacing differs; not one volume`);
    f.distance = f.position[0] * normal[0] + f.position[1] * normal[1] + f.position[2] * normal[2];
  }
  frames.sort((a, b) => a.distance - b.distance);
  const nz = frames.length;
  if (nz > 1) {
    const mean = (frames[nz - 1].distance - frames[0].distance) / (nz - 1);
    for (let k = 1; k < nz; k++) {
      const gap = frames[k].distance - frames[k - 1].distance;
      if (gap < 1e-3)
        throw new BadRequest(
          `frames ${frames[k - 1].number} and ${frames[k].number} lie at the same position; not one volume`,
        );
      if (Math.abs(gap - mean) > 0.01 * mean + 0.01)
        throw new UnsupportedFormat(
          `uneven frame spacing (${gap.toFixed(3)} mm, mean ${mean.toFixed(3)} mm)`,
        );
    }
  }
  const voxels = rows * columns * nz;
  const maxVoxels = options.maxVoxels ?? 2 ** 28;
  if (voxels > maxVoxels)
    throw new BadRequest(`the volume has ${voxels} voxels, over the limit of ${maxVoxels}`);
  const spacing = frames[0].spacing;
  const origin = frames[0].position;
  const last = frames[nz - 1].position;
  const thickness = top('00180050')[0] ?? 1;
  const kStep =
    nz > 1 ? [0, 1, 2].map((a) => (last[a] - origin[a]) / (nz - 1)) : normal.map((n) => n * thickness);
  // prettier-ignore
  const lps: Affine = [
    iop[0] * spacing[1], iop[3] * spacing[0], kStep[0], origin[0],
    iop[1] * spacing[1], iop[4] * spacing[0], kStep[1], origin[1],
    iop[2] * spacing[1], iop[5] * spacing[0], kStep[2], origin[2],
    0, 0, 0, 1,
  ];
  const data = new Float32Array(voxels);
  const sliceSize = rows * columns;
  const bitsAllocated = top('00280100')[0] ?? 16;
  // A few frames per read: bounded memory, and the worker pool bounds decoding.
  for (let start = 0; start < nz; start += 16) {
    throwIfAborted(options.signal);
    const batch = frames.slice(start, start + 16);
    const bytes = await read(batch.map((f) => f.number));
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
