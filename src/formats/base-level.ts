// Level 0 of a TIFF-family slide from its first directory alone: the `openBase` of the formats whose
// level 0 is IFD 0 (Aperio, generic pyramids, OME-TIFF), for a lazy open (detect.ts
// `openSlideLazily`). The grid is kept on the probe so that the whole open reuses it.

import type { OpenSlideOptions, SlideProbe } from './format.js';
import type { ImageGrid } from './slide.js';
import { readTiffImage, tiffImageGrid } from './tiff/image.js';

export async function firstDirectoryBase(
  probe: SlideProbe,
  options: OpenSlideOptions = {},
): Promise<ImageGrid | undefined> {
  const tiff = await probe.head();
  if (!tiff) return undefined;
  const grid = tiffImageGrid(tiff, await readTiffImage(tiff, tiff.ifds[0], options.signal ?? probe.signal));
  probe.baseGrid = grid;
  return grid;
}
