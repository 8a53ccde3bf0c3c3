// Results of segmentation and heatmap inference (and tissue masks), kept in a byte-bounded LRU
// under a random id: 8-bit gray PNGs fetched at /ai/results/{id}.png, and volume results (a
// mask or map per voxel with the source volume's geometry) whose slices, NIfTI and DICOM SEG are
// encoded when fetched. Results are per replica and transient: a client fetches them soon after
// the inference that made them. A result of radiology data remembers its study (access checks).

import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import { NotFound } from '../errors.js';
import { ByteLru } from '../io/lru.js';
import type { Volume } from '../volumes/volume.js';

/** A mask (class index) or map (round(255 * value)) per voxel of a source volume. */
export interface VolumeResult {
  kind: 'volume';
  task: 'segmentation' | 'heatmap';
  /** The source's geometry (its voxel values are not kept). */
  geometry: Pick<Volume, 'dims' | 'affine' | 'source'>;
  /** One byte per voxel, the volume's index order (i fastest, then j, then k). */
  voxels: Uint8Array;
  labels: string[];
  model: string;
  /** The SOP Instance UID the catalog serves for each slice (the viewer matches frames by it). */
  instances?: (string | undefined)[];
}

type Entry = Buffer | VolumeResult;

interface Stored {
  entry: Entry;
  /** The StudyInstanceUID of the source (radiology results); undefined for slides and images. */
  study?: string;
}

export class ResultStore {
  private readonly lru: ByteLru<string, Stored>;

  constructor(maxBytes: number) {
    this.lru = new ByteLru({
      maxBytes,
      sizeOf: ({ entry: e }) => (Buffer.isBuffer(e) ? e.length : e.voxels.length + 1024) + 128,
    });
  }

  /** Encodes one gray plane as PNG and stores it (with the study of its source, if any); returns its id. */
  async putPlane(
    plane: { data: Uint8Array; width: number; height: number },
    study?: string,
  ): Promise<string> {
    const id = randomUUID();
    this.lru.set(id, { entry: await encodePlane(plane), study });
    return id;
  }

  /** Stores a volume result (with the study of its source, if any); returns its id. */
  putVolume(result: VolumeResult, study?: string): string {
    const id = randomUUID();
    this.lru.set(id, { entry: result, study });
    return id;
  }

  /** The study a result was made from (undefined: a slide or an uploaded image); 404 when unknown. */
  studyOf(id: string): string | undefined {
    return this.stored(id).study;
  }

  /** A stored PNG (a plane result, or slice 0 of a one-slice volume result). */
  async get(id: string): Promise<Buffer> {
    const entry = this.entry(id);
    return Buffer.isBuffer(entry) ? entry : this.slice(id, 0);
  }

  /** A volume result. */
  volume(id: string): VolumeResult {
    const entry = this.entry(id);
    if (Buffer.isBuffer(entry)) throw new NotFound(`result ${id} is an image, not a volume`);
    return entry;
  }

  /** Slice k of a volume result as a PNG (`columns x rows`). */
  async slice(id: string, k: number): Promise<Buffer> {
    const v = this.volume(id);
    const [nx, ny, nz] = v.geometry.dims;
    if (!Number.isInteger(k) || k < 0 || k >= nz)
      throw new NotFound(`result ${id} has slices 0..${nz - 1}, not ${k}`);
    return encodePlane({ data: v.voxels.subarray(k * nx * ny, (k + 1) * nx * ny), width: nx, height: ny });
  }

  private entry(id: string): Entry {
    return this.stored(id).entry;
  }

  private stored(id: string): Stored {
    const stored = this.lru.get(id);
    if (!stored)
      throw new NotFound(`no result ${JSON.stringify(id)} (results are kept for a while, then dropped)`);
    return stored;
  }
}

function encodePlane(plane: { data: Uint8Array; width: number; height: number }): Promise<Buffer> {
  return sharp(plane.data, { raw: { width: plane.width, height: plane.height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 6 })
    .toBuffer();
}
