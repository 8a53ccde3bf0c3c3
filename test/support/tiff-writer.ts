// Builds TIFF and BigTIFF files for the format tests, in either byte order, with any tag types,
// SubIFDs and an explicit layout: data blobs, holes (sparse regions that are never written, for
// multi-GiB files), directories and their out-of-line values. `segments()` gives the bytes to
// write at each offset; `toBytes()` concatenates them for small in-memory files.

import { promises as fs } from 'node:fs';

export const T = {
  BYTE: 1,
  ASCII: 2,
  SHORT: 3,
  LONG: 4,
  RATIONAL: 5,
  SBYTE: 6,
  UNDEFINED: 7,
  SSHORT: 8,
  SLONG: 9,
  SRATIONAL: 10,
  FLOAT: 11,
  DOUBLE: 12,
  IFD: 13,
  LONG8: 16,
  SLONG8: 17,
  IFD8: 18,
} as const;

/** Bytes per value of each TIFF field type (TIFF 6.0 §2, BigTIFF). */
export const TIFF_TYPE_SIZES: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
  13: 4,
  16: 8,
  17: 8,
  18: 8,
};

/**
 * One tag. Numbers for integer and float types; for RATIONAL / SRATIONAL, numerator and
 * denominator pairs; a string for ASCII (NUL added); bytes for BYTE / UNDEFINED. `count`
 * overrides the written count (to fake corrupt entries).
 */
export interface TagSpec {
  tag: number;
  type: number;
  values: readonly number[] | string | Uint8Array;
  count?: number;
  /** The value is already stored at this offset (see `TiffWriter.blob` / `encode`): write only the entry. */
  at?: number;
}

export interface IfdSpec {
  tags: TagSpec[];
  subIfds?: IfdSpec[];
  /** Write out-of-line values before the directory instead of after it. */
  valuesFirst?: boolean;
}

export interface Segment {
  offset: number;
  bytes: Uint8Array;
}

export class TiffWriter {
  private readonly segmentsList: Segment[] = [];
  private pos: number;
  private chain: IfdSpec[] = [];

  constructor(readonly options: { bigTiff?: boolean; littleEndian?: boolean } = {}) {
    this.pos = options.bigTiff ? 16 : 8;
  }

  get bigTiff(): boolean {
    return this.options.bigTiff ?? false;
  }

  get littleEndian(): boolean {
    return this.options.littleEndian ?? true;
  }

  /** Appends bytes; returns their offset. */
  blob(bytes: Uint8Array): number {
    const offset = this.pos;
    this.segmentsList.push({ offset, bytes });
    this.pos += bytes.byteLength;
    this.align();
    return offset;
  }

  /** Skips `bytes` (a sparse hole when written to a file). */
  hole(bytes: number): void {
    this.pos += bytes;
    this.align();
  }

  get offset(): number {
    return this.pos;
  }

  /** Adds a directory to the main chain (written at `build` time, in order). */
  ifd(spec: IfdSpec): void {
    this.chain.push(spec);
  }

  /** Lays out the chain after everything added so far; returns the segments to write. */
  segments(): Segment[] {
    const written = this.chain.map((spec) => this.writeIfd(spec));
    for (let i = 0; i < written.length; i++) {
      this.patchNext(written[i], written[i + 1]?.offset ?? 0);
    }
    const first = written[0]?.offset ?? 0;
    const header = new Uint8Array(this.bigTiff ? 16 : 8);
    const view = new DataView(header.buffer);
    header[0] = header[1] = this.littleEndian ? 0x49 : 0x4d;
    view.setUint16(2, this.bigTiff ? 43 : 42, this.littleEndian);
    if (this.bigTiff) {
      view.setUint16(4, 8, this.littleEndian);
      view.setBigUint64(8, BigInt(first), this.littleEndian);
    } else {
      view.setUint32(4, first, this.littleEndian);
    }
    this.chain = [];
    return [{ offset: 0, bytes: header }, ...this.segmentsList];
  }

  /** The whole file in memory (holes as zeros). */
  toBytes(): Uint8Array {
    const segments = this.segments();
    const size = Math.max(...segments.map((s) => s.offset + s.bytes.byteLength));
    const out = new Uint8Array(size);
    for (const segment of segments) out.set(segment.bytes, segment.offset);
    return out;
  }

  /** Writes the file, leaving holes unwritten (sparse). */
  async writeFile(filePath: string): Promise<number> {
    const segments = this.segments();
    const size = Math.max(...segments.map((s) => s.offset + s.bytes.byteLength));
    const handle = await fs.open(filePath, 'w');
    try {
      for (const segment of segments)
        await handle.write(segment.bytes, 0, segment.bytes.byteLength, segment.offset);
      await handle.truncate(size);
    } finally {
      await handle.close();
    }
    return size;
  }

  private align(): void {
    this.pos += this.pos % 2;
  }

  private writeIfd(spec: IfdSpec): { offset: number; nextPos: number; bytes: Uint8Array } {
    const subOffsets = (spec.subIfds ?? []).map((sub) => this.writeIfd(sub).offset);
    const tags = [...spec.tags];
    if (subOffsets.length > 0) {
      tags.push({ tag: 330, type: this.bigTiff ? T.IFD8 : T.IFD, values: subOffsets });
    }
    tags.sort((a, b) => a.tag - b.tag);
    const big = this.bigTiff;
    const entrySize = big ? 20 : 12;
    const fieldSize = big ? 8 : 4;
    const ifdSize = (big ? 8 : 2) + tags.length * entrySize + (big ? 8 : 4);
    const encoded = tags.map((tag) => this.encode(tag));

    const outOfLine = encoded.filter((e, i) => e.bytes.byteLength > fieldSize && tags[i].at === undefined);
    const valuesSize = outOfLine.reduce((sum, e) => sum + e.bytes.byteLength + (e.bytes.byteLength % 2), 0);
    const ifdOffset = spec.valuesFirst ? this.pos + valuesSize : this.pos;
    let valuePos = spec.valuesFirst ? this.pos : this.pos + ifdSize + (ifdSize % 2);

    const ifd = new Uint8Array(ifdSize);
    const view = new DataView(ifd.buffer);
    const le = this.littleEndian;
    if (big) view.setBigUint64(0, BigInt(tags.length), le);
    else view.setUint16(0, tags.length, le);
    let p = big ? 8 : 2;
    for (const [i, tag] of tags.entries()) {
      const { bytes, count } = encoded[i];
      view.setUint16(p, tag.tag, le);
      view.setUint16(p + 2, tag.type, le);
      if (big) view.setBigUint64(p + 4, BigInt(tag.count ?? count), le);
      else view.setUint32(p + 4, tag.count ?? count, le);
      const field = p + (big ? 12 : 8);
      if (tag.at !== undefined) {
        if (big) view.setBigUint64(field, BigInt(tag.at), le);
        else view.setUint32(field, tag.at, le);
      } else if (bytes.byteLength <= fieldSize) {
        ifd.set(bytes, field);
      } else {
        if (big) view.setBigUint64(field, BigInt(valuePos), le);
        else view.setUint32(field, valuePos, le);
        this.segmentsList.push({ offset: valuePos, bytes });
        valuePos += bytes.byteLength + (bytes.byteLength % 2);
      }
      p += entrySize;
    }
    this.segmentsList.push({ offset: ifdOffset, bytes: ifd });
    this.pos = Math.max(valuePos, ifdOffset + ifdSize);
    this.align();
    return { offset: ifdOffset, nextPos: ifdOffset + ifdSize - fieldSize, bytes: ifd };
  }

  private patchNext(ifd: { nextPos: number; bytes: Uint8Array; offset: number }, next: number): void {
    const view = new DataView(ifd.bytes.buffer);
    const at = ifd.nextPos - ifd.offset;
    if (this.bigTiff) view.setBigUint64(at, BigInt(next), this.littleEndian);
    else view.setUint32(at, next, this.littleEndian);
  }

  /** The bytes of a tag's values, in this file's byte order. */
  encode(tag: TagSpec): { bytes: Uint8Array; count: number } {
    if (typeof tag.values === 'string') {
      const bytes = new TextEncoder().encode(tag.values + '\0');
      return { bytes, count: bytes.byteLength };
    }
    if (tag.values instanceof Uint8Array) return { bytes: tag.values, count: tag.values.byteLength };
    const values = tag.values;
    const rational = tag.type === T.RATIONAL || tag.type === T.SRATIONAL;
    const count = rational ? values.length / 2 : values.length;
    const bytes = new Uint8Array(count * TIFF_TYPE_SIZES[tag.type]);
    const view = new DataView(bytes.buffer);
    const le = this.littleEndian;
    values.forEach((value, i) => {
      switch (tag.type) {
        case T.BYTE:
        case T.UNDEFINED:
          view.setUint8(i, value);
          break;
        case T.SBYTE:
          view.setInt8(i, value);
          break;
        case T.SHORT:
          view.setUint16(i * 2, value, le);
          break;
        case T.SSHORT:
          view.setInt16(i * 2, value, le);
          break;
        case T.LONG:
        case T.IFD:
        case T.RATIONAL:
          view.setUint32(i * 4, value, le);
          break;
        case T.SLONG:
        case T.SRATIONAL:
          view.setInt32(i * 4, value, le);
          break;
        case T.FLOAT:
          view.setFloat32(i * 4, value, le);
          break;
        case T.DOUBLE:
          view.setFloat64(i * 8, value, le);
          break;
        case T.LONG8:
        case T.IFD8:
          view.setBigUint64(i * 8, BigInt(value), le);
          break;
        case T.SLONG8:
          view.setBigInt64(i * 8, BigInt(value), le);
          break;
        default:
          throw new Error(`type ${tag.type} not supported by the test writer`);
      }
    });
    return { bytes, count };
  }
}

/** Tags of a tiled image whose tiles all point at one stored tile. */
export function tiledImageTags(options: {
  width: number;
  height: number;
  tile: number;
  tileOffset: number;
  tileBytes: number;
  bigTiff: boolean;
  compression?: number;
  photometric?: number;
  samplesPerPixel?: number;
  subfileType?: number;
  extra?: TagSpec[];
}): TagSpec[] {
  const tilesX = Math.ceil(options.width / options.tile);
  const tilesY = Math.ceil(options.height / options.tile);
  const n = tilesX * tilesY;
  const spp = options.samplesPerPixel ?? 3;
  const tags: TagSpec[] = [
    { tag: 256, type: T.LONG, values: [options.width] },
    { tag: 257, type: T.LONG, values: [options.height] },
    { tag: 258, type: T.SHORT, values: Array<number>(spp).fill(8) },
    { tag: 259, type: T.SHORT, values: [options.compression ?? 7] },
    { tag: 262, type: T.SHORT, values: [options.photometric ?? 6] },
    { tag: 277, type: T.SHORT, values: [spp] },
    { tag: 322, type: T.SHORT, values: [options.tile] },
    { tag: 323, type: T.SHORT, values: [options.tile] },
    { tag: 324, type: options.bigTiff ? T.LONG8 : T.LONG, values: Array<number>(n).fill(options.tileOffset) },
    { tag: 325, type: T.LONG, values: Array<number>(n).fill(options.tileBytes) },
    ...(options.extra ?? []),
  ];
  if (options.subfileType !== undefined) tags.push({ tag: 254, type: T.LONG, values: [options.subfileType] });
  return tags;
}
