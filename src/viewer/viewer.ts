// The viewer (`GET /view/{id}`): OpenSeadragon over the Deep Zoom endpoint, with a navigator,
// a scale bar computed from the slide's MPP, a metadata panel, keyboard shortcuts, the
// viewport in the URL hash, a tile error indicator and a loading indicator; with
// `?heatmap={job id}`, a heat-map job's map as a colour layer (heatmap-layer.ts).
//
// The page fetches the DZI descriptor itself and hands OpenSeadragon a tile source whose tile
// URLs carry the descriptor's query (tile layout and, with signed URLs, the viewer token), so
// every request the page makes carries `vt` and `exp` when the server embedded a token.

import OpenSeadragon from 'openseadragon';
import {
  byId,
  el,
  fetchJson,
  fetchText,
  formatDimensions,
  formatMpp,
  readConfig,
  round,
  slideUrl,
  withToken,
  type SlideMetadata,
} from './common';
import { addHeatmapLayer } from './heatmap-layer';

/**
 * Deep Zoom tiles the size of the slide's own tiles, without overlap: at native levels they are
 * the stored tiles, passed through without decoding (docs/api.md).
 */
function dziQuery(meta: SlideMetadata): string {
  const l0 = meta.levels[0];
  const native = l0 && l0.tile_width === l0.tile_height && l0.tile_width >= 64 && l0.tile_width <= 1024;
  return `tile_size=${native ? l0.tile_width : 256}&overlap=0`;
}
const ZOOM_STEP = 1.5;
const PAN_STEP = 0.15;
/** Longest the scale bar may be, in CSS pixels. */
const SCALE_BAR_MAX_PX = 140;

const config = readConfig();
const slideId = config.slideId ?? '';
const api = (suffix: string): string => withToken(slideUrl(slideId, suffix), config);

const container = byId('osd');
const panel = byId('panel');
const infoToggle = byId<HTMLButtonElement>('info-toggle');

const progress = el('div', 'progress', undefined, { role: 'progressbar', 'aria-label': 'Loading' });
progress.append(el('div', 'progress-bar'), el('span', 'progress-text', 'Loading slide…'));
const scaleBar = el('div', 'scalebar', undefined, { 'aria-label': 'Scale bar' });
const scaleLine = el('div', 'scalebar-line');
const scaleText = el('span', 'scalebar-text');
scaleBar.append(scaleLine, scaleText);
scaleBar.hidden = true;
const tileErrors = el('button', 'tile-errors', undefined, { type: 'button', 'aria-live': 'polite' });
tileErrors.hidden = true;
container.append(progress, scaleBar, tileErrors);

function setState(state: 'loading' | 'ready' | 'error'): void {
  document.body.dataset.state = state;
}

function setLoading(loading: boolean, text = 'Loading tiles…'): void {
  progress.classList.toggle('active', loading);
  progress.querySelector('.progress-text')!.textContent = text;
  document.body.dataset.loading = String(loading);
}

function showFatal(message: string): void {
  setLoading(false);
  setState('error');
  container.append(el('div', 'viewer-error', message, { role: 'alert' }));
}

// ---- the info panel -------------------------------------------------------------------------

function setPanelOpen(open: boolean): void {
  document.body.classList.toggle('panel-open', open);
  infoToggle.setAttribute('aria-expanded', String(open));
}
setPanelOpen(window.matchMedia('(min-width: 900px)').matches);
infoToggle.addEventListener('click', () => setPanelOpen(!document.body.classList.contains('panel-open')));

function renderPanel(meta: SlideMetadata): void {
  const dl = el('dl', 'facts');
  const fact = (name: string, value: string | undefined, key: string): void => {
    if (!value) return;
    dl.append(el('dt', '', name), el('dd', '', value, { 'data-field': key }));
  };
  fact('Vendor', meta.vendor ?? undefined, 'vendor');
  fact('Format', meta.format, 'format');
  fact('Dimensions', formatDimensions(meta), 'dimensions');
  if (meta.mpp_x) {
    const w = (meta.width * meta.mpp_x) / 1000;
    const h = (meta.height * (meta.mpp_y ?? meta.mpp_x)) / 1000;
    fact('Physical size', `${round(w, 3)} × ${round(h, 3)} mm`, 'physical');
  }
  fact('MPP', formatMpp(meta) ?? 'unknown', 'mpp');
  fact('Objective', meta.objective_power ? `${meta.objective_power}×` : 'unknown', 'objective');
  fact('Levels', String(meta.level_count), 'level-count');

  const levels = el('table', 'levels');
  const head = el('tr');
  for (const h of ['Level', 'Size', 'Downsample', 'Tiles']) head.append(el('th', '', h));
  levels.append(head);
  for (const l of meta.levels) {
    const tr = el('tr');
    tr.append(
      el('td', '', String(l.level)),
      el('td', '', `${l.width} × ${l.height}`),
      el('td', '', `${round(l.downsample, 4)}${l.native === false ? ' (synth.)' : ''}`),
      el('td', '', `${l.tile_width}×${l.tile_height}`),
    );
    levels.append(tr);
  }

  const sections: HTMLElement[] = [el('h2', 'slide-name', slideId), dl, el('h3', '', 'Levels'), levels];
  const shown = (meta.associated_images ?? []).filter((a) => a.name === 'label' || a.name === 'macro');
  if (shown.length) {
    const figs = el('div', 'associated');
    for (const a of shown) {
      const fig = el('figure', '', undefined, { 'data-associated': a.name });
      const img = el('img', '', undefined, { alt: `${a.name} image` });
      img.src = api(`/associated/${encodeURIComponent(a.name)}.jpg`);
      fig.append(img, el('figcaption', '', `${a.name} (${a.width} × ${a.height})`));
      figs.append(fig);
    }
    sections.push(el('h3', '', 'Associated images'), figs);
  }
  const props = Object.entries(meta.properties ?? {});
  if (props.length) {
    const details = el('details', 'properties');
    details.append(el('summary', '', `Properties (${props.length})`));
    const table = el('table');
    for (const [k, v] of props.sort(([a], [b]) => a.localeCompare(b))) {
      const tr = el('tr');
      tr.append(el('th', '', k), el('td', '', v));
      table.append(tr);
    }
    details.append(table);
    sections.push(details);
  }
  panel.replaceChildren(...sections);
}

// ---- the scale bar ----------------------------------------------------------------------------

/** The largest 1, 2 or 5 × 10^n not above `x`. */
function niceFloor(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  const m = x / p;
  return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
}

function updateScaleBar(viewer: OpenSeadragon.Viewer, mpp: number): void {
  const imageZoom = viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true));
  if (!(imageZoom > 0)) return;
  const umPerPx = mpp / imageZoom;
  const length = niceFloor(umPerPx * SCALE_BAR_MAX_PX);
  scaleLine.style.width = `${Math.round(length / umPerPx)}px`;
  scaleText.textContent = length >= 1000 ? `${round(length / 1000, 3)} mm` : `${round(length, 3)} µm`;
  scaleBar.hidden = false;
}

// ---- the viewport in the URL hash -------------------------------------------------------------

interface HashView {
  x: number;
  y: number;
  z: number;
}

function parseHash(): HashView | undefined {
  const q = new URLSearchParams(location.hash.slice(1));
  const x = Number(q.get('x'));
  const y = Number(q.get('y'));
  const z = Number(q.get('z'));
  if (!q.has('x') || !q.has('y') || !q.has('z') || ![x, y, z].every(Number.isFinite) || z <= 0) return;
  return { x, y, z };
}

function applyHash(viewer: OpenSeadragon.Viewer, view: HashView): void {
  const vp = viewer.viewport;
  vp.zoomTo(view.z, undefined, true);
  vp.panTo(vp.imageToViewportCoordinates(view.x, view.y), true);
}

function writeHash(viewer: OpenSeadragon.Viewer): void {
  const vp = viewer.viewport;
  const c = vp.viewportToImageCoordinates(vp.getCenter(false));
  const hash = `#x=${Math.round(c.x)}&y=${Math.round(c.y)}&z=${round(vp.getZoom(false), 4)}`;
  if (hash !== location.hash) history.replaceState(null, '', hash);
}

// ---- tile errors ------------------------------------------------------------------------------

const failures: string[] = [];

async function tileErrorMessage(url: string, fallback: string): Promise<string> {
  try {
    const res = await fetch(url, { cache: 'no-store' });
    if (res.ok) return fallback;
    const body = (await res.json()) as { message?: unknown };
    return typeof body.message === 'string' ? `${res.status}: ${body.message}` : `HTTP ${res.status}`;
  } catch {
    return fallback;
  }
}

function showTileError(message: string): void {
  failures.push(message);
  const distinct = [...new Set(failures)];
  tileErrors.hidden = false;
  tileErrors.textContent = `⚠ ${failures.length} tile${failures.length === 1 ? '' : 's'} failed: ${distinct.at(-1)}`;
  tileErrors.title = distinct.slice(-10).join('\n');
}
tileErrors.addEventListener('click', () => tileErrors.classList.toggle('expanded'));

// ---- keyboard ----------------------------------------------------------------------------------

function bindKeys(viewer: OpenSeadragon.Viewer): void {
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target as HTMLElement | null;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const vp = viewer.viewport;
    const bounds = vp.getBounds();
    const pan = (dx: number, dy: number): void => {
      vp.panBy(new OpenSeadragon.Point(dx * bounds.width * PAN_STEP, dy * bounds.height * PAN_STEP));
      vp.applyConstraints();
    };
    switch (e.key) {
      case '+':
      case '=':
        vp.zoomBy(ZOOM_STEP);
        vp.applyConstraints();
        break;
      case '-':
      case '_':
        vp.zoomBy(1 / ZOOM_STEP);
        vp.applyConstraints();
        break;
      case 'Home':
        vp.goHome();
        break;
      case 'f':
      case 'F':
        viewer.setFullScreen(!viewer.isFullPage());
        break;
      case 'ArrowLeft':
        pan(-1, 0);
        break;
      case 'ArrowRight':
        pan(1, 0);
        break;
      case 'ArrowUp':
        pan(0, -1);
        break;
      case 'ArrowDown':
        pan(0, 1);
        break;
      default:
        return;
    }
    e.preventDefault();
  });
}

// ---- start -------------------------------------------------------------------------------------

interface Dzi {
  width: number;
  height: number;
  tileSize: number;
  overlap: number;
  format: string;
}

function parseDzi(xml: string): Dzi {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  const image = doc.getElementsByTagName('Image')[0];
  const size = doc.getElementsByTagName('Size')[0];
  if (!image || !size) throw new Error('the Deep Zoom descriptor is not valid');
  return {
    width: Number(size.getAttribute('Width')),
    height: Number(size.getAttribute('Height')),
    tileSize: Number(image.getAttribute('TileSize')),
    overlap: Number(image.getAttribute('Overlap')),
    format: image.getAttribute('Format') ?? 'jpg',
  };
}

async function start(): Promise<void> {
  setState('loading');
  setLoading(true, 'Loading slide…');
  const meta = await fetchJson<SlideMetadata>(api(''));
  renderPanel(meta);
  const query = dziQuery(meta);
  const dzi = parseDzi(await fetchText(api(`/dzi?${query}`)));
  document.title = `${slideId} — MedStream`;

  const tilesUrl = slideUrl(slideId, '/dzi_files/');
  const viewer = OpenSeadragon({
    element: container,
    prefixUrl: '/assets/openseadragon/images/',
    drawer: 'canvas',
    showNavigator: true,
    navigatorPosition: 'TOP_RIGHT',
    navigatorAutoFade: false,
    showRotationControl: false,
    keyboardNavEnabled: false,
    visibilityRatio: 0.5,
    maxZoomPixelRatio: 2,
    animationTime: 0.6,
    tileSources: {
      width: dzi.width,
      height: dzi.height,
      tileSize: dzi.tileSize,
      tileOverlap: dzi.overlap,
      minLevel: 0,
      getTileUrl: (level: number, x: number, y: number) =>
        withToken(`${tilesUrl}${level}/${x}_${y}.${dzi.format}?${query}`, config),
    } as unknown as OpenSeadragon.TileSourceOptions,
  });
  // Bundled code, one page: a handle for debugging from the console.
  (window as unknown as { medstreamViewer: OpenSeadragon.Viewer }).medstreamViewer = viewer;

  const mpp = meta.mpp_x ?? undefined;
  const onViewport = (): void => {
    if (mpp) updateScaleBar(viewer, mpp);
  };
  viewer.addHandler('open', () => {
    const view = parseHash();
    if (view) applyHash(viewer, view);
    onViewport();
    writeHash(viewer);
    setLoading(true);
    const item = viewer.world.getItemAt(0);
    item.addHandler('fully-loaded-change', (e) => {
      const loaded = (e as unknown as { fullyLoaded: boolean }).fullyLoaded;
      setLoading(!loaded);
      if (loaded) setState('ready');
    });
    if (item.getFullyLoaded()) {
      setLoading(false);
      setState('ready');
    }
    const heatmap = new URLSearchParams(location.search).get('heatmap');
    if (heatmap)
      addHeatmapLayer(viewer, dzi.width, heatmap, config).catch((e: Error) =>
        showTileError(`heat map: ${e.message}`),
      );
  });
  viewer.addHandler('open-failed', (e) => showFatal(`Could not open the slide: ${e.message}`));
  viewer.addHandler('animation', onViewport);
  viewer.addHandler('resize', onViewport);
  viewer.addHandler('animation-finish', () => {
    onViewport();
    writeHash(viewer);
  });
  viewer.addHandler('tile-load-failed', (e) => {
    const url = e.tile.getUrl();
    void tileErrorMessage(url, e.message ?? 'tile failed to load').then(showTileError);
  });
  window.addEventListener('hashchange', () => {
    const view = parseHash();
    if (view) applyHash(viewer, view);
  });
  bindKeys(viewer);
}

start().catch((e: Error) => showFatal(`Could not open the slide: ${e.message}`));
