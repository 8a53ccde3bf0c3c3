// WADO-RS transcoding of colour frames (8-bit, SamplesPerPixel 3) to explicit VR little endian,
// and their rendering: one RGB / YBR_FULL image (planar configuration 0 and 1) made by pydicom,
// converted with dcmtk (dcmcjpeg baseline 4:2:2, 4:4:4 and RGB, lossless process 14 and SV1,
// dcmcjpls, dcmcrle, dcmconv big endian), GDCM (gdcmconv --j2k) and OpenJPEG / OpenJPH's
// encoders (YBR_RCT). Lossless frames equal pydicom + GDCM's decode byte for byte, lossy ones
// within a stated tolerance; each frame is in the photometric interpretation docs/dicomweb.md
// says and laid out as the metadata's PlanarConfiguration says.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { Tag, tag } from '../../src/dicom/tags.js';
import { encodeJp2k } from '../codecs/jp2k-synth.js';
import { writeDicom } from '../support/dicom-writer.js';
import { encodeHtj2k } from '../support/frame-encoders.js';
import { bodyOfPart, WRITE_COLOUR_PY } from '../support/native-series.js';
import { dicomwebClient } from './client.js';
import { request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';

const STUDY = '1.2.826.0.1.3680043.8.498.4545';
const W = 48;
const H = 32;
/** The native source each case starts from (made by pydicom). */
type Source = 'rgb' | 'rgb-planar' | 'ybr';
interface Case {
  name: string;
  source: Source;
  /** dcmtk / gdcm command (source and target appended), or an encoder of ours. */
  tool: string[] | 'jp2k-rct' | 'jp2k-ict' | 'htj2k-rct';
  uid: string;
  /** Photometric interpretation the transcoded frame is in. */
  sent: 'RGB' | 'YBR_FULL';
  /** Max absolute difference to the reference (0: lossless). */
  tolerance: number;
}
const CASES: Case[] = [
  {
    name: 'jpeg-422',
    source: 'rgb',
    tool: ['dcmcjpeg', '+eb', '+un'],
    uid: '1.2.840.10008.1.2.4.50',
    sent: 'RGB',
    tolerance: 2,
  },
  {
    name: 'jpeg-444',
    source: 'rgb',
    tool: ['dcmcjpeg', '+eb', '+s4', '+un'],
    uid: '1.2.840.10008.1.2.4.50',
    sent: 'YBR_FULL',
    tolerance: 1,
  },
  {
    name: 'jpeg-rgb',
    source: 'rgb',
    tool: ['dcmcjpeg', '+eb', '+cr', '+un'],
    uid: '1.2.840.10008.1.2.4.50',
    sent: 'RGB',
    tolerance: 1,
  },
  {
    name: 'jpeg-lossless-14',
    source: 'rgb',
    tool: ['dcmcjpeg', '+el'],
    uid: '1.2.840.10008.1.2.4.57',
    sent: 'RGB',
    tolerance: 0,
  },
  {
    name: 'jpeg-lossless-sv1-ybr',
    source: 'ybr',
    tool: ['dcmcjpeg', '+e1'],
    uid: '1.2.840.10008.1.2.4.70',
    sent: 'YBR_FULL',
    tolerance: 0,
  },
  {
    name: 'jpeg-ls',
    source: 'rgb-planar',
    tool: ['dcmcjpls'],
    uid: '1.2.840.10008.1.2.4.80',
    sent: 'RGB',
    tolerance: 0,
  },
  {
    name: 'jpeg-ls-ybr',
    source: 'ybr',
    tool: ['dcmcjpls'],
    uid: '1.2.840.10008.1.2.4.80',
    sent: 'YBR_FULL',
    tolerance: 0,
  },
  {
    name: 'rle-planar',
    source: 'rgb-planar',
    tool: ['dcmcrle'],
    uid: '1.2.840.10008.1.2.5',
    sent: 'RGB',
    tolerance: 0,
  },
  {
    name: 'rle-ybr',
    source: 'ybr',
    tool: ['dcmcrle'],
    uid: '1.2.840.10008.1.2.5',
    sent: 'YBR_FULL',
    tolerance: 0,
  },
  {
    name: 'jpeg-2000',
    source: 'rgb',
    tool: ['gdcmconv', '--j2k'],
    uid: '1.2.840.10008.1.2.4.90',
    sent: 'RGB',
    tolerance: 0,
  },
  {
    name: 'jpeg-2000-ybr',
    source: 'ybr',
    tool: ['gdcmconv', '--j2k'],
    uid: '1.2.840.10008.1.2.4.90',
    sent: 'YBR_FULL',
    tolerance: 0,
  },
  {
    name: 'jpeg-2000-rct',
    source: 'rgb',
    tool: 'jp2k-rct',
    uid: '1.2.840.10008.1.2.4.90',
    sent: 'RGB',
    tolerance: 0,
  },
  {
    name: 'jpeg-2000-ict',
    source: 'rgb',
    tool: 'jp2k-ict',
    uid: '1.2.840.10008.1.2.4.91',
    sent: 'RGB',
    tolerance: 1,
  },
  {
    name: 'htj2k-rct',
    source: 'rgb',
    tool: 'htj2k-rct',
    uid: '1.2.840.10008.1.2.4.201',
    sent: 'RGB',
    tolerance: 0,
  },
  {
    name: 'big-endian-planar',
    source: 'rgb-planar',
    tool: ['dcmconv', '+tb'],
    uid: '1.2.840.10008.1.2.2',
    sent: 'RGB',
    tolerance: 0,
  },
];
const EXPLICIT = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1';

let dir: string;
let server: RunningServer;
/** Interleaved RGB of the picture (what every case shows). */
let rgb: Buffer;
/** Per case: pydicom + GDCM's decode (interleaved, its colour space), PI and planar configuration. */
let reference: Array<{ pixels: Buffer; photometric: string; planar: number; syntax: string }>;

/** A colour instance around one encapsulated codestream (pydicom 2.3 knows no HTJ2K UIDs). */
function encapsulated(
  k: number,
  syntax: string,
  photometric: string,
  stream: Uint8Array,
  bits = 8,
): Uint8Array {
  return writeDicom({
    transferSyntax: syntax,
    elements: [
      { tag: Tag.SopClassUid, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
      { tag: Tag.SopInstanceUid, vr: 'UI', value: `${STUDY}.${k}.1` },
      { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'OT' },
      { tag: Tag.PatientId, vr: 'LO', value: 'COLOUR' },
      { tag: Tag.StudyInstanceUid, vr: 'UI', value: STUDY },
      { tag: Tag.SeriesInstanceUid, vr: 'UI', value: `${STUDY}.${k}` },
      { tag: Tag.SeriesNumber, vr: 'IS', value: String(k) },
      { tag: Tag.InstanceNumber, vr: 'IS', value: '1' },
      { tag: Tag.SamplesPerPixel, vr: 'US', value: [3] },
      { tag: Tag.PhotometricInterpretation, vr: 'CS', value: photometric },
      { tag: tag(0x0028, 0x0006), vr: 'US', value: [0] },
      { tag: Tag.Rows, vr: 'US', value: [H] },
      { tag: Tag.Columns, vr: 'US', value: [W] },
      { tag: Tag.BitsAllocated, vr: 'US', value: [bits] },
      { tag: Tag.BitsStored, vr: 'US', value: [bits] },
      { tag: Tag.HighBit, vr: 'US', value: [bits - 1] },
      { tag: Tag.PixelRepresentation, vr: 'US', value: [0] },
    ],
    pixel: { kind: 'encapsulated', frames: [stream], offsets: 'bot' },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'transcode-colour-'));
  const store = path.join(dir, 'store');
  await mkdir(store);
  const made = python<{ rgb: string }>(
    `import base64, json, sys, numpy as np, pydicom
from pydicom.pixel_data_handlers.util import convert_color_space
${WRITE_COLOUR_PY}out, cases = sys.argv[1], json.loads(sys.argv[2])
H, W = ${H}, ${W}
y, x = np.mgrid[0:H, 0:W]
rgb = np.stack([x * 5 + 10 + (x * y) % 7, y * 7 + 5 + (x + y) % 5, 200 - x * 2 - y * 3 + (x * 3 + y) % 11], axis=-1).astype('u1')
ybr = convert_color_space(rgb, 'RGB', 'YBR_FULL')
for k, source in enumerate(cases, 1):
    a = ybr if source == 'ybr' else rgb
    write_colour(
        f'{out}/source-{k}.dcm', '${STUDY}', k, H, W, 'YBR_FULL' if source == 'ybr' else 'RGB',
        1 if source == 'rgb-planar' else 0, (a.transpose(2, 0, 1) if source == 'rgb-planar' else a).tobytes())
print(json.dumps({"rgb": base64.b64encode(rgb.tobytes()).decode()}))`,
    [dir, JSON.stringify(CASES.map((c) => c.source))],
  );
  rgb = Buffer.from(made.rgb, 'base64');
  const files: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const k = i + 1;
    const source = path.join(dir, `source-${k}.dcm`);
    const file = path.join(store, `${c.name}.dcm`);
    if (c.tool === 'jp2k-rct')
      await writeFile(file, encapsulated(k, c.uid, 'YBR_RCT', await encodeJp2k(rgb, W, H, 3)));
    else if (c.tool === 'jp2k-ict')
      await writeFile(file, encapsulated(k, c.uid, 'YBR_ICT', await encodeJp2k(rgb, W, H, 3, 4)));
    else if (c.tool === 'htj2k-rct')
      await writeFile(file, encapsulated(k, c.uid, 'YBR_RCT', await encodeHtj2k(rgb, W, H, 3)));
    else execFileSync(c.tool[0], [...c.tool.slice(1), source, file]);
    files.push(file);
  }
  // 16-bit colour (refused): only its metadata matters.
  await writeFile(
    path.join(store, 'rgb16.dcm'),
    encapsulated(99, '1.2.840.10008.1.2.4.90', 'RGB', await encodeJp2k(rgb, W, H, 3), 16),
  );
  // pydicom + GDCM's decode of each file (HTJ2K: pydicom 2.3 has no decoder; the source RGB).
  reference = python<Array<{ pixels: string; photometric: string; planar: number; syntax: string }>>(
    `import base64, json, sys, pydicom
r = []
for f in sys.argv[1:]:
    d = pydicom.dcmread(f)
    syntax = str(d.file_meta.TransferSyntaxUID)
    pixels = b'' if syntax.startswith('1.2.840.10008.1.2.4.20') else d.pixel_array.astype('u1').tobytes()
    r.append({"pixels": base64.b64encode(pixels).decode(), "photometric": d.PhotometricInterpretation,
              "planar": int(d.get('PlanarConfiguration', 0)), "syntax": syntax})
print(json.dumps(r))`,
    files,
  ).map((r) => ({ ...r, pixels: r.pixels === '' ? rgb : Buffer.from(r.pixels, 'base64') }));
  server = await startIndexedServer(store);
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** JFIF YCbCr -> RGB of interleaved samples (float, rounded), for references in YBR_FULL. */
function toRgb(ybr: Buffer): Buffer {
  const out = Buffer.alloc(ybr.length);
  const c = (v: number) => Math.max(0, Math.min(255, Math.round(v)));
  for (let i = 0; i < ybr.length; i += 3) {
    const [y, cb, cr] = [ybr[i], ybr[i + 1] - 128, ybr[i + 2] - 128];
    out[i] = c(y + 1.402 * cr);
    out[i + 1] = c(y - 0.344136 * cb - 0.714136 * cr);
    out[i + 2] = c(y + 1.772 * cb);
  }
  return out;
}

function maxDifference(a: Buffer, b: Buffer): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Planar (RRR..GGG..BBB) to interleaved. */
function interleave(planes: Buffer): Buffer {
  const n = planes.length / 3;
  const out = Buffer.alloc(planes.length);
  for (let p = 0; p < n; p++) for (let s = 0; s < 3; s++) out[3 * p + s] = planes[s * n + p];
  return out;
}

describe('colour frames transcoded to explicit VR little endian', () => {
  for (const [i, c] of CASES.entries()) {
    it(`${c.name} (${c.uid}) as ${c.sent}`, async () => {
      const k = i + 1;
      const ref = reference[i];
      expect(ref.syntax).toBe(c.uid);
      const url = `/dicomweb/studies/${STUDY}/series/${STUDY}.${k}/instances/${STUDY}.${k}.1`;
      const res = await request(server, `${url}/frames/1`, { headers: { Accept: EXPLICIT } });
      expect(res.status, res.body.toString().slice(0, 300)).toBe(200);
      const part = bodyOfPart(res);
      expect(res.body.toString('latin1')).toContain(
        'Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1',
      );
      expect(part.length).toBe(W * H * 3);
      // Laid out as the metadata's PlanarConfiguration says.
      const meta = (await request(server, `${url}/metadata`)).json() as Array<
        Record<string, { Value?: unknown[] }>
      >;
      const planar = Number(meta[0]['00280006']?.Value?.[0] ?? 0);
      const got = planar === 1 ? interleave(part) : part;
      // pydicom's decode, in the colour space MedStream sends: GDCM leaves YCbCr where libjpeg
      // (and MedStream) convert a 4:2:2 JPEG to RGB.
      const ybr = ref.photometric.startsWith('YBR_FULL');
      const expected = c.sent === 'RGB' && ybr ? toRgb(ref.pixels) : ref.pixels;
      expect(maxDifference(got, expected)).toBeLessThanOrEqual(c.tolerance);
      // Rendered: RGB, whatever the stored colour space: pydicom's decode in RGB, within the
      // rounding of the YCbCr conversion (2) where it was YCbCr.
      const png = await request(server, `${url}/rendered`, { headers: { Accept: 'image/png' } });
      expect(png.status, png.body.toString().slice(0, 300)).toBe(200);
      const { data, info } = await sharp(png.body).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([W, H, 3]);
      const shownRef = ybr ? toRgb(ref.pixels) : ref.pixels;
      expect(maxDifference(data, shownRef)).toBeLessThanOrEqual(c.tolerance + (ybr ? 2 : 0));
      // Lossless and RGB: the picture itself.
      if (c.tolerance === 0 && !ybr) expect(maxDifference(data, rgb)).toBe(0);
      const thumb = await request(server, `${url}/thumbnail`);
      expect(thumb.status).toBe(200);
      expect((await sharp(thumb.body).metadata()).channels).toBe(3);
    });
  }

  it('dicomweb-client gets the transcoded frames (octet-stream, explicit VR little endian)', async () => {
    const client = dicomwebClient(`${server.url}/dicomweb`);
    for (const name of ['jpeg-lossless-14', 'jpeg-2000-rct', 'rle-ybr']) {
      const k = CASES.findIndex((c) => c.name === name) + 1;
      const [frame] = (await client.retrieveInstanceFrames({
        studyInstanceUID: STUDY,
        seriesInstanceUID: `${STUDY}.${k}`,
        sopInstanceUID: `${STUDY}.${k}.1`,
        frameNumbers: [1],
        mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '1.2.840.10008.1.2.1' }],
      })) as ArrayBuffer[];
      expect(Buffer.from(frame).equals(reference[k - 1].pixels), name).toBe(true);
    }
  });

  it('still serves the stored syntax to transfer-syntax=*; 16-bit colour is 406', async () => {
    const k = CASES.findIndex((c) => c.name === 'jpeg-2000-rct') + 1;
    const url = `/dicomweb/studies/${STUDY}/series/${STUDY}.${k}/instances/${STUDY}.${k}.1/frames/1`;
    const stored = await request(server, url, {
      headers: { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
    });
    expect(stored.headers.get('content-type')).toMatch(/type="image\/jp2"/);
    expect(bodyOfPart(stored).subarray(0, 2)).toEqual(Buffer.from([0xff, 0x4f]));
    const wide = await request(
      server,
      `/dicomweb/studies/${STUDY}/series/${STUDY}.99/instances/${STUDY}.99.1/frames/1`,
      { headers: { Accept: EXPLICIT } },
    );
    expect(wide.status).toBe(406);
    expect(wide.json()).toMatchObject({ message: expect.stringMatching(/BitsAllocated 16/) });
  });
});
