// A replica killed mid-job (SIGKILL of a `medstream serve` process with --redis-url): the job it
// was running is not lost: once its lock (--segment-job-lock 1s) expires another replica takes it
// and runs it to the end, and the replica the client talks to answers for it throughout. A running
// job cancelled through a replica that does not run it stops.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { request, startIndexedServer, until } from '../support/server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { python } from '../volumes/python.js';

const dir = mkdtempSync(path.join(tmpdir(), 'medstream-segkill-'));
let redis: TestRedis;
let a: RunningServer;
let b: ServerProcess | undefined;
let c: RunningServer | undefined;

interface JobView {
  state: string;
  worker?: string;
  attempts: number;
  progress: Record<string, number>;
}

beforeAll(async () => {
  // The JPEG 2000 CT fixture: reading it (decoding every frame) takes long enough to kill B in it.
  // Eight of its slices keep the test short.
  mkdirSync(path.join(dir, 'store', 'ct'), { recursive: true });
  for (const name of readdirSync(fixture('volumes/ct-dicom-j2k')).sort().slice(0, 8))
    copyFileSync(path.join(fixture('volumes/ct-dicom-j2k'), name), path.join(dir, 'store', 'ct', name));
  redis = await startRedis();
  a = await startIndexedServer(path.join(dir, 'store'), ['--redis-url', redis.url, '--segment-workers', '0']);
}, 60_000);
afterAll(async () => {
  await b?.stop();
  await c?.close();
  await a?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a replica killed mid-job', () => {
  it('loses its job to another replica, which runs it to the end', async () => {
    const series = (await request(a, '/dicomweb/series')).json() as Record<string, { Value?: string[] }>[];
    const seriesUid = series[0]['0020000E'].Value![0];
    b = await startServerProcess(path.join(dir, 'store'), [
      '--redis-url',
      redis.url,
      '--segment-job-lock',
      '1s',
      '--data-dir',
      path.join(dir, 'data-b'),
      '--no-index-at-start',
    ]);
    const res = await request(a, '/segmentations', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ series: seriesUid, slice: 4, box: [200, 200, 300, 300], store: false }),
    });
    expect(res.status).toBe(202);
    const id = (res.json() as { id: string }).id;
    let job: JobView = { state: '', attempts: 0, progress: {} };
    await until(async () => {
      job = (await request(a, `/segmentations/${id}`)).json() as JobView;
      return job.state === 'running' || job.state === 'done';
    }, 20_000);
    expect(job.state).toBe('running');
    // The worker id is host:pid:n; the pid is B's, a process this test started.
    const pid = Number(job.worker!.split(':').at(-2));
    process.kill(pid, 'SIGKILL');
    const killedWorker = job.worker;

    c = await startIndexedServer(path.join(dir, 'store'), [
      '--redis-url',
      redis.url,
      '--segment-job-lock',
      '1s',
    ]);
    await until(async () => {
      job = (await request(a, `/segmentations/${id}`)).json() as JobView;
      return ['done', 'failed', 'cancelled'].includes(job.state);
    }, 30_000);
    expect(job.state).toBe('done');
    expect(job.attempts).toBe(2);
    expect(job.worker).not.toBe(killedWorker);
    expect((await request(a, `/segmentations/${id}/mask.nii.gz`)).status).toBe(200);
    // The fixture's files have no Study/Series/SOP UIDs: the SEG references the catalog's, the
    // ones QIDO and WADO-RS serve.
    const seg = await request(a, `/segmentations/${id}/seg.dcm`);
    expect(seg.status).toBe(200);
    const file = path.join(dir, 'seg.dcm');
    writeFileSync(file, seg.body);
    const refs = python<{ series: string; study: string; sops: string[] }>(
      `import sys, json, pydicom
d = pydicom.dcmread(sys.argv[1])
r = d.ReferencedSeriesSequence[0]
print(json.dumps({'series': r.SeriesInstanceUID, 'study': d.StudyInstanceUID,
  'sops': [i.ReferencedSOPInstanceUID for i in r.ReferencedInstanceSequence]}))`,
      [file],
    );
    const instances = (
      await request(a, `/dicomweb/series?SeriesInstanceUID=${seriesUid}`)
    ).json() as unknown[];
    expect(instances).toHaveLength(1);
    const served = (
      (await request(a, `/dicomweb/studies/${refs.study}/series/${seriesUid}/instances`)).json() as Record<
        string,
        { Value?: string[] }
      >[]
    ).map((i) => i['00080018'].Value![0]);
    expect(refs.series).toBe(seriesUid);
    expect(new Set(refs.sops)).toEqual(new Set(served));
  }, 90_000);

  it('cancels a running job through another replica (DELETE): it stops, with no result', async () => {
    const series = (await request(a, '/dicomweb/series?Modality=CT')).json() as Record<
      string,
      { Value?: string[] }
    >[];
    const seriesUid = series[0]['0020000E'].Value![0];
    const res = await request(a, '/segmentations', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ series: seriesUid, slice: 3, box: [210, 210, 290, 290] }),
    });
    const id = (res.json() as { id: string }).id;
    await until(
      async () => ((await request(a, `/segmentations/${id}`)).json() as JobView).state === 'running',
      20_000,
    );
    const del = await request(a, `/segmentations/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect((del.json() as { cancelRequested?: boolean }).cancelRequested).toBe(true);
    let job: JobView = { state: '', attempts: 0, progress: {} };
    await until(async () => {
      job = (await request(a, `/segmentations/${id}`)).json() as JobView;
      return ['done', 'failed', 'cancelled'].includes(job.state);
    }, 20_000);
    expect(job.state).toBe('cancelled');
    expect((await request(a, `/segmentations/${id}/seg.dcm`)).status).toBe(409);
  }, 60_000);
});
