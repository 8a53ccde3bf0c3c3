// A multi-frame binary DICOM SEG of a tracked cine (PS3.3 A.51): one SEG frame per cine frame
// that holds the object, each referencing its source frame (Derivation Image Sequence: the cine's
// SOP Instance and ReferencedFrameNumber), dimensions = segment number and referenced frame
// number. A cine (ultrasound) usually has no Frame of Reference: none is invented; it is copied
// only when the source has one.

import { BadRequest } from '../errors.js';
import { type SegmentDescription, encodeSegDataset, packBinaryFrames, segFrame } from './seg-dataset.js';

/** The cine instance a SEG references. */
export interface CineSource {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid?: string;
  patient: Record<string, string>;
}

/** Encodes the SEG of `masks` (one 0/1 mask per cine frame, width x height each). */
export function encodeVideoSegmentation(
  source: CineSource,
  masks: Uint8Array[],
  width: number,
  height: number,
  description: SegmentDescription,
): Uint8Array {
  const missing = (
    ['sopClassUid', 'sopInstanceUid', 'studyInstanceUid', 'seriesInstanceUid'] as const
  ).filter((k) => !source[k]);
  if (missing.length > 0) throw new BadRequest(`cannot write a SEG: the cine has no ${missing.join(', ')}`);
  const frames = masks.map((m, t) => (m.some((v) => v) ? t : -1)).filter((t) => t >= 0);
  if (frames.length === 0)
    throw new BadRequest('the mask is empty in every frame: nothing to write as a SEG');
  return encodeSegDataset({
    patient: source.patient,
    studyInstanceUid: source.studyInstanceUid,
    referencedSeriesUid: source.seriesInstanceUid,
    referencedInstances: [source],
    frameOfReferenceUid: source.frameOfReferenceUid,
    dimension: { pointer: 0x00081160, functionalGroup: 0x00089124 },
    rows: height,
    columns: width,
    description,
    contentDescription: 'box-prompted video segmentation',
    perFrame: frames.map((t) => segFrame(source, t + 1, t + 1)),
    pixels: packBinaryFrames(
      frames.map((t) => masks[t]),
      width * height,
    ),
  });
}
