import { describe, expect, it } from 'vitest';
import { levelsFromGrids, synthesisedLevels } from '../../src/formats/levels.js';
import type { ImageGrid } from '../../src/formats/slide.js';

function grid(width: number, height: number, tile: number, layout?: 'strips'): ImageGrid {
  return {
    width,
    height,
    tileWidth: layout ? width : tile,
    tileHeight: tile,
    tilesX: layout ? 1 : Math.ceil(width / tile),
    tilesY: Math.ceil(height / tile),
    encoding: {
      compression: 1,
      photometric: 2,
      samplesPerPixel: 3,
      bitsPerSample: [8, 8, 8],
      sampleFormat: 1,
      planarConfiguration: 1,
      predictor: 1,
    },
    layout,
    readTile: async () => null,
  };
}

describe('levelsFromGrids', () => {
  it('sorts by size, indexes, and computes OpenSlide’s downsamples', () => {
    const levels = levelsFromGrids([grid(555, 741, 256), grid(2220, 2967, 256), grid(1110, 1483, 256)]);
    expect(levels.map((l) => [l.index, l.width])).toEqual([
      [0, 2220],
      [1, 1110],
      [2, 555],
    ]);
    expect(levels[1].downsample).toBeCloseTo(2.000337154416723, 12);
    expect(levels[2].downsample).toBeCloseTo(4.0020242914979756, 12);
    expect(levels.every((l) => l.grid !== null)).toBe(true);
  });

  it('synthesises levels for a single-level slide, ceil-halving until one tile holds it', () => {
    const levels = levelsFromGrids([grid(1001, 300, 256)]);
    expect(levels.map((l) => [l.width, l.height, l.tilesX, l.tilesY, l.grid === null])).toEqual([
      [1001, 300, 4, 2, false],
      [501, 150, 2, 1, true],
      [251, 75, 1, 1, true],
    ]);
    expect(levels[2].downsample).toBeCloseTo((1001 / 251 + 300 / 75) / 2, 12);
  });

  it('gives synthesised levels of a stripped image 256-pixel tiles', () => {
    const base = levelsFromGrids([grid(600, 600, 16, 'strips')])[0];
    expect(synthesisedLevels(base).map((l) => [l.width, l.tileWidth, l.tileHeight])).toEqual([
      [300, 256, 256],
      [150, 256, 256],
    ]);
  });
});
