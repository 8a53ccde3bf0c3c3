// The labelled fixture volumes the segmentation benchmark scores engines on, and the protocol:
// key slice = the middle of the structure's slice range in the truth, box = the truth's bounding
// box there widened on every side by one random 0..maxShift px margin (MedSAM2's mask2D_to_bbox),
// Dice (smooth 1) of the whole 3D mask against the truth, seconds per visited slice.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Box, SegmentationEngine } from '../src/segment/engine.js';
import { dice } from '../src/segment/evaluate.js';
import { type PipelineOptions, segmentVolume } from '../src/segment/pipeline.js';
import { LocalStorage } from '../src/storage/local.js';
import { openSeriesSources, readDicomSeries } from '../src/volumes/dicom-series.js';
import { FrameSampleDecoder } from '../src/volumes/frame-samples.js';
import { readNiftiVolume } from '../src/volumes/nifti.js';
import { resampleLabels } from '../src/volumes/resample.js';
import type { Volume } from '../src/volumes/volume.js';
import { randomInt, seededRandom } from './harness.js';

const FIXTURES = fileURLToPath(new URL('../../shared/fixtures/volumes/', import.meta.url));

export interface Structure {
  name: string;
  label: number;
}

export interface BenchCase {
  name: string;
  volume: Volume;
  /** Truth labels on the volume's own grid. */
  truth: Uint8Array;
  structures: Structure[];
  /**
   * Other TotalSegmentator labels of the volume, scored only on request (BENCH_SEGMENT_HELDOUT=1):
   * structures no engine setting was chosen on, to see whether a change made for the four organs
   * makes anything else worse.
   */
  heldOut: Structure[];
}

/** example_ct_sm + example_seg (3 mm, unenhanced) and the 20-slice DICOM CT + example_seg_dicom. */
export async function loadCases(): Promise<BenchCase[]> {
  const nifti = (name: string) => readNiftiVolume(readFileSync(path.join(FIXTURES, 'nifti', name)));
  const sm = nifti('example_ct_sm.nii.gz');
  const smTruth = nifti('example_seg.nii.gz');
  const storage = await LocalStorage.create(path.join(FIXTURES, 'ct-dicom-j2k'));
  const decoder = new FrameSampleDecoder();
  const dcm = await readDicomSeries(await openSeriesSources(storage, ''), decoder);
  await decoder.close();
  await storage.close();
  // example_seg_dicom stores the rows flipped relative to the series: resample through the affines.
  const dcmTruth = resampleLabels(nifti('example_seg_dicom.nii.gz'), dcm);
  return [
    {
      name: 'ct_sm (NIfTI, 3 mm)',
      volume: sm,
      truth: Uint8Array.from(smTruth.data),
      structures: [
        { name: 'spleen', label: 1 },
        { name: 'kidney R', label: 2 },
        { name: 'kidney L', label: 3 },
        { name: 'liver', label: 5 },
        { name: 'stomach', label: 6 },
      ],
      heldOut: [
        { name: 'gallbladder', label: 4 },
        { name: 'pancreas', label: 7 },
        { name: 'aorta', label: 52 },
        { name: 'inferior vena cava', label: 63 },
        { name: 'autochthon L', label: 86 },
        { name: 'autochthon R', label: 87 },
        { name: 'vertebra (label 32)', label: 32 },
      ],
    },
    {
      name: 'CT DICOM (J2K, 20 slices)',
      volume: dcm,
      truth: dcmTruth,
      structures: [
        { name: 'spleen', label: 1 },
        { name: 'liver', label: 5 },
        { name: 'stomach', label: 6 },
      ],
      heldOut: [
        { name: 'aorta', label: 52 },
        { name: 'autochthon L', label: 86 },
        { name: 'autochthon R', label: 87 },
      ],
    },
  ];
}

/** The key slice and box for one structure and seed (undefined when the label is absent). */
export function promptFor(
  c: BenchCase,
  label: number,
  seed: number,
  maxShift: number,
): { slice: number; box: Box } | undefined {
  const [nx, ny, nz] = c.volume.dims;
  const plane = nx * ny;
  const slices: number[] = [];
  for (let k = 0; k < nz; k++) {
    const s = c.truth.subarray(k * plane, (k + 1) * plane);
    if (s.includes(label)) slices.push(k);
  }
  if (slices.length === 0) return undefined;
  const slice = slices[Math.floor((slices.length - 1) / 2)];
  let x0 = nx;
  let y0 = ny;
  let x1 = -1;
  let y1 = -1;
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      if (c.truth[slice * plane + j * nx + i] !== label) continue;
      x0 = Math.min(x0, i);
      x1 = Math.max(x1, i);
      y0 = Math.min(y0, j);
      y1 = Math.max(y1, j);
    }
  }
  const shift = randomInt(seededRandom(seed * 7919 + label), 0, maxShift);
  return {
    slice,
    box: {
      x0: Math.max(0, x0 - shift),
      y0: Math.max(0, y0 - shift),
      x1: Math.min(nx - 1, x1 + shift),
      y1: Math.min(ny - 1, y1 + shift),
    },
  };
}

export interface CaseScore {
  dice: number;
  seconds: number;
  slicesVisited: number;
}

/** Segments one structure with one engine and seed, scores the 3D mask. */
export async function scoreOne(
  engine: SegmentationEngine,
  c: BenchCase,
  s: Structure,
  seed: number,
  options: { maxShift: number; window?: [number, number]; pipeline?: PipelineOptions },
): Promise<CaseScore | undefined> {
  const prompt = promptFor(c, s.label, seed, options.maxShift);
  if (!prompt) return undefined;
  const result = await segmentVolume(
    c.volume,
    { ...prompt, window: options.window },
    engine,
    options.pipeline,
  );
  const truth = new Uint8Array(c.truth.length);
  for (let i = 0; i < truth.length; i++) truth[i] = c.truth[i] === s.label ? 1 : 0;
  return {
    dice: dice(result.mask, truth, 1).dice,
    seconds: result.seconds,
    slicesVisited: result.slicesVisited,
  };
}
