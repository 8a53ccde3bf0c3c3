// WADO-RS transcoding from every stored syntax MedStream decodes: a small CT-like series made
// with pydicom, converted with Debian's dcmtk/gdcm tools (JPEG baseline, extended 12-bit, lossless
// process 14 and SV1, RLE, JPEG-LS, JPEG 2000) and OpenJPH (HTJ2K), one series per syntax. For
// each lossless syntax the explicit VR little endian frames equal pydicom + GDCM's decode of the
// same file byte for byte; lossy JPEG (8 and 12-bit DCT) is within a tolerance of it.

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { Tag, tag } from '../../src/dicom/tags.js';
import { writeDicom } from '../support/dicom-writer.js';
import { request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';

/** Each case: the native file it starts from, the converter, and what the test expects. */
const CASES = [
  {
    name: 'jpeg-baseline',
    base: 'u8',
    tool: ['dcmcjpeg', '+eb', '+un'],
    uid: '1.2.840.10008.1.2.4.50',
    lossy: 2,
  },
  {
    // 12-bit DCT: the JS decoder of @cornerstonejs/dicom-image-loader, level shift fixed (jpeg12.ts).
    name: 'jpeg-extended-12',
    base: 'u12',
    tool: ['dcmcjpeg', '+ee', '+un'],
    uid: '1.2.840.10008.1.2.4.51',
    lossy: 2,
  },
  { name: 'jpeg-lossless-14', base: 'u12', tool: ['dcmcjpeg', '+el'], uid: '1.2.840.10008.1.2.4.57' },
  { name: 'jpeg-lossless-sv1', base: 's16', tool: ['dcmcjpeg', '+e1'], uid: '1.2.840.10008.1.2.4.70' },
  { name: 'jpeg-lossless-sv1-8', base: 'u8', tool: ['dcmcjpeg', '+e1'], uid: '1.2.840.10008.1.2.4.70' },
  { name: 'rle-16', base: 's16', tool: ['dcmcrle'], uid: '1.2.840.10008.1.2.5' },
  { name: 'rle-8', base: 'u8', tool: ['dcmcrle'], uid: '1.2.840.10008.1.2.5' },
  { name: 'jpeg-ls', base: 'u12', tool: ['dcmcjpls'], uid: '1.2.840.10008.1.2.4.80' },
  { name: 'jpeg-2000', base: 's16', tool: ['gdcmconv', '--j2k'], uid: '1.2.840.10008.1.2.4.90' },
  { name: 'htj2k', base: 's16', tool: [], uid: '1.2.840.10008.1.2.4.201' },
] as const;

/** Pixel layouts of the native files: [bits stored, signed]. */
const BASES = { u8: [8, false], u12: [12, false], s16: [16, true] } as const;
const STUDY = '1.2.826.0.1.3680043.8.498.4242';
const INSTANCES = 2;

let dir: string;
let server: RunningServer;
/** Per case: the URL of each instance and the file it was made from. */
const made = new Map<string, Array<{ url: string; file: string; native: string }>>();

/** Writes the native instances of every case (distinct UIDs per case) with pydicom, in one run. */
function writeNatives(out: string, cases: Array<[number, number, boolean]>): void {
  python(
    `import json, sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
out, n = sys.argv[1], int(sys.argv[2])
for (k, bits, signed) in json.loads(sys.argv[3]):
  for i in range(n):
      ds = Dataset(); fm = FileMetaDataset()
      fm.TransferSyntaxUID = ExplicitVRLittleEndian
      fm.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
      fm.MediaStorageSOPInstanceUID = f'${STUDY}.{k}.{i + 1}'
      ds.file_meta = fm
      ds.SOPClassUID = fm.MediaStorageSOPClassUID; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
      ds.StudyInstanceUID = '${STUDY}'; ds.SeriesInstanceUID = f'${STUDY}.{k}'
      ds.Modality = 'CT'; ds.PatientID = 'TRANSCODE'; ds.SeriesNumber = k; ds.InstanceNumber = i + 1
      ds.ImagePositionPatient = [0, 0, 3 * i]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
      ds.PixelSpacing = [1, 1]; ds.SliceThickness = 3
      ds.Rows = 64; ds.Columns = 48; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
      ds.BitsAllocated = 16 if bits > 8 else 8; ds.BitsStored = bits; ds.HighBit = bits - 1
      ds.PixelRepresentation = 1 if signed else 0
      y, x = np.mgrid[0:64, 0:48]
      a = (x * 37 + y * 53 + (x * y) % 17 + 101 * i) % (1 << bits)
      if bits == 8: a = x * 2 + y * 2 + 5 * i  # smooth: lossy JPEG stays close
      if signed: a = a - (1 << (bits - 1))
      ds.PixelData = a.astype(('<i2' if signed else '<u2') if bits > 8 else 'u1').tobytes()
      ds.is_little_endian = True; ds.is_implicit_VR = False
      ds.save_as(f'{out}/native-{k}-{i + 1}.dcm', write_like_original=False)
print(json.dumps(True))`,
    [out, String(INSTANCES), JSON.stringify(cases)],
  );
}

/** OpenJPH's encoder (lossless HTJ2K) for one 16-bit signed frame. */
async function htj2kEncode(pixels: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const factory = createRequire(import.meta.url)('@cornerstonejs/codec-openjph/wasmjs') as (
    o: object,
  ) => Promise<OpenJph>;
  codecPromise ??= factory({ print: () => undefined, printErr: () => undefined });
  const encoder = new (await codecPromise).HTJ2KEncoder();
  try {
    encoder
      .getDecodedBuffer({
        width,
        height,
        bitsPerSample: 16,
        componentCount: 1,
        isSigned: true,
        isUsingColorTransform: false,
      })
      .set(pixels);
    encoder.encode();
    return encoder.getEncodedBuffer().slice();
  } finally {
    encoder.delete();
  }
}
/** The part of OpenJPH's module the tests use. */
interface OpenJph {
  HTJ2KEncoder: new () => {
    getDecodedBuffer(info: object): Uint8Array;
    encode(): void;
    getEncodedBuffer(): Uint8Array;
    delete(): void;
  };
}
let codecPromise: Promise<OpenJph> | undefined;

/** 100 frames of 8x8 signed samples, frame f holding f * 64 + i. */
const MULTI_FRAMES = Array.from(
  { length: 100 },
  (_, f) => new Uint8Array(Int16Array.from({ length: 64 }, (_, i) => f * 64 + i - 3000).buffer),
);
const MULTI = `${STUDY}.77`;

/** An HTJ2K (lossless) instance of a native one: OpenJPH's encoder, encapsulated by pydicom. */
async function writeHtj2k(native: string, out: string): Promise<void> {
  const pixels = python<{ data: string }>(
    `import base64, json, sys, pydicom
d = pydicom.dcmread(sys.argv[1])
print(json.dumps({"data": base64.b64encode(d.PixelData).decode()}))`,
    [native],
  );
  const stream = await htj2kEncode(Buffer.from(pixels.data, 'base64'), 48, 64);
  // pydicom 2.3 does not know the HTJ2K UIDs: the test's own writer encapsulates the codestream.
  const [k, i] = /native-(\d+)-(\d+)/.exec(native)!.slice(1);
  const sop = `${STUDY}.${k}.${i}`;
  await writeFile(
    out,
    writeDicom({
      transferSyntax: '1.2.840.10008.1.2.4.201',
      elements: [
        { tag: Tag.SopClassUid, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
        { tag: Tag.SopInstanceUid, vr: 'UI', value: sop },
        { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'CT' },
        { tag: Tag.PatientId, vr: 'LO', value: 'TRANSCODE' },
        { tag: Tag.StudyInstanceUid, vr: 'UI', value: STUDY },
        { tag: Tag.SeriesInstanceUid, vr: 'UI', value: `${STUDY}.${k}` },
        { tag: Tag.SeriesNumber, vr: 'IS', value: k },
        { tag: Tag.InstanceNumber, vr: 'IS', value: i },
        { tag: tag(0x0020, 0x0032), vr: 'DS', value: `0\\0\\${3 * (Number(i) - 1)}` },
        { tag: tag(0x0020, 0x0037), vr: 'DS', value: '1\\0\\0\\0\\1\\0' },
        { tag: Tag.SamplesPerPixel, vr: 'US', value: [1] },
        { tag: Tag.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
        { tag: Tag.Rows, vr: 'US', value: [64] },
        { tag: Tag.Columns, vr: 'US', value: [48] },
        { tag: Tag.PixelSpacing, vr: 'DS', value: '1\\1' },
        { tag: Tag.BitsAllocated, vr: 'US', value: [16] },
        { tag: Tag.BitsStored, vr: 'US', value: [16] },
        { tag: Tag.HighBit, vr: 'US', value: [15] },
        { tag: Tag.PixelRepresentation, vr: 'US', value: [1] },
      ],
      pixel: { kind: 'encapsulated', frames: [stream], offsets: 'bot' },
    }),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'transcode-'));
  const store = path.join(dir, 'store');
  await mkdir(store);
  writeNatives(
    dir,
    CASES.map((c, k) => [k + 1, ...BASES[c.base]]),
  );
  for (const [k, c] of CASES.entries()) {
    const list: Array<{ url: string; file: string; native: string }> = [];
    for (let i = 1; i <= INSTANCES; i++) {
      const native = path.join(dir, `native-${k + 1}-${i}.dcm`);
      const file = path.join(store, `${c.name}-${i}.dcm`);
      if (c.tool.length === 0) await writeHtj2k(native, file);
      else execFileSync(c.tool[0], [...c.tool.slice(1), native, file]);
      list.push({
        url: `/dicomweb/studies/${STUDY}/series/${STUDY}.${k + 1}/instances/${STUDY}.${k + 1}.${i}`,
        file,
        native,
      });
    }
    made.set(c.name, list);
  }
  // A 100-frame HTJ2K instance: more frames than the decoder queue holds at once.
  const encoded = await Promise.all(MULTI_FRAMES.map((f) => htj2kEncode(f, 8, 8)));
  await writeFile(
    path.join(store, 'multi.dcm'),
    writeDicom({
      transferSyntax: '1.2.840.10008.1.2.4.201',
      elements: [
        { tag: Tag.SopClassUid, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2.1' },
        { tag: Tag.SopInstanceUid, vr: 'UI', value: `${MULTI}.1` },
        { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'CT' },
        { tag: Tag.PatientId, vr: 'LO', value: 'TRANSCODE' },
        { tag: Tag.StudyInstanceUid, vr: 'UI', value: STUDY },
        { tag: Tag.SeriesInstanceUid, vr: 'UI', value: MULTI },
        { tag: tag(0x0028, 0x0008), vr: 'IS', value: '100' },
        { tag: Tag.SamplesPerPixel, vr: 'US', value: [1] },
        { tag: Tag.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
        { tag: Tag.Rows, vr: 'US', value: [8] },
        { tag: Tag.Columns, vr: 'US', value: [8] },
        { tag: Tag.BitsAllocated, vr: 'US', value: [16] },
        { tag: Tag.BitsStored, vr: 'US', value: [16] },
        { tag: Tag.HighBit, vr: 'US', value: [15] },
        { tag: Tag.PixelRepresentation, vr: 'US', value: [1] },
      ],
      pixel: { kind: 'encapsulated', frames: encoded, offsets: 'bot' },
    }),
  );
  server = await startIndexedServer(store);
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** pydicom's decode (GDCM and its own handlers) of files, as native little-endian bytes each. */
function pydicomPixels(files: string[]): Buffer[] {
  const out = python<{ pixels: string[] }>(
    `import base64, json, sys, pydicom
r = []
for f in sys.argv[1:]:
    d = pydicom.dcmread(f)
    a = d.pixel_array
    t = ('<i' if d.PixelRepresentation else '<u') + str(d.BitsAllocated // 8)
    r.append(base64.b64encode(a.astype(t).tobytes()).decode())
print(json.dumps({"pixels": r}))`,
    files,
  );
  return out.pixels.map((p) => Buffer.from(p, 'base64'));
}

describe('transcoding to explicit VR little endian', () => {
  for (const c of CASES) {
    it(`${c.name} (${c.uid})`, async () => {
      const list = made.get(c.name)!;
      const [metadata] = (await request(server, `${list[0].url}/metadata`)).json() as Array<
        Record<string, { Value?: unknown[] }>
      >;
      expect(metadata['00083002'].Value).toEqual([c.uid]);
      // Frames of the stored file (lossless: HTJ2K has no pydicom decoder here, its native source is the reference).
      const decoded = pydicomPixels([
        ...list.map((m) => ('lossy' in c || c.name !== 'htj2k' ? m.file : m.native)),
        ...list.map((m) => m.native),
      ]);
      const references = decoded.slice(0, list.length);
      const natives = decoded.slice(list.length);
      for (const [i, m] of list.entries()) {
        const res = await request(server, `${m.url}/frames/1`, {
          headers: {
            Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
          },
        });
        expect(res.status, await res.body.toString().slice(0, 200)).toBe(200);
        const text = res.body.toString('latin1');
        expect(text).toContain('Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1');
        const boundary = /boundary=([^;]+)/.exec(res.headers.get('content-type')!)![1];
        const pixels = res.body.subarray(
          text.indexOf('\r\n\r\n') + 4,
          text.lastIndexOf(`\r\n--${boundary}--`),
        );
        expect(pixels.length).toBe(references[i].length);
        if ('lossy' in c) {
          // Lossy: within a tolerance of pydicom's decode (IDCT and rounding differ between
          // decoders), sample by sample.
          const wide = pixels.length === 2 * 48 * 64;
          const at = (b: Buffer, p: number) => (wide ? b.readUInt16LE(2 * p) : b[p]);
          let max = 0;
          for (let p = 0; p < 48 * 64; p++)
            max = Math.max(max, Math.abs(at(pixels, p) - at(references[i], p)));
          expect(max).toBeLessThanOrEqual(c.lossy);
        } else {
          expect(pixels.equals(references[i])).toBe(true);
          expect(pixels.equals(natives[i])).toBe(true); // and lossless indeed
        }
      }
      // Rendered through the same decoders.
      const png = await request(server, `${list[0].url}/rendered?accept=image/png&window=128,256`);
      expect(png.status).toBe(200);
      expect((await sharp(png.body).metadata()).width).toBe(48);
    });
  }

  it('serves the stored frames untouched when the stored syntax is accepted', async () => {
    const [m] = made.get('rle-16')!;
    const res = await request(server, `${m.url}/frames/1`, { headers: { Accept: 'image/dicom-rle' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5');
    const file = await readFile(m.file);
    expect(file.includes(res.body)).toBe(true);
  });

  it('transcodes 100 frames of one instance in one request (more than the decoder queue holds)', async () => {
    const list = Array.from({ length: 100 }, (_, i) => i + 1).join(',');
    const res = await request(
      server,
      `/dicomweb/studies/${STUDY}/series/${MULTI}/instances/${MULTI}.1/frames/${list}`,
      {
        headers: { Accept: 'multipart/related; type="application/octet-stream"' },
      },
    );
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
    const boundary = /boundary=(\S+)/.exec(res.headers.get('content-type')!)![1];
    const parts = res.body
      .toString('latin1')
      .split(`--${boundary}`)
      .slice(1, -1)
      .map((p) => Buffer.from(p.slice(p.indexOf('\r\n\r\n') + 4, -2), 'latin1'));
    expect(parts).toHaveLength(100);
    parts.forEach((p, f) => expect(p.equals(Buffer.from(MULTI_FRAMES[f]))).toBe(true));
  });
});
