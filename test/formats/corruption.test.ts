// The corruption suite: mutated copies of the real fixtures (test/support/corrupt.ts) must each
// give a typed MedStreamError (CorruptFile / UnsupportedFormat / InvalidRange) from openSlide()
// or readTile(), or the documented benign answer (null for a zero-length tile, the stored bytes
// of a garbage tile) — never a RangeError / TypeError, never a hang.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MedStreamError } from '../../src/errors.js';
import { openSlide } from '../../src/formats/detect.js';
import type { ImageGrid, Slide } from '../../src/formats/slide.js';
import {
  directoryFuzz,
  headerThenNoise,
  notTiff,
  structuralMutations,
  type Mutation,
} from '../support/corrupt.js';
import { BytesSource } from '../support/file-source.js';
import { fixture } from '../support/fixtures.js';

const FIXTURES = [
  'wsi/openslide/small.svs',
  'wsi/openslide/boxes.tiff',
  'wsi/cog/cog.tif',
  'wsi/svs/CMU-1-Small-Region.svs',
  'wsi/generated/pyramid-jpeg-bigtiff.tif',
  'wsi/generated/ome-pyramid-subifd.ome.tif',
];

const TYPED_CODES = ['corrupt_file', 'unsupported_format', 'invalid_range'];
// Bounded work instead of a wall-clock limit (which a loaded machine can break): a parser that
// loops (an IFD chain that cycles, an offset table read again per tile) reads without end. The
// most any mutation here reads today is 46 reads and 1.7x the file's bytes. A hang that does
// not read is caught by the test timeout.
const MAX_READS = 256;
const MAX_BYTES_PER_FILE_BYTE = 4;

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function attempt<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error };
  }
}

function expectTyped(error: unknown, codes: string[] = TYPED_CODES): void {
  if (!(error instanceof MedStreamError))
    throw new Error(`untyped error: ${String(error)}`, { cause: error });
  expect(codes).toContain(error.code);
}

/** Reads a few tiles of every grid (first, last, a middle one): each is bytes, null or a typed error. */
async function readSomeTiles(slide: Slide): Promise<void> {
  const grids: ImageGrid[] = [
    ...slide.levels.flatMap((level) => (level.grid ? [level.grid] : [])),
    ...slide.associated.values(),
  ];
  for (const grid of grids) {
    const picks: [number, number][] = [
      [0, 0],
      [grid.tilesX - 1, grid.tilesY - 1],
      [Math.floor(grid.tilesX / 2), Math.floor(grid.tilesY / 2)],
    ];
    for (const [x, y] of picks) {
      const result = await attempt(() => grid.readTile(x, y));
      if (!result.ok) expectTyped(result.error);
    }
  }
}

async function check(mutation: Mutation): Promise<void> {
  const source = new BytesSource(mutation.bytes, `${mutation.name}.tif`);
  const opened = await attempt(() => openSlide(source));
  const expectation = mutation.expect;
  const tile = async () => {
    if (!opened.ok) throw new Error(`open failed: ${String(opened.error)}`, { cause: opened.error });
    return attempt(() => opened.value.levels[0].grid!.readTile(0, 0));
  };
  switch (expectation.kind) {
    case 'open-fails':
      expect(opened.ok, 'open should fail').toBe(false);
      if (!opened.ok) expectTyped(opened.error, expectation.codes);
      break;
    case 'tile-fails': {
      const result = await tile();
      expect(result.ok, 'readTile should fail').toBe(false);
      if (!result.ok) expectTyped(result.error, expectation.codes);
      break;
    }
    case 'tile-null':
      expect(await tile()).toEqual({ ok: true, value: null });
      break;
    case 'tile-bytes':
      expect(await tile()).toEqual({ ok: true, value: expectation.bytes });
      break;
    case 'opens':
      if (!opened.ok) throw new Error(`open failed: ${String(opened.error)}`, { cause: opened.error });
      if (expectation.without) expect(opened.value.associated.has(expectation.without)).toBe(false);
      await readSomeTiles(opened.value);
      break;
    case 'corrupt-somewhere': {
      if (!opened.ok) {
        expectTyped(opened.error, ['corrupt_file']);
        break;
      }
      const result = await tile();
      expect(result.ok, 'open or readTile(0, 0) should fail').toBe(false);
      if (!result.ok) expectTyped(result.error, ['corrupt_file']);
      break;
    }
    case 'typed':
      if (opened.ok) await readSomeTiles(opened.value);
      else expectTyped(opened.error);
      break;
  }
  expect(source.reads.length, 'reads').toBeLessThanOrEqual(MAX_READS);
  const bytesRead = source.reads.reduce((sum, r) => sum + r.length, 0);
  expect(bytesRead, 'bytes read').toBeLessThanOrEqual(MAX_BYTES_PER_FILE_BYTE * mutation.bytes.length);
}

describe.each(FIXTURES)('corrupted %s', (relative) => {
  const original = new Uint8Array(readFileSync(fixture(relative)));
  const mutations = structuralMutations(original);

  it('has a structural mutation of each kind', () => {
    expect(mutations.length).toBeGreaterThanOrEqual(25);
  });

  it.each(mutations.map((m) => [m.name, m] as const))('%s', async (_, mutation) => {
    await check(mutation);
  });

  it('survives random byte flips in its first directory', async () => {
    for (const mutation of directoryFuzz(original, 25, relative.length * 7919)) {
      await check(mutation).catch((error: unknown) => {
        throw new Error(`${mutation.name}: ${String(error)}`, { cause: error });
      });
    }
  });
});

describe('not-quite-TIFF inputs', () => {
  it.each([...headerThenNoise(), ...notTiff()].map((m) => [m.name, m] as const))(
    '%s',
    async (_, mutation) => {
      await check(mutation);
    },
  );
});
