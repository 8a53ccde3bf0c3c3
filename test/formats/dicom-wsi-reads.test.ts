// What opening the CMU-1-Small-Region DICOM WSI series (12 instances, level 0 without offset
// tables) and reading level-0 tiles costs, counted at the storage under a 64 KiB block cache:
// one header read per instance, one span read for the first frame (the item headers walked
// and the frame served from it), one read of its own size for the frame beside it. Every
// frame, read in a scrambled order, equals pydicom's frame of the same index. With metadata
// shared between replicas the walk goes header by header through the shared blocks instead.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { openSeries } from '../../src/formats/dicom-wsi.js';
import { BlockCache } from '../../src/io/block-cache.js';
import { RangeCoalescer } from '../../src/io/coalesce.js';
import { CachedSource } from '../../src/io/reader.js';
import { LocalStorage } from '../../src/storage/local.js';
import { BytesSource, ReadCounter } from '../support/file-source.js';
import { fixture } from '../support/fixtures.js';
import { python } from '../volumes/python.js';

const DIR = fixture('wsi/dicom-wsi/cmu-1-small-region');
const LEVEL0 = 'level-0-frames-0-30.dcm';

const storages: LocalStorage[] = [];
afterAll(async () => {
  await Promise.all(storages.map((s) => s.close()));
});

async function openCountedSeries() {
  const counter = new ReadCounter();
  const storage = await LocalStorage.create(DIR, { observer: counter });
  storages.push(storage);
  const cache = new BlockCache({ maxBytes: 64 * 1024 * 1024, blockSize: 64 * 1024 });
  const names = (await readdir(DIR)).sort();
  const sources = await Promise.all(
    names.map(async (name) => {
      const file = await storage.open(name);
      return new CachedSource(file, cache, new RangeCoalescer(file));
    }),
  );
  return { counter, slide: await openSeries(sources), names };
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('DICOM WSI series reads (CMU-1-Small-Region, 12 instances)', () => {
  it('open: one read per instance; the middle level-0 tile: one read; the tile beside it: one read of its size', async () => {
    const { counter, slide, names } = await openCountedSeries();
    expect(counter.requests).toBe(names.length);
    const grid = slide.levels[0].grid!;
    const [x, y] = [grid.tilesX >> 1, grid.tilesY >> 1];
    counter.reset();
    const first = await grid.readTile(x, y);
    expect(first).not.toBeNull();
    expect(counter.requests).toBe(1);
    counter.reset();
    const beside = await grid.readTile(x + 1, y);
    expect(counter.requests).toBe(1);
    // Its bytes and the next item header (8 bytes) at most.
    expect(counter.bytes).toBeLessThanOrEqual(beside!.byteLength + 8);
  });

  it('every level-0 frame, read in a scrambled order, equals pydicom’s frame', async () => {
    const reference = python<string[]>(
      `
import hashlib, json, sys, pydicom
from pydicom.encaps import generate_pixel_data_frame
d = pydicom.dcmread(sys.argv[1])
print(json.dumps([hashlib.sha256(f).hexdigest() for f in generate_pixel_data_frame(d.PixelData, int(d.NumberOfFrames))]))
`,
      [`${DIR}/${LEVEL0}`],
    );
    const { slide } = await openCountedSeries();
    const grid = slide.levels[0].grid!;
    expect(grid.tilesX * grid.tilesY).toBe(reference.length);
    const order = reference.map((_, i) => (i * 7 + 17) % reference.length);
    expect(new Set(order).size).toBe(reference.length);
    const got = await Promise.all(
      order.map(
        async (i) => [i, sha((await grid.readTile(i % grid.tilesX, Math.floor(i / grid.tilesX)))!)] as const,
      ),
    );
    for (const [i, hash] of got) expect(hash, `frame ${i + 1}`).toBe(reference[i]);
  });

  it('with metadata shared between replicas, the walk reads item headers as metadata (shared blocks), never a span', async () => {
    class SharedSource extends BytesSource {
      readonly sharesMetadata = true;
    }
    const source = new SharedSource(new Uint8Array(await readFile(`${DIR}/${LEVEL0}`)), LEVEL0);
    const slide = await openSeries([source]);
    const grid = slide.levels[0].grid!;
    source.reads.length = 0;
    const tile = await grid.readTile(grid.tilesX >> 1, grid.tilesY >> 1);
    const data = source.reads.filter((r) => r.purpose === 'data');
    expect(data).toEqual([{ offset: expect.any(Number), length: tile!.byteLength + 8, purpose: 'data' }]);
    const headers = source.reads.filter((r) => r.purpose === 'metadata');
    expect(headers.length).toBeGreaterThan(1);
    expect(headers.every((r) => r.length === 8)).toBe(true);
  });
});
