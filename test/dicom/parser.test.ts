// The DICOM Part 10 parser and frame tables: explicit and implicit VR, sequences of defined
// and undefined length, UN sequences, deferred long values, header windows that grow
// logarithmically, every way of locating frames, and broken input failing with typed errors.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readDeferred } from '../../src/dicom/dataset.js';
import { frameTable } from '../../src/dicom/frames.js';
import { isDicomPart10, parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { CorruptFile, UnsupportedFormat } from '../../src/errors.js';
import { writeDicom, wsiInstance } from '../support/dicom-writer.js';
import { BytesSource } from '../support/file-source.js';
import { fixture } from '../support/fixtures.js';

const frames = (n: number, size = 40) =>
  Array.from({ length: n }, (_, i) =>
    Uint8Array.from({ length: size + (i % 3) }, (_, j) => (i * 7 + j) & 0xff),
  );

describe('parseDicomHeader', () => {
  it('reads the fixtures up to the pixel data in one window', async () => {
    const bytes = new Uint8Array(await readFile(fixture('wsi/openslide/boxes_0.dcm')));
    const source = new BytesSource(bytes, 'boxes_0.dcm');
    expect(await isDicomPart10(source)).toBe(true);
    const header = await parseDicomHeader(source);
    expect(header.transferSyntax).toBe(TransferSyntax.JpegBaseline);
    expect(header.dataset.strings(Tag.ImageType)).toEqual(['DERIVED', 'PRIMARY', 'VOLUME', 'NONE']);
    expect(header.dataset.number(Tag.TotalPixelMatrixColumns)).toBe(16);
    expect(header.dataset.item(Tag.OpticalPathSequence)?.number(Tag.ObjectiveLensPower)).toBe(20);
    expect(header.pixelData).toMatchObject({ length: undefined, basicOffsetTableLength: 0 });
    expect(header.reads).toBe(1);
  });

  it.each([
    ['explicit VR, undefined-length sequences', TransferSyntax.ExplicitVrLittleEndian, true],
    ['explicit VR, defined-length sequences', TransferSyntax.ExplicitVrLittleEndian, false],
    ['implicit VR, undefined-length sequences', TransferSyntax.ImplicitVrLittleEndian, true],
    ['implicit VR, defined-length sequences', TransferSyntax.ImplicitVrLittleEndian, false],
  ])('%s', async (_name, ts, undefinedLength) => {
    const spec = wsiInstance({
      transferSyntax: ts,
      width: 20,
      height: 10,
      tileWidth: 10,
      tileHeight: 10,
      frames: [new Uint8Array(300), new Uint8Array(300)],
      positions: [
        [1, 1],
        [11, 1],
      ],
      undefinedLengthSequences: undefinedLength,
      pixelSpacing: [0.0005, 0.00025],
    });
    const header = await parseDicomHeader(new BytesSource(writeDicom(spec)));
    const ds = header.dataset;
    expect(header.explicitVr).toBe(ts === TransferSyntax.ExplicitVrLittleEndian);
    expect(ds.number(Tag.Rows)).toBe(10);
    expect(ds.number(Tag.TotalPixelMatrixColumns)).toBe(20);
    expect(
      ds.item(Tag.SharedFunctionalGroupsSequence)?.item(Tag.PixelMeasuresSequence)?.numbers(Tag.PixelSpacing),
    ).toEqual([0.0005, 0.00025]);
    const perFrame = ds.items(Tag.PerFrameFunctionalGroupsSequence);
    expect(perFrame).toHaveLength(2);
    expect(
      perFrame[1].item(Tag.PlanePositionSlideSequence)?.number(Tag.ColumnPositionInTotalImagePixelMatrix),
    ).toBe(11);
    expect(header.pixelData?.length).toBe(600);
  });

  it('parses an explicit-VR UN element of undefined length as an implicit-VR sequence', async () => {
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 4,
      height: 4,
      tileWidth: 4,
      tileHeight: 4,
      frames: [new Uint8Array(48)],
    });
    // Hand-encoded: (0009,1010) UN, undefined length, one item with (0028,0010) US in implicit VR.
    const item = Uint8Array.of(0x28, 0, 0x10, 0, 2, 0, 0, 0, 7, 0);
    const un = Uint8Array.of(
      ...[0x09, 0, 0x10, 0x10, 0x55, 0x4e, 0, 0, 0xff, 0xff, 0xff, 0xff],
      ...[0xfe, 0xff, 0, 0xe0, item.length, 0, 0, 0],
      ...item,
      ...[0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0],
    );
    // Spliced in by hand in front of the pixel data (the parser does not require sorted tags).
    const bytes = writeDicom(spec);
    const pixelAt = findPixelData(bytes);
    const spliced = new Uint8Array(bytes.length + un.length);
    spliced.set(bytes.subarray(0, pixelAt));
    spliced.set(un, pixelAt);
    spliced.set(bytes.subarray(pixelAt), pixelAt + un.length);
    const header = await parseDicomHeader(new BytesSource(spliced));
    const element = header.dataset.get(tag(0x0009, 0x1010));
    expect(element?.items?.[0].number(Tag.Rows)).toBe(7);
    expect(header.pixelData?.length).toBe(48);
  });

  it('defers long values and reads them on demand', async () => {
    const blob = Uint8Array.from({ length: 300_000 }, (_, i) => i & 0xff);
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 4,
      height: 4,
      tileWidth: 4,
      tileHeight: 4,
      frames: [new Uint8Array(48)],
      extra: [{ tag: tag(0x0029, 0x1010), vr: 'OB', value: blob }],
    });
    const source = new BytesSource(writeDicom(spec));
    const header = await parseDicomHeader(source);
    const element = header.dataset.get(tag(0x0029, 0x1010))!;
    expect(element.bytes).toBeUndefined();
    // Windows: 64 KiB, then one read past the skipped value.
    expect(header.bytesRead).toBeLessThan(200_000);
    expect(Buffer.from(await readDeferred(source, element)).equals(Buffer.from(blob))).toBe(true);
  });

  it('reads a 5 MB header in windows that double (a bounded, logarithmic number of reads)', async () => {
    const n = 30_000;
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 10 * n,
      height: 1,
      tileWidth: 10,
      tileHeight: 1,
      frames: [new Uint8Array(30 * n)],
      numberOfFrames: n,
      positions: Array.from({ length: n }, (_, i) => [i * 10 + 1, 1] as [number, number]),
    });
    const source = new BytesSource(writeDicom(spec));
    const header = await parseDicomHeader(source);
    expect(header.dataset.items(Tag.PerFrameFunctionalGroupsSequence)).toHaveLength(n);
    expect(header.reads).toBeLessThanOrEqual(10);
  });

  it.each([
    ['no DICM prefix', (b: Uint8Array) => b.fill(0, 128, 132), UnsupportedFormat],
    [
      'a little-endian data set labelled big endian (its lengths lie)',
      (b: Uint8Array) => replaceAscii(b, TransferSyntax.ExplicitVrLittleEndian, '1.2.840.10008.1.2.2'),
      CorruptFile,
    ],
    ['a bad VR', (b: Uint8Array) => replaceAscii(b, 'CS', 'c!'), CorruptFile],
  ])('%s → typed error', async (_name, mutate, type) => {
    const bytes = writeDicom(
      wsiInstance({
        transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
        width: 4,
        height: 4,
        tileWidth: 4,
        tileHeight: 4,
        frames: [new Uint8Array(48)],
      }),
    );
    mutate(bytes);
    await expect(parseDicomHeader(new BytesSource(bytes))).rejects.toBeInstanceOf(type);
  });

  it('a header truncated anywhere fails with a typed error or has no pixel data, never anything else', async () => {
    const bytes = new Uint8Array(await readFile(fixture('wsi/openslide/boxes_0.dcm')));
    const pixelAt = findPixelData(bytes);
    for (let cut = 0; cut < pixelAt; cut += 7) {
      const started = Date.now();
      // A cut at an element boundary is a well-formed header without pixel data (which the
      // formats then refuse); any other cut must be a typed error.
      const error = await parseDicomHeader(new BytesSource(bytes.slice(0, cut))).then(
        (header) => (header.pixelData ? new Error('pixel data found in a truncated header') : undefined),
        (e: unknown) => e,
      );
      if (error === undefined) continue;
      expect(
        error instanceof CorruptFile || error instanceof UnsupportedFormat,
        `cut at ${cut}: ${String(error)}`,
      ).toBe(true);
      expect(Date.now() - started).toBeLessThan(1000);
    }
  });
});

describe('frameTable', () => {
  const open = async (spec: ReturnType<typeof wsiInstance>, count: number, frameBytes = 0) => {
    const source = new BytesSource(writeDicom(spec));
    const header = await parseDicomHeader(source);
    return { table: frameTable(source, header, count, frameBytes), source };
  };
  const jpegish = (offsets: 'bot' | 'eot' | 'none', data: Uint8Array[], fragmentsPerFrame?: number) =>
    wsiInstance({
      transferSyntax: TransferSyntax.JpegBaseline,
      width: 10 * data.length,
      height: 10,
      tileWidth: 10,
      tileHeight: 10,
      frames: data,
      offsets,
      fragmentsPerFrame,
    });
  const even = (f: Uint8Array) => (f.length % 2 ? Uint8Array.from([...f, 0]) : f);

  it.each([
    ['extended-offset-table', 'eot', 1],
    ['basic-offset-table', 'bot', 1],
    ['basic-offset-table', 'bot', 3],
    ['fragment-walk', 'none', 1],
  ] as const)('%s (%s, %i fragments per frame)', async (method, offsets, perFrame) => {
    const data = frames(5);
    const { table } = await open(jpegish(offsets, data, perFrame), 5);
    expect(table.method).toBe(method);
    // Out of order, and concurrently, to exercise the lazy walk.
    const read = await Promise.all([4, 0, 2, 1, 3].map((i) => table.read(i)));
    [4, 0, 2, 1, 3].forEach((frame, k) => {
      const expected = offsets === 'eot' ? data[frame] : even(data[frame]);
      expect(Buffer.from(read[k]).equals(Buffer.from(expected))).toBe(true);
    });
    await expect(table.read(5)).rejects.toBeInstanceOf(CorruptFile);
  });

  it('native frames at fixed strides', async () => {
    const data = frames(3, 300).map((f) => f.subarray(0, 300));
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 30,
      height: 10,
      tileWidth: 10,
      tileHeight: 10,
      frames: data,
    });
    const { table } = await open(spec, 3, 300);
    expect(table.method).toBe('native');
    expect(Buffer.from(await table.read(2)).equals(Buffer.from(data[2]))).toBe(true);
    await expect(open(spec, 4, 300)).rejects.toBeInstanceOf(CorruptFile);
  });

  it('offset tables with the wrong number of entries are corrupt_file', async () => {
    await expect(open(jpegish('bot', frames(4)), 5)).rejects.toBeInstanceOf(CorruptFile);
    await expect(open(jpegish('eot', frames(4)), 3)).rejects.toBeInstanceOf(CorruptFile);
    // Without a table the mismatch shows when the missing frame is asked for.
    const { table } = await open(jpegish('none', frames(4)), 6);
    await expect(table.read(5)).rejects.toThrow(/only 4 fragments/);
  });

  it('fragments past the end of the object are corrupt_file', async () => {
    for (const offsets of ['bot', 'eot', 'none'] as const) {
      const bytes = writeDicom(jpegish(offsets, frames(3, 1000)));
      const source = new BytesSource(bytes.slice(0, bytes.length - 1500));
      const header = await parseDicomHeader(source);
      const table = frameTable(source, header, 3, 0);
      await expect(table.read(2), offsets).rejects.toBeInstanceOf(CorruptFile);
    }
  });
});

function findPixelData(bytes: Uint8Array): number {
  for (let i = bytes.length - 12; i >= 132; i--) {
    if (bytes[i] === 0xe0 && bytes[i + 1] === 0x7f && bytes[i + 2] === 0x10 && bytes[i + 3] === 0x00)
      return i;
  }
  throw new Error('no pixel data');
}

function replaceAscii(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  const at = text.indexOf(from, 132);
  if (at < 0) throw new Error(`${from} not found`);
  const padded = to.padEnd(from.length, '\0');
  for (let i = 0; i < padded.length; i++) bytes[at + i] = padded.charCodeAt(i);
  return bytes;
}
