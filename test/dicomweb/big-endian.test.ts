// WADO-RS from explicit VR big endian files (dcmtk's `dcmconv +tb` of pydicom-written natives):
// indexed by the catalog; metadata equals dcm2json of the same file; frames transcoded to explicit
// VR little endian equal pydicom's decode byte for byte; the stored syntax is served as it is when
// asked for; rendered images and volume.nii.gz read it; a big-endian file whose lengths lie
// fails with a typed error, never a crash.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag, tag } from '../../src/dicom/tags.js';
import { CorruptFile } from '../../src/errors.js';
import { BytesSource } from '../support/file-source.js';
import { request, startIndexedServer } from '../support/server.js';
import {
  NATIVE_SERIES,
  bodyOfPart,
  pydicomNativePixels,
  writeConvertedSeries,
} from '../support/native-series.js';
import { python } from '../volumes/python.js';

const STUDY = '1.2.826.0.1.3680043.8.498.5151';
const BE = '1.2.840.10008.1.2.2';
const SERIES = NATIVE_SERIES;

type DicomJsonObject = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string }>;

let dir: string;
let store: string;
let server: RunningServer;
let files: Array<{ url: string; file: string }>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'big-endian-'));
  store = path.join(dir, 'store');
  await mkdir(store);
  files = writeConvertedSeries(
    dir,
    store,
    STUDY,
    SERIES,
    { id: 'BIGENDIAN', name: 'Big^Endian', prefix: 'be' },
    (native, stored) => execFileSync('dcmconv', ['+tb', native, stored]),
  );
  server = await startIndexedServer(store);
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** pydicom's decode of files, as native little-endian bytes each. */
function pydicomPixels(paths: string[]): Buffer[] {
  const out = pydicomNativePixels(paths);
  expect(out.syntaxes.every((s) => s === BE)).toBe(true);
  return out.pixels;
}

describe('explicit VR big endian', () => {
  it('metadata equals dcm2json of the same file (up to the frames syntax and pixel data)', async () => {
    for (const { url, file } of files) {
      const [ours] = (await request(server, `${url}/metadata`)).json() as DicomJsonObject[];
      const reference = JSON.parse(execFileSync('dcm2json', [file], { encoding: 'utf8' })) as DicomJsonObject;
      expect(ours['00083002']).toEqual({ vr: 'UI', Value: [BE] });
      const skip = new Set(['00083002', '7FE00010']);
      const keys = (o: DicomJsonObject) =>
        Object.keys(o)
          .filter((k) => !skip.has(k))
          .sort();
      expect(keys(ours)).toEqual(keys(reference));
      for (const k of keys(ours)) expect(ours[k], `${file} ${k}`).toEqual(reference[k]);
      // The swapped numbers, spelled out (dcm2json agreeing could hide nothing here).
      expect(ours['00289001'].Value).toEqual([123456789]);
      expect(ours['00700253'].Value).toEqual([1.5]);
      expect(ours['00189306'].Value).toEqual([0.625]);
      expect(ours['00280009'].Value).toEqual(['00181063']);
      expect(ours['00280010'].Value).toEqual([40]);
    }
  });

  it('transcodes frames to explicit VR little endian equal to pydicom, and serves the stored bytes when asked', async () => {
    const references = pydicomPixels(files.map((f) => f.file));
    for (const [i, { url, file }] of files.entries()) {
      const res = await request(server, `${url}/frames/1`, {
        headers: {
          Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
        },
      });
      expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
      expect(res.body.toString('latin1')).toContain(
        'Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1',
      );
      const pixels = bodyOfPart(res);
      expect(pixels.length).toBe(references[i].length);
      expect(pixels.equals(references[i]), file).toBe(true);
      // Plain octet-stream means explicit VR little endian too.
      const plain = await request(server, `${url}/frames/1`, {
        headers: { Accept: 'multipart/related; type="application/octet-stream"' },
      });
      expect(bodyOfPart(plain).equals(references[i])).toBe(true);

      const stored = await request(server, `${url}/frames/1`, {
        headers: { Accept: `multipart/related; type="application/octet-stream"; transfer-syntax=${BE}` },
      });
      expect(stored.status).toBe(200);
      expect(stored.body.toString('latin1')).toContain(`transfer-syntax=${BE}`);
      const raw = bodyOfPart(stored);
      const bytes = await readFile(file);
      expect(bytes.subarray(bytes.length - raw.length).equals(raw)).toBe(true);
      if (SERIES[i][0] > 8) expect(raw.equals(references[i])).toBe(false); // swapped indeed
    }
  });

  it('renders big-endian frames as the linear window of the pixels pydicom decodes', async () => {
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
    expect(new Set(data).size).toBeGreaterThan(100);
  });

  it('serves a big-endian series as volume.nii.gz with the values pydicom decodes', async () => {
    const res = await request(server, `/dicomweb/studies/${STUDY}/series/${STUDY}.1/volume.nii.gz`);
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    const nii = path.join(dir, 'be.nii.gz');
    await writeFile(nii, res.body);
    const out = python<{ max: number; shape: number[] }>(
      `import json, sys, numpy as np, pydicom, nibabel as nib
d = pydicom.dcmread(sys.argv[1])
ref = d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
v = np.asarray(nib.load(sys.argv[2]).dataobj).astype(np.float64)
ours = v[:, :, 0].T  # NIfTI columns first
print(json.dumps({"max": float(np.abs(ours - ref).max()), "shape": list(v.shape)}))`,
      [files[0].file, nii],
    );
    expect(out.shape.slice(0, 2)).toEqual([24, 40]);
    expect(out.max).toBe(0);
  });

  it('a big-endian file whose lengths lie fails with a typed error', async () => {
    const bytes = new Uint8Array(await readFile(files[0].file));
    const header = await parseDicomHeader(new BytesSource(bytes));
    expect(header.dataset.number(Tag.Rows)).toBe(40);
    const rows = header.dataset.get(Tag.Rows)!;
    // The length field of Rows (2 bytes before the value): now far past the end of the object.
    const lying = bytes.slice();
    lying[rows.offset - 2] = 0x7f;
    lying[rows.offset - 1] = 0xf0;
    await expect(parseDicomHeader(new BytesSource(lying))).rejects.toBeInstanceOf(CorruptFile);
    // A sequence length that overruns the object.
    const seq = header.dataset.get(tag(0x0008, 0x1140))!;
    const badSeq = bytes.slice();
    new DataView(badSeq.buffer).setUint32(seq.offset - 4, 0x7ffffff0, false);
    await expect(parseDicomHeader(new BytesSource(badSeq))).rejects.toBeInstanceOf(CorruptFile);
  });
});
