// A parsed DICOM data set: elements by tag, with typed accessors for the value representations
// the formats read (strings with backslash multiplicity, DS/IS numbers, binary US/UL/SL/FL/FD,
// sequences of nested data sets). Values longer than the parser's inline limit are "deferred":
// only their offset and length are known, and `readDeferred` fetches them when wanted.

import { CorruptFile } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { tagName } from './tags.js';

export interface DicomElement {
  tag: number;
  /** Explicit VR, or the dictionary VR under implicit VR (`UN` when unknown). */
  vr: string;
  /** Absolute offset of the value's first byte in the object. */
  offset: number;
  /** Value length in bytes (sequences: the bytes they span). */
  length: number;
  /** The value bytes; absent for sequences and for deferred (long) values. */
  bytes?: Uint8Array;
  /** Items of a sequence (VR SQ, or UN holding a sequence). */
  items?: DataSet[];
}

const latin1 = new TextDecoder('latin1');

export class DataSet {
  readonly elements = new Map<number, DicomElement>();

  get(t: number): DicomElement | undefined {
    return this.elements.get(t);
  }

  has(t: number): boolean {
    return this.elements.has(t);
  }

  /** The whole string value, without the trailing space/NUL padding; undefined when absent or empty. */
  string(t: number): string | undefined {
    const bytes = this.elements.get(t)?.bytes;
    if (!bytes) return undefined;
    const text = latin1
      .decode(bytes)
      .replace(/[\0 ]+$/, '')
      .trim();
    return text === '' ? undefined : text;
  }

  /** A multi-valued string (`DERIVED\PRIMARY\VOLUME\NONE`) split and trimmed. */
  strings(t: number): string[] {
    const text = this.string(t);
    return text === undefined ? [] : text.split('\\').map((s) => s.trim());
  }

  /** The numbers of a DS/IS string or a binary numeric value. */
  numbers(t: number): number[] {
    const element = this.elements.get(t);
    const bytes = element?.bytes;
    if (!element || !bytes) return [];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const read = (size: number, get: (offset: number) => number): number[] => {
      const out: number[] = [];
      for (let i = 0; i + size <= bytes.length; i += size) out.push(get(i));
      return out;
    };
    switch (element.vr) {
      case 'US':
        return read(2, (o) => view.getUint16(o, true));
      case 'SS':
        return read(2, (o) => view.getInt16(o, true));
      case 'UL':
        return read(4, (o) => view.getUint32(o, true));
      case 'SL':
        return read(4, (o) => view.getInt32(o, true));
      case 'FL':
        return read(4, (o) => view.getFloat32(o, true));
      case 'FD':
        return read(8, (o) => view.getFloat64(o, true));
      case 'UV':
      case 'OV':
        return read(8, (o) => Number(view.getBigUint64(o, true)));
      default:
        return this.strings(t)
          .map(Number)
          .filter((n) => Number.isFinite(n));
    }
  }

  /** The first number, or undefined. */
  number(t: number): number | undefined {
    return this.numbers(t)[0];
  }

  /** Items of a sequence (empty when absent or not a sequence). */
  items(t: number): DataSet[] {
    return this.elements.get(t)?.items ?? [];
  }

  /** The first item of a sequence. */
  item(t: number): DataSet | undefined {
    return this.items(t)[0];
  }
}

/** Fetches a value the parser skipped for its length (an ICC profile, a long offset table). */
export async function readDeferred(
  source: ByteSource,
  element: DicomElement,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  if (element.bytes) return element.bytes;
  if (element.length === 0) return new Uint8Array(0);
  if (element.offset + element.length > source.size) {
    throw new CorruptFile(
      `${source.key}: element ${tagName(element.tag)} extends past the end of the object`,
    );
  }
  return source.read(element.offset, element.length, { purpose: 'metadata', signal });
}
