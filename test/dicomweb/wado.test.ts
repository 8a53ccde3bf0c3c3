// WADO-RS over a directory holding the fixture CT (JPEG 2000, empty UIDs), a multi-frame DICOM
// WSI level (JPEG, 30 frames) and generated CT instances with a large private value: metadata
// equals dcmtk's dcm2json up to the documented differences and costs no storage read; frames are
// the bytes pydicom extracts, one range read each; instances and bulk data come back byte for
// byte; dicomweb-client retrieves all of them.

import { execFileSync } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { tag, TransferSyntax } from '../../src/dicom/tags.js';
import { writeDicom } from '../support/dicom-writer.js';
import { fixture } from '../support/fixtures.js';
import { instanceElements, instancesOf, STUDIES } from '../support/radiology-studies.js';
import { metric, request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';
import { dicomwebClient, value, type DicomJsonObject, type TestDicomwebClient } from './client.js';

const CT_DIR = fixture('volumes/ct-dicom-j2k');
const WSI = fixture('wsi/dicom-wsi/cmu-1-small-region/level-0-frames-0-30.dcm');
const [A] = STUDIES;
let dir: string;
let server: RunningServer;
let client: TestDicomwebClient;
let ctStudy: string;
let ctSeries: string;
let jlsUrl: string;
/** 4x4 12-bit samples, little endian. */
const JLS_PIXELS = new Uint8Array(
  new Uint16Array(Array.from({ length: 16 }, (_, i) => (i * 271) % 4096)).buffer,
);

const reads = () => metric(server, 'medstream_storage_requests_total{kind="read"}');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wado-'));
  const store = path.join(dir, 'store');
  await cp(CT_DIR, path.join(store, 'ct'), { recursive: true });
  await mkdir(path.join(store, 'wsi'));
  await copyFile(WSI, path.join(store, 'wsi', 'level-0.dcm'));
  // A generated CT instance with a 3000-byte private OB value (served as bulk data).
  const [first] = instancesOf(A);
  const blob = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
  await writeFile(
    path.join(store, 'gen.dcm'),
    writeDicom({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      elements: [
        ...instanceElements(A, A.series[0], first),
        { tag: tag(0x0009, 0x0010), vr: 'LO', value: 'MEDSTREAM TEST' },
        { tag: tag(0x0009, 0x1001), vr: 'OB', value: blob },
      ],
      pixel: { kind: 'native', frames: [new Uint8Array(32).fill(9)] },
    }),
  );
  // A JPEG-LS lossless instance (dcmtk's dcmcjpls) of known native pixels, for transcoding.
  const jlsInstance = instancesOf(A).find((i) => i.seriesUid === A.series[1].uid)!;
  await writeFile(
    path.join(dir, 'native.dcm'),
    writeDicom({
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      elements: instanceElements(A, A.series[1], jlsInstance),
      pixel: { kind: 'native', frames: [JLS_PIXELS] },
    }),
  );
  execFileSync('dcmcjpls', [path.join(dir, 'native.dcm'), path.join(store, 'jls.dcm')]);
  jlsUrl = `/dicomweb/studies/${A.uid}/series/${A.series[1].uid}/instances/${jlsInstance.sopUid}`;
  server = await startIndexedServer(store);
  client = dicomwebClient(server.url + '/dicomweb');
  const [study] = await client.searchForStudies({ queryParams: { StudyDate: '20221208' } });
  ctStudy = value(study, '0020000D') as string;
  const [series] = await client.searchForSeries({ studyInstanceUID: ctStudy });
  ctSeries = value(series, '0020000E') as string;
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/**
 * What dcmtk's dcm2json says of a file's header. dcm2json cannot encode compressed pixel data,
 * which metadata leaves out anyway: it reads a copy without it (dcmodify -e).
 */
function dcm2json(file: string): DicomJsonObject {
  const copy = path.join(dir, 'dcm2json.dcm');
  execFileSync('cp', [file, copy]);
  execFileSync('dcmodify', ['-nb', '-e', '(7fe0,0010)', copy]);
  return JSON.parse(execFileSync('dcm2json', [copy], { encoding: 'utf8' })) as DicomJsonObject;
}

describe('metadata', () => {
  it('equals dcm2json for every fixture CT instance, up to the documented differences, with no storage read', async () => {
    const before = await reads();
    const metadata = (await client.retrieveSeriesMetadata({
      studyInstanceUID: ctStudy,
      seriesInstanceUID: ctSeries,
    })) as DicomJsonObject[];
    expect(await reads()).toBe(before); // from the catalog alone
    expect(metadata).toHaveLength(20);
    for (const ours of metadata) {
      const sop = value(ours, '00080018') as string;
      const reference = dcm2json(path.join(CT_DIR, `CT.${sop}`));
      // Deliberate: derived UIDs where the file has none; the syntax frames come in; pixel data
      // as frames (not in metadata); dcm2json writes the charset it converted to (UTF-8).
      for (const t of ['00080018', '0020000D', '0020000E', '00080016']) {
        expect(reference[t]).toEqual({ vr: 'UI' });
        expect(ours[t].Value?.[0]).toMatch(/^[0-9.]+$/);
      }
      expect(ours['00083002']).toEqual({ vr: 'UI', Value: ['1.2.840.10008.1.2.4.90'] });
      const skip = new Set([
        '00080018',
        '0020000D',
        '0020000E',
        '00080016',
        '00083002',
        '7FE00010',
        '00080005',
      ]);
      const keys = (o: DicomJsonObject) =>
        Object.keys(o)
          .filter((k) => !skip.has(k))
          .sort();
      expect(keys(ours)).toEqual(keys(reference));
      for (const k of keys(ours)) {
        const bulk = ours[k].BulkDataURI;
        if (bulk === undefined) {
          expect(ours[k], `${sop} ${k}`).toEqual(reference[k]);
          continue;
        }
        // Deliberate: binary values over 1 KiB as bulk data; the bytes behind the URI are the value.
        const bytes = await request(server, new URL(bulk).pathname, {
          headers: { Accept: 'application/octet-stream' },
        });
        expect(ours[k].vr).toBe(reference[k].vr);
        expect(bytes.body.toString('base64'), `${sop} ${k}`).toBe(reference[k].InlineBinary);
      }
    }
  });

  it('serves study, series and instance metadata with ETags and gzip', async () => {
    const study = await request(server, `/dicomweb/studies/${A.uid}/metadata`, {
      headers: { 'Accept-Encoding': 'gzip' },
    });
    expect(study.status).toBe(200);
    expect(study.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
    expect(study.headers.get('content-encoding')).toBe('gzip');
    const etag = study.headers.get('etag')!;
    const again = await request(server, `/dicomweb/studies/${A.uid}/metadata`, {
      headers: { 'If-None-Match': etag },
    });
    expect(again.status).toBe(304);
    const [instance] = study.json() as DicomJsonObject[];
    const bulk = instance['00091001'] as { vr: string; BulkDataURI: string };
    expect(bulk.vr).toBe('OB');
    expect(bulk.BulkDataURI).toMatch(
      new RegExp(`^${server.url}/dicomweb/studies/${A.uid}/series/.*/bulkdata/\\d+/3000$`),
    );
    const single = await request(server, `${new URL(bulk.BulkDataURI).pathname}`, {
      headers: { Accept: 'application/octet-stream' },
    });
    expect(single.status).toBe(200);
    expect([...single.body]).toEqual(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));
    const viaClient = (await client.retrieveBulkData({ BulkDataURI: bulk.BulkDataURI })) as ArrayBuffer[];
    expect(Buffer.from(viaClient[0]).equals(single.body)).toBe(true);
    expect((await request(server, `/dicomweb/studies/1.2.3/metadata`)).status).toBe(404);
  });
});

describe('frames', () => {
  it('serves each CT frame as stored, one range read, equal to what pydicom extracts', async () => {
    const sop = '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016580';
    const reference = python<{ frame: string }>(
      `import base64, json, sys, pydicom
from pydicom.encaps import generate_pixel_data_frame
d = pydicom.dcmread(sys.argv[1])
print(json.dumps({"frame": base64.b64encode(next(generate_pixel_data_frame(d.PixelData, 1))).decode()}))`,
      [path.join(CT_DIR, `CT.${sop}`)],
    );
    const url = `/dicomweb/studies/${ctStudy}/series/${ctSeries}/instances/${sop}/frames/1`;
    const before = await reads();
    const res = await request(server, url, {
      headers: { Accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*' },
    });
    expect(await reads()).toBe(before + 1);
    expect(res.status).toBe(200);
    const type = res.headers.get('content-type')!;
    const boundary = /boundary=([^;]+)/.exec(type)![1];
    expect(type).toMatch(/^multipart\/related; type="image\/jp2"/);
    const text = res.body.toString('latin1');
    expect(text).toContain('Content-Type: image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90');
    const start = text.indexOf('\r\n\r\n') + 4;
    const end = text.lastIndexOf(`\r\n--${boundary}--`);
    expect(res.body.subarray(start, end).equals(Buffer.from(reference.frame, 'base64'))).toBe(true);
    // One media type asked for: one part.
    const single = await request(server, url, { headers: { Accept: 'image/jp2' } });
    expect(single.headers.get('content-type')).toBe('image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90');
    expect(single.body.equals(Buffer.from(reference.frame, 'base64'))).toBe(true);
    const query = await request(server, `${url}?accept=image/jp2`);
    expect(query.body.equals(single.body)).toBe(true);
    // A syntax that cannot be produced from JPEG 2000 (baseline JPEG) is refused, saying why.
    const refused = await request(server, url, { headers: { Accept: 'image/jpeg' } });
    expect(refused.status).toBe(406);
    expect((refused.json() as { message: string }).message).toMatch(/explicit VR little endian/);
  });

  it('transcodes JPEG 2000 frames to explicit VR little endian, equal to pydicom + GDCM’s decode', async () => {
    const sop = '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016580';
    const reference = python<{ pixels: string }>(
      `import base64, json, sys, pydicom
d = pydicom.dcmread(sys.argv[1])
a = d.pixel_array
print(json.dumps({"pixels": base64.b64encode(a.astype('<i2' if d.PixelRepresentation else '<u2').tobytes()).decode()}))`,
      [path.join(CT_DIR, `CT.${sop}`)],
    );
    const expected = Buffer.from(reference.pixels, 'base64');
    const url = `/dicomweb/studies/${ctStudy}/series/${ctSeries}/instances/${sop}/frames/1`;
    for (const accept of [
      'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
      'multipart/related; type=application/octet-stream',
    ]) {
      const res = await request(server, url, { headers: { Accept: accept } });
      expect(res.status, accept).toBe(200);
      const text = res.body.toString('latin1');
      expect(text).toContain('Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1');
      const boundary = /boundary=([^;]+)/.exec(res.headers.get('content-type')!)![1];
      const start = text.indexOf('\r\n\r\n') + 4;
      const end = text.lastIndexOf(`\r\n--${boundary}--`);
      const pixels = res.body.subarray(start, end);
      expect(pixels.length).toBe(512 * 512 * 2);
      expect(pixels.equals(expected)).toBe(true);
    }
    const single = await request(server, url, { headers: { Accept: 'application/octet-stream' } });
    expect(single.headers.get('content-type')).toBe(
      'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1',
    );
    expect(single.body.equals(expected)).toBe(true);
  });

  it('transcodes JPEG-LS frames to explicit VR little endian: the native pixels they were made from', async () => {
    const [metadata] = (await request(server, `${jlsUrl}/metadata`)).json() as DicomJsonObject[];
    expect(metadata['00083002'].Value).toEqual(['1.2.840.10008.1.2.4.80']);
    const stored = await request(server, `${jlsUrl}/frames/1`, { headers: { Accept: 'image/jls' } });
    expect(stored.headers.get('content-type')).toBe('image/jls; transfer-syntax=1.2.840.10008.1.2.4.80');
    const native = await request(server, `${jlsUrl}/frames/1`, {
      headers: { Accept: 'application/octet-stream' },
    });
    expect(native.headers.get('content-type')).toBe(
      'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1',
    );
    expect(native.body.equals(Buffer.from(JLS_PIXELS))).toBe(true);
    const rendered = await request(server, `${jlsUrl}/rendered?window=2048,4096&accept=image/png`);
    expect(rendered.status).toBe(200);
    expect((await sharp(rendered.body).metadata()).width).toBe(4);
  });

  it('serves several frames of a multi-frame instance in one multipart body, via dicomweb-client', async () => {
    const [wsi] = await client.searchForInstances({ queryParams: { NumberOfFrames: '30' } });
    const frames = (await client.retrieveInstanceFrames({
      studyInstanceUID: value(wsi, '0020000D') as string,
      seriesInstanceUID: value(wsi, '0020000E') as string,
      sopInstanceUID: value(wsi, '00080018') as string,
      frameNumbers: [1, 2, 30],
      mediaTypes: [{ mediaType: 'image/jpeg', transferSyntaxUID: '*' }],
    })) as ArrayBuffer[];
    const reference = python<{ frames: string[] }>(
      `import base64, json, sys, pydicom
from pydicom.encaps import generate_pixel_data_frame
d = pydicom.dcmread(sys.argv[1])
f = list(generate_pixel_data_frame(d.PixelData, int(d.NumberOfFrames)))
print(json.dumps({"frames": [base64.b64encode(f[i]).decode() for i in (0, 1, 29)]}))`,
      [WSI],
    );
    expect(frames).toHaveLength(3);
    frames.forEach((f, i) =>
      expect(Buffer.from(f).equals(Buffer.from(reference.frames[i], 'base64'))).toBe(true),
    );
    const base = `/dicomweb/studies/${value(wsi, '0020000D')}/series/${value(wsi, '0020000E')}/instances/${value(wsi, '00080018')}`;
    expect((await request(server, `${base}/frames/31`)).status).toBe(404);
    expect((await request(server, `${base}/frames/0`)).status).toBe(400);
    expect((await request(server, `${base}/frames/1,x`)).status).toBe(400);
    expect(
      (
        await request(
          server,
          `/dicomweb/studies/1.2.3/series/4.5/instances/${value(wsi, '00080018')}/frames/1`,
        )
      ).status,
    ).toBe(404);
  });
});

describe('rendered and thumbnails', () => {
  it('renders a CT frame through the Modality LUT and the asked window, as numpy does', async () => {
    const sop = '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016580';
    const reference = python<{ pixels: string }>(
      `import base64, json, sys, numpy as np, pydicom
d = pydicom.dcmread(sys.argv[1])
x = d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
c, w = 40.0, 400.0
y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 255.0, ((x - (c - 0.5)) / (w - 1) + 0.5) * 255))
print(json.dumps({"pixels": base64.b64encode(np.round(y).astype(np.uint8).tobytes()).decode()}))`,
      [path.join(CT_DIR, `CT.${sop}`)],
    );
    const expected = Buffer.from(reference.pixels, 'base64');
    const base = `/dicomweb/studies/${ctStudy}/series/${ctSeries}/instances/${sop}`;
    const png = await request(server, `${base}/rendered?window=40,400`, { headers: { Accept: 'image/png' } });
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    const { data, info } = await sharp(png.body).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([512, 512]);
    let worst = 0;
    for (let i = 0; i < expected.length; i++)
      worst = Math.max(worst, Math.abs(data[i * info.channels] - expected[i]));
    expect(worst).toBeLessThanOrEqual(1); // float32 vs float64 rounding at the window's edges
    const frame = await request(server, `${base}/frames/1/rendered?window=40,400&accept=image/png`);
    expect(frame.body.equals(png.body)).toBe(true);
    const jpeg = await request(server, `${base}/rendered?viewport=256,256&quality=80`);
    expect(jpeg.headers.get('content-type')).toBe('image/jpeg');
    expect((await sharp(jpeg.body).metadata()).width).toBe(256);
    for (const bad of ['window=40', 'window=40,0', 'viewport=0,10', 'quality=101']) {
      expect((await request(server, `${base}/rendered?${bad}`)).status, bad).toBe(400);
    }
    expect((await request(server, `${base}/rendered`, { headers: { Accept: 'image/gif' } })).status).toBe(
      406,
    );
  });

  it('serves thumbnails of an instance, a series (its middle instance) and a study', async () => {
    for (const p of [
      `/dicomweb/studies/${ctStudy}/thumbnail`,
      `/dicomweb/studies/${ctStudy}/series/${ctSeries}/thumbnail`,
      `/dicomweb/studies/${ctStudy}/series/${ctSeries}/instances/1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573/thumbnail`,
    ]) {
      const res = await request(server, p);
      expect(res.status, p).toBe(200);
      const meta = await sharp(res.body).metadata();
      expect([meta.format, meta.width, meta.height], p).toEqual(['jpeg', 128, 128]);
    }
    expect((await request(server, `/dicomweb/studies/1.2.3/thumbnail`)).status).toBe(404);
  });
});

describe('byte ranges', () => {
  it('answers ranges of the frame body as sent, whose pieces rebuild it exactly', async () => {
    const sop = '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016580';
    const url = `/dicomweb/studies/${ctStudy}/series/${ctSeries}/instances/${sop}/frames/1`;
    const accept = { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
    const whole = await request(server, url, { headers: accept });
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    const etag = whole.headers.get('etag')!;
    const size = whole.body.length;
    const head = await request(server, url, { headers: { ...accept, Range: 'bytes=0-65535' } });
    expect(head.status).toBe(206);
    expect(head.headers.get('content-range')).toBe(`bytes 0-65535/${size}`);
    expect(head.headers.get('content-type')).toBe(whole.headers.get('content-type')); // same boundary
    const rest = await request(server, url, {
      headers: { ...accept, Range: 'bytes=65536-', 'If-Range': etag },
    });
    expect(rest.status).toBe(206);
    expect(Buffer.concat([head.body, rest.body]).equals(whole.body)).toBe(true);
    const tail = await request(server, url, { headers: { ...accept, Range: 'bytes=-10' } });
    expect(tail.body.equals(whole.body.subarray(size - 10))).toBe(true);
    // A stale validator gets the whole body; a range past the end a 416.
    const stale = await request(server, url, {
      headers: { ...accept, Range: 'bytes=0-9', 'If-Range': '"old"' },
    });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(size);
    const past = await request(server, url, { headers: { ...accept, Range: `bytes=${size}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${size}`);
  });
});

describe('studies and series', () => {
  it('retrieves a whole series and study as one multipart body, each instance byte for byte', async () => {
    const series = (await client.retrieveSeries({
      studyInstanceUID: ctStudy,
      seriesInstanceUID: ctSeries,
    })) as ArrayBuffer[];
    expect(series).toHaveLength(20);
    const names = await readdir(CT_DIR);
    const originals = new Set(
      await Promise.all(names.map(async (n) => (await readFile(path.join(CT_DIR, n))).toString('base64'))),
    );
    for (const part of series) expect(originals.has(Buffer.from(part).toString('base64'))).toBe(true);
    const study = (await client.retrieveStudy({ studyInstanceUID: A.uid })) as ArrayBuffer[];
    expect(study).toHaveLength(2); // gen.dcm and jls.dcm
    expect((await request(server, `/dicomweb/studies/1.2.3`)).status).toBe(404);
    expect(
      (await request(server, `/dicomweb/studies/${A.uid}`, { headers: { Accept: 'image/png' } })).status,
    ).toBe(406);
  });
});

describe('instances', () => {
  it('streams the stored instance byte for byte, single part or multipart', async () => {
    const sop = '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573';
    const original = await readFile(path.join(CT_DIR, `CT.${sop}`));
    const url = `/dicomweb/studies/${ctStudy}/series/${ctSeries}/instances/${sop}`;
    const single = await request(server, url, { headers: { Accept: 'application/dicom' } });
    expect(single.headers.get('content-type')).toBe('application/dicom');
    expect(single.body.equals(original)).toBe(true);
    const viaClient = (await client.retrieveInstance({
      studyInstanceUID: ctStudy,
      seriesInstanceUID: ctSeries,
      sopInstanceUID: sop,
    })) as ArrayBuffer;
    expect(Buffer.from(viaClient).equals(original)).toBe(true);
    expect((await request(server, url, { headers: { Accept: 'image/png' } })).status).toBe(406);
  });
});
