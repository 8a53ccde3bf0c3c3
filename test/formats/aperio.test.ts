import { describe, expect, it } from 'vitest';
import { parseAperioDescription, parseDecimal } from '../../src/formats/aperio.js';
import { openSlide } from '../../src/formats/detect.js';
import { BytesSource } from '../support/file-source.js';
import { T, TiffWriter, tiledImageTags, type TagSpec } from '../support/tiff-writer.js';

describe('parseAperioDescription', () => {
  it('reads key = value pairs after the header piece, trimming both', () => {
    const raw = parseAperioDescription(
      'Aperio Image Library v10\r\n100x100 (256x256) JPEG|AppMag = 20| MPP=0.25 |Date = 12/29/09',
    );
    expect(raw).toEqual({ 'aperio.AppMag': '20', 'aperio.MPP': '0.25', 'aperio.Date': '12/29/09' });
  });

  it('keeps empty values, skips pieces without "=", lets a later duplicate win', () => {
    expect(parseAperioDescription('Aperio|AppMag = |junk|A = 1|A = 2|Title = a=b')).toEqual({
      'aperio.AppMag': '',
      'aperio.A': '2',
      'aperio.Title': 'a=b',
    });
  });

  it('survives a truncated description', () => {
    expect(parseAperioDescription('Aperio Image Library|AppMag = 20|MP')).toEqual({ 'aperio.AppMag': '20' });
    expect(parseAperioDescription('Aperio')).toEqual({});
  });
});

describe('parseDecimal', () => {
  it.each([
    ['0.4990', 0.499],
    ['0,4990', 0.499],
    [' 20 ', 20],
    ['40', 40],
    ['2.5e-1', 0.25],
  ])('%j -> %d', (text, value) => expect(parseDecimal(text)).toBeCloseTo(value, 12));

  it.each(['', ' ', 'abc', '0', '-1', '1,2,3', '1.2.3', 'NaN', 'Infinity'])('%j -> undefined', (text) => {
    expect(parseDecimal(text)).toBeUndefined();
  });
});

/** A small Aperio-like SVS: one tiled level plus stripped associated images. */
function svs(
  description: string,
  associated: { description?: string; subfileType?: number; compression?: number }[],
): Uint8Array {
  const writer = new TiffWriter();
  const tile = writer.blob(new Uint8Array([0xff, 0xd8, 0xff, 0xd9]));
  writer.ifd({
    tags: [
      ...tiledImageTags({
        width: 1000,
        height: 600,
        tile: 256,
        tileOffset: tile,
        tileBytes: 4,
        bigTiff: false,
        photometric: 2,
      }),
      { tag: 270, type: T.ASCII, values: description },
    ],
  });
  for (const image of associated) {
    const tags: TagSpec[] = [
      { tag: 256, type: T.SHORT, values: [100] },
      { tag: 257, type: T.SHORT, values: [50] },
      { tag: 259, type: T.SHORT, values: [image.compression ?? 5] },
      { tag: 262, type: T.SHORT, values: [2] },
      { tag: 277, type: T.SHORT, values: [3] },
      { tag: 258, type: T.SHORT, values: [8, 8, 8] },
      { tag: 273, type: T.LONG, values: [tile] },
      { tag: 278, type: T.SHORT, values: [50] },
      { tag: 279, type: T.LONG, values: [4] },
    ];
    if (image.description !== undefined) tags.push({ tag: 270, type: T.ASCII, values: image.description });
    if (image.subfileType !== undefined) tags.push({ tag: 254, type: T.LONG, values: [image.subfileType] });
    writer.ifd({ tags });
  }
  return writer.toBytes();
}

describe('Aperio slides', () => {
  it('normalises a decimal-comma MPP and AppMag; names associated images by description or NewSubfileType', async () => {
    const bytes = svs('Aperio Image Library v12\r\n1000x600|AppMag = 40|MPP = 0,2527', [
      { description: 'Aperio Image Library v12\r\n1000x600 -> 100x50' },
      { description: 'Aperio Image Library v12\nlabel 100x50' },
      { subfileType: 9 },
    ]);
    const slide = await openSlide(new BytesSource(bytes, 'comma.svs'));
    expect(slide.format).toBe('aperio');
    expect(slide.properties.mpp_x).toBeCloseTo(0.2527, 12);
    expect(slide.properties.mpp_y).toBeCloseTo(0.2527, 12);
    expect(slide.properties.objective_power).toBe(40);
    expect(slide.properties.raw['aperio.MPP']).toBe('0,2527');
    expect([...slide.associated.keys()]).toEqual(['thumbnail', 'label', 'macro']);
    expect(slide.associated.get('label')?.layout).toBe('strips');
  });

  it('leaves MPP and objective power out when the description has them empty or truncated', async () => {
    const slide = await openSlide(new BytesSource(svs('Aperio Image Library|AppMag = |MP', []), 'empty.svs'));
    expect(slide.properties.mpp_x).toBeUndefined();
    expect(slide.properties.objective_power).toBeUndefined();
    expect(slide.properties.raw['aperio.AppMag']).toBe('');
  });

  it('leaves out an associated image it cannot serve, and still opens the slide', async () => {
    const bytes = svs('Aperio|AppMag = 20', [{}, { subfileType: 1, compression: 52479 }, { subfileType: 9 }]);
    const slide = await openSlide(new BytesSource(bytes, 'bad-label.svs'));
    expect([...slide.associated.keys()]).toEqual(['thumbnail', 'macro']);
  });

  it('is not claimed when IFD 0 is not tiled or the description is not Aperio’s', async () => {
    const slide = await openSlide(new BytesSource(svs('Something else|AppMag = 20', []), 'other.tif'));
    expect(slide.format).toBe('generic-tiff');
  });
});
