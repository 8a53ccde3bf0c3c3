// A small, known set of radiology studies written as real DICOM Part 10 files (explicit VR little
// endian, tiny native pixel data) for QIDO / STOW tests: four patients, five series, with names,
// dates, times, accession numbers and modalities chosen to exercise every matching rule.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { tag, Tag, TransferSyntax } from '../../src/dicom/tags.js';
import { writeDicom, writeDicomFile, type ElementSpec } from './dicom-writer.js';

const ROOT = '1.2.826.0.1.3680043.9.7777';
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';

export interface TestInstance {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClassUid: string;
  instanceNumber: number;
}

export interface TestSeries {
  uid: string;
  number: number;
  modality: string;
  description: string;
  instances: number;
}

export interface TestStudy {
  uid: string;
  patientName: string;
  patientId: string;
  date: string;
  time: string;
  accession: string;
  description: string;
  charset?: string;
  series: TestSeries[];
}

export const STUDIES: TestStudy[] = [
  {
    uid: `${ROOT}.1`,
    patientName: 'Doe^John',
    patientId: 'P1',
    date: '20240105',
    time: '101500',
    accession: 'ACC1',
    description: 'CT ABDOMEN',
    series: [
      { uid: `${ROOT}.1.1`, number: 1, modality: 'CT', description: 'Axial 3mm', instances: 3 },
      { uid: `${ROOT}.1.2`, number: 2, modality: 'CT', description: 'Coronal', instances: 2 },
    ],
  },
  {
    uid: `${ROOT}.2`,
    patientName: 'DOE^Jane',
    patientId: 'P2',
    date: '20231120',
    time: '083000',
    accession: 'ACC2',
    description: 'MR BRAIN',
    series: [{ uid: `${ROOT}.2.1`, number: 1, modality: 'MR', description: 'T1 axial', instances: 2 }],
  },
  {
    uid: `${ROOT}.3`,
    patientName: 'Smith^Ann',
    patientId: 'P3',
    date: '20220301',
    time: '235959',
    accession: 'X-3',
    description: 'CT CHEST',
    series: [{ uid: `${ROOT}.3.1`, number: 4, modality: 'CT', description: 'Lung', instances: 1 }],
  },
  {
    uid: `${ROOT}.4`,
    patientName: 'Müller^Jürgen',
    patientId: 'P4',
    date: '20240106',
    time: '070000',
    accession: 'ACC4',
    description: 'MR KNEE',
    charset: 'ISO_IR 192',
    series: [{ uid: `${ROOT}.4.1`, number: 1, modality: 'MR', description: 'PD fat sat', instances: 1 }],
  },
];

export function instancesOf(study: TestStudy): TestInstance[] {
  return study.series.flatMap((series) =>
    Array.from({ length: series.instances }, (_, i) => ({
      studyUid: study.uid,
      seriesUid: series.uid,
      sopUid: `${series.uid}.${i + 1}`,
      sopClassUid: series.modality === 'MR' ? MR_IMAGE_STORAGE : CT_IMAGE_STORAGE,
      instanceNumber: i + 1,
    })),
  );
}

/** The elements of one instance (sorted by the writer). */
export function instanceElements(
  study: TestStudy,
  series: TestSeries,
  instance: TestInstance,
): ElementSpec[] {
  return [
    ...(study.charset ? [{ tag: tag(0x0008, 0x0005), vr: 'CS', value: study.charset }] : []),
    { tag: Tag.SopClassUid, vr: 'UI', value: instance.sopClassUid },
    { tag: Tag.SopInstanceUid, vr: 'UI', value: instance.sopUid },
    { tag: Tag.StudyDate, vr: 'DA', value: study.date },
    { tag: tag(0x0008, 0x0030), vr: 'TM', value: study.time },
    { tag: Tag.AccessionNumber, vr: 'SH', value: study.accession },
    { tag: tag(0x0008, 0x0060), vr: 'CS', value: series.modality },
    { tag: Tag.StudyDescription, vr: 'LO', value: study.description },
    { tag: Tag.SeriesDescription, vr: 'LO', value: series.description },
    { tag: Tag.PatientName, vr: 'PN', value: study.patientName },
    { tag: Tag.PatientId, vr: 'LO', value: study.patientId },
    { tag: tag(0x0018, 0x0050), vr: 'DS', value: '2.5' },
    { tag: Tag.StudyInstanceUid, vr: 'UI', value: study.uid },
    { tag: Tag.SeriesInstanceUid, vr: 'UI', value: series.uid },
    { tag: Tag.StudyId, vr: 'SH', value: study.patientId + '-S' },
    { tag: Tag.SeriesNumber, vr: 'IS', value: String(series.number) },
    { tag: Tag.InstanceNumber, vr: 'IS', value: String(instance.instanceNumber) },
    { tag: Tag.SamplesPerPixel, vr: 'US', value: [1] },
    { tag: Tag.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
    { tag: Tag.Rows, vr: 'US', value: [4] },
    { tag: Tag.Columns, vr: 'US', value: [4] },
    { tag: Tag.BitsAllocated, vr: 'US', value: [16] },
    { tag: Tag.BitsStored, vr: 'US', value: [12] },
    { tag: Tag.HighBit, vr: 'US', value: [11] },
    { tag: Tag.PixelRepresentation, vr: 'US', value: [0] },
  ];
}

function pixels(instance: TestInstance): Uint8Array {
  const out = new Uint8Array(32);
  out.fill(instance.instanceNumber);
  return out;
}

/** One instance as bytes (for STOW). */
export function instanceBytes(study: TestStudy, series: TestSeries, instance: TestInstance): Uint8Array {
  return writeDicom({
    transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
    elements: instanceElements(study, series, instance),
    pixel: { kind: 'native', frames: [pixels(instance)] },
  });
}

/**
 * A variant of `study`'s first instance of `series` as bytes: SOP Instance UID `sop`, transfer
 * syntax `ts`, the given pixel data, and the US elements of `extra` (tag -> value) in place of
 * the defaults (Rows, BitsAllocated, ...).
 */
export function instanceVariant(
  study: TestStudy,
  series: TestSeries,
  sop: string,
  ts: string,
  pixel: Parameters<typeof writeDicom>[0]['pixel'],
  extra: Record<number, number> = {},
): Uint8Array {
  const base = instancesOf(study).find((i) => i.seriesUid === series.uid)!;
  const replaced = Object.keys(extra).map(Number);
  return writeDicom({
    transferSyntax: ts,
    elements: [
      ...instanceElements(study, series, { ...base, sopUid: sop }).filter((e) => !replaced.includes(e.tag)),
      ...Object.entries(extra).map(([tag, v]) => ({ tag: Number(tag), vr: 'US', value: [v] })),
    ],
    pixel,
  });
}

/** A "JPEG 2000" variant (`instanceVariant`) whose frame is noise: it does not decode. */
export function noiseJ2kVariant(study: TestStudy, series: TestSeries, sop: string): Uint8Array {
  return instanceVariant(study, series, sop, TransferSyntax.Jpeg2000Lossless, {
    kind: 'encapsulated',
    frames: [new Uint8Array(300).fill(7)],
    offsets: 'bot',
  });
}

/** A native variant (`instanceVariant`) of 8-bit frames of 1 stored bit: CharLS refuses to encode them. */
export function oneBitVariant(study: TestStudy, series: TestSeries, sop: string): Uint8Array {
  return instanceVariant(
    study,
    series,
    sop,
    TransferSyntax.ExplicitVrLittleEndian,
    { kind: 'native', frames: [new Uint8Array(16).map((_, i) => i & 1)] },
    { [Tag.BitsAllocated]: 8, [Tag.BitsStored]: 1, [Tag.HighBit]: 0 },
  );
}

/** Writes every study under `dir/<patient id>/<series number>/<n>.dcm`; returns the instances. */
export async function writeStudies(dir: string, studies: TestStudy[] = STUDIES): Promise<TestInstance[]> {
  const all: TestInstance[] = [];
  for (const study of studies) {
    for (const series of study.series) {
      const folder = path.join(dir, study.patientId, String(series.number));
      await mkdir(folder, { recursive: true });
      for (const instance of instancesOf(study).filter((i) => i.seriesUid === series.uid)) {
        await writeDicomFile(path.join(folder, `${instance.instanceNumber}.dcm`), {
          transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
          elements: instanceElements(study, series, instance),
          pixel: { kind: 'native', frames: [pixels(instance)] },
        });
        all.push(instance);
      }
    }
  }
  return all;
}
