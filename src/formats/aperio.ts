// Aperio SVS: a TIFF whose first ImageDescription starts with "Aperio". Tiled directories are
// the pyramid levels; the stripped ones are associated images: the second directory is the
// thumbnail, the others are named by their description's second line ("label 387x463") or,
// failing that, by NewSubfileType (1 label, 9 macro), as OpenSlide's aperio reader does.
// The description's `key = value` pairs become `aperio.*` properties (MPP, AppMag, ...).

import { UnsupportedFormat } from '../errors.js';
import { associatedGrid } from './associated.js';
import { firstDirectoryBase } from './base-level.js';
import type { OpenSlideOptions, SlideProbe } from './format.js';
import { levelsFromGrids, slideOf } from './levels.js';
import type { ImageGrid, Slide, SlideProperties } from './slide.js';
import { iccProfile, ignoreCorrupt, tiffProperties } from './tiff-properties.js';
import { Tag } from './tiff/constants.js';
import { isTiled, readTiffImage, tiffImageGrid } from './tiff/image.js';
import type { Ifd } from './tiff/ifd.js';
import type { TiffFile } from './tiff/tiff-file.js';

export const vendor = 'aperio';

export async function detect(probe: SlideProbe): Promise<boolean> {
  const tiff = await probe.head();
  if (!tiff || !isTiled(tiff.ifds[0])) return false;
  const description = await tiff.string(tiff.ifds[0], Tag.ImageDescription, probe.signal);
  return description?.startsWith('Aperio') ?? false;
}

/** Level 0: the first directory, which `detect` found tiled. */
export const openBase = firstDirectoryBase;

export async function open(probe: SlideProbe, options: OpenSlideOptions = {}): Promise<Slide> {
  const signal = options.signal ?? probe.signal;
  const tiff = await probe.tiff(signal);
  if (!tiff) throw new UnsupportedFormat(`${probe.source.key}: not a TIFF file`);

  const grids: ImageGrid[] = [];
  const associated = new Map<string, ImageGrid>();
  for (const [index, ifd] of tiff.ifds.entries()) {
    if (isTiled(ifd)) {
      const reused = index === 0 ? probe.baseGrid : undefined;
      grids.push(reused ?? tiffImageGrid(tiff, await readTiffImage(tiff, ifd, signal)));
      continue;
    }
    const name = await associatedName(tiff, ifd, index, signal);
    if (!name || associated.has(name)) continue;
    const grid = await associatedGrid(tiff, ifd, signal);
    if (grid) associated.set(name, grid);
  }

  const first = tiff.ifds[0];
  const description = (await tiff.string(first, Tag.ImageDescription, signal)) ?? '';
  const raw = { ...(await tiffProperties(tiff, first, signal)), ...parseAperioDescription(description) };
  const properties: SlideProperties = { vendor, background_color: 'FFFFFF', raw };
  const mpp = parseDecimal(raw['aperio.MPP']);
  if (mpp !== undefined) {
    properties.mpp_x = mpp;
    properties.mpp_y = mpp;
  }
  const magnification = parseDecimal(raw['aperio.AppMag']);
  if (magnification !== undefined) properties.objective_power = magnification;
  const icc = await iccProfile(tiff, first, signal);
  if (icc) properties.icc_profile = icc;

  const levels = levelsFromGrids(grids);
  return slideOf(vendor, probe.source, levels, associated, properties);
}

async function associatedName(
  tiff: TiffFile,
  ifd: Ifd,
  index: number,
  signal: AbortSignal | undefined,
): Promise<string | undefined> {
  if (index === 1) return 'thumbnail';
  const description = await tiff.string(ifd, Tag.ImageDescription, signal).catch(ignoreCorrupt);
  const word = description
    ?.split(/\r\n|\r|\n/)[1]
    ?.trim()
    .split(/\s+/)[0]
    ?.toLowerCase();
  if (word && /^[a-z][a-z0-9_-]*$/.test(word)) return word;
  const subfileType = await tiff.number(ifd, Tag.NewSubfileType, signal).catch(ignoreCorrupt);
  if (subfileType === 1) return 'label';
  if (subfileType === 9) return 'macro';
  return undefined;
}

/**
 * `aperio.*` properties from an Aperio ImageDescription: `|`-separated, the first piece a free
 * text header, the rest `key = value` (a later duplicate wins, as in OpenSlide). Pieces without
 * `=` (a truncated description) are skipped; empty values are kept as ''.
 */
export function parseAperioDescription(description: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const piece of description.split('|').slice(1)) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    const key = piece.slice(0, eq).trim();
    if (key) out[`aperio.${key}`] = piece.slice(eq + 1).trim();
  }
  return out;
}

/** A positive decimal, accepting a decimal comma ("0,4990"); undefined for '' or junk. */
export function parseDecimal(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let value = text.trim();
  if (!value.includes('.') && /^[+]?\d+,\d+$/.test(value)) value = value.replace(',', '.');
  if (!/^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value)) return undefined;
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : undefined;
}
