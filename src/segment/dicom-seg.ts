// DICOM Segmentation (binary SEG, PS3.3 A.51) of a mask over a DICOM series, built the way
// highdicom builds one: from the source series model and the mask, validated before a byte is
// encoded (a DICOM source, one referenced instance per slice, UIDs present, mask size, something
// segmented). One frame per non-empty slice, each referencing its source instance (Derivation
// Image Sequence) and placed by ImagePositionPatient in the source's Frame of Reference.

import { BadRequest } from '../errors.js';
import { columnNorm } from '../volumes/affine.js';
import type { Volume } from '../volumes/volume.js';
import { volumeSliceGeometry } from '../volumes/volume.js';
import {
  type SegIdentity,
  type SegmentDescription,
  encodeSegDataset,
  packBinaryFrames,
  segFrame,
} from './seg-dataset.js';

/** Refuses a volume a SEG cannot reference (call before segmenting, to fail fast). */
export function checkSegSource(volume: Pick<Volume, 'source' | 'dims'>): void {
  const source = volume.source;
  if (source.kind !== 'dicom') {
    throw new BadRequest(
      '--seg needs a DICOM series as input: a SEG references source instances, which a NIfTI file has none of',
    );
  }
  if (source.instances.length !== volume.dims[2]) {
    throw new BadRequest(`the series has ${source.instances.length} instances for ${volume.dims[2]} slices`);
  }
  const missing: string[] = [];
  if (!source.studyInstanceUid) missing.push('StudyInstanceUID');
  if (!source.seriesInstanceUid) missing.push('SeriesInstanceUID');
  if (!source.frameOfReferenceUid) missing.push('FrameOfReferenceUID');
  const bad = source.instances.find((i) => !i.sopInstanceUid || !i.sopClassUid);
  if (bad) missing.push(`SOPInstanceUID/SOPClassUID of ${bad.key}`);
  if (missing.length > 0) {
    throw new BadRequest(
      `cannot write a SEG: the source series has no ${missing.join(', ')} (a SEG must reference them)`,
    );
  }
}

/**
 * Encodes a binary SEG of `mask` (0/1 per voxel, the volume's index order). With `identity` its
 * UIDs and content date are those of that result (the same bytes each time), else new ones.
 */
export function encodeSegmentation(
  volume: Volume,
  mask: Uint8Array,
  description: SegmentDescription,
  identity?: SegIdentity,
): Uint8Array {
  checkSegSource(volume);
  if (volume.source.kind !== 'dicom') throw new BadRequest('not a DICOM source');
  const source = volume.source;
  const [columns, rows, slices] = volume.dims;
  if (mask.length !== columns * rows * slices)
    throw new BadRequest(`mask has ${mask.length} voxels, the series ${columns * rows * slices}`);
  const plane = columns * rows;
  const frames: number[] = [];
  for (let k = 0; k < slices; k++) {
    for (let i = k * plane; i < (k + 1) * plane; i++) {
      if (mask[i]) {
        frames.push(k);
        break;
      }
    }
  }
  if (frames.length === 0) throw new BadRequest('the mask is empty: nothing to write as a SEG');

  const geometry = volumeSliceGeometry(volume, 0);
  const sliceSpacing = columnNorm(volume.affine, 2);
  return encodeSegDataset({
    patient: source.patient,
    studyInstanceUid: source.studyInstanceUid,
    referencedSeriesUid: source.seriesInstanceUid,
    // One item per instance (an enhanced volume's slices share one).
    referencedInstances: source.instances.filter(
      (i, n, all) => all.findIndex((j) => j.sopInstanceUid === i.sopInstanceUid) === n,
    ),
    frameOfReferenceUid: source.frameOfReferenceUid,
    dimension: { pointer: 0x00200032, functionalGroup: 0x00209113 },
    rows,
    columns,
    description,
    contentDescription: 'box-prompted 3D segmentation',
    sharedFunctionalGroups: [
      {
        tag: 0x00209116,
        vr: 'SQ',
        items: [[{ tag: 0x00200037, vr: 'DS', value: geometry.imageOrientationPatient }]],
      },
      {
        tag: 0x00289110,
        vr: 'SQ',
        items: [
          [
            { tag: 0x00180050, vr: 'DS', value: sliceSpacing },
            { tag: 0x00180088, vr: 'DS', value: sliceSpacing },
            { tag: 0x00280030, vr: 'DS', value: geometry.pixelSpacing },
          ],
        ],
      },
    ],
    perFrame: frames.map((k, f) =>
      segFrame(source.instances[k], source.instances[k].frameNumber, f + 1, [
        {
          tag: 0x00209113,
          vr: 'SQ',
          items: [
            [{ tag: 0x00200032, vr: 'DS', value: volumeSliceGeometry(volume, k).imagePositionPatient }],
          ],
        },
      ]),
    ),
    pixels: packBinaryFrames(
      frames.map((k) => mask.subarray(k * plane, (k + 1) * plane)),
      plane,
    ),
    identity,
  });
}
