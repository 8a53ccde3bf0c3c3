// DICOM WSI instances without ImageType (as files from the field come): copies of the real
// fixtures with the ImageType element cut out, served as series and as single instances, and
// generated series whose levels, label and overview are told apart by geometry, Frame Type or
// their descriptions alone.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecs } from '../../src/codecs/index.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { CorruptFile } from '../../src/errors.js';
import { open as openInstance, openSeries } from '../../src/formats/dicom-wsi.js';
import { SlideProbe } from '../../src/formats/format.js';
import { readRegion } from '../../src/tiles/region.js';
import { writeDicom, wsiInstance, type WsiInstanceOptions } from '../support/dicom-writer.js';
import { BytesSource } from '../support/file-source.js';
import { fixture } from '../support/fixtures.js';
import { withoutImageType } from './dicom-strip.js';
import { patternTile } from '../support/frame-encoders.js';
import { compareRgb } from '../support/image-compare.js';

const codecs = createCodecs({ workers: 1 });
afterAll(() => codecs.close());

async function strippedSources(dir: string, only?: (name: string) => boolean): Promise<BytesSource[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.dcm') && (only?.(n) ?? true)).sort();
  return Promise.all(
    names.map(async (n) => {
      const stripped = await withoutImageType(new Uint8Array(await readFile(path.join(dir, n))), n);
      return new BytesSource(stripped, n);
    }),
  );
}

const CMU_DIR = fixture('wsi/dicom-wsi/cmu-1-small-region');

describe('the CMU-1-Small-Region series with ImageType removed from every instance', async () => {
  const original = await openSeries(
    await Promise.all(
      (await readdir(CMU_DIR))
        .sort()
        .map(async (n) => new BytesSource(await readFile(path.join(CMU_DIR, n)), n)),
    ),
  );
  const stripped = await strippedSources(CMU_DIR);

  it('the copies really have no ImageType', async () => {
    const header = await parseDicomHeader(stripped[0]);
    expect(header.dataset.has(Tag.ImageType)).toBe(false);
  });

  it('opens as the same 12-level pyramid with the same pixels', async () => {
    const slide = await openSeries(stripped);
    expect(slide.levels.map((l) => [l.width, l.height])).toEqual(
      original.levels.map((l) => [l.width, l.height]),
    );
    expect(slide.associated.size).toBe(0);
    const a = await readRegion(slide, codecs, 0, 900, 1200, 300, 200);
    const b = await readRegion(original, codecs, 0, 900, 1200, 300, 200);
    expect(compareRgb(a, b).max).toBe(0);
  });

  it('a single stripped instance opens alone (a single-instance series)', async () => {
    const level0 = stripped.find((s) => s.key.startsWith('level-0-'))!;
    const slide = await openInstance(new SlideProbe(level0));
    expect([slide.width, slide.height]).toEqual([2220, 2967]);
    expect(slide.levels[0].grid).not.toBeNull();
    const pixels = await readRegion(slide, codecs, 0, 500, 500, 64, 64);
    const reference = await readRegion(original, codecs, 0, 500, 500, 64, 64);
    expect(compareRgb(pixels, reference).max).toBe(0);
  });

  it('an instance opened with stripped siblings finds the whole pyramid', async () => {
    const level3 = stripped.find((s) => s.key.startsWith('level-3-'))!;
    const slide = await openInstance(new SlideProbe(level3), { siblings: async () => stripped });
    expect(slide.levels).toHaveLength(12);
    expect(slide.width).toBe(2220);
  });
});

describe('boxes_0.dcm + boxes_1.dcm with ImageType removed (a level and a same-sized thumbnail)', async () => {
  const stripped = await strippedSources(fixture('wsi/openslide'), (n) => n.startsWith('boxes_'));

  it('the tiled-frame instance is the level, the other same-sized one the thumbnail', async () => {
    const slide = await openSeries(stripped);
    expect(slide.levels[0]).toMatchObject({ width: 16, height: 16, tileWidth: 64 });
    expect([...slide.associated.keys()]).toEqual(['thumbnail']);
  });

  it('boxes_0 alone (a single-instance series) serves its one level', async () => {
    const slide = await openInstance(new SlideProbe(stripped.find((s) => s.key === 'boxes_0.dcm')!));
    expect([slide.width, slide.height]).toEqual([16, 16]);
    const pixels = await readRegion(slide, codecs, 0, 0, 0, 16, 16);
    expect(pixels.data.length).toBe(16 * 16 * 3);
  });
});

describe('generated series without ImageType', () => {
  const common = { transferSyntax: TransferSyntax.ExplicitVrLittleEndian, tileWidth: 24, tileHeight: 16 };
  /** An instance without ImageType; `frames` pattern tiles of the common tile size. */
  const undeclared = (o: Partial<WsiInstanceOptions> & { width: number; height: number }, frames = 1) => {
    const spec = wsiInstance({
      ...common,
      frames: Array.from({ length: frames }, (_, i) => patternTile(i % 2, i >> 1, 24, 16)),
      ...o,
    });
    return { ...spec, elements: spec.elements.filter((e) => e.tag !== Tag.ImageType) };
  };
  const open = (specs: ReturnType<typeof undeclared>[]) =>
    openSeries(specs.map((s, i) => new BytesSource(writeDicom(s), `i${i}.dcm`)));

  it('geometry: largest tiled image is level 0, same aspect is a level, 3:1 the macro, squarish the label', async () => {
    const slide = await open([
      undeclared(
        { width: 20, height: 24, tileWidth: 24, tileHeight: 24, frames: [new Uint8Array(24 * 24 * 3)] },
        0,
      ),
      undeclared({ width: 40, height: 30 }, 4),
      undeclared({ width: 20, height: 15 }),
      undeclared(
        { width: 24, height: 8, tileWidth: 24, tileHeight: 8, frames: [new Uint8Array(24 * 8 * 3)] },
        0,
      ),
    ]);
    expect(slide.levels.filter((l) => l.grid).map((l) => [l.width, l.height])).toEqual([
      [40, 30],
      [20, 15],
    ]);
    expect([...slide.associated.keys()].sort()).toEqual(['label', 'macro']);
    expect(slide.associated.get('macro')!.width).toBe(24);
    expect(slide.associated.get('label')!.height).toBe(24);
  });

  it('descriptions and the shared Frame Type win over geometry', async () => {
    const described = undeclared({
      width: 20,
      height: 15,
      extra: [{ tag: tag(0x0020, 0x4000), vr: 'LT', value: 'Macro image of the whole slide' }],
    });
    const frameTyped = undeclared({ width: 10, height: 8 });
    const shared = frameTyped.elements.find((e) => e.tag === Tag.SharedFunctionalGroupsSequence)!;
    shared.items![0].push({
      tag: tag(0x0040, 0x0710),
      vr: 'SQ',
      items: [[{ tag: tag(0x0008, 0x9007), vr: 'CS', value: 'DERIVED\\PRIMARY\\LABEL\\NONE' }]],
    });
    const slide = await open([undeclared({ width: 40, height: 30 }, 4), described, frameTyped]);
    expect(slide.levels.filter((l) => l.grid).map((l) => l.width)).toEqual([40]);
    expect(slide.associated.get('macro')!.width).toBe(20);
    expect(slide.associated.get('label')!.width).toBe(10);
  });

  it('a concatenation without ImageType is joined into one level', async () => {
    const tiles = [0, 1, 2, 3].map((i) => patternTile(i % 2, i >> 1, 24, 16));
    const slide = await open([
      undeclared({ width: 40, height: 30, frames: tiles.slice(0, 3), frameOffset: 0 }),
      undeclared({ width: 40, height: 30, frames: tiles.slice(3), frameOffset: 3 }),
    ]);
    expect(slide.levels.filter((l) => l.grid)).toHaveLength(1);
    expect(await slide.levels[0].grid!.readTile(1, 1)).not.toBeNull();
  });

  it('a series of only declared labels still fails with a typed error', async () => {
    const label = wsiInstance({
      ...common,
      width: 24,
      height: 16,
      frames: [patternTile(0, 0, 24, 16)],
      imageType: 'LABEL',
    });
    await expect(openSeries([new BytesSource(writeDicom(label), 'l.dcm')])).rejects.toBeInstanceOf(
      CorruptFile,
    );
  });
});
