// The segmentation job handler on its own (no HTTP, no catalog): it reads a DICOM series from
// storage, reports progress, and stops between slices when its job is cancelled, storing nothing;
// an engine that cannot be loaded is a 409 naming what to install. A job's SEG has UIDs of its
// own, the same when the job is run again (retried after its worker died).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LazyEngines } from '../../src/cli/segment-service.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag } from '../../src/dicom/tags.js';
import { Cancelled, MedStreamError } from '../../src/errors.js';
import { MemoryJobQueue } from '../../src/jobs/memory-queue.js';
import { SegmentationService, type SegmentationPayload } from '../../src/segment/service.js';
import { LocalStorage } from '../../src/storage/local.js';
import { FrameSampleDecoder } from '../../src/volumes/frame-samples.js';
import { BytesSource } from '../support/file-source.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';

const dir = mkdtempSync(path.join(tmpdir(), 'medstream-segservice-'));
let storage: LocalStorage;
let ct: PhantomSeries;
let keys: string[];
const decoder = new FrameSampleDecoder({ workers: 1 });
let stored = 0;
let service: SegmentationService;

beforeAll(async () => {
  ct = await writePhantomSeries(dir);
  storage = await LocalStorage.create(dir);
  keys = (await storage.list({ prefix: '' })).objects.map((o) => o.key);
  service = new SegmentationService({
    // run() reads storage only; resolve() (the catalog's part) is tested through HTTP.
    catalog: undefined as unknown as Catalog,
    storage,
    decoder,
    engines: new LazyEngines(),
    maxVoxels: 1_000_000,
    storeSeg: async () => {
      stored++;
      return { studyUid: ct.studyUid, seriesUid: '1.2.3', sopUid: '1.2.3.4' };
    },
    queue: (handler) => new MemoryJobQueue({ handler }),
  });
});
afterAll(async () => {
  await service.close();
  await decoder.close();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

const payload = (): SegmentationPayload => ({
  studyUid: ct.studyUid,
  seriesUid: ct.seriesUid,
  source: { kind: 'dicom', keys, sopUids: keys.map((k) => ct.sopUids[ct.dims[2] - Number(k.slice(0, 3))]) },
  request: {
    series: ct.seriesUid,
    instance: ct.sopUids[ct.keySlice],
    box: { x0: ct.box[0], y0: ct.box[1], x1: ct.box[2], y1: ct.box[3] },
    engine: 'classical',
    label: 'lesion',
    store: true,
  },
});

describe('SegmentationService.run', () => {
  it('segments, encodes and stores, with progress', async () => {
    const progress: Record<string, number> = {};
    const controller = new AbortController();
    const out = await service.run(payload(), {
      id: 'j1',
      attempt: 1,
      signal: controller.signal,
      progress: (v) => Object.assign(progress, v),
    });
    expect(out.summary.keySlice).toBe(ct.keySlice);
    expect(Object.keys(out.files).sort()).toEqual(['mask.nii.gz', 'seg.dcm']);
    expect(progress).toMatchObject({ slicesRead: ct.dims[2], slicesTotal: ct.dims[2] });
    expect(progress.slicesDone).toBeGreaterThan(5);
    expect(out.summary.stored?.seriesUid).toBe('1.2.3');
    expect(stored).toBe(1);
  });

  it('gives a job SEG UIDs of its own, the same when it is run again (a retry)', async () => {
    const seg = async (id: string, attempt: number) => {
      const out = await service.run(
        { ...payload(), request: { ...payload().request, store: false } },
        { id, attempt, signal: new AbortController().signal, progress: () => {} },
      );
      const { meta, dataset } = await parseDicomHeader(new BytesSource(out.files['seg.dcm']));
      return {
        sop: dataset.string(Tag.SopInstanceUid),
        meta: meta.string(Tag.MediaStorageSopInstanceUid),
        series: dataset.string(Tag.SeriesInstanceUid),
      };
    };
    const first = await seg('5d0c0b57-3c1e-4a57-9d55-2b1f0c7e8a01', 1);
    const retried = await seg('5d0c0b57-3c1e-4a57-9d55-2b1f0c7e8a01', 2);
    const other = await seg('8e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b', 1);
    expect(first.sop).toMatch(/^2\.25\.[1-9]\d*$/);
    expect(first.meta).toBe(first.sop);
    expect(retried).toEqual(first);
    expect(other.sop).not.toBe(first.sop);
    expect(other.series).not.toBe(first.series);
    expect(first.series).not.toBe(first.sop);
    expect(stored).toBe(1);
  });

  it('stops between slices when cancelled, and stores nothing', async () => {
    const controller = new AbortController();
    let slicesDone = 0;
    const run = service.run(payload(), {
      id: 'j2',
      attempt: 1,
      signal: controller.signal,
      progress: (v) => {
        if (v.slicesDone !== undefined) {
          slicesDone = v.slicesDone;
          if (slicesDone >= 2) controller.abort(new Cancelled('the job was cancelled'));
        }
      },
    });
    await expect(run).rejects.toBeInstanceOf(Cancelled);
    expect(slicesDone).toBeLessThan(5);
    expect(stored).toBe(1);
  });

  it('a cancel that lands while the SEG is stored is too late: the job ends done, its SEG stored once', async () => {
    let storing!: () => void;
    const inStore = new Promise<void>((r) => (storing = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const stores: { aborted: boolean }[] = [];
    const slow = new SegmentationService({
      catalog: undefined as unknown as Catalog,
      storage,
      decoder,
      engines: new LazyEngines(),
      maxVoxels: 1_000_000,
      storeSeg: async (_bytes, studyUid, signal) => {
        storing();
        await released;
        stores.push({ aborted: signal.aborted });
        return { studyUid, seriesUid: '1.2.9', sopUid: '1.2.9.1' };
      },
      queue: (handler) => new MemoryJobQueue({ handler }),
    });
    try {
      const { job } = await slow.submit(payload());
      await inStore;
      expect(await slow.queue.cancel(job.id)).toMatchObject({ state: 'running', cancelRequested: true });
      release();
      let ended = await slow.queue.get(job.id);
      while (ended && (ended.state === 'running' || ended.state === 'queued')) {
        await new Promise((r) => setTimeout(r, 10));
        ended = await slow.queue.get(job.id);
      }
      expect(ended?.state).toBe('done');
      expect(ended?.summary?.stored).toEqual({
        studyUid: ct.studyUid,
        seriesUid: '1.2.9',
        sopUid: '1.2.9.1',
      });
      expect(ended?.files.sort()).toEqual(['mask.nii.gz', 'seg.dcm']);
      // The store ran to its end, not aborted half-way, exactly once.
      expect(stores).toEqual([{ aborted: false }]);
    } finally {
      release();
      await slow.close();
    }
  });

  it('answers 409 naming what to install for an engine it cannot load', async () => {
    const engines = new LazyEngines();
    const error = await engines.get('medsam2').catch((e: unknown) => e);
    expect((error as MedStreamError).code).toBe('conflict');
    expect((error as MedStreamError).message).toMatch(/MedSAM2 ONNX weights/);
    await engines.close();
  });
});
