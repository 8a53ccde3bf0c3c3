// The one entry upper layers call to open a slide: tries each format's content detector in a
// fixed order (specific vendors before the generic TIFF fallback) and opens with the first
// that claims the object. Adding a format = one module plus one line in FORMATS.

import { UnsupportedFormat } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import * as aperio from './aperio.js';
import { SlideProbe, type OpenSlideOptions, type SlideFormat } from './format.js';
import * as genericTiff from './generic-tiff.js';
import * as omeTiff from './ome-tiff.js';
import type { Slide } from './slide.js';

export type { OpenSlideOptions } from './format.js';

export const FORMATS: readonly SlideFormat[] = [aperio, omeTiff, genericTiff];

/**
 * Opens the slide in `source`. Throws `UnsupportedFormat` when no format claims it,
 * `CorruptFile` when its structure is broken, or the source's own errors.
 */
export async function openSlide(source: ByteSource, options: OpenSlideOptions = {}): Promise<Slide> {
  const probe = new SlideProbe(source, options.signal);
  try {
    const format = await detectFormat(probe);
    if (!format) throw new UnsupportedFormat(`${source.key}: not a supported slide format`);
    return await format.open(probe, options);
  } finally {
    await probe.release();
  }
}

/** The format that claims the object, or null. */
export async function detectFormat(probe: SlideProbe): Promise<SlideFormat | null> {
  for (const format of FORMATS) {
    if (await format.detect(probe)) return format;
  }
  return null;
}
