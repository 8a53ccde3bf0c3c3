// `medstream index --prepare` as a user runs it (a child process): derived frames of every CT
// frame are precomputed into <data-dir>/derived-cache with progress and a summary, a second run
// finds them all there (resumable), a server on the same data dir serves them without reading the
// storage, colour WSI instances are skipped, and an unknown representation is exit code 2.

import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';
import { metric, request, startTestServer } from '../support/server.js';
import { dicomwebClient, value } from '../dicomweb/client.js';

describe('medstream index --prepare', () => {
  let tmp: string;
  let storage: string;
  let dataDir: string;
  const ctDir = fixture('volumes/ct-dicom-j2k');

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'medstream-prepare-'));
    storage = path.join(tmp, 'storage');
    dataDir = path.join(tmp, 'data');
    await mkdir(path.join(storage, 'ct'), { recursive: true });
    await mkdir(path.join(storage, 'wsi'), { recursive: true });
    for (const name of (await readdir(ctDir)).slice(0, 2))
      await copyFile(path.join(ctDir, name), path.join(storage, 'ct', name));
    await copyFile(fixture('wsi/openslide/boxes_0.dcm'), path.join(storage, 'wsi', 'boxes_0.dcm'));
  });
  afterAll(() => rm(tmp, { recursive: true, force: true }));

  it('precomputes, resumes, and the server then serves without reading the storage', async () => {
    const args = [
      'index',
      storage,
      '--data-dir',
      dataDir,
      '--prepare',
      'htj2k,thumbnails',
      '--decode-workers',
      '2',
    ];
    const first = await runMedstream(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/prepared htj2k, htj2kThumbnail, jlsThumbnail in [\d.]+ s/);
    expect(first.stdout).toContain(
      '6 of 6 frames: 6 encoded, 0 already there, 0 failed; 1 instances not derivable',
    );
    expect(first.stderr).toContain('prepared 6/6');
    expect(await readdir(path.join(dataDir, 'derived-cache'))).toHaveLength(6);

    const again = await runMedstream([...args, '--json']);
    expect(again.code).toBe(0);
    const lines = again.stdout.trim().split('\n');
    expect(JSON.parse(lines[lines.length - 1])).toEqual({
      prepare: {
        kinds: ['htj2k', 'htj2kThumbnail', 'jlsThumbnail'],
        total: 6,
        done: 6,
        made: 0,
        cached: 6,
        failed: 0,
        skipped: 1,
        complete: true,
      },
    });

    const server = await startTestServer(storage, ['--data-dir', dataDir]);
    try {
      const client = dicomwebClient(server.url + '/dicomweb');
      const [study] = await client.searchForStudies({ queryParams: { StudyDate: '20221208' } });
      const studyUid = value(study, '0020000D') as string;
      const [series] = await client.searchForSeries({ studyInstanceUID: studyUid });
      const [instance] = await client.searchForInstances({
        studyInstanceUID: studyUid,
        seriesInstanceUID: value(series, '0020000E') as string,
      });
      const url = `/dicomweb/studies/${studyUid}/series/${value(series, '0020000E') as string}/instances/${value(instance, '00080018') as string}`;
      const before = await metric(server, 'medstream_storage_requests_total{kind="read"}');
      for (const kind of ['htj2k', 'jlsThumbnail']) {
        const res = await request(server, `${url}/${kind}/1`, {
          headers: { Accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*' },
        });
        expect(res.status, kind).toBe(200);
      }
      expect(await metric(server, 'medstream_storage_requests_total{kind="read"}')).toBe(before);
    } finally {
      await server.close();
    }
  });

  it('an unknown representation is a usage error', async () => {
    const run = await runMedstream(['index', storage, '--data-dir', dataDir, '--prepare', 'webp']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--prepare: "webp" is not one of htj2k, thumbnails, jls, lossy');
  });
});
