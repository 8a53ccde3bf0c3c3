// Builds NDPI-like files for the NDPI tests: baseline JPEGs with restart intervals whose every
// interval is one flat colour (so a decoded tile shows which intervals it holds), laid out as
// NDPI lays them out — one strip per level, McuStarts (+ high bytes), NDPI's directories with a
// 64-bit next offset and high words — on top of TiffWriter's blobs and sparse holes, so a level
// can sit past 4 GiB or have only the rows a test reads written.

import { T, TiffWriter, type Segment, type TagSpec } from '../support/tiff-writer.js';

// Standard luminance DC table (ITU-T T.81 K.3) and an AC table holding only EOB (code "0").
const DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const DC_CODES = (() => {
  const codes: { code: number; length: number }[] = [];
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    for (let i = 0; i < DC_BITS[length - 1]; i++) codes[DC_VALUES[k++]] = { code: code++, length };
    code <<= 1;
  }
  return codes;
})();

const segment = (marker: number, body: number[]): number[] => [
  0xff,
  marker,
  (body.length + 2) >> 8,
  (body.length + 2) & 255,
  ...body,
];

export interface SynthJpegSpec {
  width: number;
  height: number;
  /** 1 (gray) or 3 (YCbCr, chroma flat 128). */
  components?: 1 | 3;
  /** Luma sampling [H, V] for 3 components (chroma 1x1). */
  sampling?: [number, number];
  /** MCUs per restart interval; 0 = no restart markers. */
  restartInterval: number;
  /** Luma (or gray) value of every pixel of interval i (default: one value for all). */
  value?: (interval: number) => number;
}

export interface SynthJpegLayout {
  header: Uint8Array;
  mcuWidth: number;
  mcuHeight: number;
  across: number;
  rows: number;
  /** Entropy-coded bytes of interval i (no marker after it). */
  interval(i: number): Uint8Array;
}

/** The header (SOI..SOS) and interval encoder of a flat-colour-per-interval JPEG. */
export function synthJpegLayout(spec: SynthJpegSpec): SynthJpegLayout {
  const components = spec.components ?? 3;
  const [h, v] = components === 1 ? [1, 1] : (spec.sampling ?? [1, 1]);
  const sofWidth = spec.width > 0xffff ? 0 : spec.width; // NDPI writes 0 when it does not fit
  const sofHeight = spec.height > 0xffff ? 0 : spec.height;
  const ids = Array.from({ length: components }, (_, c) => c);
  const header = Uint8Array.from([
    0xff,
    0xd8,
    ...segment(0xdb, [0x00, ...new Array<number>(64).fill(1)]),
    ...segment(0xc4, [0x00, ...DC_BITS, ...DC_VALUES, 0x10, 1, ...new Array<number>(15).fill(0), 0x00]),
    ...segment(0xc0, [
      8,
      sofHeight >> 8,
      sofHeight & 255,
      sofWidth >> 8,
      sofWidth & 255,
      components,
      ...ids.flatMap((c) => [c + 1, c === 0 ? (h << 4) | v : 0x11, 0]),
    ]),
    ...(spec.restartInterval > 0
      ? segment(0xdd, [spec.restartInterval >> 8, spec.restartInterval & 255])
      : []),
    ...segment(0xda, [components, ...ids.flatMap((c) => [c + 1, 0x00]), 0, 63, 0]),
  ]);
  const mcuWidth = 8 * h;
  const mcuHeight = 8 * v;
  const mcusPerRow = Math.ceil(spec.width / mcuWidth);
  const perInterval =
    spec.restartInterval > 0 ? spec.restartInterval : mcusPerRow * Math.ceil(spec.height / mcuHeight);
  const value = spec.value ?? (() => 100);
  const cache = new Map<number, Uint8Array>();
  const encode = (luma: number): Uint8Array => {
    const bits: number[] = [];
    const write = (code: number, length: number) => {
      for (let i = length - 1; i >= 0; i--) bits.push((code >> i) & 1);
    };
    for (let m = 0; m < perInterval; m++) {
      for (let b = 0; b < h * v + components - 1; b++) {
        const diff = m === 0 && b === 0 ? 8 * (luma - 128) : 0; // DC predictors start at 0 per interval
        const category = diff === 0 ? 0 : Math.floor(Math.log2(Math.abs(diff))) + 1;
        write(DC_CODES[category].code, DC_CODES[category].length);
        if (category > 0) write(diff > 0 ? diff : diff + (1 << category) - 1, category);
        write(0, 1); // EOB
      }
    }
    while (bits.length % 8) bits.push(1);
    const out: number[] = [];
    for (let i = 0; i < bits.length; i += 8) {
      let byte = 0;
      for (let j = 0; j < 8; j++) byte = (byte << 1) | bits[i + j];
      out.push(byte);
      if (byte === 0xff) out.push(0x00);
    }
    return Uint8Array.from(out);
  };
  return {
    header,
    mcuWidth,
    mcuHeight,
    across: spec.restartInterval > 0 ? mcusPerRow / spec.restartInterval : 1,
    rows: spec.restartInterval > 0 ? Math.ceil(spec.height / mcuHeight) : 1,
    interval(i) {
      const luma = value(i);
      let bytes = cache.get(luma);
      if (!bytes) cache.set(luma, (bytes = encode(luma)));
      return bytes;
    },
  };
}

/** A whole JPEG stream and its McuStarts (offsets of each interval in the stream). */
export function synthJpeg(spec: SynthJpegSpec): { bytes: Uint8Array; mcuStarts: number[] } {
  const layout = synthJpegLayout(spec);
  const count = layout.across * layout.rows;
  const parts: Uint8Array[] = [layout.header];
  const mcuStarts: number[] = [];
  let pos = layout.header.length;
  for (let i = 0; i < count; i++) {
    mcuStarts.push(pos);
    const interval = layout.interval(i);
    const marker = Uint8Array.of(0xff, i === count - 1 ? 0xd9 : 0xd0 + (i % 8));
    parts.push(interval, marker);
    pos += interval.length + 2;
  }
  return { bytes: concat(parts), mcuStarts };
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

/** One NDPI directory's tags; `value64` entries are LONG values that may exceed 32 bits. */
export interface NdpiTag extends TagSpec {
  /** A LONG of count 1 whose value may need NDPI's high word (an offset past 4 GiB). */
  wide?: number;
}

/**
 * NDPI's file layout over TiffWriter: a 16-byte header with a 64-bit first-directory offset,
 * and directories (written where `ifd()` is called, after their out-of-line values) with a
 * 64-bit next offset and one high word per entry.
 */
export class NdpiWriter {
  readonly tiff = new TiffWriter({ littleEndian: true });
  private readonly directories: { offset: number; bytes: Uint8Array; nextAt: number }[] = [];

  constructor() {
    this.tiff.hole(8); // the header is 16 bytes
  }

  get offset(): number {
    return this.tiff.offset;
  }

  blob(bytes: Uint8Array): number {
    return this.tiff.blob(bytes);
  }

  hole(bytes: number): void {
    this.tiff.hole(bytes);
  }

  /** Writes one directory now, chained after the previous one. */
  ifd(tags: NdpiTag[]): number {
    const sorted = [...tags].sort((p, q) => p.tag - q.tag);
    const fields = sorted.map((tag) => {
      if (tag.wide !== undefined) return { tag, count: 1, type: T.LONG, value: tag.wide, inline: true };
      const { bytes, count } = this.tiff.encode(tag);
      const type = tag.type;
      if (tag.at !== undefined) return { tag, count: tag.count ?? count, type, value: tag.at, inline: false };
      if (bytes.length <= 4) return { tag, count: tag.count ?? count, type, bytes, inline: true, value: 0 };
      return { tag, count: tag.count ?? count, type, value: this.tiff.blob(bytes), inline: false };
    });
    const n = fields.length;
    const bytes = new Uint8Array(2 + n * 12 + 8 + n * 4);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, n, true);
    fields.forEach((field, i) => {
      const p = 2 + i * 12;
      view.setUint16(p, field.tag.tag, true);
      view.setUint16(p + 2, field.type, true);
      view.setUint32(p + 4, field.count, true);
      if ('bytes' in field && field.bytes) {
        bytes.set(field.bytes, p + 8);
      } else {
        view.setUint32(p + 8, field.value % 2 ** 32, true);
        view.setUint32(2 + n * 12 + 8 + i * 4, Math.floor(field.value / 2 ** 32), true);
      }
    });
    const offset = this.tiff.blob(bytes);
    this.directories.push({ offset, bytes, nextAt: 2 + n * 12 });
    return offset;
  }

  segments(): Segment[] {
    this.directories.forEach((dir, i) => {
      const next = this.directories[i + 1]?.offset ?? 0;
      new DataView(dir.bytes.buffer).setBigUint64(dir.nextAt, BigInt(next), true);
    });
    const [, ...rest] = this.tiff.segments();
    const header = new Uint8Array(16);
    header.set([0x49, 0x49, 42, 0]);
    new DataView(header.buffer).setBigUint64(4, BigInt(this.directories[0]?.offset ?? 0), true);
    return [{ offset: 0, bytes: header }, ...rest];
  }

  toBytes(): Uint8Array {
    const segments = this.segments();
    const out = new Uint8Array(Math.max(...segments.map((s) => s.offset + s.bytes.length)));
    for (const s of segments) out.set(s.bytes, s.offset);
    return out;
  }

  async writeFile(filePath: string): Promise<number> {
    const { promises: fs } = await import('node:fs');
    const segments = this.segments();
    const size = Math.max(...segments.map((s) => s.offset + s.bytes.length));
    const handle = await fs.open(filePath, 'w');
    try {
      for (const s of segments) await handle.write(s.bytes, 0, s.bytes.length, s.offset);
      await handle.truncate(size);
    } finally {
      await handle.close();
    }
    return size;
  }
}

export interface SynthLevelSpec extends SynthJpegSpec {
  /** Source lens (objective) of the directory: > 0 a level, -1 the macro. */
  lens: number;
  /** `none`: no McuStarts; `high`: McuStartsHighBytes too. Default `low`. */
  mcuStarts?: 'none' | 'low' | 'high';
  /** Only these MCU rows [from, to) of intervals are written (the rest of the strip is a hole). */
  rows?: [number, number];
  /** Bytes of unwritten gap put inside the strip before MCU row `beforeRow` (to push it past 4 GiB). */
  gap?: { beforeRow: number; bytes: number };
}

/** NDPI directory tags shared by every directory (make, resolution in cm, the NDPI flag). */
function commonTags(spec: SynthLevelSpec, resolution: number): NdpiTag[] {
  return [
    { tag: 256, type: T.LONG, values: [spec.width] },
    { tag: 257, type: T.LONG, values: [spec.height] },
    { tag: 258, type: T.SHORT, values: new Array<number>(spec.components ?? 3).fill(8) },
    { tag: 259, type: T.SHORT, values: [7] },
    { tag: 262, type: T.SHORT, values: [(spec.components ?? 3) === 3 ? 6 : 1] },
    { tag: 271, type: T.ASCII, values: 'Hamamatsu' },
    { tag: 277, type: T.SHORT, values: [spec.components ?? 3] },
    { tag: 278, type: T.LONG, values: [spec.height] },
    { tag: 282, type: T.RATIONAL, values: [resolution, 1] },
    { tag: 283, type: T.RATIONAL, values: [resolution, 1] },
    { tag: 296, type: T.SHORT, values: [3] },
    { tag: 65420, type: T.SHORT, values: [1] },
    { tag: 65421, type: T.FLOAT, values: [spec.lens] },
    { tag: 65449, type: T.ASCII, values: 'Product=synthetic\r\nNDP.S/N=42' },
  ];
}

/**
 * Writes one level (or macro): its strip, McuStarts arrays, then its directory. Returns where
 * interval i starts in the file, for tests that look at the bytes.
 */
export function writeLevel(
  writer: NdpiWriter,
  spec: SynthLevelSpec,
  resolution: number,
): (i: number) => number {
  const layout = synthJpegLayout(spec);
  const count = layout.across * layout.rows;
  const [fromRow, toRow] = spec.rows ?? [0, layout.rows];
  const gap = spec.gap;
  // Interval starts within the strip: sizes are known without writing (flat intervals).
  const starts = new Array<number>(count + 1);
  let pos = layout.header.length;
  for (let i = 0; i < count; i++) {
    if (gap && i === gap.beforeRow * layout.across) pos += gap.bytes;
    starts[i] = pos;
    pos += layout.interval(i).length + 2;
  }
  starts[count] = pos;
  const stripBytes = pos;
  const stripOffset = writer.offset;
  // The written part: the header, then rows [fromRow, toRow), holes around them. TiffWriter
  // keeps blobs at even offsets, so a run that must start at an odd one takes the byte before
  // it along (the second byte of the marker ending the previous interval).
  const firstWritten = starts[fromRow * layout.across];
  const parts: Uint8Array[] = [];
  for (let i = fromRow * layout.across; i < toRow * layout.across; i++) {
    parts.push(layout.interval(i), Uint8Array.of(0xff, i === count - 1 ? 0xd9 : 0xd0 + (i % 8)));
    if (gap && i + 1 === gap.beforeRow * layout.across && i + 1 < toRow * layout.across) {
      throw new Error('a gap inside the written rows');
    }
  }
  if (fromRow === 0) {
    writer.blob(concat([layout.header, ...parts]));
  } else {
    writer.blob(layout.header);
    const target = stripOffset + firstWritten;
    const odd = target % 2;
    writer.hole(target - odd - writer.offset);
    if (writer.offset !== target - odd) throw new Error('synthetic strip misaligned');
    const first = fromRow * layout.across;
    const before = odd ? [Uint8Array.of(0xd0 + ((first - 1) % 8))] : [];
    if (parts.length > 0) writer.blob(concat([...before, ...parts]));
  }
  const end = stripOffset + stripBytes;
  if (writer.offset < end) writer.hole(end - writer.offset);
  if (writer.offset > end + 1) throw new Error('synthetic strip overran');

  const tags = commonTags(spec, resolution);
  tags.push({ tag: 273, type: T.LONG, values: [], wide: stripOffset });
  tags.push({ tag: 279, type: T.LONG, values: [], wide: stripBytes });
  if (spec.lens > 0) tags.push({ tag: 65424, type: T.SLONG, values: [0] });
  const mode = spec.mcuStarts ?? 'low';
  if (spec.restartInterval > 0 && mode !== 'none') {
    const values = starts.slice(0, count);
    const low = writer.blob(
      writer.tiff.encode({ tag: 65426, type: T.LONG, values: values.map((v) => v % 2 ** 32) }).bytes,
    );
    tags.push({ tag: 65426, type: T.LONG, values: [], count, at: low });
    if (mode === 'high') {
      const high = writer.blob(
        writer.tiff.encode({ tag: 65432, type: T.LONG, values: values.map((v) => Math.floor(v / 2 ** 32)) })
          .bytes,
      );
      tags.push({ tag: 65432, type: T.LONG, values: [], count, at: high });
    }
  }
  writer.ifd(tags);
  return (i) => stripOffset + starts[i];
}
