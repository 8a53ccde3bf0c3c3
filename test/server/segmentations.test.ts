// The segmentation API on a real server over a real catalog: a box on a CT series (a phantom with
// a known ellipsoid, and the NIfTI fixture CT) -> 202 + Location -> progress -> done; the mask
// against the truth, the SEG read back by pydicom (references, Frame of Reference, label, codes,
// colour), stored and listed by QIDO as a series of the same study; identical requests joined;
// cancellation; typed errors for bad input; metrics.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { diceOf } from '../segment/phantom.js';
import { fixture } from '../support/fixtures.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';
import { metric, request, startIndexedServer, until } from '../support/server.js';
import { python } from '../volumes/python.js';

const dir = mkdtempSync(path.join(tmpdir(), 'medstream-segsvc-'));
let server: RunningServer;
let ct: PhantomSeries;

interface JobView {
  id: string;
  state: string;
  progress: Record<string, number>;
  error?: { code: string; message: string };
  timings: Record<string, unknown>;
  request: { study: string; series: string };
  result?: {
    voxels: number;
    keySlice: number;
    slices: [number, number];
    slicesVisited: number;
    stored?: { studyUid: string; seriesUid: string; sopUid: string };
    files: Record<string, string>;
  };
}

const post = (body: unknown, s: { url: string } = server) =>
  request(s, '/segmentations', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

async function finished(id: string, s: { url: string } = server): Promise<JobView> {
  let job: JobView | undefined;
  await until(async () => {
    job = (await request(s, `/segmentations/${id}`)).json() as JobView;
    return ['done', 'failed', 'cancelled'].includes(job.state);
  }, 20_000);
  return job!;
}

function maskOf(bytes: Buffer): Uint8Array {
  const nii = gunzipSync(bytes);
  const offset = nii.readFloatLE(108);
  return new Uint8Array(nii.subarray(offset));
}

beforeAll(async () => {
  ct = await writePhantomSeries(path.join(dir, 'phantom'));
  mkdirSync(path.join(dir, 'nifti'));
  copyFileSync(fixture('volumes/nifti/example_ct_sm.nii.gz'), path.join(dir, 'nifti', 'ct.nii.gz'));
  server = await startIndexedServer(dir);
}, 60_000);
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('POST /segmentations', () => {
  let job: JobView;
  const box = () => ct.box;

  it('segments a DICOM series from a box: 202 + Location, progress, the mask, a stored SEG', async () => {
    const res = await post({
      series: ct.seriesUid,
      slice: ct.keySlice,
      box: box(),
      engine: 'classical',
      label: 'phantom lesion',
      color: '#ff0000',
      category: { code: '49755003', scheme: 'SCT', meaning: 'Morphologically Altered Structure' },
      type: { code: '108369006', scheme: 'SCT', meaning: 'Neoplasm' },
    });
    expect(res.status).toBe(202);
    const submitted = res.json() as JobView;
    expect(res.headers.get('location')).toBe(`/segmentations/${submitted.id}`);
    expect(['queued', 'running', 'done']).toContain(submitted.state);
    job = await finished(submitted.id);
    expect(job.state).toBe('done');
    expect(job.request).toMatchObject({ study: ct.studyUid, series: ct.seriesUid });
    expect(job.progress.slicesDone).toBeGreaterThan(5);
    expect(job.progress.slicesVisited).toBeGreaterThanOrEqual(job.progress.slicesDone);
    expect(job.progress.slicesRead).toBe(ct.dims[2]);
    expect(job.timings).toHaveProperty('segmentSeconds');
    expect(job.result?.keySlice).toBe(ct.keySlice);

    const mask = await request(server, job.result!.files['mask.nii.gz']);
    expect(mask.status).toBe(200);
    expect(diceOf(maskOf(mask.body), ct.truth)).toBeGreaterThan(0.85);
  });

  it('writes a SEG that references the source, its Frame of Reference, label, codes and colour', async () => {
    const seg = await request(server, job.result!.files['seg.dcm']);
    expect(seg.status).toBe(200);
    expect(seg.headers.get('content-type')).toBe('application/dicom');
    const file = path.join(dir, 'seg-check.dcm');
    writeFileSync(file, seg.body);
    const r = python<{
      study: string;
      forUid: string;
      refSeries: string;
      refs: string[];
      label: string;
      category: string;
      type: string;
      lab: number[];
      frames: number;
      series: string;
    }>(
      `import sys, json, pydicom
d = pydicom.dcmread(sys.argv[1])
s = d.SegmentSequence[0]
print(json.dumps({'study': d.StudyInstanceUID, 'forUid': d.FrameOfReferenceUID,
  'refSeries': d.ReferencedSeriesSequence[0].SeriesInstanceUID,
  'refs': [i.ReferencedSOPInstanceUID for i in d.ReferencedSeriesSequence[0].ReferencedInstanceSequence],
  'label': s.SegmentLabel, 'category': s.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning,
  'type': s.SegmentedPropertyTypeCodeSequence[0].CodeValue, 'lab': list(s.RecommendedDisplayCIELabValue),
  'frames': int(d.NumberOfFrames), 'series': d.SeriesInstanceUID}))`,
      [file],
    );
    expect(r.study).toBe(ct.studyUid);
    expect(r.forUid).toBe(ct.frameOfReferenceUid);
    expect(r.refSeries).toBe(ct.seriesUid);
    expect(new Set(r.refs)).toEqual(new Set(ct.sopUids));
    expect(r.label).toBe('phantom lesion');
    expect(r.category).toBe('Morphologically Altered Structure');
    expect(r.type).toBe('108369006');
    // sRGB red is L* 53.2, a* 80.1, b* 67.2 (CIE), scaled to 0..65535.
    expect(r.lab[0]).toBeCloseTo((53.24 * 65535) / 100, -2);
    expect(r.lab[1]).toBeCloseTo(((80.09 + 128) * 65535) / 255, -2);
    expect(r.frames).toBe(job.result!.slices[1] - job.result!.slices[0] + 1);
    expect(job.result!.stored?.seriesUid).toBe(r.series);
  });

  it('lists the stored SEG in QIDO as a series of the same study', async () => {
    const res = await request(server, `/dicomweb/studies/${ct.studyUid}/series`);
    expect(res.status).toBe(200);
    const series = res.json() as Record<string, { Value?: unknown[] }>[];
    const seg = series.find((s) => s['0020000E']?.Value?.[0] === job.result!.stored!.seriesUid);
    expect(seg?.['00080060']?.Value?.[0]).toBe('SEG');
  });

  it('answers identical requests (a flood of them) with the same job and its result', async () => {
    const same = { series: ct.seriesUid, slice: ct.keySlice, box: box(), engine: 'classical' };
    const answers = await Promise.all(Array.from({ length: 20 }, () => post({ ...same, label: 'again' })));
    const ids = new Set(answers.map((a) => (a.json() as JobView).id));
    expect(ids).toEqual(new Set([job.id]));
    expect(answers.every((a) => a.status === 200 && a.headers.get('x-job-created') === 'false')).toBe(true);
    expect(await metric(server, 'medstream_segmentation_deduplicated_total')).toBeGreaterThanOrEqual(20);
    // Another window is another job.
    const other = await post({ ...same, window: [-50, 150], store: false });
    expect(other.status).toBe(202);
    expect((other.json() as JobView).id).not.toBe(job.id);
    expect((await finished((other.json() as JobView).id)).state).toBe('done');
  });

  it('takes the key slice as an instance UID, and a NIfTI volume by its key', async () => {
    const byInstance = await post({
      series: ct.seriesUid,
      instance: ct.sopUids[ct.keySlice],
      box: box(),
      store: false,
    });
    expect(byInstance.status).toBe(202);
    const a = await finished((byInstance.json() as JobView).id);
    expect(a.result?.keySlice).toBe(ct.keySlice);

    const nifti = await post({
      volume: 'nifti/ct.nii.gz',
      slice: 14,
      box: [45, 27, 104, 85],
      label: 'liver',
    });
    expect(nifti.status).toBe(202);
    const b = await finished((nifti.json() as JobView).id);
    expect(b.state).toBe('done');
    expect(b.result!.voxels).toBeGreaterThan(1000);
    expect(b.result!.slices[0]).toBeLessThan(14);
    expect(b.result!.slices[1]).toBeGreaterThan(14);
    // Its SEG is stored in the NIfTI volume's (derived) study.
    const res = await request(server, `/dicomweb/studies/${b.request.study}/series?Modality=SEG`);
    const series = res.json() as Record<string, { Value?: unknown[] }>[];
    expect(series.map((s) => s['0020000E']?.Value?.[0])).toContain(b.result!.stored!.seriesUid);
  });

  it('cancels a queued job (DELETE) and keeps nothing in the queue', async () => {
    const long = await post({ volume: 'nifti/ct.nii.gz', slice: 15, box: [40, 25, 100, 80], store: false });
    const queued = await post({ volume: 'nifti/ct.nii.gz', slice: 13, box: [44, 27, 104, 85], store: false });
    const id = (queued.json() as JobView).id;
    const del = await request(server, `/segmentations/${id}`, { method: 'DELETE' });
    expect([200, 202]).toContain(del.status);
    expect((await finished(id)).state).toBe('cancelled');
    const mask = await request(server, `/segmentations/${id}/mask.nii.gz`);
    expect(mask.status).toBe(409);
    expect((await finished((long.json() as JobView).id)).state).toBe('done');
    expect(await metric(server, 'medstream_segmentation_queue_depth')).toBe(0);
  });
});

describe('bad segmentation requests', () => {
  const base = () => ({ series: ct.seriesUid, slice: ct.keySlice, box: ct.box, store: false });
  it.each([
    ['a box outside the slice', { box: [100, 100, 120, 120] }, 400, /outside the 48x48 slice/],
    ['an empty box', { box: [10, 10, 10, 20] }, 400, /is empty/],
    ['a box of three numbers', { box: [1, 2, 3] }, 400, /four finite numbers/],
    ['a slice out of range', { slice: 14 }, 400, /out of range 0..13/],
    ['an unknown field', { boxx: [1, 2, 3, 4] }, 400, /unknown field/],
    ['an unknown engine', { engine: 'magic' }, 400, /engine must be one of: classical, sam, medsam2/],
    ['an engine not installed', { engine: 'medsam2' }, 409, /medsam2 .*not installed.*MedSAM2 ONNX weights/],
    ['an unknown series', { series: '1.2.3.4.5' }, 404, /series 1.2.3.4.5 is not in the catalog/],
    ['an instance of another series', { slice: undefined, instance: '1.2.3' }, 400, /not in series/],
    ['an unknown volume', { series: undefined, volume: 'nope.nii.gz' }, 404, /not a catalogued NIfTI/],
    ['a bad colour', { color: 'red' }, 400, /color must be/],
  ])('refuses %s', async (_name, change, status, message) => {
    const res = await post({ ...base(), ...change });
    expect(res.status).toBe(status);
    const body = res.json() as { error: string; message: string };
    expect(body.message).toMatch(message);
    expect(body.message).not.toMatch(/at .*\.ts/);
  });

  it('answers 404 for unknown jobs and files', async () => {
    expect((await request(server, '/segmentations/no-such-job')).status).toBe(404);
    expect((await request(server, '/segmentations/no-such-job', { method: 'DELETE' })).status).toBe(404);
    expect((await request(server, '/segmentations/x/other.bin')).status).toBe(404);
  });

  it('counts jobs by state and seconds per slice per engine in /metrics', async () => {
    expect(await metric(server, 'medstream_segmentation_jobs{state="done"}')).toBeGreaterThanOrEqual(4);
    expect(await metric(server, 'medstream_segmentation_jobs{state="queued"}')).toBe(0);
    expect(
      await metric(server, 'medstream_segmentation_slice_seconds_count{engine="classical"}'),
    ).toBeGreaterThan(10);
    expect(
      await metric(server, 'medstream_segmentation_slice_seconds_sum{engine="classical"}'),
    ).toBeGreaterThan(0);
  });
});
