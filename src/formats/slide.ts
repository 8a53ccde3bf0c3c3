// The slide model every format produces and every upper layer consumes. A format describes
// *where* pixels are (levels, grids of stored tiles, associated images) and hands out raw stored
// tile bytes; decoding, compositing and caching happen above it (codecs/, tiles/).

import type { TileEncoding } from '../codecs/types.js';
import type { ByteSource } from '../storage/types.js';

/** A grid of stored, individually encoded tiles (a tiled image, or a stripped image's strips). */
export interface ImageGrid {
  width: number;
  height: number;
  /** Stored tile size; edge tiles are stored at full size and cropped by the reader. */
  tileWidth: number;
  tileHeight: number;
  tilesX: number;
  tilesY: number;
  encoding: TileEncoding;
  /**
   * `tiles` (the default when absent): every tile is stored at full size, edge tiles padded.
   * `strips` (a stripped TIFF image): tileWidth is the image width, tileHeight RowsPerStrip,
   * and the last strip may hold only the rows that remain (height - (tilesY - 1) * tileHeight).
   */
  layout?: 'tiles' | 'strips';
  /**
   * The stored bytes of tile (x, y), exactly as in the file (no JPEG tables spliced), or
   * `null` when the tile is missing/sparse (offset or byte count 0) and renders as background.
   * Throws `BadRequest` for (x, y) outside the grid, `CorruptFile` for offsets or lengths past
   * the end of the object or beyond sane limits.
   */
  readTile(x: number, y: number, options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
}

export interface SlideLevel {
  index: number;
  width: number;
  height: number;
  /**
   * Level-0 pixels per pixel of this level, as OpenSlide computes it: the mean of the width and
   * height ratios, (w0 / w + h0 / h) / 2.
   */
  downsample: number;
  tileWidth: number;
  tileHeight: number;
  tilesX: number;
  tilesY: number;
  /** The stored tiles, or `null` for a level synthesised by downsampling a finer one. */
  grid: ImageGrid | null;
}

/** Normalised properties plus every vendor-specific one. */
export interface SlideProperties {
  vendor: string;
  mpp_x?: number;
  mpp_y?: number;
  objective_power?: number;
  /** Embedded ICC profile bytes, when the slide has one. */
  icc_profile?: Uint8Array;
  /** Background colour as `RRGGBB` hex (white unless the slide says otherwise). */
  background_color: string;
  /** Vendor-specific properties, named as OpenSlide names them where it has a name (`aperio.AppMag`, `tiff.ImageDescription`, ...). */
  raw: Record<string, string>;
}

export interface Slide {
  /** The format module that opened it (`aperio`, `generic-tiff`, `ome-tiff`, ...). */
  readonly format: string;
  readonly source: ByteSource;
  /**
   * Every object the slide reads, when it spans several (a DICOM WSI series: one per instance);
   * absent for single-object slides. The slide's identity combines theirs.
   */
  readonly sources?: readonly ByteSource[];
  /** Level 0 size. */
  readonly width: number;
  readonly height: number;
  /** Finest first; includes synthesised levels for single-level slides. */
  readonly levels: SlideLevel[];
  /** `label`, `macro`, `thumbnail`, ... as stored. */
  readonly associated: ReadonlyMap<string, ImageGrid>;
  readonly properties: SlideProperties;
}

/**
 * A slide opened lazily (`openSlideLazily`): level 0 is known from the file's first directory,
 * the rest of its structure is read by `complete()` when something needs it.
 */
export interface LazySlide {
  /**
   * Enough to serve level-0 tiles: level 0 only, no associated images, no vendor properties
   * (`raw` empty), the format's background colour.
   */
  readonly base: Slide;
  /**
   * Reads the rest of the structure once (later calls share that read): the whole slide. Its
   * level 0 is `base`'s (the same grid), unless a later directory turned out to be larger.
   */
  complete(signal?: AbortSignal): Promise<Slide>;
}
