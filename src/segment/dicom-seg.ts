// DICOM Segmentation (binary SEG, PS3.3 A.51) of a mask over a DICOM series, built the way
// highdicom builds one: from the source series model and the mask, validated before a byte is
// encoded (a DICOM source, one referenced instance per slice, UIDs present, mask size, something
// segmented). One frame per non-empty slice, each referencing its source instance (Derivation
// Image Sequence) and placed by ImagePositionPatient in the source's Frame of Reference.

import { BadRequest } from '../errors.js';
import { columnNorm } from '../volumes/affine.js';
import { type Element, encodePart10, newUid } from '../volumes/dicom-encode.js';
import type { Volume } from '../volumes/volume.js';
import { volumeSliceGeometry } from '../volumes/volume.js';

export const SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';

export interface SegmentDescription {
  /** Segment label (e.g. "liver"). Default "segment 1". */
  label?: string;
  /** SegmentAlgorithmName, e.g. "medstream classical". */
  algorithmName: string;
  seriesDescription?: string;
  seriesNumber?: number;
  /** SegmentedPropertyCategoryCodeSequence (default SCT 91723000 "Anatomical Structure"). */
  category?: { code: string; scheme: string; meaning: string };
  /** SegmentedPropertyTypeCodeSequence (default SCT 85756007 "Tissue"). */
  type?: { code: string; scheme: string; meaning: string };
  /** RecommendedDisplayCIELabValue, already scaled to 0..65535 (PS3.3 C.10.7.1.1). */
  labColor?: [number, number, number];
}

const code = (value: string, scheme: string, meaning: string): Element[] => [
  { tag: 0x00080100, vr: 'SH', value },
  { tag: 0x00080102, vr: 'SH', value: scheme },
  { tag: 0x00080104, vr: 'LO', value: meaning },
];

const codeOf = (
  given: SegmentDescription['category'],
  [value, scheme, meaning]: [string, string, string],
): Element[] => (given ? code(given.code, given.scheme, given.meaning) : code(value, scheme, meaning));

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

/** Encodes a binary SEG of `mask` (0/1 per voxel, the volume's index order). */
export function encodeSegmentation(
  volume: Volume,
  mask: Uint8Array,
  description: SegmentDescription,
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

  // Frames packed bit by bit, least significant bit first, frames contiguous (PS3.5 §8.1.1).
  const bits = frames.length * plane;
  const byteLength = Math.ceil(bits / 8);
  const pixels = new Uint8Array(byteLength + (byteLength % 2));
  frames.forEach((k, f) => {
    for (let p = 0; p < plane; p++) {
      if (mask[k * plane + p]) {
        const bit = f * plane + p;
        pixels[bit >> 3] |= 1 << (bit & 7);
      }
    }
  });

  const geometry = volumeSliceGeometry(volume, 0);
  const sliceSpacing = columnNorm(volume.affine, 2);
  const sopInstanceUid = newUid();
  const seriesInstanceUid = newUid();
  const dimensionOrganizationUid = newUid();
  const now = new Date();
  const date = now.toISOString().slice(0, 10).replace(/-/g, '');
  const time = now.toISOString().slice(11, 19).replace(/:/g, '');
  const patient = source.patient;
  const text = (tag: number, vr: string, value: string | undefined): Element => ({
    tag,
    vr,
    value: value ?? '',
  });

  const perFrame: Element[][] = frames.map((k, f) => {
    const instance = source.instances[k];
    return [
      {
        tag: 0x00089124,
        vr: 'SQ',
        items: [
          [
            {
              tag: 0x00082112,
              vr: 'SQ',
              items: [
                [
                  { tag: 0x00081150, vr: 'UI', value: instance.sopClassUid },
                  { tag: 0x00081155, vr: 'UI', value: instance.sopInstanceUid },
                  ...(instance.frameNumber
                    ? [{ tag: 0x00081160, vr: 'IS', value: instance.frameNumber }]
                    : []),
                  {
                    tag: 0x0040a170,
                    vr: 'SQ',
                    items: [code('121322', 'DCM', 'Source image for image processing operation')],
                  },
                ],
              ],
            },
            { tag: 0x00089215, vr: 'SQ', items: [code('113076', 'DCM', 'Segmentation')] },
          ],
        ],
      },
      { tag: 0x00209111, vr: 'SQ', items: [[{ tag: 0x00209157, vr: 'UL', numbers: [1, f + 1] }]] },
      {
        tag: 0x00209113,
        vr: 'SQ',
        items: [[{ tag: 0x00200032, vr: 'DS', value: volumeSliceGeometry(volume, k).imagePositionPatient }]],
      },
      { tag: 0x0062000a, vr: 'SQ', items: [[{ tag: 0x0062000b, vr: 'US', numbers: [1] }]] },
    ];
  });

  const dataset: Element[] = [
    { tag: 0x00080008, vr: 'CS', value: ['DERIVED', 'PRIMARY'] },
    { tag: 0x00080016, vr: 'UI', value: SEGMENTATION_STORAGE },
    { tag: 0x00080018, vr: 'UI', value: sopInstanceUid },
    text(0x00080020, 'DA', patient.StudyDate),
    { tag: 0x00080023, vr: 'DA', value: date },
    text(0x00080030, 'TM', patient.StudyTime),
    { tag: 0x00080033, vr: 'TM', value: time },
    text(0x00080050, 'SH', patient.AccessionNumber),
    { tag: 0x00080060, vr: 'CS', value: 'SEG' },
    { tag: 0x00080070, vr: 'LO', value: 'MedStream' },
    text(0x00080090, 'PN', patient.ReferringPhysicianName),
    { tag: 0x0008103e, vr: 'LO', value: description.seriesDescription ?? 'Segmentation' },
    {
      tag: 0x00081115,
      vr: 'SQ',
      items: [
        [
          {
            tag: 0x0008114a,
            vr: 'SQ',
            // One item per instance (an enhanced volume's slices share one).
            items: source.instances
              .filter((i, n, all) => all.findIndex((j) => j.sopInstanceUid === i.sopInstanceUid) === n)
              .map((i) => [
                { tag: 0x00081150, vr: 'UI', value: i.sopClassUid },
                { tag: 0x00081155, vr: 'UI', value: i.sopInstanceUid },
              ]),
          },
          { tag: 0x0020000e, vr: 'UI', value: source.seriesInstanceUid },
        ],
      ],
    },
    { tag: 0x00081090, vr: 'LO', value: 'medstream' },
    text(0x00100010, 'PN', patient.PatientName),
    text(0x00100020, 'LO', patient.PatientID),
    text(0x00100030, 'DA', patient.PatientBirthDate),
    text(0x00100040, 'CS', patient.PatientSex),
    { tag: 0x00181020, vr: 'LO', value: 'medstream' },
    { tag: 0x0020000d, vr: 'UI', value: source.studyInstanceUid },
    { tag: 0x0020000e, vr: 'UI', value: seriesInstanceUid },
    text(0x00200010, 'SH', patient.StudyID),
    { tag: 0x00200011, vr: 'IS', value: description.seriesNumber ?? 1000 },
    { tag: 0x00200013, vr: 'IS', value: 1 },
    { tag: 0x00200052, vr: 'UI', value: source.frameOfReferenceUid },
    { tag: 0x00201040, vr: 'LO', value: '' },
    { tag: 0x00209221, vr: 'SQ', items: [[{ tag: 0x00209164, vr: 'UI', value: dimensionOrganizationUid }]] },
    {
      tag: 0x00209222,
      vr: 'SQ',
      items: [
        [
          { tag: 0x00209164, vr: 'UI', value: dimensionOrganizationUid },
          { tag: 0x00209165, vr: 'AT', numbers: [0x0062000b] },
          { tag: 0x00209167, vr: 'AT', numbers: [0x0062000a] },
        ],
        [
          { tag: 0x00209164, vr: 'UI', value: dimensionOrganizationUid },
          { tag: 0x00209165, vr: 'AT', numbers: [0x00200032] },
          { tag: 0x00209167, vr: 'AT', numbers: [0x00209113] },
        ],
      ],
    },
    { tag: 0x00280002, vr: 'US', numbers: [1] },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280008, vr: 'IS', value: frames.length },
    { tag: 0x00280010, vr: 'US', numbers: [rows] },
    { tag: 0x00280011, vr: 'US', numbers: [columns] },
    { tag: 0x00280100, vr: 'US', numbers: [1] },
    { tag: 0x00280101, vr: 'US', numbers: [1] },
    { tag: 0x00280102, vr: 'US', numbers: [0] },
    { tag: 0x00280103, vr: 'US', numbers: [0] },
    { tag: 0x00282110, vr: 'CS', value: '00' },
    { tag: 0x00620001, vr: 'CS', value: 'BINARY' },
    {
      tag: 0x00620002,
      vr: 'SQ',
      items: [
        [
          {
            tag: 0x00620003,
            vr: 'SQ',
            items: [codeOf(description.category, ['91723000', 'SCT', 'Anatomical Structure'])],
          },
          { tag: 0x00620004, vr: 'US', numbers: [1] },
          { tag: 0x00620005, vr: 'LO', value: description.label ?? 'segment 1' },
          { tag: 0x00620008, vr: 'CS', value: 'SEMIAUTOMATIC' },
          { tag: 0x00620009, vr: 'LO', value: description.algorithmName },
          ...(description.labColor
            ? [{ tag: 0x0062000d, vr: 'US', numbers: description.labColor } as Element]
            : []),
          { tag: 0x0062000f, vr: 'SQ', items: [codeOf(description.type, ['85756007', 'SCT', 'Tissue'])] },
        ],
      ],
    },
    { tag: 0x00700080, vr: 'CS', value: 'SEGMENTATION' },
    { tag: 0x00700081, vr: 'LO', value: 'box-prompted 3D segmentation' },
    { tag: 0x00700084, vr: 'PN', value: 'medstream' },
    {
      tag: 0x52009229,
      vr: 'SQ',
      items: [
        [
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
      ],
    },
    { tag: 0x52009230, vr: 'SQ', items: perFrame },
    { tag: 0x7fe00010, vr: 'OB', bytes: pixels },
  ];
  return encodePart10(dataset, SEGMENTATION_STORAGE, sopInstanceUid);
}
