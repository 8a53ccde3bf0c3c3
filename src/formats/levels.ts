// Turns a format's stored images into the slide's level list: finest first, downsamples as
// OpenSlide computes them, and for a single-level slide synthesised coarser levels (halving
// until the image fits one tile) so that viewers (OpenSeadragon, Deep Zoom) get a pyramid.

import { CorruptFile } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import type { ImageGrid, Slide, SlideLevel, SlideProperties } from './slide.js';

/** Tile size a synthesised level of a stripped image reports (strips are not a useful unit). */
const SYNTHESISED_TILE = 256;

/** Levels from native grids: sorted by width (largest first), then synthesised ones if only one. */
export function levelsFromGrids(grids: readonly ImageGrid[]): SlideLevel[] {
  if (grids.length === 0) throw new CorruptFile('the slide has no pyramid levels');
  const sorted = [...grids].sort((a, b) => b.width - a.width || b.height - a.height);
  const base = sorted[0];
  const levels: SlideLevel[] = sorted.map((grid, index) => ({
    index,
    width: grid.width,
    height: grid.height,
    downsample: downsample(base, grid),
    tileWidth: grid.tileWidth,
    tileHeight: grid.tileHeight,
    tilesX: grid.tilesX,
    tilesY: grid.tilesY,
    grid,
  }));
  if (levels.length === 1) levels.push(...synthesisedLevels(levels[0]));
  return levels;
}

/** Level 0 of a slide from its stored grid alone (a lazily opened slide's, see `LazySlide`). */
export function baseLevel(grid: ImageGrid): SlideLevel {
  const { width, height, tileWidth, tileHeight, tilesX, tilesY } = grid;
  return { index: 0, width, height, downsample: 1, tileWidth, tileHeight, tilesX, tilesY, grid };
}

/**
 * Levels below `base`, each ceil(previous / 2) in both directions, until one fits a single
 * tile. They have no stored tiles (`grid: null`): tiles/ renders them from finer levels.
 */
export function synthesisedLevels(base: SlideLevel): SlideLevel[] {
  const strips = base.grid?.layout === 'strips';
  const tileWidth = strips ? SYNTHESISED_TILE : base.tileWidth;
  const tileHeight = strips ? SYNTHESISED_TILE : base.tileHeight;
  const out: SlideLevel[] = [];
  let { width, height } = base;
  while (width > tileWidth || height > tileHeight) {
    width = Math.ceil(width / 2);
    height = Math.ceil(height / 2);
    out.push({
      index: base.index + out.length + 1,
      width,
      height,
      downsample: base.downsample * downsample(base, { width, height }),
      tileWidth,
      tileHeight,
      tilesX: Math.ceil(width / tileWidth),
      tilesY: Math.ceil(height / tileHeight),
      grid: null,
    });
  }
  return out;
}

function downsample(
  base: { width: number; height: number },
  level: { width: number; height: number },
): number {
  return (base.width / level.width + base.height / level.height) / 2;
}

/** The `Slide` a format returns: level 0 of `levels` (finest first) gives the slide's size. */
export function slideOf(
  format: string,
  source: ByteSource,
  levels: SlideLevel[],
  associated: ReadonlyMap<string, ImageGrid>,
  properties: SlideProperties,
): Slide {
  return { format, source, width: levels[0].width, height: levels[0].height, levels, associated, properties };
}
