// Radiology inputs of inference, found through the catalog and decoded through volumes/: one
// frame of a DICOM instance (or one slice of a NIfTI volume) as real-world values with its VOI
// window, or a whole series (a DICOM series placed in 3D, or a NIfTI volume) as a Volume whose
// geometry the NIfTI and DICOM SEG results copy. Sizes are checked against the catalog before a
// byte is read.

import type { Catalog, StoredInstance } from '../catalog/catalog.js';
import { storedFrameTable } from '../dicomweb/frames.js';
import { decodeGrayscaleFrame } from '../dicomweb/rendered.js';
import { BadRequest, NotFound, UnsupportedFormat } from '../errors.js';
import type { ByteSource, Storage } from '../storage/types.js';
import { readDicomSeries } from '../volumes/dicom-series.js';
import { VOLUME_TRANSFER_SYNTAXES, type FrameSampleDecoder } from '../volumes/frame-samples.js';
import { readNiftiVolume } from '../volumes/nifti.js';
import type { Volume } from '../volumes/volume.js';
import type { FloatPixels, RadiologyWindow } from './preprocess.js';

export interface RadiologyDeps {
  catalog: Catalog;
  storage: Storage;
  decoder: FrameSampleDecoder;
  /** Largest volume (or frame) read, in voxels. */
  maxVoxels: number;
}

/** One frame and what it came from. */
export interface RadiologyFrame {
  pixels: FloatPixels;
  instance: StoredInstance;
}

const num = (instance: StoredInstance, tag: string): number | undefined => {
  const v = instance.json[tag]?.Value?.[0];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};

/** The instance's first VOI window (WindowCenter / WindowWidth), if it has one. */
export function voiOf(instance: StoredInstance): RadiologyWindow | undefined {
  const center = num(instance, '00281050');
  const width = num(instance, '00281051');
  return center !== undefined && width !== undefined && width > 0 ? { center, width } : undefined;
}

export class RadiologySource {
  constructor(private readonly deps: RadiologyDeps) {}

  /** The served instance, checked against the study and series the request named. */
  async instance(study: string, series: string, sop: string): Promise<StoredInstance> {
    const found = await this.deps.catalog.instance(sop);
    if (!found || found.studyUid !== study || found.seriesUid !== series)
      throw new NotFound(`no instance ${sop} in series ${series} of study ${study}`);
    return found;
  }

  /** Frame `frame` (1-based) of an instance as real-world values. */
  async frame(instance: StoredInstance, frame: number, signal?: AbortSignal): Promise<RadiologyFrame> {
    const pixel = instance.pixelData;
    if (!pixel) throw new BadRequest(`instance ${instance.sopUid} has no pixel data`);
    if ('nifti' in pixel) {
      if (frame !== 1) throw new NotFound('a NIfTI slice instance has one frame');
      const volume = await this.niftiVolume(instance, signal);
      const [nx, ny] = volume.dims;
      const k = pixel.nifti.slice;
      const values = volume.data.slice(k * nx * ny, (k + 1) * nx * ny);
      return { instance, pixels: { values, width: nx, height: ny } };
    }
    const rows = num(instance, '00280010') ?? 0;
    const columns = num(instance, '00280011') ?? 0;
    const photometric = instance.json['00280004']?.Value?.[0];
    if (
      (num(instance, '00280002') ?? 1) !== 1 ||
      (typeof photometric === 'string' && !photometric.startsWith('MONOCHROME'))
    )
      throw new UnsupportedFormat(
        `instance ${instance.sopUid}: only grayscale (MONOCHROME) images are read for inference`,
      );
    if (!VOLUME_TRANSFER_SYNTAXES.includes(instance.transferSyntax))
      throw new UnsupportedFormat(
        `instance ${instance.sopUid}: frames stored as ${instance.transferSyntax} are not decoded yet`,
      );
    if (rows * columns > this.deps.maxVoxels)
      throw new BadRequest(
        `a ${columns}x${rows} frame exceeds the limit of ${this.deps.maxVoxels} voxels (--ai-max-voxels)`,
      );
    const source = await this.open(instance, signal);
    const table = storedFrameTable(source, instance);
    if (frame > table.count)
      throw new NotFound(`frame ${frame} does not exist: instance ${instance.sopUid} has ${table.count}`);
    const bytes = await table.read(frame - 1, signal);
    const values = await decodeGrayscaleFrame(this.deps.decoder, instance, bytes, signal);
    return { instance, pixels: { values, width: columns, height: rows, voi: voiOf(instance) } };
  }

  /** A whole series as a volume: a NIfTI volume, or a single-frame DICOM series placed in 3D. */
  async volume(study: string, series: string, signal?: AbortSignal): Promise<Volume> {
    const instances = await this.deps.catalog.instancesOf(study, series);
    if (instances.length === 0) throw new NotFound(`no series ${series} in study ${study}`);
    const first = instances[0];
    if (first.pixelData && 'nifti' in first.pixelData) return this.niftiVolume(first, signal);
    let voxels = 0;
    for (const i of instances)
      voxels += (num(i, '00280010') ?? 0) * (num(i, '00280011') ?? 0) * (i.numberOfFrames ?? 1);
    if (voxels > this.deps.maxVoxels)
      throw new BadRequest(
        `series ${series} has ${voxels} voxels, more than the limit of ${this.deps.maxVoxels} (--ai-max-voxels)`,
      );
    const sources: ByteSource[] = [];
    for (const i of instances) sources.push(await this.open(i, signal));
    const volume = await readDicomSeries(sources, this.deps.decoder, {
      signal,
      maxVoxels: this.deps.maxVoxels,
    });
    return withCatalogUids(volume, study, series, instances);
  }

  /**
   * The SOP Instance UIDs the catalog serves for a NIfTI-backed series' slices, by slice index
   * (so a viewer can match a result slice to the frame it shows); empty for other series.
   */
  async niftiSliceUids(study: string, series: string): Promise<(string | undefined)[]> {
    const uids: (string | undefined)[] = [];
    for (const i of await this.deps.catalog.instancesOf(study, series))
      if (i.pixelData && 'nifti' in i.pixelData) uids[i.pixelData.nifti.slice] = i.sopUid;
    return uids;
  }

  private async niftiVolume(instance: StoredInstance, signal?: AbortSignal): Promise<Volume> {
    const pixel = instance.pixelData;
    const dims = pixel && 'nifti' in pixel ? pixel.nifti.dims : [0, 0, 0];
    const voxels = dims[0] * dims[1] * dims[2];
    if (voxels > this.deps.maxVoxels)
      throw new BadRequest(
        `the NIfTI volume has ${voxels} voxels, more than the limit of ${this.deps.maxVoxels} (--ai-max-voxels)`,
      );
    const source = await this.open(instance, signal);
    const bytes = await source.read(0, source.size, { purpose: 'data', signal });
    return readNiftiVolume(bytes, { maxVoxels: this.deps.maxVoxels });
  }

  /** Opens the stored object, refusing one that changed since it was indexed. */
  private async open(instance: StoredInstance, signal?: AbortSignal): Promise<ByteSource> {
    const source = await this.deps.storage.open(instance.objectKey, { signal });
    if (source.size !== instance.size)
      throw new NotFound(`instance ${instance.sopUid} changed in storage since it was indexed; re-index`);
    return source;
  }
}

/**
 * The volume with the identifiers the catalog serves (what QIDO and WADO answer with, derived
 * where the files have none), so a SEG made from it references instances clients can fetch.
 */
function withCatalogUids(volume: Volume, study: string, series: string, instances: StoredInstance[]): Volume {
  if (volume.source.kind !== 'dicom') return volume;
  const byKey = new Map(instances.map((i) => [i.objectKey, i]));
  return {
    ...volume,
    source: {
      ...volume.source,
      studyInstanceUid: study,
      seriesInstanceUid: series,
      instances: volume.source.instances.map((ref) => {
        const stored = byKey.get(ref.key);
        const sopClass = stored?.json['00080016']?.Value?.[0];
        return {
          ...ref,
          sopInstanceUid: stored?.sopUid ?? ref.sopInstanceUid,
          sopClassUid: typeof sopClass === 'string' && sopClass !== '' ? sopClass : ref.sopClassUid,
        };
      }),
    },
  };
}
