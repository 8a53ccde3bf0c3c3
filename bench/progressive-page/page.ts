// Browser side of `npm run bench -- progressive` (bundled by bench/progressive-page.ts): starts
// Cornerstone3D, loads a series' metadata and warms the decoders (excluded from the timings, as
// in Cornerstone3D's published table), then loads a stack or a volume with a retrieve
// configuration and reports first render, final render and completion (ms after the load began).

import {
  cache,
  Enums,
  eventTarget,
  imageLoader,
  init as coreInit,
  RenderingEngine,
  utilities,
  volumeLoader,
  type StackViewport,
  type Types,
  type VolumeViewport,
} from '@cornerstonejs/core';
import { init as loaderInit } from '@cornerstonejs/dicom-image-loader';
import { dicomwebClient } from '../../src/viewer/radiology/dicomweb.js';
import { loadSeries } from '../../src/viewer/radiology/series.js';
import { retrieveConfiguration } from '../../src/viewer/radiology/stages.js';

type Options = Record<string, unknown>;

export interface RunRequest {
  layout: 'stack' | 'volume';
  /** Retrieve options of the fast stage (undefined: one full-quality stage). */
  fast?: Options;
  final: Options;
}

export interface RunResult {
  firstRenderMs: number;
  finalRenderMs: number;
  completeMs: number;
  frames: number;
}

const FULL = Enums.ImageQualityStatus.FULL_RESOLUTION;
let imageIds: string[] = [];
let engine: RenderingEngine | undefined;

/** Page start: Cornerstone, the series metadata, and one decode per codec on the warm-up series. */
async function prepare(
  root: string,
  study: string,
  series: string,
  warm: [string, string],
  options: Options[],
) {
  coreInit();
  loaderInit({ maxWebWorkers: 2 });
  const client = dicomwebClient(root);
  imageIds = (await loadSeries(client, study, series)).imageIds;
  const warmIds = (await loadSeries(client, warm[0], warm[1])).imageIds;
  let k = 0;
  for (const retrieveOptions of options) {
    // Two at once, so both decode workers load the codec.
    await Promise.all(
      [0, 1].map(() =>
        imageLoader.loadImage(warmIds[k++ % warmIds.length], {
          priority: 0,
          requestType: Enums.RequestType.Interaction,
          retrieveOptions: retrieveOptions as Types.RetrieveOptions,
        }),
      ),
    );
  }
  cache.purgeCache();
  return imageIds.length;
}

function element(): HTMLDivElement {
  const div = document.createElement('div');
  div.style.width = '512px';
  div.style.height = '512px';
  document.body.appendChild(div);
  return div;
}

async function run(req: RunRequest): Promise<RunResult> {
  engine = new RenderingEngine('bench');
  const el = element();
  const config = retrieveConfiguration(req.layout, req.fast, req.final);
  let first = NaN;
  let final = NaN;
  let complete = NaN;
  let anyFrame = false;
  let t0 = 0;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not complete after 180 s')), 180_000);
    const check = () => {
      if (Number.isFinite(final) && Number.isFinite(complete)) {
        clearTimeout(timer);
        resolve();
      }
    };
    if (req.layout === 'stack') {
      el.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
        const now = performance.now() - t0;
        if (Number.isNaN(first)) first = now;
        const image = (engine!.getViewport('vp') as StackViewport).getCornerstoneImage();
        if (Number.isNaN(final) && image && (image.imageQualityStatus ?? FULL) >= FULL) {
          final = complete = now;
          check();
        }
      });
    } else {
      eventTarget.addEventListener(Enums.Events.IMAGE_VOLUME_MODIFIED, () => {
        anyFrame = true;
      });
      eventTarget.addEventListener(Enums.Events.IMAGE_VOLUME_LOADING_COMPLETED, () => {
        complete = performance.now() - t0;
        engine!.getViewport('vp').render();
      });
      el.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
        const now = performance.now() - t0;
        if (anyFrame && Number.isNaN(first)) first = now;
        if (Number.isFinite(complete) && Number.isNaN(final)) {
          final = now;
          check();
        }
      });
    }
  });
  if (req.layout === 'stack') {
    utilities.imageRetrieveMetadataProvider.add('stack', config);
    engine.enableElement({ viewportId: 'vp', type: Enums.ViewportType.STACK, element: el });
    t0 = performance.now();
    void (engine.getViewport('vp') as StackViewport).setStack(imageIds);
  } else {
    const volumeId = `cornerstoneStreamingImageVolume:bench${Date.now()}`;
    utilities.imageRetrieveMetadataProvider.add(volumeId, config);
    engine.enableElement({
      viewportId: 'vp',
      type: Enums.ViewportType.ORTHOGRAPHIC,
      element: el,
      defaultOptions: { orientation: Enums.OrientationAxis.AXIAL },
    });
    t0 = performance.now();
    const volume = (await volumeLoader.createAndCacheVolume(volumeId, { imageIds })) as Types.IImageVolume & {
      load: () => void;
    };
    await (engine.getViewport('vp') as VolumeViewport).setVolumes([{ volumeId }]);
    volume.load();
  }
  await done;
  return { firstRenderMs: first, finalRenderMs: final, completeMs: complete, frames: imageIds.length };
}

(window as unknown as { progressiveBench: unknown }).progressiveBench = { prepare, run };
