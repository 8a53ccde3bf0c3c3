// WADO-RS frames of broken or extreme instances: an offset table pointing past the end, an empty
// frame, native pixel data too short for its frames, a transfer syntax that lies about its data
// (asked for transcoded), and a sparse 2 GiB multi-frame instance whose frames cost one range read
// each. Every answer is a correct frame or a typed JSON error, and the server keeps serving.

import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { Tag, TransferSyntax } from '../../src/dicom/tags.js';
import { writeDicom, writeDicomFile, type DicomSpec, type PixelSpec } from '../support/dicom-writer.js';
import { instanceElements, instancesOf, STUDIES, type TestInstance } from '../support/radiology-studies.js';
import { metric, request, startIndexedServer } from '../support/server.js';

const [A] = STUDIES;
const SERIES = A.series[0];
let dir: string;
let server: RunningServer;

const frameBytes = (n: number, size = 600) => new Uint8Array(size).fill(n + 1);

/** One instance of study A with its own SOP UID, frames and transfer syntax. */
function spec(sop: string, transferSyntax: string, pixel: PixelSpec, frames: number): DicomSpec {
  const base: TestInstance = { ...instancesOf(A)[0], sopUid: sop };
  return {
    transferSyntax,
    elements: [
      ...instanceElements(A, SERIES, base).filter((e) => e.tag !== Tag.SopInstanceUid),
      { tag: Tag.SopInstanceUid, vr: 'UI', value: sop },
      { tag: Tag.NumberOfFrames, vr: 'IS', value: String(frames) },
    ],
    pixel,
  };
}

const url = (sop: string) => `/dicomweb/studies/${A.uid}/series/${SERIES.uid}/instances/${sop}/frames`;
const reads = () => metric(server, 'medstream_storage_requests_total{kind="read"}');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'frames-bad-'));
  const store = path.join(dir, 'store');
  await mkdir(store);
  const jpeg = TransferSyntax.JpegBaseline;
  // A sparse instance over 2 GiB: 3 frames after a 2 GiB hole, located by an Extended Offset Table.
  await writeDicomFile(
    path.join(store, 'big.dcm'),
    spec(
      '1.2.3.9.1',
      jpeg,
      {
        kind: 'encapsulated',
        frames: [0, 1, 2].map((n) => frameBytes(n)),
        offsets: 'eot',
        holeBefore: 2 ** 31,
      },
      3,
    ),
  );
  // A Basic Offset Table whose second entry points far past the end of the object.
  const badBot = writeDicom(
    spec(
      '1.2.3.9.2',
      jpeg,
      { kind: 'encapsulated', frames: [frameBytes(0), frameBytes(1)], offsets: 'bot' },
      2,
    ),
  );
  await writeFile(path.join(store, 'bad-bot.dcm'), badBot);
  const botAt = Buffer.from(badBot).indexOf(Buffer.from([0xfe, 0xff, 0x00, 0xe0, 8, 0, 0, 0])) + 8;
  const handle = await open(path.join(store, 'bad-bot.dcm'), 'r+');
  await handle.write(Buffer.from([0x00, 0x00, 0x00, 0x7f]), 0, 4, botAt + 4);
  await handle.close();
  // An empty frame, native pixel data too short for its 4 frames, and "JPEG 2000" that is noise.
  await writeFile(
    path.join(store, 'empty.dcm'),
    writeDicom(
      spec(
        '1.2.3.9.3',
        jpeg,
        { kind: 'encapsulated', frames: [new Uint8Array(0), frameBytes(1)], offsets: 'none' },
        2,
      ),
    ),
  );
  await writeFile(
    path.join(store, 'short.dcm'),
    writeDicom(
      spec(
        '1.2.3.9.4',
        TransferSyntax.ExplicitVrLittleEndian,
        { kind: 'native', frames: [new Uint8Array(40)] },
        4,
      ),
    ),
  );
  await writeFile(
    path.join(store, 'lying.dcm'),
    writeDicom(
      spec(
        '1.2.3.9.5',
        TransferSyntax.Jpeg2000Lossless,
        { kind: 'encapsulated', frames: [frameBytes(7, 300)], offsets: 'bot' },
        1,
      ),
    ),
  );
  server = await startIndexedServer(store);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('frames of broken and extreme instances', () => {
  it('serves frames of a 2 GiB instance with one range read each once its table is known', async () => {
    const first = await reads();
    const frame2 = await request(server, `${url('1.2.3.9.1')}/2`, { headers: { Accept: 'image/jpeg' } });
    expect(frame2.status).toBe(200);
    expect(frame2.body.equals(Buffer.from(frameBytes(1)))).toBe(true);
    // The offset table's block and the frame.
    expect((await reads()) - first).toBeLessThanOrEqual(2);
    const before = await reads();
    const frame3 = await request(server, `${url('1.2.3.9.1')}/3`, { headers: { Accept: 'image/jpeg' } });
    expect(frame3.body.equals(Buffer.from(frameBytes(2)))).toBe(true);
    expect((await reads()) - before).toBe(1);
  });

  it.each([
    ['an offset table past the end', '1.2.3.9.2', '1', 'image/jpeg', 422, 'corrupt_file'],
    ['an empty frame', '1.2.3.9.3', '1', 'image/jpeg', 422, 'corrupt_file'],
    [
      'native data too short for its frames',
      '1.2.3.9.4',
      '2',
      'application/octet-stream',
      422,
      'corrupt_file',
    ],
    [
      'JPEG 2000 that is noise, transcoded',
      '1.2.3.9.5',
      '1',
      'application/octet-stream',
      500,
      'decode_error',
    ],
  ])('%s: a typed error', async (_name, sop, frame, accept, status, code) => {
    const res = await request(server, `${url(sop)}/${frame}`, { headers: { Accept: accept } });
    expect(res.status).toBe(status);
    const body = res.json() as { error: string; message: string };
    expect(body.error).toBe(code);
    expect(body.message).not.toMatch(/\n\s+at /);
  });

  it('keeps serving after all of them', async () => {
    const res = await request(server, `${url('1.2.3.9.1')}/1`, { headers: { Accept: 'image/jpeg' } });
    expect(res.status).toBe(200);
    expect(res.body.equals(Buffer.from(frameBytes(0)))).toBe(true);
    expect((await request(server, `${url('1.2.3.9.1')}/4`)).status).toBe(404);
  });
});
