// Synthetic radiology studies for the `dicomweb` suite: N studies x 2 series x M instances of
// small CT images (explicit VR little endian, 64x64 16-bit native pixels), with distinct patients,
// dates and accession numbers, written as Part 10 files. The bench keeps its own writer (test/
// has another): the two trees never import each other.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

interface Element {
  tag: number;
  vr: string;
  value: string | number[] | Uint8Array;
}

const LONG = new Set(['OB', 'OW', 'SQ', 'UN', 'UT', 'UC', 'UR']);

function encode(e: Element): Buffer {
  let value: Buffer;
  if (e.value instanceof Uint8Array) value = Buffer.from(e.value);
  else if (typeof e.value === 'string') {
    value = Buffer.from(e.value, 'utf8');
    if (value.length % 2) value = Buffer.concat([value, Buffer.from(e.vr === 'UI' ? [0] : [0x20])]);
  } else {
    value = Buffer.alloc(e.value.length * 2);
    e.value.forEach((n, i) => value.writeUInt16LE(n, i * 2));
  }
  const head = Buffer.alloc(LONG.has(e.vr) ? 12 : 8);
  head.writeUInt16LE(e.tag >>> 16, 0);
  head.writeUInt16LE(e.tag & 0xffff, 2);
  head.write(e.vr, 4, 'latin1');
  if (LONG.has(e.vr)) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

function part10(meta: Element[], elements: Element[]): Buffer {
  const metaBody = Buffer.concat(meta.map(encode));
  const groupLength = encode({ tag: 0x00020000, vr: 'UL', value: Uint8Array.from([0, 0, 0, 0]) });
  groupLength.writeUInt32LE(metaBody.length, 8);
  const sorted = [...elements].sort((a, b) => a.tag - b.tag);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM'),
    groupLength,
    metaBody,
    ...sorted.map(encode),
  ]);
}

const ROOT = '1.2.826.0.1.3680043.9.7779';
const CT = '1.2.840.10008.5.1.4.1.1.2';

export interface BenchDataset {
  dir: string;
  files: string[];
  studies: number;
  patientIds: string[];
  /** The UIDs of every instance, in file order. */
  instances: Array<{ study: string; series: string; sop: string }>;
}

/** Writes `studies` x 2 series x `perSeries` instances under `dir/<study>/<series>/<n>.dcm`. */
export async function writeDataset(dir: string, studies: number, perSeries: number): Promise<BenchDataset> {
  const files: string[] = [];
  const patientIds: string[] = [];
  const instances: BenchDataset['instances'] = [];
  const pixels = new Uint8Array(64 * 64 * 2);
  for (let s = 1; s <= studies; s++) {
    const study = `${ROOT}.${s}`;
    const patientId = `PAT${String(s).padStart(5, '0')}`;
    patientIds.push(patientId);
    const date = `20${String(10 + (s % 15)).padStart(2, '0')}${String(1 + (s % 12)).padStart(2, '0')}${String(1 + (s % 28)).padStart(2, '0')}`;
    for (let se = 1; se <= 2; se++) {
      const series = `${study}.${se}`;
      const folder = path.join(dir, `study${s}`, `series${se}`);
      await mkdir(folder, { recursive: true });
      for (let i = 1; i <= perSeries; i++) {
        const sop = `${series}.${i}`;
        const file = path.join(folder, `${i}.dcm`);
        const bytes = part10(
          [
            { tag: 0x00020001, vr: 'OB', value: Uint8Array.from([0, 1]) },
            { tag: 0x00020002, vr: 'UI', value: CT },
            { tag: 0x00020003, vr: 'UI', value: sop },
            { tag: 0x00020010, vr: 'UI', value: '1.2.840.10008.1.2.1' },
          ],
          [
            { tag: 0x00080016, vr: 'UI', value: CT },
            { tag: 0x00080018, vr: 'UI', value: sop },
            { tag: 0x00080020, vr: 'DA', value: date },
            { tag: 0x00080030, vr: 'TM', value: '120000' },
            { tag: 0x00080050, vr: 'SH', value: `ACC${s}` },
            { tag: 0x00080060, vr: 'CS', value: se === 1 ? 'CT' : 'SR' },
            { tag: 0x00081030, vr: 'LO', value: `Study ${s}` },
            { tag: 0x0008103e, vr: 'LO', value: `Series ${se}` },
            { tag: 0x00100010, vr: 'PN', value: `Patient^${s}` },
            { tag: 0x00100020, vr: 'LO', value: patientId },
            { tag: 0x00100030, vr: 'DA', value: '19700101' },
            { tag: 0x00100040, vr: 'CS', value: s % 2 ? 'F' : 'M' },
            { tag: 0x0020000d, vr: 'UI', value: study },
            { tag: 0x0020000e, vr: 'UI', value: series },
            { tag: 0x00200010, vr: 'SH', value: String(s) },
            { tag: 0x00200011, vr: 'IS', value: String(se) },
            { tag: 0x00200013, vr: 'IS', value: String(i) },
            { tag: 0x00280002, vr: 'US', value: [1] },
            { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
            { tag: 0x00280010, vr: 'US', value: [64] },
            { tag: 0x00280011, vr: 'US', value: [64] },
            { tag: 0x00280100, vr: 'US', value: [16] },
            { tag: 0x00280101, vr: 'US', value: [12] },
            { tag: 0x00280102, vr: 'US', value: [11] },
            { tag: 0x00280103, vr: 'US', value: [0] },
            { tag: 0x7fe00010, vr: 'OW', value: pixels },
          ],
        );
        await writeFile(file, bytes);
        files.push(file);
        instances.push({ study, series, sop });
      }
    }
  }
  return { dir, files, studies, patientIds, instances };
}
