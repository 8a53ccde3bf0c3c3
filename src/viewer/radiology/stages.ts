// Progressive retrieve stages of the radiology viewer (docs/progressive.md, "Recommended default"):
// stacks load HTJ2K by byte range (64,000 bytes, then the rest), volumes HTJ2K streaming as the one
// stage; a series whose first frame has no derived representation (415/406) loads plain /frames/.
// Byte-range requests carry the DICOMweb token as `?token=` (Cornerstone 5.14 sends them without
// calling beforeSend, so without the Authorization header).

import { ProgressiveRetrieveImages, utilities } from '@cornerstonejs/core';
import type { DicomwebClient } from './dicomweb.js';

export type RetrieveOptions = Record<string, unknown>;

/** The first range and later chunks: 64,000 bytes (Cornerstone3D 5.14's defaults are 131,072). */
const CHUNK = 64_000;

/** The recommended stages: a fast stage (absent: one full-quality stage) and the final one. */
export const RECOMMENDED: Record<'stack' | 'volume', { fast?: RetrieveOptions; final: RetrieveOptions }> = {
  stack: {
    fast: { framesPath: '/htj2k/', rangeIndex: 0, initialChunkSize: CHUNK, chunkSize: CHUNK },
    final: { framesPath: '/htj2k/', rangeIndex: -1, initialChunkSize: CHUNK, chunkSize: CHUNK },
  },
  volume: { final: { framesPath: '/htj2k/', streaming: true } },
};

/**
 * Cornerstone3D's `imageRetrieveConfiguration` for `fast` then `final` (shared with the bench
 * page): sequential stages for a stack, the interleaved stages for a volume.
 */
export function retrieveConfiguration(
  layout: 'stack' | 'volume',
  fast: RetrieveOptions | undefined,
  final: RetrieveOptions,
  /** Options of loads outside the stages (stack prefetch): default `fast ?? final`. */
  other?: RetrieveOptions,
) {
  const first = fast ?? final;
  const retrieveOptions = {
    default: other ?? first,
    single: final,
    singleFast: first,
    singleFinal: final,
    multipleFast: first,
    multipleFinal: final,
  };
  if (layout === 'volume') return { ...ProgressiveRetrieveImages.interleavedRetrieveStages, retrieveOptions };
  return {
    ...(fast
      ? ProgressiveRetrieveImages.sequentialRetrieveStages
      : ProgressiveRetrieveImages.singleRetrieveStages),
    retrieveOptions,
  };
}

/**
 * `options` with the DICOMweb token as `?token=` (Cornerstone's `urlArguments`, a query string in
 * 5.14): its byte-range requests (`rangeIndex`) are plain `fetch`es that never call the loader's
 * `beforeSend`, so they would go without the Authorization header and get 401. The server takes
 * `?token=` on every DICOMweb route (docs/dicomweb.md, "Tokens"). Options without `rangeIndex` go
 * through `beforeSend` (XHR and streaming requests) and are returned unchanged.
 */
export function withToken(options: RetrieveOptions, token: string | undefined): RetrieveOptions {
  if (!token || options.rangeIndex === undefined) return options;
  const own =
    typeof options.urlArguments === 'string' && options.urlArguments ? `${options.urlArguments}&` : '';
  return { ...options, urlArguments: `${own}token=${encodeURIComponent(token)}` };
}

/** How a series loads with the stages: the page's DICOMweb token, if any. */
export interface StagesOptions {
  token?: string;
}

/**
 * Sets (or, with `stages` undefined, clears) the retrieve configuration the next stack or the
 * volume `volumeId` loads with. The viewer shows one series at a time, so the `stack` key is per
 * page.
 */
export function applyStages(
  stages: StagesOptions | undefined,
  layout: 'stack' | 'mpr',
  volumeId?: string,
): void {
  const key = layout === 'stack' ? 'stack' : volumeId!;
  if (!stages) {
    utilities.imageRetrieveMetadataProvider.add(key, undefined);
    return;
  }
  if (layout === 'stack') {
    const fast = withToken(RECOMMENDED.stack.fast!, stages.token);
    const final = withToken(RECOMMENDED.stack.final, stages.token);
    // Prefetched slices come whole in one request.
    utilities.imageRetrieveMetadataProvider.add(
      key,
      retrieveConfiguration('stack', fast, final, { framesPath: '/htj2k/' }),
    );
  } else {
    utilities.imageRetrieveMetadataProvider.add(
      key,
      retrieveConfiguration('volume', undefined, RECOMMENDED.volume.final),
    );
  }
}

/**
 * Whether the server makes HTJ2K of this series: asks for the first byte of its first frame's
 * `/htj2k/`. 415 (colour, JPEG baseline, RLE...) or 406, or any other failure, means no: the
 * series loads plain `/frames/` rather than frames that fail to decode and stay black.
 */
export async function derivedAvailable(client: DicomwebClient, frameImageId: string): Promise<boolean> {
  const url = frameImageId.replace(/^wadors:/, '').replace(/\/frames\/(\d+)$/, '/htj2k/$1');
  try {
    const res = await fetch(url, {
      headers: { ...client.headers(), Accept: 'image/jhc', Range: 'bytes=0-0' },
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
