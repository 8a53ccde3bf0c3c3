// The heat-map layer of the whole-slide viewer (`/view/{id}?heatmap={job id}`): the finished
// job's map, a derived slide served by the Deep Zoom routes, added as a second tiled image
// placed at the job's overlay rectangle in the slide's level-0 pixels (so it stays aligned at
// every zoom), with controls: show/hide, opacity, blend (multiply keeps the slide's texture
// under the colour; normal shows the colours as they are) and a legend of the colour ramp.

import OpenSeadragon from 'openseadragon';
import { el, fetchJson, fetchText, withToken, type PageConfig } from './common';

interface HeatmapJobJson {
  state: string;
  request: { model: string; mpp: number; tileSize: number; label?: string };
  overlay?: {
    x: number;
    y: number;
    width: number;
    height: number;
    legend: [number, string][];
    dzi: string;
  };
}

const DZI_QUERY = 'tile_size=256&overlap=0';

/** Adds the layer of heat-map job `jobId` over the slide (level-0 width `slideWidth`). */
export async function addHeatmapLayer(
  viewer: OpenSeadragon.Viewer,
  slideWidth: number,
  jobId: string,
  config: PageConfig,
): Promise<void> {
  const job = await fetchJson<HeatmapJobJson>(withToken(`/ai/jobs/${encodeURIComponent(jobId)}`, config));
  const overlay = job.overlay;
  if (job.state !== 'done' || !overlay) throw new Error(`heat-map job ${jobId} is ${job.state}, not done`);
  const xml = await fetchText(withToken(`${overlay.dzi}?${DZI_QUERY}`, config));
  const size = /<Size Width="(\d+)" Height="(\d+)"/.exec(xml);
  if (!size) throw new Error('the heat map has no valid Deep Zoom descriptor');
  const tilesUrl = overlay.dzi.replace(/\/dzi$/, '/dzi_files/');
  const item = await new Promise<OpenSeadragon.TiledImage>((resolve, reject) => {
    viewer.addTiledImage({
      tileSource: {
        width: Number(size[1]),
        height: Number(size[2]),
        tileSize: 256,
        tileOverlap: 0,
        minLevel: 0,
        // PNG: the ramp's colours arrive exactly, cell edges stay sharp.
        getTileUrl: (level: number, x: number, y: number) =>
          withToken(`${tilesUrl}${level}/${x}_${y}.png?${DZI_QUERY}`, config),
      } as unknown as OpenSeadragon.TileSourceOptions,
      // Viewport units: the slide is 1 wide.
      x: overlay.x / slideWidth,
      y: overlay.y / slideWidth,
      width: overlay.width / slideWidth,
      opacity: 0.6,
      compositeOperation: 'multiply',
      success: (e: { item: OpenSeadragon.TiledImage }) => resolve(e.item),
      error: (e: { message?: string }) => reject(new Error(e.message ?? 'the heat map did not open')),
    } as unknown as Parameters<OpenSeadragon.Viewer['addTiledImage']>[0]);
  });
  document.body.dataset.heatmap = 'loading';
  const markLoaded = (loaded: boolean): void => {
    document.body.dataset.heatmap = loaded ? 'ready' : 'loading';
  };
  item.addHandler('fully-loaded-change', (e) =>
    markLoaded((e as unknown as { fullyLoaded: boolean }).fullyLoaded),
  );
  if (item.getFullyLoaded()) markLoaded(true);
  viewer.container.append(controls(item, job, overlay.legend));
}

function controls(
  item: OpenSeadragon.TiledImage,
  job: HeatmapJobJson,
  stops: [number, string][],
): HTMLElement {
  const box = el('div', 'heatmap-controls', undefined, { role: 'group', 'aria-label': 'Heat map' });
  const show = el('input', '', undefined, {
    type: 'checkbox',
    id: 'heatmap-show',
    'aria-label': 'Show heat map',
  });
  show.checked = true;
  const opacity = el('input', '', undefined, {
    type: 'range',
    id: 'heatmap-opacity',
    min: '0',
    max: '1',
    step: '0.05',
    value: '0.6',
    'aria-label': 'Heat map opacity',
  });
  const blend = el('select', '', undefined, { id: 'heatmap-blend', 'aria-label': 'Heat map blend' });
  blend.append(
    el('option', '', 'multiply', { value: 'multiply' }),
    el('option', '', 'normal', { value: 'source-over' }),
  );
  show.addEventListener('change', () => item.setOpacity(show.checked ? Number(opacity.value) : 0));
  opacity.addEventListener('input', () => {
    show.checked = true;
    item.setOpacity(Number(opacity.value));
  });
  blend.addEventListener('change', () => item.setCompositeOperation(blend.value));
  const title = `${job.request.model}${job.request.label ? ` (${job.request.label})` : ''}`;
  const label = el('label', 'heatmap-title', undefined, { for: 'heatmap-show' });
  label.append(show, document.createTextNode(` ${title}`));
  const legendBar = el('div', 'heatmap-legend', undefined, { 'aria-hidden': 'true' });
  legendBar.style.background = `linear-gradient(to right, ${stops.map(([v, c]) => `${c} ${v * 100}%`).join(', ')})`;
  const ticks = el('div', 'heatmap-ticks');
  ticks.append(el('span', '', '0'), el('span', '', '0.5'), el('span', '', '1'));
  const facts = el(
    'div',
    'heatmap-facts',
    `${job.request.mpp} µm/px, ${job.request.tileSize} px tiles; white: background`,
  );
  box.append(label, opacity, blend, legendBar, ticks, facts);
  return box;
}
