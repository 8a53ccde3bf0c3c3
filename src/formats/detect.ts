// The one entry upper layers call to open a slide: tries each format's content detector in a
// fixed order (specific vendors before the generic TIFF fallback) and opens with the first
// that claims the object. Adding a format = one module plus one line in FORMATS.

import { UnsupportedFormat } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import * as aperio from './aperio.js';
import * as dicomWsi from './dicom-wsi.js';
import { SlideProbe, type OpenSlideOptions, type SlideFormat } from './format.js';
import * as genericTiff from './generic-tiff.js';
import * as ndpi from './ndpi.js';
import * as omeTiff from './ome-tiff.js';
import type { Slide } from './slide.js';

export type { OpenSlideOptions } from './format.js';

// DICOM WSI last: its probe reads bytes 128-131, which TIFF objects never need to pay for (a
// dual-personality DICOM/TIFF file therefore opens as TIFF).
export const FORMATS: readonly SlideFormat[] = [aperio, omeTiff, ndpi, genericTiff, dicomWsi];

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

/**
 * Opens one slide made of several objects (a folder of DICOM WSI instances, addressed by its
 * prefix). Objects that are not DICOM are skipped; throws `UnsupportedFormat` when none is.
 */
export function openSlideSeries(
  sources: readonly ByteSource[],
  options: OpenSlideOptions = {},
): Promise<Slide> {
  return dicomWsi.openSeries(sources, options);
}
