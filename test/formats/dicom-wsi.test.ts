// DICOM WSI: the two real fixtures (a 12-level JPEG pyramid made from CMU-1-Small-Region, which
// must match OpenSlide's reference of the SVS, and the 2-instance `boxes` pair), and generated
// instances in every supported transfer syntax, TILED_SPARSE with missing tiles, concatenations,
// PHI filtering, and broken instances failing with typed errors.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs } from '../../src/codecs/index.js';
import { TransferSyntax } from '../../src/dicom/tags.js';
import { CorruptFile, DecodeError, UnsupportedFormat } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import { open as openInstance, openSeries } from '../../src/formats/dicom-wsi.js';
import { SlideProbe } from '../../src/formats/format.js';
import type { Slide } from '../../src/formats/slide.js';
import { readGrid, readRegion } from '../../src/tiles/region.js';
import { synthJpeg } from '../codecs/jpeg-synth.js';
import { writeDicom, wsiInstance, type WsiInstanceOptions } from '../support/dicom-writer.js';
import { BytesSource } from '../support/file-source.js';
import { FIXTURES, fixture } from '../support/fixtures.js';
import { encodeHtj2k, encodeJp2k, encodeJpeg, encodeJpegLs, patternTile } from '../support/frame-encoders.js';
import { compareRgb, loadRgb } from '../support/image-compare.js';

const codecs = createCodecs({ workers: 2 });
afterAll(() => codecs.close());

const CMU_DIR = fixture('wsi/dicom-wsi/cmu-1-small-region');

async function sourcesOf(dir: string): Promise<BytesSource[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(
    names.map(async (n) => new BytesSource(new Uint8Array(await readFile(path.join(dir, n))), n)),
  );
}

interface ManifestCase {
  slide: string;
  level?: number;
  level_x: number;
  level_y: number;
  w: number;
  h: number;
  png?: string;
}

describe('CMU-1-Small-Region as DICOM WSI (12 levels, JPEG frames)', async () => {
  const slide = await openSeries(await sourcesOf(CMU_DIR));

  it('has the pyramid, MPP and properties', () => {
    expect(slide.format).toBe('dicom-wsi');
    expect([slide.width, slide.height]).toEqual([2220, 2967]);
    expect(slide.levels).toHaveLength(12);
    expect(slide.levels[1]).toMatchObject({
      width: 1110,
      height: 1483,
      tileWidth: 500,
      tilesX: 3,
      tilesY: 3,
    });
    expect(slide.levels.every((l) => l.grid !== null)).toBe(true);
    expect(slide.properties.mpp_x).toBeCloseTo(0.499, 6);
    expect(slide.properties.mpp_y).toBeCloseTo(0.499, 6);
    expect(slide.properties.raw['dicom.DimensionOrganizationType']).toBe('TILED_FULL');
    expect(slide.sources).toHaveLength(12);
  });

  // The DICOM frames are 4:2:0 JPEG (quality ~80) re-encoded from the SVS: one extra encode.
  // Where the slide is tissue, that encode alone costs more than 4 (the reference PNG encoded
  // once the same way differs from itself by ~8.7 mean); the bound there is that self-difference.
  it.each(
    (
      JSON.parse(await readFile(path.join(FIXTURES, 'reference/manifest.json'), 'utf8')) as ManifestCase[]
    ).filter((c) => c.slide === 'CMU-1-Small-Region.svs' && c.png && c.level === 0),
  )('level 0 matches OpenSlide’s reference of the SVS: $png', async (c) => {
    const ref = await loadRgb(path.join(FIXTURES, 'reference', c.png!));
    const pixels = await readRegion(slide, codecs, 0, c.level_x, c.level_y, c.w, c.h);
    const diff = compareRgb(pixels, ref);
    const encoded = await sharp(Buffer.from(ref.data), {
      raw: { width: ref.width, height: ref.height, channels: 3 },
    })
      .jpeg({ quality: 80, chromaSubsampling: '4:2:0' })
      .toBuffer();
    const once = await sharp(encoded).raw().toBuffer();
    const selfDiff = compareRgb({ data: once, width: ref.width, height: ref.height }, ref);
    for (let ch = 0; ch < 3; ch++) expect(diff.mad[ch]).toBeLessThanOrEqual(Math.max(4, selfDiff.mad[ch]));
    console.log(
      `${c.png}: mean abs ${diff.mad.map((v) => v.toFixed(2)).join('/')} (one q80 4:2:0 encode of the reference: ${selfDiff.mad.map((v) => v.toFixed(2)).join('/')})`,
    );
  });

  it('opening one instance with its siblings gives the same slide', async () => {
    const sources = await sourcesOf(CMU_DIR);
    const level3 = sources.find((s) => s.key.startsWith('level-3'))!;
    const one = await openInstance(new SlideProbe(level3), { siblings: async () => sources });
    expect(one.levels.map((l) => l.width)).toEqual(slide.levels.map((l) => l.width));
    const alone = await openInstance(new SlideProbe(level3));
    expect(alone.levels[0].width).toBe(277);
  });
});

describe('boxes_0.dcm + boxes_1.dcm (VOLUME + THUMBNAIL)', async () => {
  const sources = await sourcesOf(fixture('wsi/openslide'));
  const slide = await openSeries(sources.filter((s) => s.key.endsWith('.dcm')));

  it('has one level, a thumbnail, objective power, MPP and an ICC profile', () => {
    expect(slide.levels[0]).toMatchObject({ width: 16, height: 16, tileWidth: 64 });
    expect([...slide.associated.keys()]).toEqual(['thumbnail']);
    expect(slide.properties.objective_power).toBe(20);
    expect(slide.properties.mpp_x).toBeCloseTo(0.499);
    expect(slide.properties.icc_profile?.length).toBe(456);
  });

  it('the RGB JPEG level decodes to the uncompressed thumbnail’s pixels (APP14 handling)', async () => {
    const level = await readRegion(slide, codecs, 0, 0, 0, 16, 16);
    const thumbnail = slide.associated.get('thumbnail')!;
    const thumb = await readGrid(thumbnail, codecs, 0, 0, 16, 16);
    // The frame carries its own Adobe APP14 (transform 0); decoded as YCbCr it would be ~47 off.
    const diff = compareRgb(level, thumb);
    expect(Math.max(...diff.mad)).toBeLessThan(12);
  });

  it('detect.ts opens a DICOM instance by content', async () => {
    const s = await openSlide(sources.find((x) => x.key === 'boxes_0.dcm')!);
    expect(s.format).toBe('dicom-wsi');
  });
});

/** A 2x2-tile generated instance (40x30 image, 24x16 tiles: edge tiles are padded). */
async function generated(
  transferSyntax: string,
  encode: (samples: Uint8Array, w: number, h: number) => Promise<Uint8Array>,
  options: Partial<WsiInstanceOptions> = {},
): Promise<{ slide: Slide; tiles: Uint8Array[] }> {
  const tw = 24;
  const th = 16;
  const tiles = [
    patternTile(0, 0, tw, th),
    patternTile(1, 0, tw, th),
    patternTile(0, 1, tw, th),
    patternTile(1, 1, tw, th),
  ];
  const frames = await Promise.all(tiles.map((t) => encode(t, tw, th)));
  const spec = wsiInstance({
    transferSyntax,
    width: 40,
    height: 30,
    tileWidth: tw,
    tileHeight: th,
    frames,
    ...options,
  });
  const slide = await openSeries([new BytesSource(writeDicom(spec), 'gen.dcm')]);
  return { slide, tiles };
}

/** The expected 40x30 image from the four pattern tiles. */
function expectedImage(tiles: Uint8Array[]): { data: Uint8Array; width: number; height: number } {
  const out = new Uint8Array(40 * 30 * 3);
  for (let y = 0; y < 30; y++) {
    for (let x = 0; x < 40; x++) {
      const t = tiles[(y >= 16 ? 2 : 0) + (x >= 24 ? 1 : 0)];
      const i = ((y % 16) * 24 + (x % 24)) * 3;
      out.set(t.subarray(i, i + 3), (y * 40 + x) * 3);
    }
  }
  return { data: out, width: 40, height: 30 };
}

describe('generated instances in every transfer syntax', () => {
  const raw = async (s: Uint8Array) => s;
  it.each([
    ['explicit VR little endian', TransferSyntax.ExplicitVrLittleEndian, raw, 0],
    ['implicit VR little endian', TransferSyntax.ImplicitVrLittleEndian, raw, 0],
    [
      'JPEG 2000 lossless',
      TransferSyntax.Jpeg2000Lossless,
      (s: Uint8Array, w: number, h: number) => encodeJp2k(s, w, h, 3),
      0,
    ],
    [
      'JPEG 2000',
      TransferSyntax.Jpeg2000,
      (s: Uint8Array, w: number, h: number) => encodeJp2k(s, w, h, 3),
      0,
    ],
    [
      'JPEG-LS lossless',
      TransferSyntax.JpegLsLossless,
      (s: Uint8Array, w: number, h: number) => encodeJpegLs(s, w, h, 3),
      0,
    ],
    [
      'JPEG-LS near-lossless',
      TransferSyntax.JpegLsNearLossless,
      (s: Uint8Array, w: number, h: number) => encodeJpegLs(s, w, h, 3),
      0,
    ],
    [
      'HTJ2K lossless',
      TransferSyntax.Htj2kLossless,
      (s: Uint8Array, w: number, h: number) => encodeHtj2k(s, w, h, 3),
      0,
    ],
    [
      'HTJ2K RPCL',
      TransferSyntax.Htj2kLosslessRpcl,
      (s: Uint8Array, w: number, h: number) => encodeHtj2k(s, w, h, 3),
      0,
    ],
    ['HTJ2K', TransferSyntax.Htj2k, (s: Uint8Array, w: number, h: number) => encodeHtj2k(s, w, h, 3), 0],
    [
      'JPEG baseline (YBR_FULL_422)',
      TransferSyntax.JpegBaseline,
      (s: Uint8Array, w: number, h: number) => encodeJpeg(s, w, h),
      3,
    ],
  ] as const)('%s', async (_name, ts, encode, tolerance) => {
    const photometric =
      ts === TransferSyntax.JpegBaseline
        ? 'YBR_FULL_422'
        : ts.includes('.4.9') || ts.includes('.4.20')
          ? 'YBR_RCT'
          : 'RGB';
    const { slide, tiles } = await generated(ts, encode, { photometric });
    const pixels = await readRegion(slide, codecs, 0, 0, 0, 40, 30);
    const diff = compareRgb(pixels, expectedImage(tiles));
    expect(Math.max(...diff.mad)).toBeLessThanOrEqual(tolerance);
  });

  it('JPEG baseline with RGB samples (no colour transform) decodes exactly, and passes through with APP14', async () => {
    const colour = [200, 60, 30] as const;
    const frame = synthJpeg({ width: 16, height: 16, colour }).standalone;
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.JpegBaseline,
      width: 16,
      height: 16,
      tileWidth: 16,
      tileHeight: 16,
      frames: [frame],
      photometric: 'RGB',
    });
    const slide = await openSeries([new BytesSource(writeDicom(spec))]);
    const pixels = await readRegion(slide, codecs, 0, 0, 0, 16, 16);
    expect([...pixels.data.subarray(0, 3)]).toEqual([...colour]);
    const stored = (await slide.levels[0].grid!.readTile(0, 0))!;
    expect(Buffer.from(stored).includes(Buffer.from('Adobe'))).toBe(true);
  });

  it('TILED_SPARSE places frames by Plane Position; tiles without a frame are background', async () => {
    const tiles = [patternTile(0, 0, 24, 16), patternTile(1, 1, 24, 16)];
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 40,
      height: 30,
      tileWidth: 24,
      tileHeight: 16,
      frames: tiles,
      positions: [
        [25, 17], // tile (1, 1) first
        [1, 1],
      ],
    });
    const slide = await openSeries([new BytesSource(writeDicom(spec))]);
    const grid = slide.levels[0].grid!;
    expect(await grid.readTile(1, 0)).toBeNull();
    const pixels = await readRegion(slide, codecs, 0, 0, 0, 40, 30);
    const at = (x: number, y: number) => [...pixels.data.subarray((y * 40 + x) * 3, (y * 40 + x) * 3 + 3)];
    expect(at(30, 5)).toEqual([255, 255, 255]);
    expect(at(0, 0)).toEqual([...tiles[1].subarray(0, 3)]);
    expect(at(24, 16)).toEqual([...tiles[0].subarray(0, 3)]);
  });

  it('joins a concatenation (one level in two instances) and keeps the levels of a series apart', async () => {
    const tiles = [0, 1, 2, 3].map((i) => patternTile(i % 2, i >> 1, 24, 16));
    const common = {
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 40,
      height: 30,
      tileWidth: 24,
      tileHeight: 16,
    };
    const a = wsiInstance({ ...common, frames: tiles.slice(0, 3), frameOffset: 0 });
    const b = wsiInstance({ ...common, frames: tiles.slice(3), frameOffset: 3 });
    const low = wsiInstance({ ...common, width: 20, height: 15, frames: [patternTile(0, 0, 24, 16)] });
    const label = wsiInstance({ ...common, width: 24, height: 16, frames: [tiles[0]], imageType: 'LABEL' });
    const other = wsiInstance({
      ...common,
      width: 400,
      height: 300,
      frames: [tiles[0]],
      imageType: 'LABEL',
      seriesUid: '9.9',
    });
    const slide = await openSeries(
      [a, b, low, label, other].map((spec, i) => new BytesSource(writeDicom(spec), `i${i}.dcm`)),
    );
    expect(slide.levels.map((l) => l.width)).toEqual([40, 20]);
    expect([...slide.associated.keys()]).toEqual(['label']);
    const pixels = await readRegion(slide, codecs, 0, 0, 0, 40, 30);
    expect(compareRgb(pixels, expectedImage(tiles)).max).toBe(0);
  });

  it('keeps patient and study identifiers out of the properties unless exposePhi', async () => {
    const spec = wsiInstance({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      width: 4,
      height: 4,
      tileWidth: 4,
      tileHeight: 4,
      frames: [new Uint8Array(48)],
      patientName: 'Doe^John',
      patientId: 'MRN-123',
    });
    const bytes = writeDicom(spec);
    const hidden = await openSeries([new BytesSource(bytes)]);
    expect(JSON.stringify(hidden.properties.raw)).not.toMatch(/Doe|MRN-123|1\.2\.826\.0\.1\.7/);
    expect(hidden.properties.raw['dicom.Manufacturer']).toBe('MedStream tests');
    const shown = await openSeries([new BytesSource(bytes)], { exposePhi: true });
    expect(shown.properties.raw['dicom.PatientName']).toBe('Doe^John');
    expect(shown.properties.raw['dicom.PatientID']).toBe('MRN-123');
  });
});

describe('broken DICOM WSI instances fail with typed errors', () => {
  const base = (o: Partial<WsiInstanceOptions> = {}) =>
    wsiInstance({
      transferSyntax: TransferSyntax.JpegBaseline,
      width: 48,
      height: 16,
      tileWidth: 24,
      tileHeight: 16,
      frames: [new Uint8Array(600).fill(1), new Uint8Array(600).fill(2)],
      ...o,
    });
  const openBytes = (bytes: Uint8Array) => openSeries([new BytesSource(bytes, 'bad.dcm')]);

  it.each([
    ['an unsupported transfer syntax', base({ transferSyntax: '1.2.840.10008.1.2.4.57' }), UnsupportedFormat],
    [
      'deflated transfer syntax',
      base({ transferSyntax: TransferSyntax.DeflatedExplicitVrLittleEndian }),
      UnsupportedFormat,
    ],
    ['a Basic Offset Table for fewer frames', base({ numberOfFrames: 3 }), CorruptFile],
    ['an Extended Offset Table for fewer frames', base({ numberOfFrames: 3, offsets: 'eot' }), CorruptFile],
    [
      'native pixel data too short for its frames',
      base({ transferSyntax: TransferSyntax.ExplicitVrLittleEndian, frames: [new Uint8Array(100)] }),
      CorruptFile,
    ],
    [
      'TILED_SPARSE with fewer positions than frames',
      base({
        positions: [[1, 1]],
      }),
      CorruptFile,
    ],
    ['a zero tile size', base({ tileWidth: 0 }), CorruptFile],
    ['16 bits in JPEG', base({ bitsAllocated: 16 }), UnsupportedFormat],
  ])('%s', async (_name, spec, type) => {
    await expect(openBytes(writeDicom(spec))).rejects.toBeInstanceOf(type);
  });

  it('a header truncated at any of 200 offsets fails with a typed error after a bounded number of reads', async () => {
    const bytes = writeDicom(base());
    const pixelAt = bytes.length - 1300;
    for (let i = 0; i < 200; i++) {
      const cut = Math.floor((pixelAt * i) / 200);
      const source = new BytesSource(bytes.slice(0, cut), 'bad.dcm');
      const error = await openSeries([source]).then(
        () => new Error('opened'),
        (e: unknown) => e,
      );
      expect(
        error instanceof CorruptFile || error instanceof UnsupportedFormat,
        `cut ${cut}: ${String(error)}`,
      ).toBe(true);
      // Bounded work instead of a wall-clock limit (a loaded machine breaks those): a parser that
      // loops keeps reading. Today every cut takes at most 2 reads and 4 bytes more than the cut.
      expect(source.reads.length, `cut ${cut}: reads`).toBeLessThanOrEqual(8);
      const bytesRead = source.reads.reduce((n, r) => n + r.length, 0);
      expect(bytesRead, `cut ${cut}: bytes read`).toBeLessThanOrEqual(2 * cut + 1024);
    }
  });

  it('fragments past the end of the object: the slide opens, the tile is corrupt_file', async () => {
    for (const offsets of ['bot', 'eot', 'none'] as const) {
      const bytes = writeDicom(base({ offsets }));
      const slide = await openBytes(bytes.slice(0, bytes.length - 400));
      await expect(slide.levels[0].grid!.readTile(1, 0), offsets).rejects.toBeInstanceOf(CorruptFile);
    }
  });

  it('a broken fragment after the frame asked for fails only its own frame (no offset table)', async () => {
    for (const read of [
      [0, 1],
      [1, 0],
    ]) {
      const frame = (fill: number) =>
        Uint8Array.from({ length: 600 }, (_, i) => (i < 2 ? [0xff, 0xd8][i] : fill));
      const bytes = writeDicom(base({ offsets: 'none', frames: [frame(1), frame(2)] }));
      // The walk's span from the first fragment holds the second one's item header: make it a
      // fragment running past the end, then an item header of another tag.
      for (const bad of ['past the end', 'wrong tag'] as const) {
        const copy = bytes.slice(0, bytes.length - 400);
        const second = copy.length - 8 - 600 + 400 - 8; // the item header of frame 2 (600 bytes)
        if (bad === 'wrong tag') copy[second] = 0x11;
        const grid = (await openBytes(copy)).levels[0].grid!;
        for (const x of read) {
          if (x === 0) {
            // The frame's bytes after its SOI (an APP14 marker is inserted for RGB samples).
            const tile = (await grid.readTile(0, 0))!;
            expect(tile.subarray(tile.length - 598), `${bad}, order ${read}`).toEqual(frame(1).subarray(2));
          } else
            await expect(grid.readTile(1, 0), `${bad}, order ${read}`).rejects.toBeInstanceOf(CorruptFile);
        }
      }
    }
  });

  it('garbage frame data is decode_error for every codec', async () => {
    const garbage = new Uint8Array(200).fill(0x5a);
    for (const ts of [
      TransferSyntax.JpegBaseline,
      TransferSyntax.Jpeg2000,
      TransferSyntax.JpegLsLossless,
      TransferSyntax.Htj2k,
    ]) {
      const slide = await openBytes(writeDicom(base({ transferSyntax: ts, frames: [garbage, garbage] })));
      const error = await readRegion(slide, codecs, 0, 0, 0, 24, 16).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(
        error instanceof DecodeError || error instanceof UnsupportedFormat,
        `${ts}: ${String(error)}`,
      ).toBe(true);
    }
  });
});
