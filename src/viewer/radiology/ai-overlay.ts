// The radiology viewer's AI overlay (`#…&ai={result id}`): a series result of radiology inference
// (docs/ai.md: a segmentation's label map or a heat map's probability map, one PNG per slice,
// described by `/ai/results/{id}.json`) over the series shown, DICOM or NIfTI-backed (a NIfTI
// result names the slice instances the catalog serves). Result slices are matched to the series'
// frames by SOP Instance UID. Labels get fixed colours (class 0 clear), maps the slide heat maps'
// ramp (ai/colour-ramp.ts, RdYlBu; 0 clear); a panel toggles it and sets its opacity.
// - Stack: drawn on its own canvas with the image's pixel-to-world geometry and the viewport's
//   world-to-canvas transform, so it follows scroll, zoom, pan and flips.
// - MPR: a Cornerstone labelmap segmentation (one derived labelmap image per frame, the value of
//   each voxel its class, or for a map its 0..255 value with a 256-entry ramp LUT), which
//   Cornerstone reslices into the axial, sagittal and coronal planes with the CT. The whole result
//   comes in one request (`/ai/results/{id}.raw`, gzip), not one per slice.
// The stack fetches a slice's PNG only when its frame is shown.

import { cache, Enums, imageLoader, utilities as csUtilities, type Types } from '@cornerstonejs/core';
import { Enums as ToolEnums, segmentation } from '@cornerstonejs/tools';
import { rampColour } from '../../ai/colour-ramp.js';
import type { DicomwebClient } from './dicomweb.js';
import type { SeriesDisplay } from './display.js';

interface ResultInfo {
  model: string;
  task: 'segmentation' | 'heatmap';
  labels: string[];
  columns: number;
  rows: number;
  /** The whole volume's voxels, one byte each (i fastest, then j, then slice). */
  raw: string;
  slices: { slice: number; instance?: string; png: string }[];
}

/** Class colours (class k uses LABEL_COLOURS[(k - 1) % n]). */
const LABEL_COLOURS: [number, number, number][] = [
  [255, 64, 64],
  [64, 200, 255],
  [255, 200, 0],
  [120, 255, 120],
  [220, 100, 255],
  [255, 140, 60],
];
/** The SOP Instance UID a WADO-RS image id names. */
function instanceOf(imageId: string | undefined): string | undefined {
  const m = imageId ? /\/instances\/([^/]+)\/frames\//.exec(imageId) : null;
  return m ? decodeURIComponent(m[1]) : undefined;
}

/** GET a path of the server (beside `/dicomweb`) with the page's credentials. */
function getter(client: DicomwebClient): (path: string) => Promise<Response> {
  const base = client.root.replace(/\/dicomweb$/, '');
  return async (path) => {
    const res = await fetch(`${base}${path}`, { headers: client.headers() });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res;
  };
}

/**
 * Shows result `resultId` over `display`: on the stack's own canvas, or as a labelmap on the
 * three MPR planes. Returns what removes it (before the display is destroyed).
 */
export async function attachAiOverlay(
  display: SeriesDisplay,
  elements: HTMLDivElement[],
  resultId: string,
  client: DicomwebClient,
): Promise<() => void> {
  const get = getter(client);
  const info = (await (await get(`/ai/results/${encodeURIComponent(resultId)}.json`)).json()) as ResultInfo;
  if (display.layout === 'mpr') return attachLabelmap(display, elements[0], resultId, info, get);
  await attachCanvas(display.mainViewport() as Types.IStackViewport, elements[0], info, get);
  return () => undefined;
}

/** The stack: each frame's result slice drawn on a canvas over the viewport. */
async function attachCanvas(
  viewport: Types.IStackViewport,
  element: HTMLDivElement,
  info: ResultInfo,
  get: (path: string) => Promise<Response>,
): Promise<void> {
  const byInstance = new Map(info.slices.filter((s) => s.instance).map((s) => [s.instance!, s]));
  const layers = new Map<number, Promise<HTMLCanvasElement>>();
  const layer = (slice: { slice: number; png: string }): Promise<HTMLCanvasElement> => {
    let p = layers.get(slice.slice);
    if (!p) {
      p = get(slice.png)
        .then((r) => r.blob())
        .then((b) => createImageBitmap(b))
        .then((bitmap) => colourise(bitmap, info.task));
      layers.set(slice.slice, p);
    }
    return p;
  };

  if (getComputedStyle(element).position === 'static') element.style.position = 'relative';
  const canvas = document.createElement('canvas');
  canvas.className = 'rad-ai-overlay';
  canvas.style.cssText = 'position:absolute;inset:0;width:100%;height:100%;pointer-events:none;z-index:2';
  element.append(canvas);
  let opacity = 0.5;
  let shown = true;

  const draw = async (): Promise<void> => {
    const imageId = viewport.getCurrentImageId();
    const slice = byInstance.get(instanceOf(imageId) ?? '');
    const ctx = canvas.getContext('2d')!;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(element.clientWidth * ratio);
    const height = Math.round(element.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
    if (!slice || !imageId || !shown) {
      ctx.clearRect(0, 0, width, height);
      document.body.dataset.aiOverlay = slice ? 'hidden' : 'none';
      return;
    }
    const picture = await layer(slice);
    // The frame may have changed while the slice loaded: draw what is current.
    if (viewport.getCurrentImageId() !== imageId) return;
    // Image pixel corners (0,0), (columns,0), (0,rows) -> canvas: an affine map.
    const at = (x: number, y: number): Types.Point2 =>
      viewport.worldToCanvas(csUtilities.imageToWorldCoords(imageId, [x, y]) as Types.Point3);
    const [o, u, v] = [at(0, 0), at(info.columns, 0), at(0, info.rows)];
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.setTransform(
      (ratio * (u[0] - o[0])) / info.columns,
      (ratio * (u[1] - o[1])) / info.columns,
      (ratio * (v[0] - o[0])) / info.rows,
      (ratio * (v[1] - o[1])) / info.rows,
      ratio * o[0],
      ratio * o[1],
    );
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = opacity;
    ctx.drawImage(picture, 0, 0);
    document.body.dataset.aiOverlay = 'ready';
    document.body.dataset.aiSlice = String(slice.slice);
  };
  let drawing = Promise.resolve();
  const redraw = (): void => {
    drawing = drawing.then(draw).catch((e: Error) => {
      document.body.dataset.aiOverlay = `error: ${e.message}`;
    });
  };
  element.addEventListener(Enums.Events.IMAGE_RENDERED, redraw);
  element.append(controls(info, (s, a) => ((shown = s), (opacity = a), redraw())));
  redraw();
}

const LABELMAP = ToolEnums.SegmentationRepresentations.Labelmap;

/**
 * MPR: the result as a labelmap segmentation on every viewport of the display (Cornerstone builds
 * the labelmap volume from one derived image per frame and reslices it with the CT).
 */
async function attachLabelmap(
  display: SeriesDisplay,
  element: HTMLDivElement,
  resultId: string,
  info: ResultInfo,
  get: (path: string) => Promise<Response>,
): Promise<() => void> {
  const imageIds = display.series.imageIds;
  const bySop = new Map(info.slices.filter((x) => x.instance).map((x) => [x.instance!, x]));
  const images = imageLoader.createAndCacheDerivedLabelmapImages(imageIds);
  const id = `ai-${resultId}`;
  const labelmapIds = images.map((i) => i.imageId);
  const removeImages = (): void => {
    for (const imageId of labelmapIds) cache.removeImageLoadObject(imageId, { force: true });
  };
  try {
    const plane = info.columns * info.rows;
    const voxels = new Uint8Array(await (await get(info.raw)).arrayBuffer());
    if (voxels.length !== plane * info.slices.length)
      throw new Error(`the result has ${voxels.length} voxels, not ${plane} x ${info.slices.length}`);
    let placed = 0;
    imageIds.forEach((imageId, k) => {
      const slice = bySop.get(instanceOf(imageId) ?? '');
      const image = images[k];
      if (!slice || image.columns !== info.columns || image.rows !== info.rows) return;
      const values = voxels.subarray(slice.slice * plane, (slice.slice + 1) * plane);
      const vm = image.voxelManager as unknown as { setAtIndex(i: number, v: number): void };
      for (let p = 0; p < values.length; p++) if (values[p]) vm.setAtIndex(p, values[p]);
      placed++;
    });
    if (placed === 0) throw new Error('no slice of the result lies on this series');
  } catch (e) {
    removeImages();
    throw e;
  }
  // Label maps: class k in LABEL_COLOURS; maps: every value 1..255 its ramp colour. 0 is clear.
  const lut: Types.ColorLUT = [[0, 0, 0, 0]];
  const classes = info.task === 'segmentation' ? Math.max(2, info.labels.length) : 256;
  for (let v = 1; v < classes; v++)
    lut[v] = [
      ...(info.task === 'segmentation' ? LABEL_COLOURS[(v - 1) % LABEL_COLOURS.length] : rampColour(v / 255)),
      255,
    ];
  const segments =
    info.task === 'segmentation'
      ? Array.from(
          { length: classes - 1 },
          (_, i) => [i + 1, info.labels[i + 1] || `class ${i + 1}`] as const,
        )
      : ([[1, 'map']] as const);
  segmentation.addSegmentations([
    {
      segmentationId: id,
      representation: { type: LABELMAP, data: { imageIds: labelmapIds } },
      config: {
        label: `AI: ${info.model}`,
        segments: Object.fromEntries(segments.map(([n, label]) => [n, { segmentIndex: n, label }])),
      },
    },
  ]);
  await segmentation.addLabelmapRepresentationToViewportMap(
    Object.fromEntries(
      display.viewportIds.map((v) => [v, [{ segmentationId: id, config: { colorLUTOrIndex: lut } }]]),
    ),
  );
  const style = (opacity: number): void => {
    segmentation.config.style.setStyle(
      { type: LABELMAP, segmentationId: id },
      {
        renderFill: true,
        fillAlpha: opacity,
        renderOutline: false,
        renderFillInactive: true,
        fillAlphaInactive: opacity,
        renderOutlineInactive: false,
      },
    );
  };
  style(0.5);
  display.engine.render();
  const panel = controls(info, (shown, opacity) => {
    style(opacity);
    for (const v of display.viewportIds)
      segmentation.config.visibility.setSegmentationRepresentationVisibility(
        v,
        { segmentationId: id, type: LABELMAP },
        shown,
      );
    display.engine.render();
    document.body.dataset.aiOverlay = shown ? 'ready' : 'hidden';
  });
  if (getComputedStyle(element).position === 'static') element.style.position = 'relative';
  element.append(panel);
  document.body.dataset.aiOverlay = 'ready';
  return () => {
    panel.remove();
    segmentation.removeSegmentation(id);
    removeImages();
  };
}

/** The gray result slice as colours: labels (class 0 clear) or the ramp (0 clear). */
function colourise(bitmap: ImageBitmap, task: ResultInfo['task']): HTMLCanvasElement {
  const c = document.createElement('canvas');
  [c.width, c.height] = [bitmap.width, bitmap.height];
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  const img = ctx.getImageData(0, 0, c.width, c.height);
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const value = d[i];
    const colour =
      value === 0
        ? undefined
        : task === 'segmentation'
          ? LABEL_COLOURS[(value - 1) % LABEL_COLOURS.length]
          : rampColour(value / 255);
    if (colour) [d[i], d[i + 1], d[i + 2], d[i + 3]] = [...colour, 255];
    else d[i + 3] = 0;
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

function controls(info: ResultInfo, onChange: (shown: boolean, opacity: number) => void): HTMLElement {
  const box = document.createElement('div');
  box.className = 'rad-ai-controls';
  box.style.cssText =
    'position:absolute;right:6px;bottom:6px;z-index:3;background:rgba(0,0,0,.6);color:#fff;padding:4px 6px;font:12px sans-serif';
  const show = document.createElement('input');
  show.type = 'checkbox';
  show.checked = true;
  show.id = 'rad-ai-show';
  const label = document.createElement('label');
  label.htmlFor = show.id;
  label.textContent = ` AI: ${info.model} (${info.task === 'segmentation' ? info.labels.slice(1).join(', ') || 'mask' : 'map'}) `;
  const opacity = document.createElement('input');
  opacity.type = 'range';
  opacity.id = 'rad-ai-opacity';
  opacity.min = '0';
  opacity.max = '1';
  opacity.step = '0.05';
  opacity.value = '0.5';
  opacity.setAttribute('aria-label', 'AI overlay opacity');
  const changed = (): void => onChange(show.checked, Number(opacity.value));
  show.addEventListener('change', changed);
  opacity.addEventListener('input', changed);
  box.append(show, label, opacity);
  // The panel lies on a viewport: its clicks and drags must not reach the viewport's tools (a
  // click on the checkbox would move the crosshairs, and with them the other planes).
  for (const type of ['pointerdown', 'mousedown', 'mouseup', 'click', 'dblclick', 'touchstart', 'wheel'])
    box.addEventListener(type, (e) => e.stopPropagation());
  return box;
}
