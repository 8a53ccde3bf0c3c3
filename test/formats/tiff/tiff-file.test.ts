import { describe, expect, it } from 'vitest';
import { CorruptFile } from '../../../src/errors.js';
import { Limits } from '../../../src/formats/tiff/constants.js';
import { TiffFile } from '../../../src/formats/tiff/tiff-file.js';
import { BytesSource } from '../../support/file-source.js';
import { T, TiffWriter, type TagSpec } from '../../support/tiff-writer.js';

const LAYOUTS = [
  { bigTiff: false, littleEndian: true, name: 'classic II' },
  { bigTiff: false, littleEndian: false, name: 'classic MM' },
  { bigTiff: true, littleEndian: true, name: 'BigTIFF II' },
  { bigTiff: true, littleEndian: false, name: 'BigTIFF MM' },
];

/** One tag of every field type, inline and out of line. */
const ALL_TYPES: TagSpec[] = [
  { tag: 40001, type: T.BYTE, values: new Uint8Array([1, 2, 255]) },
  { tag: 40002, type: T.ASCII, values: 'hello, tiff' },
  { tag: 40003, type: T.SHORT, values: [1, 65535] },
  { tag: 40004, type: T.LONG, values: [4294967295, 7, 8] },
  { tag: 40005, type: T.RATIONAL, values: [1, 3, 10, 4] },
  { tag: 40006, type: T.SBYTE, values: [-128, 127] },
  { tag: 40007, type: T.UNDEFINED, values: new Uint8Array(40).fill(9) },
  { tag: 40008, type: T.SSHORT, values: [-32768, 5] },
  { tag: 40009, type: T.SLONG, values: [-2147483648] },
  { tag: 40010, type: T.SRATIONAL, values: [-1, 4] },
  { tag: 40011, type: T.FLOAT, values: [1.5, -2.25] },
  { tag: 40012, type: T.DOUBLE, values: [Math.PI] },
  { tag: 40013, type: T.IFD, values: [123] },
  { tag: 40016, type: T.LONG8, values: [2 ** 40 + 5, 1] },
  { tag: 40017, type: T.SLONG8, values: [-(2 ** 40)] },
  { tag: 40018, type: T.IFD8, values: [2 ** 33] },
];

async function open(bytes: Uint8Array): Promise<TiffFile> {
  const tiff = await TiffFile.open(new BytesSource(bytes));
  if (!tiff) throw new Error('not recognised as TIFF');
  return tiff;
}

describe.each(LAYOUTS)('TiffFile ($name)', ({ bigTiff, littleEndian }) => {
  it('decodes every field type', async () => {
    const writer = new TiffWriter({ bigTiff, littleEndian });
    writer.ifd({ tags: [{ tag: 256, type: T.SHORT, values: [10] }, ...ALL_TYPES] });
    const tiff = await open(writer.toBytes());
    const ifd = tiff.ifds[0];
    expect(tiff.bigTiff).toBe(bigTiff);
    expect(tiff.order.littleEndian).toBe(littleEndian);
    expect(await tiff.numbers(ifd, 40001)).toEqual([1, 2, 255]);
    expect(await tiff.string(ifd, 40002)).toBe('hello, tiff');
    expect(await tiff.numbers(ifd, 40003)).toEqual([1, 65535]);
    expect(await tiff.numbers(ifd, 40004)).toEqual([4294967295, 7, 8]);
    expect(await tiff.numbers(ifd, 40005)).toEqual([1 / 3, 2.5]);
    expect(await tiff.numbers(ifd, 40006)).toEqual([-128, 127]);
    expect(await tiff.bytes(ifd, 40007)).toEqual(new Uint8Array(40).fill(9));
    expect(await tiff.numbers(ifd, 40008)).toEqual([-32768, 5]);
    expect(await tiff.numbers(ifd, 40009)).toEqual([-2147483648]);
    expect(await tiff.numbers(ifd, 40010)).toEqual([-0.25]);
    expect(await tiff.numbers(ifd, 40011)).toEqual([1.5, -2.25]);
    expect(await tiff.numbers(ifd, 40012)).toEqual([Math.PI]);
    expect(await tiff.numbers(ifd, 40013)).toEqual([123]);
    expect(await tiff.numbers(ifd, 40016)).toEqual([2 ** 40 + 5, 1]);
    expect(await tiff.numbers(ifd, 40017)).toEqual([-(2 ** 40)]);
    expect(await tiff.numbers(ifd, 40018)).toEqual([2 ** 33]);
    expect(await tiff.number(ifd, 40004)).toBe(4294967295);
    expect(await tiff.number(ifd, 256)).toBe(10);
    expect(await tiff.number(ifd, 999)).toBeUndefined();
  });

  it('follows the IFD chain and reads SubIFDs', async () => {
    const writer = new TiffWriter({ bigTiff, littleEndian });
    const width = (w: number): TagSpec => ({ tag: 256, type: T.LONG, values: [w] });
    writer.ifd({ tags: [width(1000)], subIfds: [{ tags: [width(500)] }, { tags: [width(250)] }] });
    writer.ifd({ tags: [width(64)] });
    writer.ifd({ tags: [width(32)] });
    const tiff = await open(writer.toBytes());
    expect(await Promise.all(tiff.ifds.map((ifd) => tiff.number(ifd, 256)))).toEqual([1000, 64, 32]);
    const subs = await tiff.subIfds(tiff.ifds[0]);
    expect(await Promise.all(subs.map((ifd) => tiff.number(ifd, 256)))).toEqual([500, 250]);
    expect(subs[1].label).toBe('SubIFD 1 of IFD 0');
    expect(await tiff.subIfds(tiff.ifds[1])).toEqual([]);
  });

  it('reads one element of a large offset array without reading the array', async () => {
    const writer = new TiffWriter({ bigTiff, littleEndian });
    const values = Array.from({ length: 20_000 }, (_, i) => i * 3 + 1);
    writer.ifd({ tags: [{ tag: 324, type: bigTiff ? T.LONG8 : T.LONG, values }] });
    const source = new BytesSource(writer.toBytes());
    const tiff = (await TiffFile.open(source, { budget: 0 }))!;
    tiff.release();
    const array = tiff.array(tiff.ifds[0], 324, 'TileOffsets')!;
    source.reads.length = 0;
    expect(array.count).toBe(20_000);
    expect(await array.get(12_345)).toBe(12_345 * 3 + 1);
    expect(source.reads).toEqual([
      { offset: expect.any(Number), length: bigTiff ? 8 : 4, purpose: 'metadata' },
    ]);
  });
});

describe('TiffFile structure checks', () => {
  it('answers null for an object that is not a TIFF', async () => {
    for (const bytes of [
      new TextEncoder().encode('%PDF-1.7 hello'),
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10]),
      new Uint8Array(2),
    ]) {
      expect(await TiffFile.open(new BytesSource(bytes))).toBeNull();
    }
  });

  it.each([
    ['a truncated header', new Uint8Array([0x49, 0x49, 42, 0, 8])],
    [
      'a BigTIFF header with offset size 4',
      new Uint8Array([0x49, 0x49, 43, 0, 4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]),
    ],
    ['no directories', new Uint8Array([0x49, 0x49, 42, 0, 0, 0, 0, 0])],
    ['a first IFD past the end', new Uint8Array([0x49, 0x49, 42, 0, 0xff, 0xff, 0, 0])],
    ['a first IFD inside the header', new Uint8Array([0x49, 0x49, 42, 0, 2, 0, 0, 0, 0, 0])],
  ])('rejects %s with CorruptFile', async (_, bytes) => {
    await expect(TiffFile.open(new BytesSource(bytes))).rejects.toBeInstanceOf(CorruptFile);
  });

  function chainOf(count: number): TiffWriter {
    const writer = new TiffWriter();
    for (let i = 0; i < count; i++) writer.ifd({ tags: [{ tag: 256, type: T.SHORT, values: [i + 1] }] });
    return writer;
  }

  /** Classic little-endian file whose IFD `from` has its next pointer set to IFD `to`. */
  async function loopFile(count: number, from: number, to: number): Promise<Uint8Array> {
    const bytes = chainOf(count).toBytes();
    const tiff = await open(bytes);
    const target = tiff.ifds[from];
    const nextPos = target.offset + 2 + target.entries.size * 12;
    new DataView(bytes.buffer).setUint32(nextPos, tiff.ifds[to].offset, true);
    return bytes;
  }

  it('detects an IFD pointing to itself and one pointing back to an earlier IFD', async () => {
    await expect(TiffFile.open(new BytesSource(await loopFile(3, 0, 0)))).rejects.toThrow(/loop/);
    await expect(TiffFile.open(new BytesSource(await loopFile(3, 2, 0)))).rejects.toThrow(/loop/);
  });

  it('detects a SubIFD pointing back to its parent', async () => {
    const writer = new TiffWriter();
    writer.ifd({
      tags: [
        { tag: 256, type: T.SHORT, values: [1] },
        { tag: 330, type: T.IFD, values: [8] },
      ],
    });
    const bytes = writer.toBytes();
    const tiff = await open(bytes);
    // The writer put IFD 0 at 8 (right after the header): its SubIFD is itself.
    expect(tiff.ifds[0].offset).toBe(8);
    await expect(tiff.subIfds(tiff.ifds[0])).rejects.toThrow(/loop/);
  });

  it('caps the number of directories', async () => {
    await expect(open(chainOf(Limits.maxDirectories + 1).toBytes())).rejects.toThrow(
      /more than 4096 directories/,
    );
    expect((await open(chainOf(50).toBytes())).ifds).toHaveLength(50);
  });

  it('caps the entries of one directory and rejects an empty one', async () => {
    const bytes = chainOf(1).toBytes();
    const view = new DataView(bytes.buffer);
    view.setUint16(8, 60_000, true);
    await expect(open(bytes)).rejects.toBeInstanceOf(CorruptFile);
    view.setUint16(8, 0, true);
    await expect(open(bytes)).rejects.toThrow(/no entries/);
  });

  it('skips entries of unknown field types and rejects values outside the file on use', async () => {
    const writer = new TiffWriter();
    writer.ifd({
      tags: [
        { tag: 256, type: 99, values: new Uint8Array([1, 2]) },
        { tag: 270, type: T.ASCII, values: 'x'.repeat(100), count: 1_000_000 },
        { tag: 258, type: T.SHORT, values: [8, 8, 8], count: 70_000 },
      ],
    });
    const tiff = await open(writer.toBytes());
    expect(tiff.entry(tiff.ifds[0], 256)).toBeUndefined();
    await expect(tiff.string(tiff.ifds[0], 270)).rejects.toThrow(/outside the file/);
    await expect(tiff.numbers(tiff.ifds[0], 258)).rejects.toThrow(/70000 values/);
  });

  it('rejects offset arrays that lie outside the file before reading them', async () => {
    const writer = new TiffWriter();
    writer.ifd({ tags: [{ tag: 324, type: T.LONG, values: [1, 2, 3], count: 5_000_000 }] });
    const tiff = await open(writer.toBytes());
    expect(() => tiff.array(tiff.ifds[0], 324, 'TileOffsets')).toThrow(CorruptFile);
  });
});
