// Inference on radiology data from the catalog: one frame of an instance (2D, like an upload),
// or a whole series slice by slice (a DICOM series placed in 3D, or a NIfTI volume), every slice
// through the model's batcher so slices share batches. Masks and maps are sampled back onto the
// source's pixel grid, so a series result has the source's geometry and is served per slice as
// PNG, as NIfTI and (segmentation of a DICOM series) as DICOM SEG.

import { BadRequest, MedStreamError, throwIfAborted } from '../errors.js';
import type { Volume } from '../volumes/volume.js';
import { fitGeometry, toSourceGrid } from './fit-geometry.js';
import type { ModelOutput, OnnxModel } from './model.js';
import { readClassification, readHeatmap, readMask } from './outputs.js';
import type { FloatPixels, RadiologyWindow } from './preprocess.js';
import type { RadiologySource } from './radiology-source.js';
import type { ResultStore } from './results.js';

export interface DicomInferSource {
  kind: 'dicom';
  study: string;
  series: string;
  /** An instance of the series: its frame `frame` (default 1) alone; absent: the whole series. */
  instance?: string;
  frame?: number;
  /** Overrides the model's declared window (models that declare window scaling only). */
  window?: RadiologyWindow;
}

/** Slices of a series in flight at once: enough to fill a model's batches. */
const SERIES_CONCURRENCY = 16;

interface SliceResult {
  /** On the source grid: class index (segmentation) or round(255 * value) (heatmap). */
  data: Uint8Array;
  /** Heatmap statistics over the model's output pixels. */
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** One image's segmentation or heatmap output, sampled back onto the source grid. */
function readOutput(model: OnnxModel, output: ModelOutput, width: number, height: number): SliceResult {
  const decl = model.declaration;
  const fit = fitGeometry(width, height, decl.input.width, decl.input.height, decl.preprocess.resize);
  const back = (plane: { data: Uint8Array; width: number; height: number }) =>
    toSourceGrid(
      plane.data,
      plane.width,
      plane.height,
      width,
      height,
      decl.input.width,
      decl.input.height,
      fit,
    );
  if (decl.task === 'segmentation')
    return { data: back(readMask(output.data, output.dims, decl)), min: 0, max: 0, sum: 0, count: 0 };
  const map = readHeatmap(output.data, output.dims, decl);
  const count = map.width * map.height;
  return { data: back(map), min: map.min, max: map.max, sum: map.mean * count, count };
}

/** Fractions of each class in a mask (labels from the declaration, else the class index). */
function fractions(mask: Uint8Array, labels: string[]): { label: string; fraction: number }[] {
  const counts: number[] = Array(Math.max(2, labels.length)).fill(0);
  for (const v of mask) counts[v] = (counts[v] ?? 0) + 1;
  return Array.from(counts, (n, k) => ({ label: labels[k] ?? String(k), fraction: (n ?? 0) / mask.length }));
}

export async function inferRadiology(
  model: OnnxModel,
  source: DicomInferSource,
  radiology: RadiologySource,
  results: ResultStore,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  const decl = model.declaration;
  if (source.window && decl.preprocess.scaling.type !== 'window')
    throw new BadRequest(
      `model ${model.name} scales by ${decl.preprocess.scaling.type}, not by a window: window does not apply`,
    );
  const base = { model: model.name, task: decl.task };
  if (source.instance !== undefined) {
    const instance = await radiology.instance(source.study, source.series, source.instance);
    const { pixels } = await radiology.frame(instance, source.frame ?? 1, signal);
    const output = await model.infer(async () => ({ ...pixels, window: source.window }), signal);
    const described = {
      ...base,
      source: { ...source, frame: source.frame ?? 1, columns: pixels.width, rows: pixels.height },
    };
    if (decl.task === 'classification') return { ...described, ...readClassification(output.data, decl) };
    const read = readOutput(model, output, pixels.width, pixels.height);
    const id = await results.putPlane(
      { data: read.data, width: pixels.width, height: pixels.height },
      source.study,
    );
    const link = { id, width: pixels.width, height: pixels.height };
    if (decl.task === 'segmentation')
      return {
        ...described,
        fractions: fractions(read.data, decl.labels),
        result: { ...link, mask: `/ai/results/${id}.png`, values: 'class index' },
      };
    return {
      ...described,
      min: read.min,
      max: read.max,
      mean: read.sum / read.count,
      result: { ...link, map: `/ai/results/${id}.png`, values: 'round(255 * value)' },
    };
  }

  const volume = await radiology.volume(source.study, source.series, signal);
  const [nx, ny, nz] = volume.dims;
  // A mask or map that could not be kept is refused before the model runs.
  if (decl.task !== 'classification') results.assertFits(nx * ny * nz);
  const voi = volume.defaultWindow
    ? {
        center: (volume.defaultWindow[0] + volume.defaultWindow[1]) / 2,
        width: volume.defaultWindow[1] - volume.defaultWindow[0],
      }
    : undefined;
  const sliceOf = (k: number): FloatPixels => ({
    values: volume.data.subarray(k * nx * ny, (k + 1) * nx * ny),
    width: nx,
    height: ny,
    window: source.window,
    voi,
  });
  const outputs = new Array<ModelOutput>(nz);
  let next = 0;
  const worker = async () => {
    while (next < nz) {
      const k = next++;
      outputs[k] = await inferWaiting(model, () => sliceOf(k), signal);
    }
  };
  await Promise.all(Array.from({ length: Math.min(SERIES_CONCURRENCY, nz) }, worker));
  const niftiUids =
    volume.source.kind === 'nifti' ? await radiology.niftiSliceUids(source.study, source.series) : [];
  const sopOf = (k: number) =>
    volume.source.kind === 'dicom' ? volume.source.instances[k]?.sopInstanceUid : niftiUids[k];
  const described = {
    ...base,
    source: { ...source, columns: nx, rows: ny, slices: nz, format: volume.source.kind },
  };
  if (decl.task === 'classification')
    return {
      ...described,
      slices: outputs.map((o, k) => ({ slice: k, instance: sopOf(k), ...readClassification(o.data, decl) })),
    };
  const voxels = new Uint8Array(nx * ny * nz);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let count = 0;
  outputs.forEach((o, k) => {
    const read = readOutput(model, o, nx, ny);
    voxels.set(read.data, k * nx * ny);
    if (decl.task === 'heatmap') {
      min = Math.min(min, read.min);
      max = Math.max(max, read.max);
      sum += read.sum;
      count += read.count;
    }
  });
  const task = decl.task;
  const id = await results.putVolume(
    {
      kind: 'volume',
      task,
      geometry: { dims: volume.dims, affine: volume.affine, source: volume.source },
      voxels,
      labels: decl.labels,
      model: model.name,
      instances: Array.from({ length: nz }, (_, k) => sopOf(k)),
    },
    source.study,
  );
  const links = {
    id,
    columns: nx,
    rows: ny,
    slices: Array.from({ length: nz }, (_, k) => ({
      slice: k,
      instance: sopOf(k),
      png: `/ai/results/${id}/slices/${k}.png`,
    })),
    nifti: `/ai/results/${id}.nii.gz`,
    raw: `/ai/results/${id}.raw`,
    values: task === 'segmentation' ? 'class index' : 'round(255 * value)',
  };
  if (task === 'heatmap') return { ...described, min, max, mean: sum / count, result: links };
  const classFractions = fractions(voxels, decl.labels);
  return {
    ...described,
    fractions: classFractions,
    result: {
      ...links,
      seg: segLinks(volume, id, classFractions),
    },
  };
}

/** DICOM SEG links, one per class present (not class 0): for segmentations of DICOM series. */
function segLinks(volume: Volume, id: string, classes: { label: string; fraction: number }[]) {
  if (volume.source.kind !== 'dicom') return [];
  return classes.flatMap((c, k) =>
    k > 0 && c.fraction > 0 ? [{ label: c.label, class: k, url: `/ai/results/${id}.dcm?class=${k}` }] : [],
  );
}

/** A full model queue is backpressure, not failure, for a series: wait and try the slice again. */
async function inferWaiting(
  model: OnnxModel,
  load: () => FloatPixels,
  signal?: AbortSignal,
): Promise<ModelOutput> {
  for (;;) {
    throwIfAborted(signal);
    try {
      return await model.infer(async () => load(), signal);
    } catch (e) {
      if (!(e instanceof MedStreamError && e.code === 'overloaded')) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
