// The AI service: lists models, and runs one on an uploaded PNG/JPEG, a whole-slide region (level
// or mpp plus rectangle) or a whole slide's thumbnail, read through the TileService (never HTTP).
// Answers JSON-ready objects: class scores with labels, or a result id and PNG link for masks and
// heat maps; the built-in `tissue` model runs here, on the main thread (a thumbnail takes ms).

import sharp from 'sharp';
import { BadRequest, NotFound, UnsupportedFormat } from '../errors.js';
import { encodeSegmentation } from '../segment/dicom-seg.js';
import { encodeNiftiMask } from '../volumes/nifti.js';
import type { TileService } from '../tiles/tile-service.js';
import type { ModelDeclaration } from './declaration.js';
import type { DerivedSlides } from './derived-slides.js';
import { MemoryJobQueue } from '../jobs/memory-queue.js';
import type { JobHandler } from '../jobs/queue.js';
import { HeatmapJobs, type HeatmapPayload, type HeatmapQueue, type HeatmapSummary } from './heatmap-jobs.js';
import { readClassification, readHeatmap, readMask } from './outputs.js';
import { decodeSimplePng } from './png-decode.js';
import type { Pixels } from './preprocess.js';
import { inferRadiology, type DicomInferSource } from './radiology-infer.js';
import type { RadiologySource } from './radiology-source.js';
import type { ModelRegistry } from './registry.js';
import type { ResultStore } from './results.js';
import { detectTissue } from './tissue.js';

export type InferSource =
  | { kind: 'image'; bytes: Buffer }
  | {
      kind: 'region';
      slide: string;
      x: number;
      y: number;
      width: number;
      height: number;
      level?: number;
      mpp?: number;
    }
  /** The whole slide, as a thumbnail whose longer side is `size` pixels. */
  | { kind: 'slide'; slide: string; size: number }
  /** Radiology data from the catalog: one frame of an instance, or a whole series. */
  | DicomInferSource;

export interface ModelInfo {
  name: string;
  builtIn: boolean;
  task: ModelDeclaration['task'];
  description: string;
  input?: ModelDeclaration['input'];
  preprocess?: ModelDeclaration['preprocess'];
  labels: string[];
  output?: ModelDeclaration['output'];
  batching?: { maxBatch: number; maxWaitMs: number; maxQueue: number };
}

const TISSUE_INFO: ModelInfo = {
  name: 'tissue',
  builtIn: true,
  task: 'segmentation',
  description:
    "Weight-free tissue detection for bright-field slides: Otsu's threshold on luminance plus a morphological opening and closing (thumbnail resolution)",
  labels: ['background', 'tissue'],
};

export interface AiServiceOptions {
  registry: ModelRegistry;
  tiles: TileService;
  results: ResultStore;
  /** Largest image decoded or region read, in pixels. */
  maxPixels: number;
  /** Where heat-map pyramids are registered as slides (the registry reads its overlay). */
  derived?: DerivedSlides;
  /** Radiology inputs (the catalog); absent: only images and slides. */
  radiology?: RadiologySource;
  /** Builds the heat-map job queue (cli/: Redis with --redis-url); default one in this process. */
  heatmapQueue?: (handler: JobHandler<HeatmapPayload, HeatmapSummary>) => HeatmapQueue;
}

/** Tiles a heatmap job keeps in flight: enough to fill a model's batches. */
const HEATMAP_CONCURRENCY = 16;

export class AiService {
  readonly heatmaps: HeatmapJobs;

  constructor(private readonly options: AiServiceOptions) {
    this.heatmaps = new HeatmapJobs(
      this,
      options.heatmapQueue ?? ((handler) => new MemoryJobQueue({ handler, maxFinished: 100 })),
      HEATMAP_CONCURRENCY,
      options.derived !== undefined,
    );
    // Pyramids this process does not hold are rebuilt from their job's grid.
    options.derived?.load((name) => this.heatmaps.pyramid(name));
  }

  get registry(): ModelRegistry {
    return this.options.registry;
  }

  get tiles(): TileService {
    return this.options.tiles;
  }

  list(): ModelInfo[] {
    return [
      TISSUE_INFO,
      ...this.options.registry.list().map((m) => ({
        name: m.name,
        builtIn: false,
        task: m.declaration.task,
        description: m.declaration.description,
        input: m.declaration.input,
        preprocess: m.declaration.preprocess,
        labels: m.declaration.labels,
        output: m.declaration.output,
        batching: m.batcher.options,
      })),
    ];
  }

  info(name: string): ModelInfo {
    if (name === 'tissue') return TISSUE_INFO;
    const m = this.options.registry.get(name);
    return this.list().find((i) => i.name === m.name) as ModelInfo;
  }

  /** The study a result was made from (radiology); undefined for slides and images. */
  resultStudy(id: string): Promise<string | undefined> {
    return this.options.results.studyOf(id);
  }

  /** A mask or heat map PNG an inference stored. */
  result(id: string): Promise<Buffer> {
    return this.options.results.get(id);
  }

  /** Slice k of a volume result, as a PNG. */
  resultSlice(id: string, k: number): Promise<Buffer> {
    return this.options.results.slice(id, k);
  }

  /**
   * What a series result is: model, task, labels and one entry per slice (its PNG and, for DICOM
   * series, the SOP Instance UID it lies on), for clients that overlay it (the radiology viewer).
   */
  async resultInfo(id: string): Promise<Record<string, unknown>> {
    const v = await this.options.results.volume(id);
    const [columns, rows, slices] = v.geometry.dims;
    const source = v.geometry.source;
    return {
      id,
      model: v.model,
      task: v.task,
      labels: v.labels,
      values: v.task === 'segmentation' ? 'class index' : 'round(255 * value)',
      columns,
      rows,
      format: source.kind,
      // The whole volume in one request (what the viewer's MPR overlay reads).
      raw: `/ai/results/${id}.raw`,
      slices: Array.from({ length: slices }, (_, k) => ({
        slice: k,
        instance:
          v.instances?.[k] ?? (source.kind === 'dicom' ? source.instances[k]?.sopInstanceUid : undefined),
        png: `/ai/results/${id}/slices/${k}.png`,
      })),
    };
  }

  /** A volume result's voxels, one byte each, i fastest, then j, then k. */
  async resultVoxels(id: string): Promise<Uint8Array> {
    return (await this.options.results.volume(id)).voxels;
  }

  /** A volume result's voxels as gzip, made once per result (ResultStore.rawGzip). */
  resultVoxelsGzip(id: string): Promise<Buffer> {
    return this.options.results.rawGzip(id);
  }

  /** A volume result as NIfTI-1 (.nii.gz, uint8) in the source volume's geometry. */
  async resultNifti(id: string): Promise<Uint8Array> {
    const v = await this.options.results.volume(id);
    return encodeNiftiMask(v.geometry, v.voxels, `medstream ${v.model} ${v.task}`);
  }

  /**
   * Class `k` of a segmentation result over a DICOM series, as a binary DICOM SEG. Its UIDs are
   * derived from the result id and the class, its ContentDate is when the result was made: every
   * request, on every replica, gets the same bytes (one object, however often it is stored).
   */
  async resultSeg(id: string, k: number): Promise<Uint8Array> {
    const v = await this.options.results.volume(id);
    if (v.task !== 'segmentation') throw new BadRequest(`result ${id} is a heat map: no DICOM SEG`);
    if (v.geometry.source.kind !== 'dicom')
      throw new BadRequest(`result ${id} is over a NIfTI volume: a SEG references DICOM instances`);
    const binary = new Uint8Array(v.voxels.length);
    for (let i = 0; i < binary.length; i++) binary[i] = v.voxels[i] === k ? 1 : 0;
    return encodeSegmentation(
      { ...v.geometry, data: new Float32Array(0) },
      binary,
      {
        label: v.labels[k] ?? `class ${k}`,
        algorithmName: `medstream ${v.model}`,
        seriesDescription: `${v.model} ${v.labels[k] ?? `class ${k}`}`,
      },
      { seed: `medstream/ai-result/${id}/class/${k}`, created: new Date(v.created ?? 0) },
    );
  }

  async close(): Promise<void> {
    await this.heatmaps.close();
    await this.options.registry.close();
    await this.options.results.close();
  }

  /** Runs model `name` on one image; the answer is JSON-ready. */
  async infer(name: string, source: InferSource, signal?: AbortSignal): Promise<Record<string, unknown>> {
    if (source.kind === 'dicom') {
      if (name === 'tissue')
        throw new BadRequest('the tissue model reads bright-field slides, not radiology');
      const model = this.options.registry.get(name);
      if (!this.options.radiology) throw new NotFound('this server has no radiology catalog');
      return inferRadiology(model, source, this.options.radiology, this.options.results, signal);
    }
    if (name !== 'tissue') return this.inferOnnx(name, source, signal);
    const pixels = await this.pixels(source, signal);
    const described = describeSource(source, pixels);
    const tissue = detectTissue(pixels);
    const id = await this.options.results.putPlane({
      data: tissue.mask.map((v) => v * 255),
      width: tissue.width,
      height: tissue.height,
    });
    return {
      model: 'tissue',
      task: 'segmentation',
      source: described,
      tissueFraction: tissue.fraction,
      threshold: tissue.threshold,
      morphologyRadius: tissue.radius,
      result: {
        id,
        mask: `/ai/results/${id}.png`,
        width: tissue.width,
        height: tissue.height,
        values: '0 background, 255 tissue',
      },
    };
  }

  private async inferOnnx(
    name: string,
    source: InferSource,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const model = this.options.registry.get(name);
    if (source.kind === 'dicom') throw new BadRequest('radiology sources go through inferRadiology');
    let pixels: Pixels | undefined;
    const output = await model.infer(async () => (pixels = await this.pixels(source, signal)), signal);
    const described = describeSource(source, pixels as Pixels);
    const decl = model.declaration;
    const base = { model: name, task: decl.task, source: described };
    if (decl.task === 'classification') return { ...base, ...readClassification(output.data, decl) };
    if (decl.task === 'segmentation') {
      const mask = readMask(output.data, output.dims, decl);
      const id = await this.options.results.putPlane(mask);
      return {
        ...base,
        fractions: mask.fractions,
        result: {
          id,
          mask: `/ai/results/${id}.png`,
          width: mask.width,
          height: mask.height,
          values: 'class index',
        },
      };
    }
    const map = readHeatmap(output.data, output.dims, decl);
    const id = await this.options.results.putPlane(map);
    return {
      ...base,
      min: map.min,
      max: map.max,
      mean: map.mean,
      result: {
        id,
        map: `/ai/results/${id}.png`,
        width: map.width,
        height: map.height,
        values: 'round(255 * value)',
      },
    };
  }

  /** The pixels a source names: a decoded upload, a slide region or a whole-slide thumbnail. */
  async pixels(source: Exclude<InferSource, DicomInferSource>, signal?: AbortSignal): Promise<Pixels> {
    const { tiles, maxPixels } = this.options;
    if (source.kind === 'image') return decodeUpload(source.bytes, maxPixels);
    if (source.kind === 'slide') {
      const { slide } = await tiles.slide(source.slide, signal);
      const scale = source.size / Math.max(slide.width, slide.height);
      return tiles.renderRaw(source.slide, {
        x: 0,
        y: 0,
        width: slide.width,
        height: slide.height,
        outWidth: Math.max(1, Math.round(slide.width * scale)),
        outHeight: Math.max(1, Math.round(slide.height * scale)),
        signal,
      });
    }
    const { x, y, width, height } = source;
    if (width * height > maxPixels)
      throw new BadRequest(
        `region of ${width}x${height} exceeds the limit of ${maxPixels} pixels (--max-region-pixels)`,
      );
    if (source.mpp !== undefined) {
      const opened = await tiles.slide(source.slide, signal);
      const { mpp_x, mpp_y } = opened.slide.properties;
      if (!mpp_x || !mpp_y)
        throw new BadRequest(`slide ${opened.id} has no microns-per-pixel; ask by level instead`);
      return tiles.renderRaw(opened.id, {
        x,
        y,
        width: Math.max(1, Math.round((width * source.mpp) / mpp_x)),
        height: Math.max(1, Math.round((height * source.mpp) / mpp_y)),
        outWidth: width,
        outHeight: height,
        signal,
      });
    }
    return tiles.readLevelRegion(source.slide, source.level ?? 0, x, y, width, height, signal);
  }
}

async function decodeUpload(bytes: Buffer, maxPixels: number): Promise<Pixels> {
  const isPng = bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) throw new UnsupportedFormat('the uploaded image is neither PNG nor JPEG');
  // Plain 8-bit PNGs skip sharp (png-decode.ts: same pixels, a fraction of the cost).
  const simple = isPng ? decodeSimplePng(bytes, maxPixels) : undefined;
  if (simple) return simple;
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (e) {
    throw new BadRequest(`the uploaded ${isPng ? 'PNG' : 'JPEG'} does not decode: ${(e as Error).message}`);
  }
}

function describeSource(source: InferSource, pixels: Pixels): Record<string, unknown> {
  const size = { width: pixels.width, height: pixels.height };
  if (source.kind === 'image') return { kind: 'image', ...size };
  return { ...source, pixelWidth: pixels.width, pixelHeight: pixels.height };
}
