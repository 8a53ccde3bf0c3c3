// Segmentation as a service: a checked request (service-request.ts) is resolved against the
// catalog (series or NIfTI volume, key slice, size limit, engine installed), queued as a job
// (jobs/) whose payload is plain JSON, so any replica can run it; the job reads the volume from
// storage, runs the pipeline with progress and cancellation between slices, and returns the mask
// as NIfTI and as a binary DICOM SEG, the SEG stored into the source study unless told not to.

import { createHash } from 'node:crypto';
import type { Catalog, StoredInstance } from '../catalog/catalog.js';
import type { NiftiSliceLocation } from '../catalog/record.js';
import { firstString } from '../dicom/json.js';
import { BadRequest, Conflict, NotFound, throwIfAborted } from '../errors.js';
import type { JobContext, JobHandler, JobOutput, JobQueue, Submitted } from '../jobs/queue.js';
import type { Storage } from '../storage/types.js';
import { readDicomSeries } from '../volumes/dicom-series.js';
import type { FrameSampleDecoder } from '../volumes/frame-samples.js';
import { encodeNiftiMask, readNiftiVolume } from '../volumes/nifti.js';
import type { Volume } from '../volumes/volume.js';
import { checkSegSource, encodeSegmentation } from './dicom-seg.js';
import type { Box, SegmentationEngine } from './engine.js';
import { segmentVolume, type StopReason } from './pipeline.js';
import { checkPrompt } from './request.js';
import { dicomLab, type SegmentationRequest } from './service-request.js';

/** What a job carries: enough to run on any replica without the catalog. */
export interface SegmentationPayload {
  studyUid: string;
  seriesUid: string;
  source:
    | {
        kind: 'dicom';
        keys: string[];
        /** The catalog's SOP Instance UID of each key (derived where the file has none). */
        sopUids: string[];
        /** The catalog's Frame of Reference UID (files without one cannot get a SEG). */
        frameOfReferenceUid?: string;
      }
    | {
        kind: 'nifti';
        key: string;
        /** Per slice k: the catalog's instance for it (what the SEG references). */
        slices: { sopUid: string; sopClassUid: string }[];
        frameOfReferenceUid: string;
        patient: Record<string, string>;
      };
  /** The key slice index when known before reading (an index, or a NIfTI instance). */
  slice?: number;
  request: SegmentationRequest;
}

export interface SegmentationSummary {
  engine: string;
  keySlice: number;
  box: Box;
  window: [number, number];
  voxels: number;
  millilitres: number;
  /** First and last slice holding the mask. */
  slices?: [number, number];
  slicesVisited: number;
  stopped: { forward: { reason: StopReason; at: number }; backward: { reason: StopReason; at: number } };
  timings: { readSeconds: number; segmentSeconds: number; encodeSeconds: number; storeSeconds: number };
  /** The SEG series written to the study (when stored). */
  stored?: { studyUid: string; seriesUid: string; sopUid: string };
  /** Why there is no seg.dcm (an empty mask). */
  noSeg?: string;
}

export type SegmentationQueue = JobQueue<SegmentationPayload, SegmentationSummary>;

/** Engines by name, each created once and shared by jobs. */
export interface EngineProvider {
  readonly names: readonly string[];
  /** The engine; throws `Conflict` naming what to install when it cannot be created. */
  get(name: string): Promise<SegmentationEngine>;
  close(): Promise<void>;
}

export interface SegmentationServiceOptions {
  catalog: Catalog;
  storage: Storage;
  decoder: FrameSampleDecoder;
  engines: EngineProvider;
  /** Stores a SEG in its study through the STOW path; absent when the storage is read-only. */
  storeSeg?: (
    bytes: Uint8Array,
    studyUid: string,
    signal: AbortSignal,
  ) => Promise<{ studyUid: string; seriesUid: string; sopUid: string }>;
  /** Largest volume accepted, in voxels. */
  maxVoxels: number;
  /** Builds the queue around the service's handler. */
  queue: (handler: JobHandler<SegmentationPayload, SegmentationSummary>) => SegmentationQueue;
}

/** Seconds and slices segmented per engine in this process (for /metrics). */
export interface EngineTimes {
  slices: number;
  seconds: number;
  jobs: number;
}

export class SegmentationService {
  readonly queue: SegmentationQueue;
  readonly engineTimes = new Map<string, EngineTimes>();

  constructor(private readonly options: SegmentationServiceOptions) {
    this.queue = options.queue((payload, context) => this.run(payload, context));
  }

  get engineNames(): readonly string[] {
    return this.options.engines.names;
  }

  /** Resolves a request against the catalog into a job payload; throws typed errors for bad input. */
  async resolve(request: SegmentationRequest): Promise<SegmentationPayload> {
    const { catalog } = this.options;
    const instances =
      request.series !== undefined
        ? await catalog.seriesInstances(request.series)
        : await catalog.objectInstances(request.volume!);
    if (instances.length === 0) {
      throw new NotFound(
        request.series !== undefined
          ? `series ${request.series} is not in the catalog`
          : `volume ${request.volume} is not a catalogued NIfTI volume`,
      );
    }
    const first = instances[0];
    const nifti = niftiOf(first);
    if (request.volume !== undefined && !nifti)
      throw new BadRequest(`${request.volume} is not a NIfTI volume; name a DICOM series by its UID`);
    if (!nifti && new Set(instances.map((i) => i.studyUid)).size > 1)
      throw new BadRequest(`series ${request.series} spans several studies`);
    if (request.store && !this.options.storeSeg)
      throw new Conflict('the storage is read-only, so the SEG cannot be stored: send "store": false');

    let dims: [number, number, number];
    let payload: SegmentationPayload;
    if (nifti) {
      dims = nifti.dims;
      const slices = [...instances].sort((a, b) => niftiOf(a)!.slice - niftiOf(b)!.slice);
      payload = {
        studyUid: first.studyUid,
        seriesUid: first.seriesUid,
        source: {
          kind: 'nifti',
          key: first.objectKey,
          slices: slices.map((i) => ({
            sopUid: i.sopUid,
            sopClassUid: firstString(i.json, '00080016') ?? '',
          })),
          frameOfReferenceUid: firstString(first.json, '00200052') ?? '',
          patient: patientOf(first),
        },
        request,
      };
      if (slices.length !== dims[2])
        throw new BadRequest(
          `volume ${first.objectKey} has ${slices.length} catalogued slices for ${dims[2]}`,
        );
    } else {
      const rows = Number(firstString(first.json, '00280010'));
      const columns = Number(firstString(first.json, '00280011'));
      if (instances.some((i) => (i.numberOfFrames ?? 1) > 1))
        throw new BadRequest(
          `series ${request.series} holds multi-frame instances, which are not volumes yet`,
        );
      dims = [columns, rows, instances.length];
      payload = {
        studyUid: first.studyUid,
        seriesUid: first.seriesUid,
        source: {
          kind: 'dicom',
          keys: instances.map((i) => i.key),
          sopUids: instances.map((i) => i.sopUid),
          frameOfReferenceUid: firstString(first.json, '00200052'),
        },
        request,
      };
    }
    const voxels = dims[0] * dims[1] * dims[2];
    if (!(voxels <= this.options.maxVoxels))
      throw new BadRequest(
        `the volume is ${dims.join('x')} = ${voxels} voxels, over the limit of ${this.options.maxVoxels} (--segment-max-voxels)`,
      );
    if (request.instance !== undefined) {
      const at = instances.find((i) => i.sopUid === request.instance);
      if (!at) throw new BadRequest(`instance ${request.instance} is not in series ${first.seriesUid}`);
      if (nifti) payload.slice = niftiOf(at)!.slice;
    } else payload.slice = request.slice;
    // The box against the slice size (the key slice index of a DICOM instance is known only once
    // the series is sorted along its normal, so any in-range index checks the box here).
    // checkPrompt reads only `dims`.
    checkPrompt({ dims } as Volume, Math.min(payload.slice ?? 0, dims[2] - 1), request.box);
    if (payload.slice !== undefined && payload.slice >= dims[2])
      throw new BadRequest(`slice ${payload.slice} is out of range 0..${dims[2] - 1}`);
    await this.options.engines.get(request.engine);
    return payload;
  }

  /** Queues the job, or answers the identical one already queued, running or done. */
  submit(payload: SegmentationPayload): Promise<Submitted<SegmentationPayload, SegmentationSummary>> {
    const r = payload.request;
    // Identical = same series, key slice, box, window, engine (and whether it is stored).
    const identity = [payload.seriesUid, r.slice ?? r.instance, r.box, r.window ?? null, r.engine, r.store];
    const dedupKey = createHash('sha256').update(JSON.stringify(identity)).digest('hex');
    return this.queue.submit(payload, { dedupKey });
  }

  /** The job handler: read, segment, encode, store. */
  async run(payload: SegmentationPayload, context: JobContext): Promise<JobOutput<SegmentationSummary>> {
    const { signal } = context;
    const r = payload.request;
    const started = performance.now();
    const volume = await this.load(payload, context);
    const read = performance.now();
    let slice = payload.slice;
    if (slice === undefined && volume.source.kind === 'dicom') {
      const k = volume.source.instances.findIndex((i) => i.sopInstanceUid === r.instance);
      if (k < 0) throw new BadRequest(`instance ${r.instance} is not in the series read`);
      slice = k;
    }
    const engine = await this.options.engines.get(r.engine);
    const kept = new Set<number>();
    const result = await segmentVolume(volume, { slice: slice!, box: r.box, window: r.window }, engine, {
      signal,
      onSlice: (event) => {
        kept.add(event.slice);
        context.progress({ slicesDone: kept.size });
      },
    });
    context.progress({ slicesDone: kept.size, slicesVisited: result.slicesVisited });
    const segmented = performance.now();
    const times = this.engineTimes.get(engine.name) ?? { slices: 0, seconds: 0, jobs: 0 };
    times.slices += result.slicesVisited;
    times.seconds += result.seconds;
    times.jobs++;
    this.engineTimes.set(engine.name, times);

    const files: Record<string, Uint8Array> = {
      'mask.nii.gz': encodeNiftiMask(
        volume,
        result.mask,
        `medstream ${engine.name}: ${r.label}`.slice(0, 79),
      ),
    };
    let noSeg: string | undefined;
    const segSource = segSourceOf(volume, payload);
    try {
      checkSegSource(segSource);
    } catch (e) {
      // The mask is still a result; the SEG says why it is missing (e.g. no Frame of Reference).
      if (!(e instanceof BadRequest)) throw e;
      noSeg = e.message;
    }
    if (result.voxels === 0) noSeg = 'the mask is empty: nothing to write as a SEG';
    if (noSeg === undefined) {
      files['seg.dcm'] = encodeSegmentation(
        segSource,
        result.mask,
        {
          label: r.label,
          algorithmName: `medstream ${engine.name}`,
          seriesDescription: `Segmentation: ${r.label}`.slice(0, 64),
          category: r.category,
          type: r.type,
          labColor: r.color ? dicomLab(r.color) : undefined,
        },
        // UIDs of this job: a retried job (its worker died) stores the same instance again.
        { seed: `medstream/segmentation-job/${context.id}`, created: new Date() },
      );
    }
    const encoded = performance.now();
    // The last point a cancel stops the job. Storing is not aborted half-way (a fraction of a
    // second): a cancel that lands during it is too late, and the job ends done with its SEG
    // stored, never cancelled with a SEG left in the study.
    throwIfAborted(signal);
    let stored: SegmentationSummary['stored'];
    if (r.store && files['seg.dcm'] && this.options.storeSeg)
      stored = await this.options.storeSeg(files['seg.dcm'], payload.studyUid, new AbortController().signal);
    const done = performance.now();
    const seconds = (a: number, b: number) => Number(((b - a) / 1000).toFixed(3));
    return {
      summary: {
        engine: engine.name,
        keySlice: slice!,
        box: r.box,
        window: result.window,
        voxels: result.voxels,
        millilitres: Number(result.millilitres.toFixed(3)),
        slices: result.slices,
        slicesVisited: result.slicesVisited,
        stopped: result.stopped,
        timings: {
          readSeconds: seconds(started, read),
          segmentSeconds: seconds(read, segmented),
          encodeSeconds: seconds(segmented, encoded),
          storeSeconds: seconds(encoded, done),
        },
        stored,
        noSeg,
      },
      files,
    };
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.options.engines.close();
  }

  private async load(payload: SegmentationPayload, context: JobContext): Promise<Volume> {
    const { storage, decoder, maxVoxels } = this.options;
    const { signal } = context;
    const source = payload.source;
    if (source.kind === 'nifti') {
      const info = await storage.stat(source.key, { signal });
      const object = await storage.open(source.key, { signal });
      const bytes = await object.read(0, info.size, { purpose: 'data', signal });
      context.progress({ slicesRead: source.slices.length, slicesTotal: source.slices.length });
      return readNiftiVolume(bytes, { maxVoxels });
    }
    const sources = await Promise.all(source.keys.map((key) => storage.open(key, { signal })));
    return readDicomSeries(sources, decoder, {
      signal,
      maxVoxels,
      onSlice: (done, total) => context.progress({ slicesRead: done, slicesTotal: total }),
    });
  }
}

function niftiOf(instance: StoredInstance): NiftiSliceLocation['nifti'] | undefined {
  const p = instance.pixelData;
  return p && 'nifti' in p ? p.nifti : undefined;
}

/** Patient and study attributes a SEG copies (the names dicom-series.ts uses). */
function patientOf(instance: StoredInstance): Record<string, string> {
  const out: Record<string, string> = {};
  const tags: Record<string, string> = {
    PatientName: '00100010',
    PatientID: '00100020',
    PatientBirthDate: '00100030',
    PatientSex: '00100040',
    StudyDate: '00080020',
    StudyTime: '00080030',
    StudyID: '00200010',
    AccessionNumber: '00080050',
  };
  for (const [name, tag] of Object.entries(tags)) {
    const value = firstString(instance.json, tag);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * The volume as a SEG writer sees it: a DICOM series as read, or a NIfTI volume whose slices are
 * the catalog's instances (the same affine gave their ImagePositionPatient, so frames line up).
 */
function segSourceOf(volume: Volume, payload: SegmentationPayload): Volume {
  const source = payload.source;
  if (source.kind === 'dicom') {
    if (volume.source.kind !== 'dicom') return volume;
    // The UIDs QIDO and WADO-RS serve: the catalog's (derived for files that have none).
    const byKey = new Map(source.keys.map((key, n) => [key, source.sopUids[n]]));
    const read = volume.source;
    return {
      ...volume,
      source: {
        ...read,
        instances: read.instances.map((i) => ({
          ...i,
          sopInstanceUid: byKey.get(i.key) ?? i.sopInstanceUid,
        })),
        studyInstanceUid: payload.studyUid,
        seriesInstanceUid: payload.seriesUid,
        frameOfReferenceUid: read.frameOfReferenceUid || (source.frameOfReferenceUid ?? ''),
      },
    };
  }
  return {
    ...volume,
    source: {
      kind: 'dicom',
      instances: source.slices.map((s, k) => ({
        sopClassUid: s.sopClassUid,
        sopInstanceUid: s.sopUid,
        key: `${source.key}#${k}`,
      })),
      frameOfReferenceUid: source.frameOfReferenceUid,
      studyInstanceUid: payload.studyUid,
      seriesInstanceUid: payload.seriesUid,
      patient: source.patient,
    },
  };
}
