// Generic pyramidal TIFF / BigTIFF (libvips, bfconvert, GDAL COGs, ...): level 0 is the first
// directory; the other levels are tiled reduced-resolution directories (NewSubfileType bit 0),
// found in the main chain (COG overviews, OpenSlide's generic-tiff convention) or as SubIFDs
// of the first directory. Transparency masks (bit 2) are skipped. A stripped first directory
// is served when small enough (see `readTiffImage`); a single level gets synthesised ones.

import { UnsupportedFormat } from '../errors.js';
import { firstDirectoryBase } from './base-level.js';
import type { OpenSlideOptions, SlideProbe } from './format.js';
import { levelsFromGrids, slideOf } from './levels.js';
import type { ImageGrid, Slide, SlideProperties } from './slide.js';
import { iccProfile, resolutionMpp, tiffProperties } from './tiff-properties.js';
import { SubfileType, Tag } from './tiff/constants.js';
import type { Ifd } from './tiff/ifd.js';
import { isTiled, readTiffImage, tiffImageGrid } from './tiff/image.js';
import type { TiffFile } from './tiff/tiff-file.js';

export const vendor = 'generic-tiff';

export async function detect(probe: SlideProbe): Promise<boolean> {
  const tiff = await probe.head();
  // NDPI is TIFF-like but has its own offsets and layout: it is not a generic TIFF.
  return tiff !== null && !tiff.has(tiff.ifds[0], Tag.NdpiFormatFlag);
}

/** Level 0: the first directory's image. */
export const openBase = firstDirectoryBase;

export async function open(probe: SlideProbe, options: OpenSlideOptions = {}): Promise<Slide> {
  const signal = options.signal ?? probe.signal;
  const tiff = await probe.tiff(signal);
  if (!tiff) throw new UnsupportedFormat(`${probe.source.key}: not a TIFF file`);
  const first = tiff.ifds[0];
  const grids = await pyramidGrids(tiff, first, tiff.ifds.slice(1), signal, probe.baseGrid);

  const properties: SlideProperties = {
    vendor,
    background_color: 'FFFFFF',
    raw: await tiffProperties(tiff, first, signal),
    ...(await resolutionMpp(tiff, first, signal)),
  };
  const icc = await iccProfile(tiff, first, signal);
  if (icc) properties.icc_profile = icc;

  const levels = levelsFromGrids(grids);
  return slideOf(vendor, probe.source, levels, new Map(), properties);
}

/**
 * Grids of `base` (level 0; `baseGrid` when it was made already) and of the tiled
 * reduced-resolution images among `chain` and base's SubIFDs. Shared with the OME-TIFF reader,
 * whose pyramids are SubIFDs.
 */
export async function pyramidGrids(
  tiff: TiffFile,
  base: Ifd,
  chain: readonly Ifd[],
  signal: AbortSignal | undefined,
  baseGrid?: ImageGrid,
): Promise<ImageGrid[]> {
  const grids = [baseGrid ?? tiffImageGrid(tiff, await readTiffImage(tiff, base, signal))];
  // A SubIFD of the base image is a reduced version of it even when a writer left out the
  // ReducedImage bit; in the main chain only that bit tells a level from another image.
  const candidates = [
    ...(await tiff.subIfds(base, signal)).map((ifd) => ({ ifd, mustBeReduced: false })),
    ...chain.map((ifd) => ({ ifd, mustBeReduced: true })),
  ];
  for (const { ifd, mustBeReduced } of candidates) {
    if (!isTiled(ifd)) continue;
    const subfileType = (await tiff.number(ifd, Tag.NewSubfileType, signal)) ?? 0;
    if (subfileType & SubfileType.Mask) continue;
    if (mustBeReduced && !(subfileType & SubfileType.ReducedImage)) continue;
    grids.push(tiffImageGrid(tiff, await readTiffImage(tiff, ifd, signal)));
  }
  return grids;
}
