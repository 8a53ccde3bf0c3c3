// STOW-RS on a local directory and on S3 (s3rver): instances stored through dicomweb-client are
// written under the STOW prefix and found by QIDO at once; bad parts (not DICOM, truncated pixel
// data, the wrong study, too large) are refused one by one with their reasons, and never leave
// an object, or a spooled file, behind.

import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { instanceBytes, instancesOf, STUDIES, type TestStudy } from '../support/radiology-studies.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';
import { request, startTestServer } from '../support/server.js';
import { dicomwebClient, value, type DicomJsonObject } from './client.js';

const BOUNDARY = 'medstream-test-boundary';

/** A study with new UIDs (so each storage's test starts empty). */
function freshStudy(n: number): TestStudy {
  const base = STUDIES[0];
  const uid = `1.2.826.0.1.3680043.9.7778.${n}`;
  return {
    ...base,
    uid,
    series: [{ ...base.series[0], uid: `${uid}.1`, instances: 3 }],
  };
}

function bytesOf(study: TestStudy, index: number): Uint8Array {
  return instanceBytes(study, study.series[0], instancesOf(study)[index]);
}

function multipart(parts: Array<{ type?: string; body: Uint8Array }>, close = true): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: ${part.type ?? 'application/dicom'}\r\n\r\n`));
    chunks.push(Buffer.from(part.body));
    chunks.push(Buffer.from('\r\n'));
  }
  if (close) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

async function post(server: RunningServer, p: string, body: Buffer) {
  return request(server, p, {
    method: 'POST',
    body,
    headers: {
      'Content-Type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`,
      Accept: 'application/dicom+json',
    },
  });
}

interface Setup {
  name: string;
  start(): Promise<{
    server: RunningServer;
    keys(): Promise<string[]>;
    dataDir: string;
    stop(): Promise<void>;
  }>;
}

const setups: Setup[] = [
  {
    name: 'local directory',
    async start() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'stow-'));
      const store = path.join(dir, 'store');
      await import('node:fs/promises').then((fs) => fs.mkdir(store));
      const dataDir = path.join(dir, 'data');
      const server = await startTestServer(store, [
        '--data-dir',
        dataDir,
        '--index-interval',
        '0',
        '--stow-max-bytes',
        '4KB',
      ]);
      const keys = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const entry of await readdir(store, { recursive: true, withFileTypes: true })) {
          if (entry.isFile()) out.push(path.relative(store, path.join(entry.parentPath, entry.name)));
        }
        return out.sort();
      };
      return { server, keys, dataDir, stop: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'S3',
    async start() {
      const s3: TestS3Server = await startS3Server();
      await s3.createBucket('pacs');
      const dir = await mkdtemp(path.join(os.tmpdir(), 'stow-s3-'));
      const dataDir = path.join(dir, 'data');
      const server = await startTestServer('s3://pacs/archive', [
        ...s3.medstreamFlags(),
        '--data-dir',
        dataDir,
        '--index-interval',
        '0',
        '--stow-max-bytes',
        '4KB',
      ]);
      const keys = async () => {
        const out = await s3.client.send(new ListObjectsV2Command({ Bucket: 'pacs' }));
        return (out.Contents ?? []).map((o) => o.Key!.replace(/^archive\//, '')).sort();
      };
      return {
        server,
        keys,
        dataDir,
        stop: async () => {
          await s3.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

describe.each(setups)('STOW-RS on $name', (setup) => {
  let env: Awaited<ReturnType<Setup['start']>>;
  beforeAll(async () => {
    env = await setup.start();
  });
  afterAll(async () => {
    await env.server.close();
    await env.stop();
  });

  it('stores instances sent by dicomweb-client and QIDO finds them at once', async () => {
    const study = freshStudy(1);
    const client = dicomwebClient(env.server.url + '/dicomweb');
    const datasets = [0, 1].map((i) => {
      const b = bytesOf(study, i);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    });
    await client.storeInstances({ datasets, studyInstanceUID: study.uid });
    const series = study.series[0].uid;
    expect(await env.keys()).toEqual([
      `stow/${study.uid}/${series}/${series}.1.dcm`,
      `stow/${study.uid}/${series}/${series}.2.dcm`,
    ]);
    const found = await client.searchForInstances({ studyInstanceUID: study.uid });
    expect(found.map((i) => value(i, '00080018')).sort()).toEqual([`${series}.1`, `${series}.2`]);
    const studies = await client.searchForStudies({ queryParams: { StudyInstanceUID: study.uid } });
    expect(value(studies[0], '00201208')).toBe(2);
  });

  it('answers the stored and failed instances with their reasons, storing only the good ones', async () => {
    const study = freshStudy(2);
    const other = freshStudy(3);
    const good = bytesOf(study, 0);
    const truncated = good.subarray(0, good.length - 10);
    const res = await post(
      env.server,
      `/dicomweb/studies/${study.uid}`,
      multipart([
        { body: good },
        { body: truncated },
        { body: bytesOf(other, 0) }, // another study than the URL's
        { body: Buffer.from('not a DICOM file at all, just text that is long enough to look at') },
        { type: 'application/pdf', body: good },
        { body: Buffer.concat([Buffer.from(good), Buffer.alloc(5000)]) }, // over --stow-max-bytes (4 KB)
      ]),
    );
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`${env.server.url}/dicomweb/studies/${study.uid}`);
    const body = res.json() as Record<string, { Value: DicomJsonObject[] }>;
    expect(body['00081199'].Value.map((i) => value(i, '00081155'))).toEqual([`${study.series[0].uid}.1`]);
    const failed = body['00081198'].Value;
    expect(failed.map((i) => value(i, '00081197'))).toEqual([0xc000, 0xa900, 0xc000, 0xc000, 0xa700]);
    expect(String(value(failed[1], '00000902'))).toMatch(/not the study of the request/);
    const keys = await env.keys();
    expect(keys.filter((k) => k.includes(study.uid))).toHaveLength(1);
    expect(keys.filter((k) => k.includes(other.uid))).toHaveLength(0);
    // Nothing left in the spool.
    expect(await readdir(path.join(env.dataDir, 'tmp'))).toEqual([]);
  });

  it('answers 409 when nothing could be stored, 415 for a body that is not multipart DICOM', async () => {
    const study = freshStudy(4);
    const none = await post(
      env.server,
      `/dicomweb/studies/${study.uid}`,
      multipart([{ body: Buffer.from('x'.repeat(300)) }]),
    );
    expect(none.status).toBe(409);
    const json = await request(env.server, '/dicomweb/studies', {
      method: 'POST',
      body: '{}',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(json.status).toBe(415);
    const meta = await request(env.server, '/dicomweb/studies', {
      method: 'POST',
      body: multipart([{ body: bytesOf(study, 0) }]),
      headers: { 'Content-Type': `multipart/related; type="application/dicom+json"; boundary=${BOUNDARY}` },
    });
    expect(meta.status).toBe(415);
  });

  it('refuses a body that ends inside a part and keeps nothing of that part', async () => {
    const study = freshStudy(5);
    const res = await post(
      env.server,
      `/dicomweb/studies/${study.uid}`,
      multipart([{ body: bytesOf(study, 0) }], false).subarray(0, 300),
    );
    expect(res.status).toBe(400);
    expect((await env.keys()).filter((k) => k.includes(study.uid))).toEqual([]);
    expect(await readdir(path.join(env.dataDir, 'tmp'))).toEqual([]);
  });
});
