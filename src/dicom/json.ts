// A parsed data set as the DICOM JSON model (PS3.18 Annex F.2): keys are 8-digit upper-case tags,
// each attribute `{vr, Value}` with strings split on backslash, PN as {Alphabetic, Ideographic,
// Phonetic}, IS/DS as numbers, AT as tag strings, SQ as nested objects, small binary values as
// InlineBinary and large or skipped ones (and Pixel Data) as BulkDataURI.
//
// Bulk data URIs are written relative (`bulkdata/<offset>/<length>`, byte positions in the stored
// object); the DICOMweb layer prefixes the instance's URL. Text VRs are decoded with the data
// set's Specific Character Set (PS3.5 §6.1; ISO_IR 100 when absent, as dcmtk does).

import { TextDecoder } from 'node:util';
import { type DataSet, type DicomElement } from './dataset.js';
import { lookupTag, tagHex } from './dictionary.js';
import { Tag } from './tags.js';

export type DicomJsonValue = string | number | null | DicomJson | PersonName;
export interface PersonName {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}
export interface DicomJsonAttribute {
  vr: string;
  Value?: DicomJsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
}
export type DicomJson = Record<string, DicomJsonAttribute>;

export interface DicomJsonOptions {
  /** Binary values longer than this become BulkDataURIs (default 1024 bytes). */
  inlineBinaryLimit?: number;
}

const SPECIFIC_CHARACTER_SET = 0x00080005;
/** VRs whose value is one string that may contain backslashes (PS3.5 §6.2). */
const SINGLE_VALUED_TEXT = new Set(['LT', 'ST', 'UT', 'UR']);
/** Text VRs affected by Specific Character Set (PS3.5 §6.1.2.3). */
const CHARSET_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'UT', 'PN', 'UC']);
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const NUMERIC_BINARY: Record<string, [number, (v: DataView, o: number) => number]> = {
  US: [2, (v, o) => v.getUint16(o, true)],
  SS: [2, (v, o) => v.getInt16(o, true)],
  UL: [4, (v, o) => v.getUint32(o, true)],
  SL: [4, (v, o) => v.getInt32(o, true)],
  FL: [4, (v, o) => v.getFloat32(o, true)],
  FD: [8, (v, o) => v.getFloat64(o, true)],
  UV: [8, (v, o) => Number(v.getBigUint64(o, true))],
  SV: [8, (v, o) => Number(v.getBigInt64(o, true))],
};

/** TextDecoder labels for the single-byte and UTF-8 character sets (PS3.3 C.12.1.1.2). */
const CHARSETS: Record<string, string> = {
  '': 'latin1',
  ISO_IR_6: 'latin1',
  'ISO_IR 6': 'latin1',
  'ISO_IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
  'ISO 2022 IR 6': 'latin1',
  'ISO 2022 IR 100': 'latin1',
  'ISO 2022 IR 87': 'iso-2022-jp',
  'ISO 2022 IR 13': 'shift_jis',
  'ISO 2022 IR 149': 'euc-kr',
};

const ascii = new TextDecoder('latin1');

function decoderFor(dataset: DataSet, inherited: TextDecoder): TextDecoder {
  const terms = dataset.strings(SPECIFIC_CHARACTER_SET);
  if (terms.length === 0) return inherited;
  // With code extensions the first term is the default repertoire; a decoder for the last named
  // set reads the common single-extension case (ISO 2022 IR 6 \ ISO 2022 IR 87).
  const label = CHARSETS[terms[terms.length - 1]] ?? CHARSETS[terms[0]] ?? 'latin1';
  try {
    return new TextDecoder(label);
  } catch {
    return ascii;
  }
}

/** The VR to interpret an element with: the dictionary's where the wire had none (implicit UN). */
function vrOf(element: DicomElement): string {
  if (element.vr !== 'UN' || element.items) return element.vr;
  return lookupTag(element.tag)?.vr ?? 'UN';
}

function trimText(text: string, vr: string): string {
  // Trailing spaces/NULs are padding for every text VR; leading spaces are insignificant except in
  // the free-text VRs (PS3.5 Table 6.2-1).
  const right = text.replace(/[\0 ]+$/, '');
  return vr === 'LT' || vr === 'ST' || vr === 'UT' ? right : right.replace(/^ +/, '');
}

function personName(text: string): PersonName | null {
  if (text === '') return null;
  const [alphabetic, ideographic, phonetic] = text.split('=');
  const out: PersonName = {};
  if (alphabetic) out.Alphabetic = alphabetic;
  if (ideographic) out.Ideographic = ideographic;
  if (phonetic) out.Phonetic = phonetic;
  return out;
}

function bulk(element: DicomElement): DicomJsonAttribute {
  return { vr: vrOf(element), BulkDataURI: `bulkdata/${element.offset}/${element.length}` };
}

function attribute(
  element: DicomElement,
  decoder: TextDecoder,
  options: Required<DicomJsonOptions>,
): DicomJsonAttribute {
  const vr = vrOf(element);
  if (element.items) {
    return { vr: 'SQ', Value: element.items.map((item) => toDicomJson(item, options, decoder)) };
  }
  const bytes = element.bytes;
  if (!bytes) return element.length === 0 ? { vr } : bulk(element);
  if (bytes.length === 0) return { vr };
  if (BINARY_VRS.has(vr)) {
    return bytes.length > options.inlineBinaryLimit
      ? bulk(element)
      : {
          vr,
          InlineBinary: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
        };
  }
  const numeric = NUMERIC_BINARY[vr];
  if (numeric) {
    const [size, read] = numeric;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const values: number[] = [];
    for (let o = 0; o + size <= bytes.length; o += size) values.push(read(view, o));
    return { vr, Value: values };
  }
  if (vr === 'AT') {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const values: string[] = [];
    for (let o = 0; o + 4 <= bytes.length; o += 4) {
      values.push(tagHex(((view.getUint16(o, true) << 16) | view.getUint16(o + 2, true)) >>> 0));
    }
    return { vr, Value: values };
  }
  const text = (CHARSET_VRS.has(vr) ? decoder : ascii).decode(bytes);
  const parts = SINGLE_VALUED_TEXT.has(vr) ? [text] : text.split('\\');
  const values: DicomJsonValue[] = parts.map((part) => {
    const value = trimText(part, vr);
    if (vr === 'PN') return personName(value);
    if (vr === 'IS' || vr === 'DS') {
      if (value === '') return null;
      const n = Number(value);
      return Number.isFinite(n) ? n : value;
    }
    return value === '' ? null : value;
  });
  if (values.every((v) => v === null)) return { vr };
  return { vr, Value: values };
}

/**
 * The data set as DICOM JSON. Group length elements (gggg,0000) are left out, as PS3.18 F.2
 * allows and dcmtk's dcm2json does.
 */
export function toDicomJson(
  dataset: DataSet,
  options: DicomJsonOptions = {},
  inherited: TextDecoder = ascii,
): DicomJson {
  const resolved = { inlineBinaryLimit: options.inlineBinaryLimit ?? 1024 };
  const decoder = decoderFor(dataset, inherited);
  const out: DicomJson = {};
  const tags = [...dataset.elements.keys()].sort((a, b) => a - b);
  for (const t of tags) {
    if ((t & 0xffff) === 0) continue;
    if (t === Tag.PixelData) continue;
    out[tagHex(t)] = attribute(dataset.elements.get(t)!, decoder, resolved);
  }
  return out;
}

/** The first value of an attribute as a string (PN: its alphabetic form), or undefined. */
export function firstString(json: DicomJson, tagKey: string): string | undefined {
  const value = json[tagKey]?.Value?.[0];
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'object') return (value as PersonName).Alphabetic ?? undefined;
  return String(value);
}

/** The `index`th value of an attribute when it is a number, or undefined. */
export function jsonNumber(json: DicomJson, tagKey: string, index = 0): number | undefined {
  const value = json[tagKey]?.Value?.[index];
  return typeof value === 'number' ? value : undefined;
}
