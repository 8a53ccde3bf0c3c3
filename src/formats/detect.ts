// The one entry upper layers call to open a slide: tries each format's content detector in a
// fixed order (specific vendors before the generic TIFF fallback) and opens with the first
// that claims the object. Adding a format = one module plus one line in FORMATS.

import { UnsupportedFormat } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import * as aperio from './aperio.js';
import * as dicomWsi from './dicom-wsi.js';
import { SlideProbe, type OpenSlideOptions, type SlideFormat } from './format.js';
import * as genericTiff from './generic-tiff.js';
import { baseLevel, slideOf } from './levels.js';
import * as ndpi from './ndpi.js';
import * as omeTiff from './ome-tiff.js';
import type { LazySlide, Slide } from './slide.js';

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

/**
 * Opens the slide in `source` as far as serving level 0 needs when that saves requests: a TIFF
 * whose later directories lie outside the windows read for its first one (libvips, NDPI, real
 * Aperio files: one directory after each level's data) answers a `LazySlide` after the header
 * and IFD 0; the other directories are read by its `complete()`. Anything else (every
 * directory already fetched, formats without `openBase`, DICOM) is opened whole, as
 * `openSlide` does. Same errors as `openSlide`.
 */
export async function openSlideLazily(
  source: ByteSource,
  options: OpenSlideOptions = {},
): Promise<Slide | LazySlide> {
  const probe = new SlideProbe(source, options.signal, true);
  try {
    const format = await detectFormat(probe);
    if (!format) throw new UnsupportedFormat(`${source.key}: not a supported slide format`);
    const tiff = await probe.head();
    // Lazily only when the whole open would cost more requests: directories of the chain, or
    // IFD 0's SubIFDs (OME-TIFF and generic pyramids), outside the windows read so far.
    const more = tiff !== null && (!tiff.chainComplete || !(await tiff.subIfdsInWindows(tiff.ifds[0])));
    const grid = more ? await format.openBase?.(probe, options) : undefined;
    if (!grid) return await format.open(probe, options);
    const base = slideOf(format.vendor, source, [baseLevel(grid)], new Map(), {
      vendor: format.vendor,
      // Every TIFF-family format here paints missing tiles white (their `open` says the same).
      background_color: 'FFFFFF',
      raw: {},
    });
    let completing: Promise<Slide> | undefined;
    const complete = async (signal?: AbortSignal): Promise<Slide> => {
      probe.resume();
      try {
        return await format.open(probe, { ...options, signal });
      } finally {
        await probe.release();
      }
    };
    return { base, complete: (signal) => (completing ??= complete(signal)) };
  } finally {
    await probe.release();
  }
}

/** Whether `opened` is a lazily opened slide (`openSlideLazily`) rather than a whole one. */
export function isLazySlide(opened: Slide | LazySlide): opened is LazySlide {
  return 'complete' in opened;
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
