// Heatmap jobs over whole slides: a model runs on a grid of tiles at a chosen mpp (tile size and
// stride in output pixels), on tissue tiles only — the built-in tissue model on a thumbnail says
// which tiles to skip as background — and the job's result is the grid of scores (background
// cells empty). Jobs run through the jobs layer (src/jobs/: in this process, or BullMQ on Redis
// so any replica runs them and every replica answers); the grid is the job's one result file,
// and the map PNG and colour-mapped pyramid (heatmap-pyramid.ts) are rebuilt from it on demand.

import { setMaxListeners } from 'node:events';
import sharp from 'sharp';
import { BadRequest, Cancelled, MedStreamError, NotFound } from '../errors.js';
import type { JobContext, JobHandler, JobOutput, JobQueue, JobRecord } from '../jobs/queue.js';
import { DERIVED_PREFIX } from './derived-slides.js';
import { cellPixelsFor, heatmapTiff, legend, type HeatmapOverlay } from './heatmap-pyramid.js';
import { readClassification, readHeatmap, readMask } from './outputs.js';
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

/** What a job carries (plain JSON: any replica runs it). */
export interface HeatmapPayload {
  request: HeatmapRequest;
  columns: number;
  rows: number;
  /** The grid's extent over the source slide, in level-0 pixels. */
  width: number;
  height: number;
}

/** What a finished job returns besides its grid file. */
export interface HeatmapSummary {
  background: number;
  done: number;
}

export type HeatmapQueue = JobQueue<HeatmapPayload, HeatmapSummary>;

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
  /** The replica that ran it. */
  worker?: string;
  /** A cancellation was asked for and the job has not stopped yet. */
  cancelRequested?: boolean;
  /** Grid of scores, row by row; null for background cells (when done). */
  values?: (number | null)[];
  /** The map as a derived slide, and where it lies on the source slide (when done). */
  overlay?: HeatmapOverlay;
}

/** The grid file of a done job: float32 little-endian per cell, NaN for background. */
const GRID = 'grid.f32';
/** Largest grid accepted for one job. */
const MAX_TILES = 250_000;
/** Thumbnail size the tissue mask is computed at. */
const TISSUE_THUMBNAIL = 1024;
/** Derived-slide names of heat-map pyramids: `heatmaps/<job id>.tif`. */
const PYRAMID = /^heatmaps\/([0-9a-f-]{36})\.tif$/;

export class HeatmapJobs {
  private readonly queue: HeatmapQueue;
  private readonly slides = new Map<string, string>();

  constructor(
    private readonly ai: AiService,
    /** Builds the job queue around this handler (jobs/memory-queue.ts or jobs/redis-queue.ts). */
    queue: (handler: JobHandler<HeatmapPayload, HeatmapSummary>) => HeatmapQueue,
    /** Tiles in flight per job (enough to fill the model's batches). */
    private readonly concurrency: number,
    /** Whether pyramids are served as derived slides (ai/derived-slides.ts). */
    private readonly overlays: boolean,
  ) {
    this.queue = queue((payload, context) => this.run(payload, context));
  }

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
    const step = request.stride;
    const { job } = await this.queue.submit({
      request: { ...request, slide: opened.id },
      columns,
      rows,
      width: columns * step * (request.mpp / mpp_x),
      height: rows * step * (request.mpp / mpp_y),
    });
    return this.view(job);
  }

  async get(id: string): Promise<HeatmapJob> {
    const record = await this.queue.get(id);
    if (!record) throw new NotFound(`no heatmap job ${JSON.stringify(id)}`);
    return this.view(record);
  }

  /** The slide job `id` was made over, or undefined (auth: a viewer token of that slide reads it). */
  async slideOf(id: string): Promise<string | undefined> {
    const known = this.slides.get(id);
    if (known !== undefined) return known;
    const slide = (await this.queue.get(id).catch(() => undefined))?.payload.request.slide;
    if (slide !== undefined) {
      // A job's slide never changes: remembered (bounded, oldest forgotten first).
      this.slides.set(id, slide);
      if (this.slides.size > 1000) this.slides.delete(this.slides.keys().next().value as string);
    }
    return slide;
  }

  async cancel(id: string): Promise<HeatmapJob> {
    const record = await this.queue.cancel(id);
    if (!record) throw new NotFound(`no heatmap job ${JSON.stringify(id)}`);
    return this.view(record);
  }

  /** The grid of a done job; NotFound when the job is unknown, expired or not done. */
  async grid(id: string): Promise<{ columns: number; rows: number; values: (number | null)[] }> {
    const record = await this.queue.get(id);
    const bytes = record?.state === 'done' ? await this.queue.file(id, GRID) : undefined;
    if (!record || !bytes) throw new NotFound(`heatmap job ${JSON.stringify(id)} has no finished map`);
    return { columns: record.payload.columns, rows: record.payload.rows, values: decodeGrid(bytes) };
  }

  /** The map with one pixel per cell: 8-bit gray, round(255 * value), background 0. */
  async mapPng(id: string): Promise<Buffer> {
    const { columns, rows, values } = await this.grid(id);
    const plane = Buffer.alloc(columns * rows);
    values.forEach((v, i) => (plane[i] = v === null ? 0 : Math.round(255 * Math.min(1, Math.max(0, v)))));
    return sharp(plane, { raw: { width: columns, height: rows, channels: 1 } })
      .png()
      .toBuffer();
  }

  /** The loader of derived slides named `heatmaps/<job id>.tif`: the pyramid, rebuilt from the grid. */
  async pyramid(name: string): Promise<Uint8Array | undefined> {
    const m = PYRAMID.exec(name);
    if (!m) return undefined;
    try {
      const { columns, rows, values } = await this.grid(m[1]);
      return await heatmapTiff(values, columns, rows, cellPixelsFor(columns, rows));
    } catch (e) {
      if (e instanceof NotFound) return undefined;
      throw e;
    }
  }

  close(): Promise<void> {
    return this.queue.close();
  }

  private async view(record: JobRecord<HeatmapPayload, HeatmapSummary>): Promise<HeatmapJob> {
    const { request, columns, rows } = record.payload;
    const progress = { ...record.progress, ...record.summary };
    const job: HeatmapJob = {
      id: record.id,
      request,
      state: record.state,
      columns,
      rows,
      tiles: columns * rows,
      background: progress.background ?? 0,
      done: progress.done ?? 0,
      ...(record.error ? { error: `${record.error.code}: ${record.error.message}` } : {}),
      ...(record.startedAt ? { startedAt: new Date(record.startedAt).toISOString() } : {}),
      ...(record.finishedAt ? { finishedAt: new Date(record.finishedAt).toISOString() } : {}),
      ...(record.worker ? { worker: record.worker } : {}),
      ...(record.cancelRequested ? { cancelRequested: true } : {}),
    };
    if (record.state === 'done') {
      job.values = (await this.grid(record.id)).values;
      if (this.overlays)
        job.overlay = {
          slide: `${DERIVED_PREFIX}heatmaps/${record.id}.tif`,
          x: 0,
          y: 0,
          width: record.payload.width,
          height: record.payload.height,
          cellPixels: cellPixelsFor(columns, rows),
          legend: legend(),
        };
    }
    return job;
  }

  /** The job handler: runs on whichever replica the jobs layer hands the job to. */
  private async run(payload: HeatmapPayload, context: JobContext): Promise<JobOutput<HeatmapSummary>> {
    const { signal } = context;
    // Every tile in flight listens to the job's signal (its reads and its batch).
    setMaxListeners(Math.max(10, 4 * this.concurrency), signal);
    const { columns, rows } = payload;
    const tiles = columns * rows;
    const { model: name, slide, mpp, tileSize, stride, minTissue } = payload.request;
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
      payload.request.label !== undefined
        ? decl.labels.indexOf(payload.request.label)
        : decl.labels.length - 1;
    const values: (number | null)[] = new Array(tiles).fill(null);
    const cells: number[] = [];
    for (let i = 0; i < tiles; i++) {
      const c = i % columns;
      const r = Math.floor(i / columns);
      if (isTissue(c * stride * sx, r * stride * sy, tileSize * sx, tileSize * sy)) cells.push(i);
    }
    const background = tiles - cells.length;
    let done = 0;
    context.progress({ background, done });
    let next = 0;
    let reported = Date.now();
    const worker = async () => {
      while (next < cells.length) {
        if (signal.aborted) throw new Cancelled('heatmap job cancelled');
        const i = cells[next++];
        const x = Math.round((i % columns) * stride * sx);
        const y = Math.round(Math.floor(i / columns) * stride * sy);
        const source = { kind: 'region' as const, slide, x, y, width: tileSize, height: tileSize, mpp };
        const output = await this.inferWithRetry(model.name, source, signal);
        if (decl.task === 'classification') {
          values[i] = readClassification(output.data, decl).scores[labelIndex].score;
        } else if (decl.task === 'heatmap') values[i] = readHeatmap(output.data, output.dims, decl).mean;
        else values[i] = 1 - readMask(output.data, output.dims, decl).fractions[0].fraction;
        done++;
        // Progress at most every 200 ms (a Redis write each with --redis-url).
        if (Date.now() - reported >= 200) {
          reported = Date.now();
          context.progress({ done });
        }
      }
    };
    await Promise.all(Array.from({ length: this.concurrency }, worker));
    context.progress({ done });
    return { summary: { background, done }, files: { [GRID]: encodeGrid(values) } };
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

function encodeGrid(values: (number | null)[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v === null ? NaN : v, true));
  return bytes;
}

function decodeGrid(bytes: Uint8Array): (number | null)[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength >> 2 }, (_, i) => {
    const v = view.getFloat32(i * 4, true);
    return Number.isNaN(v) ? null : v;
  });
}
