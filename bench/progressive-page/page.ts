// Browser side of `npm run bench -- progressive` (bundled by bench/progressive-setup.ts): starts
// Cornerstone3D, loads a series' metadata and warms the decoders (excluded from the timings, as in
// Cornerstone3D's published table) and, asked to, the renderer too; then loads a stack or a volume
// with a retrieve configuration and reports first render, final render, completion and where the
// time to the first render went (ms after the load began).

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
type Layout = 'stack' | 'volume';

export interface RunRequest {
  layout: Layout;
  /** Retrieve options of the fast stage (undefined: one full-quality stage). */
  fast?: Options;
  final: Options;
  /** Volume: render the empty volume right after volume.load(), as the radiology viewer does. */
  earlyDraw?: boolean;
}

/** Where the time to the first render went, ms after the load began (NaN: not seen). */
export interface Breakdown {
  /** Volume: createAndCacheVolume and setVolumes done (the empty volume's texture). */
  viewportReadyMs: number;
  /** First frame request sent (Resource Timing's startTime of the earliest frame request). */
  firstRequestMs: number;
  /** The first frame response that finished arriving (Resource Timing's responseEnd). */
  firstResponseEndMs: number;
  /** Stack: the decoded first-stage image handed to the viewport; volume: first frame in the volume. */
  imageReadyMs: number;
  /** Stack: the viewport's actor updated for that image (vtk image data built). */
  actorReadyMs: number;
  /** The decode worker's own time for the first image shown (decodeTimeInMS; stack only). */
  decodeMs: number;
  /** Width × height of the first image shown (stack: a partial decode is smaller than the frame). */
  firstImageSize: string;
  /** The first render's draw: the rendering engine's animation-frame callback → IMAGE_RENDERED. */
  firstDrawMs: number;
  /** Volume: the draw of the empty volume (earlyDraw), which builds its 3D texture. */
  emptyDrawMs: number;
  /** A render alone once everything is loaded: viewport.render() → IMAGE_RENDERED, median of 3. */
  renderAloneMs: number;
  /** Its draw alone (animation-frame callback → IMAGE_RENDERED; the rest waits for the frame). */
  drawAloneMs: number;
}

export interface RunResult extends Breakdown {
  firstRenderMs: number;
  finalRenderMs: number;
  completeMs: number;
  frames: number;
}

const FULL = Enums.ImageQualityStatus.FULL_RESOLUTION;
let imageIds: string[] = [];
let engine: RenderingEngine | undefined;
let el: HTMLDivElement | undefined;
/** When the rendering engine's last animation-frame callback (the draw) began. */
let frameStart = NaN;

/** The rendering engine, its animation-frame callback timed (the ContextPoolRenderingEngine inside, 5.14). */
function makeEngine(): RenderingEngine {
  const e = new RenderingEngine('bench');
  const timed = (e as unknown as { _implementation: { _renderFlaggedViewports: () => void } })
    ._implementation;
  const draw = timed._renderFlaggedViewports;
  timed._renderFlaggedViewports = () => {
    frameStart = performance.now();
    draw();
  };
  return e;
}

/**
 * Page start: Cornerstone, the series metadata, and one decode per codec on the warm-up series;
 * with `warmRender`, also the viewport the run will use, rendered once with the warm-up series
 * (WebGL context, shaders, textures: what a viewer that has already shown a series has).
 */
async function prepare(
  root: string,
  study: string,
  series: string,
  warm: [string, string],
  options: Options[],
  warmRender?: { layout: Layout; fast?: Options; final: Options },
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
  if (warmRender) {
    await showOnce(warmRender, warmIds, 'warm');
    cache.purgeCache();
  }
  return imageIds.length;
}

function element(): HTMLDivElement {
  const div = document.createElement('div');
  div.style.width = '512px';
  div.style.height = '512px';
  document.body.appendChild(div);
  return div;
}

const ms = (t0: number) => performance.now() - t0;

/** Resolves on the element's next IMAGE_RENDERED (render() → drawn). */
function nextRender(): Promise<void> {
  return new Promise((resolve) =>
    el!.addEventListener(Enums.Events.IMAGE_RENDERED, () => resolve(), { once: true }),
  );
}

/** The median time of three renders of what is on screen, and of their draws alone. */
async function renderAlone(): Promise<[number, number]> {
  const times: number[] = [];
  const draws: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const drawn = nextRender();
    engine!.getViewport('vp').render();
    await drawn;
    times.push(performance.now() - t);
    draws.push(performance.now() - frameStart);
  }
  const median = (x: number[]) => x.sort((a, b) => a - b)[1];
  return [median(times), median(draws)];
}

/** The earliest frame request's start and the first frame response's end, from Resource Timing. */
function firstResponse(t0: number): { start: number; end: number } {
  const entries = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).filter(
    (e) => e.name.includes('/instances/') && e.startTime >= t0,
  );
  if (entries.length === 0) return { start: NaN, end: NaN };
  return {
    start: Math.min(...entries.map((e) => e.startTime)) - t0,
    end: Math.min(...entries.map((e) => e.responseEnd)) - t0,
  };
}

/** Loads `ids` into the viewport ('vp', made on first use) in the stages of `req`, and times it. */
async function showOnce(req: RunRequest, ids: string[], name: string): Promise<RunResult> {
  const firstUse = engine === undefined;
  engine ??= makeEngine();
  el ??= element();
  const config = retrieveConfiguration(req.layout, req.fast, req.final);
  performance.setResourceTimingBufferSize(5000);
  performance.clearResourceTimings();
  const r: RunResult = {
    firstRenderMs: NaN,
    finalRenderMs: NaN,
    completeMs: NaN,
    frames: ids.length,
    viewportReadyMs: NaN,
    firstRequestMs: NaN,
    firstResponseEndMs: NaN,
    imageReadyMs: NaN,
    actorReadyMs: NaN,
    decodeMs: NaN,
    firstImageSize: '',
    firstDrawMs: NaN,
    emptyDrawMs: NaN,
    renderAloneMs: NaN,
    drawAloneMs: NaN,
  };
  let anyFrame = false;
  let t0 = 0;
  const ac = new AbortController();
  const on = (target: EventTarget, type: string, f: (e: Event) => void) =>
    target.addEventListener(type, f, { signal: ac.signal });
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not complete after 180 s`)), 180_000);
    const check = () => {
      if (Number.isFinite(r.finalRenderMs) && Number.isFinite(r.completeMs)) {
        clearTimeout(timer);
        resolve();
      }
    };
    if (req.layout === 'stack') {
      on(el!, Enums.Events.IMAGE_RENDERED, () => {
        const now = ms(t0);
        const image = (engine!.getViewport('vp') as StackViewport).getCornerstoneImage();
        if (Number.isNaN(r.firstRenderMs) && image) {
          r.firstRenderMs = now;
          r.firstDrawMs = performance.now() - frameStart;
          r.decodeMs = (image as { decodeTimeInMS?: number }).decodeTimeInMS ?? NaN;
          r.firstImageSize = `${image.columns}×${image.rows}`;
        }
        if (Number.isNaN(r.finalRenderMs) && image && (image.imageQualityStatus ?? FULL) >= FULL) {
          r.finalRenderMs = r.completeMs = now;
          check();
        }
      });
    } else {
      on(eventTarget, Enums.Events.IMAGE_VOLUME_MODIFIED, () => {
        if (!anyFrame) r.imageReadyMs = ms(t0);
        anyFrame = true;
      });
      on(eventTarget, Enums.Events.IMAGE_VOLUME_LOADING_COMPLETED, () => {
        r.completeMs = ms(t0);
        engine!.getViewport('vp').render();
      });
      on(el!, Enums.Events.IMAGE_RENDERED, () => {
        const now = ms(t0);
        if (!anyFrame && Number.isNaN(r.emptyDrawMs)) r.emptyDrawMs = performance.now() - frameStart;
        if (anyFrame && Number.isNaN(r.firstRenderMs)) {
          r.firstRenderMs = now;
          r.firstDrawMs = performance.now() - frameStart;
        }
        if (Number.isFinite(r.completeMs) && Number.isNaN(r.finalRenderMs)) {
          r.finalRenderMs = now;
          check();
        }
      });
    }
  });
  if (req.layout === 'stack') {
    utilities.imageRetrieveMetadataProvider.add('stack', config);
    if (firstUse) engine.enableElement({ viewportId: 'vp', type: Enums.ViewportType.STACK, element: el });
    const viewport = engine.getViewport('vp') as StackViewport & {
      successCallback: (imageId: string, image: unknown) => void;
    };
    // The moment the first decoded image reaches the viewport, and its actor is built.
    const success = Object.getPrototypeOf(viewport).successCallback as typeof viewport.successCallback;
    viewport.successCallback = function (this: typeof viewport, imageId, image) {
      if (Number.isNaN(r.imageReadyMs)) r.imageReadyMs = ms(t0);
      success.call(this, imageId, image);
      if (Number.isNaN(r.actorReadyMs)) r.actorReadyMs = ms(t0);
    };
    t0 = performance.now();
    void viewport.setStack(ids);
  } else {
    const volumeId = `cornerstoneStreamingImageVolume:${name}${Date.now()}`;
    utilities.imageRetrieveMetadataProvider.add(volumeId, config);
    if (firstUse)
      engine.enableElement({
        viewportId: 'vp',
        type: Enums.ViewportType.ORTHOGRAPHIC,
        element: el,
        defaultOptions: { orientation: Enums.OrientationAxis.AXIAL },
      });
    t0 = performance.now();
    const volume = (await volumeLoader.createAndCacheVolume(volumeId, {
      imageIds: ids,
    })) as Types.IImageVolume & {
      load: () => void;
    };
    await (engine.getViewport('vp') as VolumeViewport).setVolumes([{ volumeId }]);
    r.viewportReadyMs = ms(t0);
    volume.load();
    // As the radiology viewer does (display.ts): draw the empty volume now, so that building its
    // texture overlaps the first requests (BENCH_PROGRESSIVE_EARLY_DRAW=1; by default the first
    // draw waits for the first frame, as in runs 1-4).
    if (req.earlyDraw) engine.render();
  }
  try {
    await done;
  } finally {
    ac.abort();
  }
  const first = firstResponse(t0);
  r.firstRequestMs = first.start;
  r.firstResponseEndMs = first.end;
  [r.renderAloneMs, r.drawAloneMs] = await renderAlone();
  return r;
}

async function run(req: RunRequest): Promise<RunResult> {
  return showOnce(req, imageIds, 'bench');
}

(window as unknown as { progressiveBench: unknown }).progressiveBench = { prepare, run };
