// Associated images (label, macro, thumbnail) are extras: one that is corrupt or in an
// unsupported encoding is left out so that the slide itself still opens, as long as the
// failure is the file's fault and not the storage's.

import { CorruptFile, UnsupportedFormat } from '../errors.js';
import type { ImageGrid } from './slide.js';
import type { Ifd } from './tiff/ifd.js';
import { readTiffImage, tiffImageGrid } from './tiff/image.js';
import type { TiffFile } from './tiff/tiff-file.js';

/** The grid of an associated image, or null when the file's directory for it is unusable. */
export async function associatedGrid(
  tiff: TiffFile,
  ifd: Ifd,
  signal?: AbortSignal,
): Promise<ImageGrid | null> {
  try {
    return tiffImageGrid(tiff, await readTiffImage(tiff, ifd, signal));
  } catch (error) {
    if (error instanceof CorruptFile || error instanceof UnsupportedFormat) return null;
    throw error;
  }
}
