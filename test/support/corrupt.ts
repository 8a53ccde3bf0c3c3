// Mutation generators for the corruption suite: each takes a real fixture's bytes and breaks one
// thing (truncation, a directory loop, an offset or count past the end, absurd dimensions, bad
// tile sizes, a zero-length or garbage tile, random bytes after a header, random byte flips in
// the directories), saying what the reader must answer. The generators parse the TIFF structure
// themselves, independently of src/, so a reader bug cannot hide a mutation.

import { TIFF_TYPE_SIZES } from './tiff-writer.js';

export interface EntryMap {
  tag: number;
  type: number;
  count: number;
  /** Position of the entry, of its count field and of its value/offset field. */
  pos: number;
  countPos: number;
  fieldPos: number;
  /** Offset of the value when stored out of line, else -1. */
  valueOffset: number;
}

export interface IfdMap {
  offset: number;
  nextPos: number;
  entries: EntryMap[];
}

export interface TiffMap {
  bigTiff: boolean;
  littleEndian: boolean;
  ifds: IfdMap[];
}

/**
 * What the reader must answer: `open` fails with one of `codes`; or the slide opens and
 * readTile(0, 0) of level 0 gives `null`, these exact `bytes`, or fails with one of `codes`;
 * `corrupt-somewhere`: open or that tile fails with CorruptFile; `typed`: whatever happens is a
 * typed error (fuzz).
 */
export type Expectation =
  | { kind: 'open-fails'; codes: string[] }
  | { kind: 'tile-fails'; codes: string[] }
  | { kind: 'tile-null' }
  | { kind: 'tile-bytes'; bytes: Uint8Array }
  | { kind: 'opens'; without?: string }
  | { kind: 'corrupt-somewhere' }
  | { kind: 'typed' };

export interface Mutation {
  name: string;
  bytes: Uint8Array;
  expect: Expectation;
}

class Cursor {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly le: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u16(p: number): number {
    return this.view.getUint16(p, this.le);
  }
  u32(p: number): number {
    return this.view.getUint32(p, this.le);
  }
  u64(p: number): number {
    return Number(this.view.getBigUint64(p, this.le));
  }
  set(p: number, value: number, size: number): void {
    if (size === 1) this.view.setUint8(p, value);
    else if (size === 2) this.view.setUint16(p, value, this.le);
    else if (size === 4) this.view.setUint32(p, value, this.le);
    else this.view.setBigUint64(p, BigInt(value), this.le);
  }
}

/** The main chain of a well-formed TIFF (the fixtures). */
export function mapTiff(bytes: Uint8Array): TiffMap {
  const littleEndian = bytes[0] === 0x49;
  const c = new Cursor(bytes, littleEndian);
  const bigTiff = c.u16(2) === 43;
  let offset = bigTiff ? c.u64(8) : c.u32(4);
  const ifds: IfdMap[] = [];
  while (offset !== 0 && ifds.length < 100) {
    const count = bigTiff ? c.u64(offset) : c.u16(offset);
    const start = offset + (bigTiff ? 8 : 2);
    const entrySize = bigTiff ? 20 : 12;
    const entries: EntryMap[] = [];
    for (let i = 0; i < count; i++) {
      const pos = start + i * entrySize;
      const type = c.u16(pos + 2);
      const n = bigTiff ? c.u64(pos + 4) : c.u32(pos + 4);
      const fieldPos = pos + (bigTiff ? 12 : 8);
      const inline = n * (TIFF_TYPE_SIZES[type] ?? 1) <= (bigTiff ? 8 : 4);
      entries.push({
        tag: c.u16(pos),
        type,
        count: n,
        pos,
        countPos: pos + 4,
        fieldPos,
        valueOffset: inline ? -1 : bigTiff ? c.u64(fieldPos) : c.u32(fieldPos),
      });
    }
    const nextPos = start + count * entrySize;
    ifds.push({ offset, nextPos, entries });
    offset = bigTiff ? c.u64(nextPos) : c.u32(nextPos);
  }
  return { bigTiff, littleEndian, ifds };
}

/** A seeded PRNG (mulberry32): the same mutations every run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(length: number, seed: number): Uint8Array {
  const next = random(seed);
  return Uint8Array.from({ length }, () => Math.floor(next() * 256));
}

const CORRUPT = ['corrupt_file'];
const UNSUPPORTED = ['unsupported_format'];

/** Every structural mutation that applies to `original`. */
export function structuralMutations(original: Uint8Array): Mutation[] {
  const map = mapTiff(original);
  const out: Mutation[] = [];
  const size = original.byteLength;
  const offsetSize = map.bigTiff ? 8 : 4;
  const ifd0 = map.ifds[0];
  const entry = (tag: number, ifd: IfdMap = ifd0) => ifd.entries.find((e) => e.tag === tag);

  const mutate = (
    name: string,
    expect: Expectation,
    change: (c: Cursor, bytes: Uint8Array) => Uint8Array | void,
  ) => {
    const bytes = original.slice();
    const replaced = change(new Cursor(bytes, map.littleEndian), bytes);
    out.push({ name, bytes: replaced ?? bytes, expect });
  };
  const truncate = (name: string, at: number, expect: Expectation) => {
    if (at > 0 && at < size) out.push({ name, bytes: original.slice(0, at), expect });
  };
  /** Position of element `index` of an array entry. */
  const elementPos = (e: EntryMap, index: number) =>
    (e.valueOffset < 0 ? e.fieldPos : e.valueOffset) + index * TIFF_TYPE_SIZES[e.type];
  /** Sets an entry to one inline value of `type`. */
  const setInline = (c: Cursor, e: EntryMap, type: number, value: number) => {
    c.set(e.pos + 2, type, 2);
    c.set(e.countPos, 1, offsetSize);
    c.set(e.fieldPos, 0, offsetSize);
    c.set(e.fieldPos, value, TIFF_TYPE_SIZES[type]);
  };

  // Truncations.
  truncate('truncated in the header', 5, { kind: 'open-fails', codes: CORRUPT });
  truncate('truncated inside the first IFD', ifd0.offset + 6, { kind: 'open-fails', codes: CORRUPT });
  const bits = entry(258);
  if (bits && bits.valueOffset > 0) {
    truncate('truncated inside tag data', bits.valueOffset + 2, { kind: 'corrupt-somewhere' });
  }
  const offsets = entry(324) ?? entry(273);
  const counts = entry(325) ?? entry(279);
  if (!offsets || !counts) throw new Error('fixture has no tile offsets');
  const c0 = new Cursor(original, map.littleEndian);
  const readElement = (e: EntryMap, index: number) => {
    const size = TIFF_TYPE_SIZES[e.type];
    const p = elementPos(e, index);
    return size === 2 ? c0.u16(p) : size === 4 ? c0.u32(p) : c0.u64(p);
  };
  const tileOffset = readElement(offsets, 0);
  const tileBytes = readElement(counts, 0);
  truncate('truncated inside tile data', tileOffset + Math.floor(tileBytes / 2), {
    kind: 'corrupt-somewhere',
  });
  if (offsets.valueOffset > 0) {
    truncate('truncated inside the tile offsets', offsets.valueOffset + 3, { kind: 'corrupt-somewhere' });
  }

  // Directory loops.
  mutate('IFD 0 points to itself', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    c.set(ifd0.nextPos, ifd0.offset, offsetSize),
  );
  const last = map.ifds[map.ifds.length - 1];
  if (map.ifds.length > 1) {
    mutate('last IFD points back to IFD 0', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      c.set(last.nextPos, ifd0.offset, offsetSize),
    );
  }
  const subIfds = entry(330);
  if (subIfds) {
    mutate('SubIFD points back to IFD 0', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      c.set(elementPos(subIfds, 0), ifd0.offset, 4),
    );
    mutate('SubIFD past the end', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      c.set(elementPos(subIfds, 0), size + 64, 4),
    );
  }

  // Offsets and counts past the end of the file.
  mutate('first IFD offset past the end', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    c.set(map.bigTiff ? 8 : 4, size + 100, offsetSize),
  );
  mutate('next IFD offset past the end', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    c.set(last.nextPos, size + 1, offsetSize),
  );
  mutate('IFD 0 entry count 65535', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    c.set(ifd0.offset, 65535, map.bigTiff ? 8 : 2),
  );
  if (offsets.valueOffset > 0) {
    mutate('tile offsets array past the end', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      c.set(offsets.fieldPos, size - 2, offsetSize),
    );
    mutate('tile offsets count 2^31', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      c.set(offsets.countPos, 2 ** 31, map.bigTiff ? 8 : 4),
    );
  }
  const description = entry(270);
  if (description && description.valueOffset > 0) {
    mutate('ImageDescription past the end', { kind: 'corrupt-somewhere' }, (c) =>
      c.set(description.fieldPos, size + 10, offsetSize),
    );
  }
  const elementSize = TIFF_TYPE_SIZES[offsets.type];
  mutate('tile 0 offset past the end', { kind: 'tile-fails', codes: CORRUPT }, (c) =>
    c.set(elementPos(offsets, 0), Math.min(size + 1000, 2 ** (8 * elementSize) - 1), elementSize),
  );
  const countSize = TIFF_TYPE_SIZES[counts.type];
  const pastEnd = size - tileOffset + 1;
  if (pastEnd < 2 ** (8 * countSize)) {
    mutate('tile 0 byte count past the end', { kind: 'tile-fails', codes: CORRUPT }, (c) =>
      c.set(elementPos(counts, 0), pastEnd, countSize),
    );
  }
  if (countSize >= 4) {
    mutate('tile 0 byte count 4 GiB', { kind: 'tile-fails', codes: CORRUPT }, (c) =>
      c.set(elementPos(counts, 0), 0xfffffff0, 4),
    );
  }
  mutate('tile 0 byte count 0', { kind: 'tile-null' }, (c) => c.set(elementPos(counts, 0), 0, countSize));
  mutate('tile 0 offset 0', { kind: 'tile-null' }, (c) => c.set(elementPos(offsets, 0), 0, elementSize));
  const garbage = randomBytes(tileBytes, 7);
  mutate('garbage tile bytes', { kind: 'tile-bytes', bytes: garbage }, (_, bytes) =>
    bytes.set(garbage, tileOffset),
  );

  // Absurd dimensions and tile sizes.
  const width = entry(256)!;
  const height = entry(257)!;
  mutate('width 2^31', { kind: 'open-fails', codes: CORRUPT }, (c) => setInline(c, width, 4, 2 ** 31));
  mutate('width 2^31 - 1', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    setInline(c, width, 4, 2 ** 31 - 1),
  );
  mutate('width 0', { kind: 'open-fails', codes: CORRUPT }, (c) => setInline(c, width, 4, 0));
  mutate('height 2^32 - 1', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    setInline(c, height, 4, 2 ** 32 - 1),
  );
  mutate('width of type ASCII', { kind: 'open-fails', codes: CORRUPT }, (c) => c.set(width.pos + 2, 2, 2));
  mutate('width of unknown field type', { kind: 'open-fails', codes: CORRUPT }, (c) =>
    c.set(width.pos + 2, 99, 2),
  );
  const tileWidth = entry(322);
  if (tileWidth) {
    mutate('tile width 0', { kind: 'open-fails', codes: CORRUPT }, (c) => setInline(c, tileWidth, 3, 0));
    mutate('tile width 7', { kind: 'open-fails', codes: CORRUPT }, (c) => setInline(c, tileWidth, 3, 7));
    mutate('tile width 2^31', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      setInline(c, tileWidth, 4, 2 ** 31),
    );
    mutate('tile width 32768', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      setInline(c, tileWidth, 3, 32768),
    );
  }
  const samples = entry(277);
  if (samples)
    mutate('SamplesPerPixel 0', { kind: 'open-fails', codes: CORRUPT }, (c) => setInline(c, samples, 3, 0));
  if (bits)
    mutate('BitsPerSample count 100000', { kind: 'open-fails', codes: CORRUPT }, (c) =>
      c.set(bits.countPos, 100_000, map.bigTiff ? 8 : 4),
    );
  const compression = entry(259);
  if (compression)
    mutate('unknown compression', { kind: 'open-fails', codes: UNSUPPORTED }, (c) =>
      setInline(c, compression, 3, 4242),
    );

  // An associated image that is broken is left out; the slide still opens.
  if (map.ifds.length > 1) {
    const thumbnail = map.ifds[1];
    const stripOffsets = entry(273, thumbnail);
    if (stripOffsets && stripOffsets.valueOffset > 0 && !entry(322, thumbnail)) {
      mutate('thumbnail strip offsets past the end', { kind: 'opens', without: 'thumbnail' }, (c) =>
        c.set(stripOffsets.fieldPos, size + 8, offsetSize),
      );
    }
  }
  return out;
}

/** Random bytes after a valid-looking header, in each TIFF flavour. */
export function headerThenNoise(): Mutation[] {
  const out: Mutation[] = [];
  const headers: [string, number[]][] = [
    ['II classic', [0x49, 0x49, 42, 0, 8, 0, 0, 0]],
    ['MM classic', [0x4d, 0x4d, 0, 42, 0, 0, 0, 8]],
    ['II BigTIFF', [0x49, 0x49, 43, 0, 8, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]],
    ['MM BigTIFF', [0x4d, 0x4d, 0, 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16]],
  ];
  for (const [name, header] of headers) {
    const bigTiff = header.length === 16;
    const view = (bytes: Uint8Array) => new DataView(bytes.buffer);
    for (const seed of [1, 2, 3]) {
      const bytes = new Uint8Array(header.length + 4096);
      bytes.set(header);
      bytes.set(randomBytes(4096, seed * 101), header.length);
      out.push({ name: `${name} header then random bytes (seed ${seed})`, bytes, expect: { kind: 'typed' } });
      // The same with a plausible entry count, so that random entries get parsed.
      const counted = bytes.slice();
      const le = header[0] === 0x49;
      const entries = 5 + seed * 4;
      if (bigTiff) {
        view(counted).setBigUint64(16, BigInt(entries), le);
        view(counted).setBigUint64(24 + entries * 20, 0n, le);
      } else {
        view(counted).setUint16(8, entries, le);
        view(counted).setUint32(10 + entries * 12, 0, le);
      }
      out.push({
        name: `${name} header, ${entries} random entries (seed ${seed})`,
        bytes: counted,
        expect: { kind: 'typed' },
      });
    }
  }
  return out;
}

/** Inputs that are no TIFF at all. */
export function notTiff(): Mutation[] {
  const text = (s: string) => new TextEncoder().encode(s);
  const unsupported: Expectation = { kind: 'open-fails', codes: UNSUPPORTED };
  return [
    { name: 'empty file', bytes: new Uint8Array(0), expect: unsupported },
    { name: 'one byte', bytes: new Uint8Array([0x49]), expect: unsupported },
    { name: 'random bytes', bytes: randomBytes(10_000, 99), expect: unsupported },
    {
      name: 'PNG signature',
      bytes: Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...randomBytes(100, 5)]),
      expect: unsupported,
    },
    {
      name: 'JPEG file',
      bytes: Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, ...randomBytes(100, 6)]),
      expect: unsupported,
    },
    { name: 'text', bytes: text('%PDF-1.7\nnot a slide at all\n'), expect: unsupported },
    {
      name: 'TIFF signature alone',
      bytes: Uint8Array.from([0x49, 0x49, 42, 0]),
      expect: { kind: 'open-fails', codes: CORRUPT },
    },
    { name: 'TIFF version 44', bytes: Uint8Array.from([0x49, 0x49, 44, 0, 8, 0, 0, 0]), expect: unsupported },
  ];
}

/** `count` copies of `original` with a few random bytes changed in its first directory. */
export function directoryFuzz(original: Uint8Array, count: number, seed: number): Mutation[] {
  const map = mapTiff(original);
  const ifd0 = map.ifds[0];
  const from = ifd0.offset;
  const to = ifd0.nextPos + (map.bigTiff ? 8 : 4);
  const next = random(seed);
  const out: Mutation[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = original.slice();
    const flips = 1 + Math.floor(next() * 4);
    for (let f = 0; f < flips; f++) {
      bytes[from + Math.floor(next() * (to - from))] = Math.floor(next() * 256);
    }
    out.push({ name: `IFD 0 fuzz #${i} (seed ${seed})`, bytes, expect: { kind: 'typed' } });
  }
  return out;
}
