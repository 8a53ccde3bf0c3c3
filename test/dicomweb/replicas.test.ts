// Two MedStream servers sharing one PostgreSQL catalog over one S3 bucket, as replicas run: one
// indexes, both answer; an instance stored through STOW on one replica is found by QIDO and
// served by WADO-RS on the other at once, and a re-index on either keeps the catalog whole.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { instanceBytes, instancesOf, STUDIES } from '../support/radiology-studies.js';
import { startPostgres, type TestPostgres } from '../support/postgres-server.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';
import { dicomwebClient, value } from './client.js';

const [A, B] = STUDIES;
let pg: TestPostgres;
let s3: TestS3Server;
let indexer: RunningServer;
let follower: RunningServer;

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3Server()]);
  await s3.createBucket('pacs');
  for (const instance of instancesOf(A)) {
    const series = A.series.find((s) => s.uid === instance.seriesUid)!;
    await s3.upload('pacs', `a/${instance.sopUid}.dcm`, instanceBytes(A, series, instance));
  }
  const common = [...s3.medstreamFlags(), '--catalog', pg.url, '--index-interval', '0'];
  indexer = await startTestServer('s3://pacs', [...common, '--index-at-start']);
  follower = await startTestServer('s3://pacs', common);
  expect((await request(indexer, '/admin/reindex?wait=true', { method: 'POST' })).status).toBe(200);
});

afterAll(async () => {
  await follower?.close();
  await indexer?.close();
  await s3?.close();
  await pg?.stop();
});

describe('replicas sharing a PostgreSQL catalog', () => {
  it('answers from what the other replica indexed', async () => {
    const studies = await dicomwebClient(follower.url + '/dicomweb').searchForStudies();
    expect(studies.map((s) => value(s, '0020000D'))).toEqual([A.uid]);
    expect(value(studies[0], '00201208')).toBe(5);
  });

  it('finds and serves at once on one replica what was stored through the other', async () => {
    const [instance] = instancesOf(B);
    const bytes = instanceBytes(B, B.series[0], instance);
    await dicomwebClient(indexer.url + '/dicomweb').storeInstances({
      datasets: [bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer],
    });
    const other = dicomwebClient(follower.url + '/dicomweb');
    const found = await other.searchForInstances({ studyInstanceUID: B.uid });
    expect(found.map((i) => value(i, '00080018'))).toEqual([instance.sopUid]);
    const stored = await request(
      follower,
      `/dicomweb/studies/${B.uid}/series/${B.series[0].uid}/instances/${instance.sopUid}`,
      { headers: { Accept: 'application/dicom' } },
    );
    expect(stored.body.equals(Buffer.from(bytes))).toBe(true);
    // A re-index from the follower sees the same bucket: nothing removed, nothing read again.
    const rescan = (await request(follower, '/admin/reindex?wait=true', { method: 'POST' })).json() as {
      summary: { unchanged: number; removed: number; indexed: number };
    };
    expect(rescan.summary).toMatchObject({ unchanged: 6, removed: 0, indexed: 0 });
  });
});
