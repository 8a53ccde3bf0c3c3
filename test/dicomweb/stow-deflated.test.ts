// STOW-RS of deflated explicit VR little endian files (dcmtk's `dcmconv +td` of pydicom-written
// natives): stored as uploaded, indexed, found by QIDO, and their frames served equal to pydicom's
// decode; a deflate stream cut short is refused (cannot understand), one that inflates past
// --stow-max-bytes too (out of resources), and neither leaves an object or a spooled file behind.

import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { request, startTestServer } from '../support/server.js';
import {
  bodyOfPart,
  deflateDicom,
  pydicomNativePixels,
  writeNativeSeries,
  writeSquareInstance,
} from '../support/native-series.js';

const STUDY = '1.2.826.0.1.3680043.8.498.5353';
const BOUNDARY = 'medstream-deflated-boundary';

let dir: string;
let store: string;
let dataDir: string;
let server: RunningServer;
let deflated: string[];

function multipart(bodies: Uint8Array[]): Buffer {
  const chunks: Buffer[] = [];
  for (const body of bodies) {
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), Buffer.from(body));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

function post(body: Buffer) {
  return request(server, '/dicomweb/studies', {
    method: 'POST',
    body,
    headers: {
      'Content-Type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`,
      Accept: 'application/dicom+json',
    },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stow-deflated-'));
  store = path.join(dir, 'store');
  dataDir = path.join(dir, 'data');
  await mkdir(store);
  writeNativeSeries(
    dir,
    STUDY,
    [
      [16, true],
      [8, false],
    ],
    'DEFLATED',
    'Stow^Deflated',
  );
  deflated = [1, 2].map((k) => {
    const file = path.join(dir, `deflated-${k}.dcm`);
    deflateDicom(path.join(dir, `native-${k}.dcm`), file);
    return file;
  });
  // 1024 x 1024 zeros: a few KiB deflated, 2 MiB inflated (past --stow-max-bytes).
  writeSquareInstance(path.join(dir, 'zeros.dcm'), STUDY, 1024, 'np.zeros((size, size))');
  deflateDicom(path.join(dir, 'zeros.dcm'), path.join(dir, 'zeros-deflated.dcm'));
  server = await startTestServer(store, [
    '--data-dir',
    dataDir,
    '--index-interval',
    '0',
    '--stow-max-bytes',
    '1MB',
  ]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('STOW-RS of deflated files', () => {
  it('stores, indexes and serves them', async () => {
    const res = await post(multipart(await Promise.all(deflated.map((f) => readFile(f)))));
    expect(res.status, res.body.toString()).toBe(200);
    const stored = (res.json() as Record<string, { Value: unknown[] }>)['00081199'].Value;
    expect(stored).toHaveLength(2);
    // Stored as uploaded (still deflated).
    const key = path.join(store, 'stow', STUDY, `${STUDY}.1`, `${STUDY}.1.1.dcm`);
    expect((await readFile(key)).equals(await readFile(deflated[0]))).toBe(true);
    const found = await request(server, `/dicomweb/studies/${STUDY}/instances`);
    expect((found.json() as unknown[]).length).toBe(2);
    const { pixels } = pydicomNativePixels(deflated);
    for (const k of [1, 2]) {
      const url = `/dicomweb/studies/${STUDY}/series/${STUDY}.${k}/instances/${STUDY}.${k}.1`;
      const [meta] = (await request(server, `${url}/metadata`)).json() as Array<
        Record<string, { Value?: unknown[] }>
      >;
      expect(meta['00083002'].Value).toEqual(['1.2.840.10008.1.2.1']);
      expect(meta['00280010'].Value).toEqual([40]);
      const frame = await request(server, `${url}/frames/1`, {
        headers: { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
      });
      expect(frame.status).toBe(200);
      expect(bodyOfPart(frame).equals(pixels[k - 1])).toBe(true);
    }
  });

  it('refuses a truncated deflate stream and one that inflates past --stow-max-bytes', async () => {
    const whole = await readFile(deflated[0]);
    const res = await post(
      multipart([
        whole.subarray(0, whole.length - 300),
        await readFile(path.join(dir, 'zeros-deflated.dcm')),
      ]),
    );
    expect(res.status, res.body.toString()).toBe(409);
    const failed = (res.json() as Record<string, { Value: Array<Record<string, { Value: unknown[] }>> }>)[
      '00081198'
    ].Value;
    expect(failed.map((f) => f['00081197'].Value[0])).toEqual([0xc000, 0xa700]);
    expect(String(failed[0]['00000902'].Value[0])).toMatch(/inflate|truncated|past the end/);
    expect(String(failed[1]['00000902'].Value[0])).toMatch(/inflates past/);
    expect(await readdir(path.join(dataDir, 'tmp'))).toEqual([]);
    const series = await request(server, `/dicomweb/studies/${STUDY}/series/${STUDY}.9/instances`);
    expect(series.status).toBe(404);
    expect((await readdir(path.join(store, 'stow', STUDY))).sort()).toEqual([`${STUDY}.1`, `${STUDY}.2`]);
  });
});
