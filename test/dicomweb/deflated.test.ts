// WADO-RS from deflated explicit VR little endian files (dcmtk's `dcmconv +td` of pydicom-written
// natives): indexed by inflating the data set only as far as the header; metadata equals dcm2json
// of the same file; frames (read from the inflated copy in the on-disk cache) equal pydicom's
// decode byte for byte; rendered images read them; a truncated deflate stream is a typed error.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { CorruptFile, UnsupportedFormat } from '../../src/errors.js';
import { BytesSource } from '../support/file-source.js';
import { metric, request, startIndexedServer } from '../support/server.js';
import {
  NATIVE_SERIES,
  bodyOfPart,
  deflateDicom,
  pydicomNativePixels,
  writeConvertedSeries,
  writeSquareInstance,
} from '../support/native-series.js';

const STUDY = '1.2.826.0.1.3680043.8.498.5252';
const DEFLATED = '1.2.840.10008.1.2.1.99';
const SERIES = NATIVE_SERIES;

type DicomJsonObject = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string }>;

let dir: string;
let store: string;
let server: RunningServer;
let files: Array<{ url: string; file: string }>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'deflated-'));
  store = path.join(dir, 'store');
  await mkdir(store);
  files = writeConvertedSeries(
    dir,
    store,
    STUDY,
    SERIES,
    { id: 'DEFLATED', name: 'Deflated^Set', prefix: 'deflated' },
    deflateDicom,
  );
  // The same object with its deflate stream cut short.
  const whole = await readFile(files[0].file);
  await writeFile(path.join(store, 'truncated.dcm'), whole.subarray(0, whole.length - 200));
  // A noisy 512 x 512 instance whose deflate stream is cut inside the pixel data: its header
  // inflates from a prefix (indexed), its frames cannot be inflated.
  writeSquareInstance(
    path.join(dir, 'noise.dcm'),
    STUDY,
    512,
    'np.random.default_rng(7).integers(0, 65536, (size, size))',
  );
  deflateDicom(path.join(dir, 'noise.dcm'), path.join(dir, 'noise-deflated.dcm'));
  const noise = await readFile(path.join(dir, 'noise-deflated.dcm'));
  await writeFile(path.join(store, 'noise-cut.dcm'), noise.subarray(0, noise.length - 1000));
  server = await startIndexedServer(store);
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** pydicom's decode of files, as native little-endian bytes each. */
function pydicomPixels(paths: string[]): Buffer[] {
  const out = pydicomNativePixels(paths);
  expect(out.syntaxes.every((s) => s === DEFLATED)).toBe(true);
  return out.pixels;
}

describe('deflated explicit VR little endian', () => {
  it('metadata equals dcm2json of the same file (up to the frames syntax and pixel data)', async () => {
    for (const { url, file } of files) {
      const [ours] = (await request(server, `${url}/metadata`)).json() as DicomJsonObject[];
      const reference = JSON.parse(execFileSync('dcm2json', [file], { encoding: 'utf8' })) as DicomJsonObject;
      // Frames come out of the inflated copy: explicit VR little endian.
      expect(ours['00083002']).toEqual({ vr: 'UI', Value: ['1.2.840.10008.1.2.1'] });
      const skip = new Set(['00083002', '7FE00010']);
      const keys = (o: DicomJsonObject) =>
        Object.keys(o)
          .filter((k) => !skip.has(k))
          .sort();
      expect(keys(ours)).toEqual(keys(reference));
      for (const k of keys(ours)) expect(ours[k], `${file} ${k}`).toEqual(reference[k]);
      expect(ours['00289001'].Value).toEqual([123456789]);
      expect(ours['00280010'].Value).toEqual([40]);
    }
  });

  it('transcodes frames to explicit VR little endian equal to pydicom', async () => {
    const references = pydicomPixels(files.map((f) => f.file));
    for (const [i, { url, file }] of files.entries()) {
      for (const accept of [
        'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
        'multipart/related; type="application/octet-stream"',
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
      ]) {
        const res = await request(server, `${url}/frames/1`, { headers: { Accept: accept } });
        expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
        expect(res.body.toString('latin1')).toContain(
          'Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1',
        );
        const pixels = bodyOfPart(res);
        expect(pixels.length).toBe(references[i].length);
        expect(pixels.equals(references[i]), file).toBe(true);
      }
    }
  });

  it('renders deflated frames as the linear window of the pixels pydicom decodes', async () => {
    const [reference] = pydicomPixels([files[1].file]); // 12-bit unsigned, rescale intercept -1024
    const [c, w] = [1000, 4096];
    const png = await request(server, `${files[1].url}/rendered?accept=image/png&window=${c},${w}`);
    expect(png.status).toBe(200);
    const { data, info } = await sharp(png.body).greyscale().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([24, 40]);
    let max = 0;
    for (let i = 0; i < 24 * 40; i++) {
      const x = reference.readUInt16LE(2 * i) - 1024;
      const y = Math.min(255, Math.max(0, ((x - (c - 0.5)) / (w - 1) + 0.5) * 255));
      max = Math.max(max, Math.abs(data[i * info.channels] - y));
    }
    expect(max).toBeLessThanOrEqual(2);
  });

  it('a truncated deflate stream is a typed error: indexed as an error, and from the parser', async () => {
    const bytes = new Uint8Array(await readFile(files[0].file));
    const cut = bytes.slice(0, bytes.length - 200);
    await expect(parseDicomHeader(new BytesSource(cut), { inflate: true })).rejects.toBeInstanceOf(
      CorruptFile,
    );
    // Callers that read pixel data by range from the stored object do not get offsets they cannot use.
    await expect(parseDicomHeader(new BytesSource(bytes))).rejects.toBeInstanceOf(UnsupportedFormat);
    const errors = (await request(server, '/admin/index/errors')).json();
    expect(JSON.stringify(errors)).toMatch(/truncated\.dcm[^}]*corrupt_file/);
    // Cut inside the pixel data: indexed from its header, its frames fail typed, the server lives on.
    const url = `/dicomweb/studies/${STUDY}/series/${STUDY}.9/instances/${STUDY}.9.1`;
    for (let i = 0; i < 2; i++) {
      const res = await request(server, `${url}/frames/1`, {
        headers: { Accept: 'multipart/related; type="application/octet-stream"' },
      });
      expect(res.status).toBe(422);
      expect((res.json() as { error: string }).error).toBe('corrupt_file');
    }
    expect((await request(server, `${files[0].url}/metadata`)).status).toBe(200);
  });

  it('inflates a deflated object once: later frames are read from the cache, not storage', async () => {
    const reads = () => metric(server, 'medstream_storage_requests_total{kind="read"}');
    const accept = { Accept: 'multipart/related; type="application/octet-stream"' };
    expect((await request(server, `${files[2].url}/frames/1`, { headers: accept })).status).toBe(200);
    const before = await reads();
    for (let i = 0; i < 3; i++) {
      expect((await request(server, `${files[2].url}/frames/1`, { headers: accept })).status).toBe(200);
    }
    expect(await reads()).toBe(before);
  });
});
