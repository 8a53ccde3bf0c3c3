// What every binary DICOM SEG MedStream writes shares (PS3.3 A.51): patient/study/series
// attributes, a two-dimension organisation (segment number + one source-specific index), image
// pixel attributes, the one-segment Segment Sequence, per-frame derivation items, packed pixels.
// Its own UIDs are new ones, or derived from a seed so that one result is always one object.

import { type Element, encodePart10, newUid, uidFromName } from '../volumes/dicom-encode.js';

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

/** An instance a SEG references. */
export interface SegReference {
  sopClassUid: string;
  sopInstanceUid: string;
}

/** What differs between the SEGs: the source, the second dimension, the frames. */
export interface SegDataset {
  patient: Record<string, string>;
  studyInstanceUid: string;
  /** The source series and its instances the SEG references (Referenced Series Sequence). */
  referencedSeriesUid: string;
  referencedInstances: SegReference[];
  /** Copied when the source has one (a cine usually has none). */
  frameOfReferenceUid?: string;
  /** The second dimension after the segment number: its index pointer and functional group. */
  dimension: { pointer: number; functionalGroup: number };
  rows: number;
  columns: number;
  description: SegmentDescription;
  /** ContentDescription (0070,0081). */
  contentDescription: string;
  /** Shared Functional Groups Sequence item, when the source has a geometry to share. */
  sharedFunctionalGroups?: Element[];
  /** One item per frame (see segFrame). */
  perFrame: Element[][];
  /** The frames' pixels (see packBinaryFrames). */
  pixels: Uint8Array;
  /** See SegIdentity; absent: new UIDs, written now. */
  identity?: SegIdentity;
}

/**
 * What makes a SEG the same object each time it is encoded: its Series, SOP Instance and
 * Dimension Organization UIDs derived from `seed` (uidFromName of `${seed}/series`, ...), and
 * its ContentDate/ContentTime. With the same seed, date and content the bytes are identical, so
 * storing it twice (STOW) replaces one instance instead of adding a second. The seed must be
 * unique to the result (build it from a random id) and name everything that changes the SEG.
 */
export interface SegIdentity {
  seed: string;
  /** ContentDate/ContentTime (UTC): when the result was made. */
  created: Date;
}

/** The UIDs a SEG of `identity` gets (new ones without). */
export function segUids(identity?: SegIdentity): {
  series: string;
  instance: string;
  dimensionOrganization: string;
} {
  const uid = (role: string) => (identity ? uidFromName(`${identity.seed}/${role}`) : newUid());
  return {
    series: uid('series'),
    instance: uid('instance'),
    dimensionOrganization: uid('dimension-organization'),
  };
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

/** Binary frames packed bit by bit, least significant bit first, frames contiguous (PS3.5 §8.1.1). */
export function packBinaryFrames(planes: Uint8Array[], plane: number): Uint8Array {
  const byteLength = Math.ceil((planes.length * plane) / 8);
  const pixels = new Uint8Array(byteLength + (byteLength % 2));
  planes.forEach((m, f) => {
    for (let p = 0; p < plane; p++) {
      if (!m[p]) continue;
      const bit = f * plane + p;
      pixels[bit >> 3] |= 1 << (bit & 7);
    }
  });
  return pixels;
}

/**
 * One Per-Frame Functional Groups item of segment 1: derived from `source` (its frame
 * `frameNumber` when given), dimension index values [1, index], plus `extra` groups.
 */
export function segFrame(
  source: SegReference,
  frameNumber: number | undefined,
  index: number,
  extra: Element[] = [],
): Element[] {
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
                { tag: 0x00081150, vr: 'UI', value: source.sopClassUid },
                { tag: 0x00081155, vr: 'UI', value: source.sopInstanceUid },
                ...(frameNumber ? [{ tag: 0x00081160, vr: 'IS', value: frameNumber }] : []),
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
    { tag: 0x00209111, vr: 'SQ', items: [[{ tag: 0x00209157, vr: 'UL', numbers: [1, index] }]] },
    ...extra,
    { tag: 0x0062000a, vr: 'SQ', items: [[{ tag: 0x0062000b, vr: 'US', numbers: [1] }]] },
  ];
}

/** Encodes the SEG as a Part 10 file. */
export function encodeSegDataset(seg: SegDataset): Uint8Array {
  const { patient, description } = seg;
  const uids = segUids(seg.identity);
  const sopInstanceUid = uids.instance;
  const dimensionOrganizationUid = uids.dimensionOrganization;
  const now = (seg.identity?.created ?? new Date()).toISOString();
  const text = (tag: number, vr: string, value: string | undefined): Element => ({
    tag,
    vr,
    value: value ?? '',
  });
  const dataset: Element[] = [
    { tag: 0x00080008, vr: 'CS', value: ['DERIVED', 'PRIMARY'] },
    { tag: 0x00080016, vr: 'UI', value: SEGMENTATION_STORAGE },
    { tag: 0x00080018, vr: 'UI', value: sopInstanceUid },
    text(0x00080020, 'DA', patient.StudyDate),
    { tag: 0x00080023, vr: 'DA', value: now.slice(0, 10).replace(/-/g, '') },
    text(0x00080030, 'TM', patient.StudyTime),
    { tag: 0x00080033, vr: 'TM', value: now.slice(11, 19).replace(/:/g, '') },
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
            items: seg.referencedInstances.map((i) => [
              { tag: 0x00081150, vr: 'UI', value: i.sopClassUid },
              { tag: 0x00081155, vr: 'UI', value: i.sopInstanceUid },
            ]),
          },
          { tag: 0x0020000e, vr: 'UI', value: seg.referencedSeriesUid },
        ],
      ],
    },
    { tag: 0x00081090, vr: 'LO', value: 'medstream' },
    text(0x00100010, 'PN', patient.PatientName),
    text(0x00100020, 'LO', patient.PatientID),
    text(0x00100030, 'DA', patient.PatientBirthDate),
    text(0x00100040, 'CS', patient.PatientSex),
    { tag: 0x00181020, vr: 'LO', value: 'medstream' },
    { tag: 0x0020000d, vr: 'UI', value: seg.studyInstanceUid },
    { tag: 0x0020000e, vr: 'UI', value: uids.series },
    text(0x00200010, 'SH', patient.StudyID),
    { tag: 0x00200011, vr: 'IS', value: description.seriesNumber ?? 1000 },
    { tag: 0x00200013, vr: 'IS', value: 1 },
    ...(seg.frameOfReferenceUid
      ? [
          { tag: 0x00200052, vr: 'UI', value: seg.frameOfReferenceUid },
          { tag: 0x00201040, vr: 'LO', value: '' },
        ]
      : []),
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
          { tag: 0x00209165, vr: 'AT', numbers: [seg.dimension.pointer] },
          { tag: 0x00209167, vr: 'AT', numbers: [seg.dimension.functionalGroup] },
        ],
      ],
    },
    { tag: 0x00280002, vr: 'US', numbers: [1] },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280008, vr: 'IS', value: seg.perFrame.length },
    { tag: 0x00280010, vr: 'US', numbers: [seg.rows] },
    { tag: 0x00280011, vr: 'US', numbers: [seg.columns] },
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
    { tag: 0x00700081, vr: 'LO', value: seg.contentDescription },
    { tag: 0x00700084, vr: 'PN', value: 'medstream' },
    ...(seg.sharedFunctionalGroups
      ? [{ tag: 0x52009229, vr: 'SQ', items: [seg.sharedFunctionalGroups] } as Element]
      : []),
    { tag: 0x52009230, vr: 'SQ', items: seg.perFrame },
    { tag: 0x7fe00010, vr: 'OB', bytes: seg.pixels },
  ];
  return encodePart10(dataset, SEGMENTATION_STORAGE, sopInstanceUid);
}
