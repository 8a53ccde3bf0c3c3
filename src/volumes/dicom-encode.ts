// A minimal DICOM Part 10 encoder for derived objects (SEG): explicit VR little endian data
// elements with defined lengths, sequences built bottom-up, the file meta group, elements written
// in ascending tag order as PS3.5 §7.1 requires. Values are given already typed; no dictionary.

import { createHash, randomUUID } from 'node:crypto';

/** One element: tag as 0xggggeeee, VR, and its value (strings, numbers, items, or raw bytes). */
export type Element =
  | { tag: number; vr: 'SQ'; items: Element[][] }
  | { tag: number; vr: 'OB' | 'OW' | 'UN'; bytes: Uint8Array }
  | { tag: number; vr: 'US' | 'UL' | 'SS' | 'SL' | 'FL' | 'FD' | 'AT'; numbers: number[] }
  | { tag: number; vr: string; value: string | string[] | number | number[] };

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UID_PADDED = new Set(['UI', 'OB']);

/** A new UID under the UUID-derived root 2.25 (PS3.5 §B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** The namespace of MedStream's name-based UUIDs (a fixed random UUID; RFC 9562 §5.5). */
const UID_NAMESPACE = Buffer.from('6f1c2d0e9a7b4e3c8d5f0a1b2c3d4e5f', 'hex');

/**
 * A UID that is always the same for the same `name`: 2.25 followed by the decimal value of a
 * name-based (SHA-1, version 5) UUID of `name` in MedStream's namespace (PS3.5 §B.2 allows any
 * ITU-T X.667 UUID). At most 44 characters, no leading zeros. Unique as long as names are:
 * build them from random ids (a result's, a job's).
 */
export function uidFromName(name: string): string {
  const hash = createHash('sha1').update(UID_NAMESPACE).update(name, 'utf8').digest().subarray(0, 16);
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${hash.toString('hex')}`).toString()}`;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A decimal string of at most 16 characters (DS). */
function decimalString(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`DS value ${n} is not finite`);
  for (let digits = 10; digits >= 1; digits--) {
    const text = String(Number(n.toPrecision(digits)));
    if (text.length <= 16) return text;
  }
  return n.toExponential(6);
}

function valueBytes(e: Element): Uint8Array {
  if ('items' in e) {
    return concat(
      e.items.map((item) => {
        const body = encodeDataset(item);
        const head = new Uint8Array(8);
        const v = new DataView(head.buffer);
        v.setUint16(0, 0xfffe, true);
        v.setUint16(2, 0xe000, true);
        v.setUint32(4, body.length, true);
        return concat([head, body]);
      }),
    );
  }
  if ('bytes' in e) return e.bytes;
  if ('numbers' in e) {
    const size = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8, AT: 4 }[e.vr];
    const out = new Uint8Array(size * e.numbers.length);
    const v = new DataView(out.buffer);
    e.numbers.forEach((n, i) => {
      const o = i * size;
      if (e.vr === 'US') v.setUint16(o, n, true);
      else if (e.vr === 'SS') v.setInt16(o, n, true);
      else if (e.vr === 'UL') v.setUint32(o, n, true);
      else if (e.vr === 'SL') v.setInt32(o, n, true);
      else if (e.vr === 'FL') v.setFloat32(o, n, true);
      else if (e.vr === 'FD') v.setFloat64(o, n, true);
      else {
        v.setUint16(o, n >>> 16, true);
        v.setUint16(o + 2, n & 0xffff, true);
      }
    });
    return out;
  }
  const values = Array.isArray(e.value) ? e.value : [e.value];
  const text = values
    .map((x) => (typeof x === 'number' ? (e.vr === 'DS' ? decimalString(x) : String(Math.round(x))) : x))
    .join('\\');
  let bytes: Uint8Array = new TextEncoder().encode(text);
  if (bytes.length % 2 === 1) bytes = concat([bytes, new Uint8Array([UID_PADDED.has(e.vr) ? 0 : 0x20])]);
  return bytes;
}

function encodeElement(e: Element): Uint8Array {
  const value = valueBytes(e);
  const padded = value.length % 2 === 1 ? concat([value, new Uint8Array(1)]) : value;
  const long = LONG.has(e.vr);
  const head = new Uint8Array(long ? 12 : 8);
  const v = new DataView(head.buffer);
  v.setUint16(0, e.tag >>> 16, true);
  v.setUint16(2, e.tag & 0xffff, true);
  head[4] = e.vr.charCodeAt(0);
  head[5] = e.vr.charCodeAt(1);
  if (long) v.setUint32(8, padded.length, true);
  else {
    if (padded.length > 0xffff)
      throw new RangeError(`value of (${e.tag.toString(16)}) too long for VR ${e.vr}`);
    v.setUint16(6, padded.length, true);
  }
  return concat([head, padded]);
}

/** Encodes a data set (elements sorted by tag here). */
export function encodeDataset(elements: Element[]): Uint8Array {
  const sorted = [...elements].sort((a, b) => a.tag - b.tag);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].tag === sorted[i - 1].tag)
      throw new RangeError(`duplicate element (${sorted[i].tag.toString(16)})`);
  }
  return concat(sorted.map(encodeElement));
}

/** A Part 10 file: preamble, DICM, file meta group (explicit VR LE), then the data set. */
export function encodePart10(dataset: Element[], sopClassUid: string, sopInstanceUid: string): Uint8Array {
  const meta = encodeDataset([
    { tag: 0x00020001, vr: 'OB', bytes: new Uint8Array([0, 1]) },
    { tag: 0x00020002, vr: 'UI', value: sopClassUid },
    { tag: 0x00020003, vr: 'UI', value: sopInstanceUid },
    { tag: 0x00020010, vr: 'UI', value: '1.2.840.10008.1.2.1' },
    { tag: 0x00020012, vr: 'UI', value: '2.25.271838453963958339436410196371512446311' },
    { tag: 0x00020013, vr: 'SH', value: 'MEDSTREAM' },
  ]);
  const groupLength = encodeElement({ tag: 0x00020000, vr: 'UL', numbers: [meta.length] });
  const preamble = new Uint8Array(132);
  preamble.set([0x44, 0x49, 0x43, 0x4d], 128);
  return concat([preamble, groupLength, meta, encodeDataset(dataset)]);
}
