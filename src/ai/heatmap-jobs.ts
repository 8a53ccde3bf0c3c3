// Heatmap jobs over whole slides: a model runs on a grid of tiles at a chosen mpp (tile size and
// stride in output pixels), on tissue tiles only — the built-in tissue model on a thumbnail says
// which tiles to skip as background — and the job's result is a map with one pixel per grid
// cell (value = the model's score for the cell; background cells 0) and a JSON grid. Jobs run
// one at a time in this process, with progress, and can be cancelled. A finished map is also
// written as a colour-mapped pyramid (heatmap-pyramid.ts) and registered as a derived slide, so
// the tile, IIIF and Deep Zoom routes serve it. (Redis-backed jobs across replicas: later work.)

import { randomUUID } from 'node:crypto';
import { BadRequest, Cancelled, MedStreamError, NotFound } from '../errors.js';
import type { DerivedSlides } from './derived-slides.js';
import { cellPixelsFor, heatmapTiff, legend, type HeatmapOverlay } from './heatmap-pyramid.js';
import { readClassification, readHeatmap, readMask } from './outputs.js';
import type { ResultStore } from './results.js';
import type { AiService } from './service.js';
import { detectTissue } from './tissue.js';

export interface HeatmapRequest {
  model: string;
  slide: string;
  /** Microns per pixel the model sees. */
  mpp: number;
  /** Tile side and step, in pixels at `mpp`. */
  tileSize: number;
  stride: number;
  /** Classification: the label whose score is mapped (default the last label). */
  label?: string;
  /** A tile is tissue when at least this fraction of its thumbnail footprint is (default 0.1). */
  minTissue: number;
}

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface HeatmapJob {
  id: string;
  request: HeatmapRequest;
  state: JobState;
  columns: number;
  rows: number;
  tiles: number;
  /** Tiles skipped as background. */
  background: number;
  /** Tissue tiles inferred so far. */
  done: number;
  error?: string;
  startedAt?: string;
  finishedAt?: string;
  /** Grid of scores, row by row; null for background cells (when done). */
  values?: (number | null)[];
  mapId?: string;
  /** The map as a derived slide, and where it lies on the source slide (when done). */
  overlay?: HeatmapOverlay;
}

/** Largest grid accepted for one job. */
const MAX_TILES = 250_000;
/** Thumbnail size the tissue mask is computed at. */
const TISSUE_THUMBNAIL = 1024;

export class HeatmapJobs {
  private readonly jobs = new Map<string, { job: HeatmapJob; controller: AbortController }>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly ai: AiService,
    private readonly results: ResultStore,
    /** Tiles in flight per job (enough to fill the model's batches). */
    private readonly concurrency: number,
    /** Finished jobs kept for status queries. */
    private readonly keep = 100,
    /** Where finished maps are registered as slides; absent: PNG map only. */
    private readonly derived?: DerivedSlides,
  ) {}

  /** Validates and queues a job; resolves once the grid is known. */
  async start(request: HeatmapRequest): Promise<HeatmapJob> {
    const model = this.ai.registry.get(request.model);
    if (request.label !== undefined && !model.declaration.labels.includes(request.label))
      throw new BadRequest(`model ${request.model} has no label ${JSON.stringify(request.label)}`);
    const opened = await this.ai.tiles.slide(request.slide);
    const { mpp_x, mpp_y } = opened.slide.properties;
    if (!mpp_x || !mpp_y) throw new BadRequest(`slide ${opened.id} has no microns-per-pixel`);
    const width = (opened.slide.width * mpp_x) / request.mpp;
    const height = (opened.slide.height * mpp_y) / request.mpp;
    const count = (extent: number) =>
      Math.max(1, Math.floor((extent - request.tileSize) / request.stride) + 1);
    const columns = count(width);
    const rows = count(height);
    if (columns * rows > MAX_TILES)
      throw new BadRequest(`${columns}x${rows} tiles exceed the limit of ${MAX_TILES}; raise stride or mpp`);
    const job: HeatmapJob = {
      id: randomUUID(),
      request: { ...request, slide: opened.id },
      state: 'queued',
      columns,
      rows,
      tiles: columns * rows,
      background: 0,
      done: 0,
    };
    const controller = new AbortController();
    this.jobs.set(job.id, { job, controller });
    this.forgetOld();
    this.chain = this.chain.then(() => this.run(job, controller.signal));
    return job;
  }

  get(id: string): HeatmapJob {
    const entry = this.jobs.get(id);
    if (!entry) throw new NotFound(`no heatmap job ${JSON.stringify(id)}`);
    return entry.job;
  }

  cancel(id: string): HeatmapJob {
    const entry = this.jobs.get(id);
    if (!entry) throw new NotFound(`no heatmap job ${JSON.stringify(id)}`);
    if (entry.job.state === 'queued' || entry.job.state === 'running') {
      entry.controller.abort(new Cancelled('heatmap job cancelled'));
      entry.job.state = 'cancelled';
    }
    return entry.job;
  }

  close(): void {
    for (const { controller } of this.jobs.values()) controller.abort(new Cancelled('server closing'));
  }

  private forgetOld(): void {
    const finished = [...this.jobs.values()].filter((e) => !['queued', 'running'].includes(e.job.state));
    for (const e of finished.slice(0, Math.max(0, finished.length - this.keep))) this.jobs.delete(e.job.id);
  }

  private async run(job: HeatmapJob, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    job.state = 'running';
    job.startedAt = new Date().toISOString();
    try {
      const { model: name, slide, mpp, tileSize, stride, minTissue } = job.request;
      const model = this.ai.registry.get(name);
      const decl = model.declaration;
      const opened = await this.ai.tiles.slide(slide, signal);
      const { mpp_x, mpp_y } = opened.slide.properties as { mpp_x: number; mpp_y: number };
      // Level-0 pixels per output pixel, per axis.
      const sx = mpp / mpp_x;
      const sy = mpp / mpp_y;
      // minTissue 0 keeps every tile: no thumbnail needed.
      const thumb =
        minTissue > 0
          ? await this.ai.pixels({ kind: 'slide', slide, size: TISSUE_THUMBNAIL }, signal)
          : undefined;
      const tissue = thumb ? detectTissue(thumb) : undefined;
      const isTissue = (x0: number, y0: number, w0: number, h0: number): boolean => {
        if (!thumb || !tissue) return true;
        const tx = thumb.width / opened.slide.width;
        const ty = thumb.height / opened.slide.height;
        const x1 = Math.max(0, Math.floor(x0 * tx));
        const y1 = Math.max(0, Math.floor(y0 * ty));
        const x2 = Math.min(thumb.width, Math.max(x1 + 1, Math.ceil((x0 + w0) * tx)));
        const y2 = Math.min(thumb.height, Math.max(y1 + 1, Math.ceil((y0 + h0) * ty)));
        let on = 0;
        for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) on += tissue.mask[y * thumb.width + x];
        return on / ((x2 - x1) * (y2 - y1)) >= minTissue;
      };
      const labelIndex =
        job.request.label !== undefined ? decl.labels.indexOf(job.request.label) : decl.labels.length - 1;
      const values: (number | null)[] = new Array(job.tiles).fill(null);
      const cells: number[] = [];
      for (let i = 0; i < job.tiles; i++) {
        const c = i % job.columns;
        const r = Math.floor(i / job.columns);
        if (isTissue(c * stride * sx, r * stride * sy, tileSize * sx, tileSize * sy)) cells.push(i);
        else job.background++;
      }
      let next = 0;
      const worker = async () => {
        while (next < cells.length) {
          if (signal.aborted) throw new Cancelled('heatmap job cancelled');
          const i = cells[next++];
          const x = Math.round((i % job.columns) * stride * sx);
          const y = Math.round(Math.floor(i / job.columns) * stride * sy);
          const source = { kind: 'region' as const, slide, x, y, width: tileSize, height: tileSize, mpp };
          const output = await this.inferWithRetry(model.name, source, signal);
          if (decl.task === 'classification') {
            values[i] = readClassification(output.data, decl).scores[labelIndex].score;
          } else if (decl.task === 'heatmap') values[i] = readHeatmap(output.data, output.dims, decl).mean;
          else values[i] = 1 - readMask(output.data, output.dims, decl).fractions[0].fraction;
          job.done++;
        }
      };
      await Promise.all(Array.from({ length: this.concurrency }, worker));
      job.values = values;
      const plane = new Uint8Array(job.tiles);
      values.forEach((v, i) => (plane[i] = v === null ? 0 : Math.round(255 * Math.min(1, Math.max(0, v)))));
      job.mapId = await this.results.putPlane({ data: plane, width: job.columns, height: job.rows });
      if (this.derived) {
        const cellPixels = cellPixelsFor(job.columns, job.rows);
        const tiff = await heatmapTiff(values, job.columns, job.rows, cellPixels);
        job.overlay = {
          slide: this.derived.put(`heatmaps/${job.id}.tif`, tiff),
          x: 0,
          y: 0,
          width: job.columns * stride * sx,
          height: job.rows * stride * sy,
          cellPixels,
          legend: legend(),
        };
      }
      job.state = 'done';
    } catch (e) {
      if ((job.state as JobState) !== 'cancelled') {
        job.state = 'failed';
        job.error = e instanceof MedStreamError ? `${e.code}: ${e.message}` : 'internal error';
      }
    } finally {
      job.finishedAt = new Date().toISOString();
    }
  }

  /** A full model queue is backpressure, not failure: wait and try the tile again. */
  private async inferWithRetry(
    name: string,
    source: Parameters<AiService['pixels']>[0],
    signal: AbortSignal,
  ): Promise<{ data: Float32Array; dims: number[] }> {
    for (;;) {
      try {
        const model = this.ai.registry.get(name);
        return await model.infer(() => this.ai.pixels(source, signal), signal);
      } catch (e) {
        if (!(e instanceof MedStreamError && e.code === 'overloaded')) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
