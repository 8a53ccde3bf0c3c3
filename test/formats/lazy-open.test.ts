// Lazy slide opening (formats/detect.ts `openSlideLazily`): a TIFF whose later directories lie
// outside the windows read for its first one answers level 0 after the header and IFD 0 — two
// reads, at most 512 KiB — and reads the rest once `complete()` is called; the whole slide it
// then gives equals the one `openSlide` gives. Files whose directories all arrive with the first
// windows (IFD 0's SubIFDs included: OME-TIFF pyramids) are opened whole.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptFile } from '../../src/errors.js';
import { isLazySlide, openSlide, openSlideLazily } from '../../src/formats/detect.js';
import type { LazySlide, Slide } from '../../src/formats/slide.js';
import { mapTiff } from '../support/corrupt.js';
import { openCounted, type CountedFile } from '../support/file-source.js';
import { fixture } from '../support/fixtures.js';

let dir: string;
const files: CountedFile[] = [];
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-lazy-'));
});
afterAll(async () => {
  await Promise.all(files.map((f) => f.close()));
  await rm(dir, { recursive: true, force: true });
});

async function counted(file: string): Promise<CountedFile> {
  const opened = await openCounted(file);
  files.push(opened);
  return opened;
}

/** Levels as the API describes them (the grids are objects of their own per open). */
function shape(slide: Slide) {
  return slide.levels.map(({ grid, ...level }) => ({ ...level, native: grid !== null }));
}

/**
 * Reads of the lazy open (header block, IFD 0's window) and of `complete()` (the rest of the
 * chain and the other levels' values), counted at the file under a 64 KiB block cache.
 */
const LAZY: { file: string; vendor: string; rest: number }[] = [
  { file: 'wsi/generated/pyramid-jpeg.tif', vendor: 'generic-tiff', rest: 1 },
  { file: 'wsi/generated/pyramid-jpeg-bigtiff.tif', vendor: 'generic-tiff', rest: 1 },
  { file: 'wsi/svs/CMU-1-Small-Region.svs', vendor: 'aperio', rest: 2 },
  { file: 'wsi/svs/tcga-cr-7395-01a-01-ts1.svs', vendor: 'aperio', rest: 1 },
  { file: 'wsi/ndpi/test3-DAPI-2.ndpi', vendor: 'hamamatsu', rest: 1 },
  // One directory in the chain; its pyramid is IFD 0's SubIFDs, outside the first windows.
  { file: 'wsi/generated/ome-pyramid-subifd.ome.tif', vendor: 'ome-tiff', rest: 2 },
];

describe.each(LAZY)('$file', ({ file, vendor, rest }) => {
  it('answers level 0 after two reads (≤ 512 KiB), its tiles as openSlide’s, and the rest on complete()', async () => {
    const eager = await openSlide((await counted(fixture(file))).source);
    const lazyFile = await counted(fixture(file));
    const opened = await openSlideLazily(lazyFile.source);
    expect(isLazySlide(opened)).toBe(true);
    const lazy = opened as LazySlide;
    expect(lazyFile.counter.requests).toBe(2);
    expect(lazyFile.counter.bytes).toBeLessThanOrEqual(512 * 1024);

    // Level 0 alone, the same as the whole slide's.
    const { base } = lazy;
    expect(base.format).toBe(vendor);
    expect(base.levels).toHaveLength(1);
    expect(shape(base)).toEqual(shape(eager).slice(0, 1));
    expect([base.width, base.height]).toEqual([eager.width, eager.height]);
    expect(base.associated.size).toBe(0);

    // A middle tile: one read of its own size, the same bytes.
    const grid = base.levels[0].grid!;
    const [x, y] = [grid.tilesX >> 1, grid.tilesY >> 1];
    lazyFile.counter.reset();
    const tile = await grid.readTile(x, y);
    expect(lazyFile.counter.requests).toBe(1);
    expect(tile).toEqual(await eager.levels[0].grid!.readTile(x, y));

    // The rest: the whole slide, equal to openSlide's, level 0 the very grid served so far.
    lazyFile.counter.reset();
    const whole = await lazy.complete();
    expect(lazyFile.counter.requests).toBe(rest);
    expect(whole.levels[0].grid).toBe(grid);
    expect(shape(whole)).toEqual(shape(eager));
    expect(whole.properties).toEqual(eager.properties);
    expect([...whole.associated.keys()]).toEqual([...eager.associated.keys()]);
    // complete() reads once: a second call shares the first.
    lazyFile.counter.reset();
    expect(await lazy.complete()).toBe(whole);
    expect(lazyFile.counter.requests).toBe(0);
  });
});

describe('slides opened whole by openSlideLazily', () => {
  it.each([
    // Every directory in the header's block (a COG), or in the tail read with IFD 0.
    'wsi/cog/cog.tif',
    'wsi/openslide/small.svs',
    'wsi/openslide/boxes.tiff',
  ])('%s', async (file) => {
    const lazy = await openSlideLazily((await counted(fixture(file))).source);
    expect(isLazySlide(lazy)).toBe(false);
    const eager = await openSlide((await counted(fixture(file))).source);
    expect(shape(lazy as Slide)).toEqual(shape(eager));
    expect((lazy as Slide).properties).toEqual(eager.properties);
  });
});

describe('damage past the first directory', () => {
  /** pyramid-jpeg.tif with `mutate` applied to a copy, written to a file. */
  async function mutated(name: string, mutate: (bytes: Uint8Array, view: DataView) => void): Promise<string> {
    const bytes = new Uint8Array(readFileSync(fixture('wsi/generated/pyramid-jpeg.tif')));
    mutate(bytes, new DataView(bytes.buffer));
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return file;
  }

  it('a broken third directory: level 0 is served, complete() fails as openSlide does', async () => {
    const file = await mutated('broken-ifd2.tif', (bytes, view) => {
      const ifd2 = mapTiff(bytes).ifds[2];
      view.setUint16(ifd2.offset, 0, true); // no entries
    });
    await expect(openSlide((await counted(file)).source)).rejects.toThrow(/IFD 2 .* has no entries/);
    const lazy = (await openSlideLazily((await counted(file)).source)) as LazySlide;
    expect(isLazySlide(lazy)).toBe(true);
    expect(await lazy.base.levels[0].grid!.readTile(0, 0)).not.toBeNull();
    await expect(lazy.complete()).rejects.toBeInstanceOf(CorruptFile);
  });

  it('a first directory smaller than the second: complete() gives the larger one as level 0', async () => {
    // IFD 0 claims 1000x1000 (its tile tables still cover it); IFD 1 is 1110x1483.
    const file = await mutated('small-ifd0.tif', (bytes, view) => {
      const ifd0 = mapTiff(bytes).ifds[0];
      for (const tag of [256, 257]) {
        const entry = ifd0.entries.find((e) => e.tag === tag)!;
        if (entry.type === 3) view.setUint16(entry.fieldPos, 1000, true);
        else view.setUint32(entry.fieldPos, 1000, true);
      }
    });
    const lazy = (await openSlideLazily((await counted(file)).source)) as LazySlide;
    expect([lazy.base.width, lazy.base.height]).toEqual([1000, 1000]);
    const whole = await lazy.complete();
    expect([whole.width, whole.height]).toEqual([1110, 1483]);
    expect(whole.levels[0].grid).not.toBe(lazy.base.levels[0].grid);
    const eager = await openSlide((await counted(file)).source);
    expect(shape(whole)).toEqual(shape(eager));
  });
});
