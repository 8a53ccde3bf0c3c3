// A multi-frame binary DICOM SEG of a tracked cine (PS3.3 A.51): one SEG frame per cine frame
// that holds the object, each referencing its source frame (Derivation Image Sequence: the cine's
// SOP Instance and ReferencedFrameNumber), dimensions = segment number and referenced frame
// number. A cine (ultrasound) usually has no Frame of Reference: none is invented; it is copied
// only when the source has one.

import { BadRequest } from '../errors.js';
import { type Element, encodePart10, newUid } from '../volumes/dicom-encode.js';
import { SEGMENTATION_STORAGE, type SegmentDescription } from './dicom-seg.js';

/** The cine instance a SEG references. */
export interface CineSource {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid?: string;
  patient: Record<string, string>;
}

const code = (value: string, scheme: string, meaning: string): Element[] => [
  { tag: 0x00080100, vr: 'SH', value },
  { tag: 0x00080102, vr: 'SH', value: scheme },
  { tag: 0x00080104, vr: 'LO', value: meaning },
];

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
  const plane = width * height;
  const frames = masks.map((m, t) => (m.some((v) => v) ? t : -1)).filter((t) => t >= 0);
  if (frames.length === 0)
    throw new BadRequest('the mask is empty in every frame: nothing to write as a SEG');
  const byteLength = Math.ceil((frames.length * plane) / 8);
  const pixels = new Uint8Array(byteLength + (byteLength % 2));
  frames.forEach((t, f) => {
    const m = masks[t];
    for (let p = 0; p < plane; p++) {
      if (!m[p]) continue;
      const bit = f * plane + p;
      pixels[bit >> 3] |= 1 << (bit & 7);
    }
  });

  const sopInstanceUid = newUid();
  const organization = newUid();
  const now = new Date().toISOString();
  const patient = source.patient;
  const text = (tag: number, vr: string, value: string | undefined): Element => ({
    tag,
    vr,
    value: value ?? '',
  });
  const perFrame: Element[][] = frames.map((t) => [
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
                { tag: 0x00081160, vr: 'IS', value: t + 1 },
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
    { tag: 0x00209111, vr: 'SQ', items: [[{ tag: 0x00209157, vr: 'UL', numbers: [1, t + 1] }]] },
    { tag: 0x0062000a, vr: 'SQ', items: [[{ tag: 0x0062000b, vr: 'US', numbers: [1] }]] },
  ]);

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
            items: [
              [
                { tag: 0x00081150, vr: 'UI', value: source.sopClassUid },
                { tag: 0x00081155, vr: 'UI', value: source.sopInstanceUid },
              ],
            ],
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
    { tag: 0x0020000e, vr: 'UI', value: newUid() },
    text(0x00200010, 'SH', patient.StudyID),
    { tag: 0x00200011, vr: 'IS', value: description.seriesNumber ?? 1000 },
    { tag: 0x00200013, vr: 'IS', value: 1 },
    ...(source.frameOfReferenceUid
      ? [
          { tag: 0x00200052, vr: 'UI', value: source.frameOfReferenceUid },
          { tag: 0x00201040, vr: 'LO', value: '' },
        ]
      : []),
    { tag: 0x00209221, vr: 'SQ', items: [[{ tag: 0x00209164, vr: 'UI', value: organization }]] },
    {
      tag: 0x00209222,
      vr: 'SQ',
      items: [
        [
          { tag: 0x00209164, vr: 'UI', value: organization },
          { tag: 0x00209165, vr: 'AT', numbers: [0x0062000b] },
          { tag: 0x00209167, vr: 'AT', numbers: [0x0062000a] },
        ],
        [
          { tag: 0x00209164, vr: 'UI', value: organization },
          { tag: 0x00209165, vr: 'AT', numbers: [0x00081160] },
          { tag: 0x00209167, vr: 'AT', numbers: [0x00089124] },
        ],
      ],
    },
    { tag: 0x00280002, vr: 'US', numbers: [1] },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280008, vr: 'IS', value: frames.length },
    { tag: 0x00280010, vr: 'US', numbers: [height] },
    { tag: 0x00280011, vr: 'US', numbers: [width] },
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
          { tag: 0x00620003, vr: 'SQ', items: [code('91723000', 'SCT', 'Anatomical Structure')] },
          { tag: 0x00620004, vr: 'US', numbers: [1] },
          { tag: 0x00620005, vr: 'LO', value: description.label ?? 'segment 1' },
          { tag: 0x00620008, vr: 'CS', value: 'SEMIAUTOMATIC' },
          { tag: 0x00620009, vr: 'LO', value: description.algorithmName },
          { tag: 0x0062000f, vr: 'SQ', items: [code('85756007', 'SCT', 'Tissue')] },
        ],
      ],
    },
    { tag: 0x00700080, vr: 'CS', value: 'SEGMENTATION' },
    { tag: 0x00700081, vr: 'LO', value: 'box-prompted video segmentation' },
    { tag: 0x00700084, vr: 'PN', value: 'medstream' },
    { tag: 0x52009230, vr: 'SQ', items: perFrame },
    { tag: 0x7fe00010, vr: 'OB', bytes: pixels },
  ];
  return encodePart10(dataset, SEGMENTATION_STORAGE, sopInstanceUid);
}
