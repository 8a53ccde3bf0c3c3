// WADO-RS derived frames over HTTP on the fixture CT (JPEG 2000 lossless, 512x512): every
// alternate path (/htj2k/, /htj2kThumbnail/, /jls/, /jlsThumbnail/, /lossy/) and every `accept=` /
// Accept form of /frames/ that asks for them; lossless ones decode to exactly pydicom + GDCM's
// pixels, thumbnails to the 4x4 block means numpy computes; a 64 KiB range then the rest give the
// whole frame and the prefix decodes at reduced resolution; strong ETags, CDN-friendly caching,
// one storage read for concurrent first requests; typed errors that are not cached.

import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { parseJ2kCodestream } from '../../src/codecs/j2k-markers.js';
import { TransferSyntax } from '../../src/dicom/tags.js';
import { fixture } from '../support/fixtures.js';
import { decodeHtj2k, decodeJls } from '../support/j2k-decode.js';
import { noiseJ2kVariant, oneBitVariant, STUDIES } from '../support/radiology-studies.js';
import { metric, request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';
import { dicomwebClient, value } from './client.js';

const CT_DIR = fixture('volumes/ct-dicom-j2k');
const SOPS = [
  '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573',
  '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016574',
];
const [A] = STUDIES;
const SERIES = A.series[0];
const CORNERSTONE_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
let dir: string;
let server: RunningServer;
let base: string;
let reference: { pixels: number[]; thumb: number[]; signed: boolean };

const reads = () => metric(server, 'medstream_storage_requests_total{kind="read"}');
const genUrl = (sop: string) => `/dicomweb/studies/${A.uid}/series/${SERIES.uid}/instances/${sop}`;

/** The one part of a multipart/related body. */
function onlyPart(body: Buffer, contentType: string): { type: string; bytes: Buffer } {
  const boundary = /boundary=([^;]+)/.exec(contentType)![1];
  const text = body.toString('latin1');
  const head = text.indexOf('\r\n\r\n');
  const end = text.lastIndexOf(`\r\n--${boundary}--`);
  return {
    type: /Content-Type: ([^\r]+)/.exec(text.slice(0, head))![1],
    bytes: body.subarray(head + 4, end),
  };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'derived-routes-'));
  const store = path.join(dir, 'store');
  await mkdir(path.join(store, 'ct'), { recursive: true });
  for (const sop of SOPS) await copyFile(path.join(CT_DIR, `CT.${sop}`), path.join(store, 'ct', `CT.${sop}`));
  // "JPEG 2000" that is noise: no derived frame can be made of it.
  await writeFile(path.join(store, 'noise.dcm'), noiseJ2kVariant(A, SERIES, '1.2.3.8.1'));
  // 8-bit frames of 1 stored bit: CharLS refuses to encode them (an encoder failure).
  await writeFile(path.join(store, 'onebit.dcm'), oneBitVariant(A, SERIES, '1.2.3.8.2'));
  server = await startIndexedServer(store);
  const client = dicomwebClient(server.url + '/dicomweb');
  const [study] = await client.searchForStudies({ queryParams: { StudyDate: '20221208' } });
  const ctStudy = value(study, '0020000D') as string;
  const [series] = await client.searchForSeries({ studyInstanceUID: ctStudy });
  base = `/dicomweb/studies/${ctStudy}/series/${value(series, '0020000E') as string}/instances/${SOPS[0]}`;
  reference = python(
    `import json, sys, numpy as np, pydicom
d = pydicom.dcmread(sys.argv[1])
a = d.pixel_array.astype(np.int64)
h, w = a.shape
t = np.floor(a.reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3)) + 0.5).astype(np.int64)
print(json.dumps({"pixels": a.ravel().tolist(), "thumb": t.ravel().tolist(), "signed": bool(d.PixelRepresentation)}))`,
    [path.join(CT_DIR, `CT.${SOPS[0]}`)],
  );
}, 120_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('alternate frame paths', () => {
  it('serves every representation, lossless ones equal to pydicom + GDCM, thumbnails to numpy block means', async () => {
    const got: Record<string, Buffer> = {};
    for (const [kind, type, ts] of [
      ['htj2k', 'image/jphc', TransferSyntax.Htj2kLosslessRpcl],
      ['htj2kThumbnail', 'image/jphc', TransferSyntax.Htj2kLosslessRpcl],
      ['jls', 'image/jls', TransferSyntax.JpegLsLossless],
      ['jlsThumbnail', 'image/jls', TransferSyntax.JpegLsLossless],
      ['lossy', 'image/jphc', TransferSyntax.Htj2k],
    ] as const) {
      // Cornerstone3D's default Accept: multipart.
      const res = await request(server, `${base}/${kind}/1`, { headers: { Accept: CORNERSTONE_ACCEPT } });
      expect(res.status, kind).toBe(200);
      const part = onlyPart(res.body, res.headers.get('content-type')!);
      expect(part.type, kind).toBe(`${type}; transfer-syntax=${ts}`);
      // One media type asked for: one part, the same bytes.
      const single = await request(server, `${base}/${kind}/1`, { headers: { Accept: type } });
      expect(single.headers.get('content-type')).toBe(`${type}; transfer-syntax=${ts}`);
      expect(single.body.equals(part.bytes), kind).toBe(true);
      got[kind] = single.body;
    }
    const signed = reference.signed;
    expect((await decodeHtj2k(got.htj2k)).samples).toEqual(reference.pixels);
    expect((await decodeJls(got.jls, signed)).samples).toEqual(reference.pixels);
    const thumbH = await decodeHtj2k(got.htj2kThumbnail);
    expect([thumbH.width, thumbH.height]).toEqual([128, 128]);
    expect(thumbH.samples).toEqual(reference.thumb);
    expect((await decodeJls(got.jlsThumbnail, signed)).samples).toEqual(reference.thumb);
    const lossy = (await decodeHtj2k(got.lossy)).samples;
    const worst = lossy.reduce((m, v, i) => Math.max(m, Math.abs(v - reference.pixels[i])), 0);
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(100);
    expect(got.lossy.length).toBeLessThan(got.htj2k.length / 2);
    // RPCL with TLM markers, one tile-part per resolution.
    const cs = parseJ2kCodestream(got.htj2k);
    expect(cs.progression).toBe('RPCL');
    expect(cs.tlm).toEqual(cs.tileParts.map((p) => p.length));
    expect(cs.tileParts.length).toBe(cs.decompositions + 1);
  });

  it('answers accept= and Accept forms of /frames/ with the derived representations', async () => {
    const single = async (kind: string, accept: string) =>
      (await request(server, `${base}/${kind}/1`, { headers: { Accept: accept } })).body;
    const htj2k = await single('htj2k', 'image/jphc');
    const jls = await single('jls', 'image/jls');
    const lossy = await single('lossy', 'image/jphc');
    for (const [query, accept, expected, type] of [
      ['?accept=image/jhc', undefined, htj2k, 'image/jphc; transfer-syntax=1.2.840.10008.1.2.4.202'],
      ['', 'image/jphc', htj2k, 'image/jphc; transfer-syntax=1.2.840.10008.1.2.4.202'],
      ['', 'image/jhc', htj2k, 'image/jphc; transfer-syntax=1.2.840.10008.1.2.4.202'],
      ['?accept=image/jls', undefined, jls, 'image/jls; transfer-syntax=1.2.840.10008.1.2.4.80'],
      [
        '',
        'image/jphc; transfer-syntax=1.2.840.10008.1.2.4.203',
        lossy,
        'image/jphc; transfer-syntax=1.2.840.10008.1.2.4.203',
      ],
    ] as const) {
      const res = await request(
        server,
        `${base}/frames/1${query}`,
        accept ? { headers: { Accept: accept } } : {},
      );
      expect(res.status, query || accept).toBe(200);
      expect(res.headers.get('content-type'), query || accept).toBe(type);
      expect(res.body.equals(expected), query || accept).toBe(true);
    }
    for (const accept of [
      'multipart/related; type="image/jphc"',
      'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.202',
    ]) {
      const res = await request(server, `${base}/frames/1`, { headers: { Accept: accept } });
      expect(res.status, accept).toBe(200);
      const part = onlyPart(res.body, res.headers.get('content-type')!);
      expect(part.type).toBe('image/jphc; transfer-syntax=1.2.840.10008.1.2.4.202');
      expect(part.bytes.equals(htj2k)).toBe(true);
    }
    // The stored syntax still wins where the client accepts it.
    const stored = await request(server, `${base}/frames/1`, {
      headers: { Accept: 'image/jp2, image/jphc;q=0.5' },
    });
    expect(stored.headers.get('content-type')).toBe('image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90');
    // A derived path asked for something it is not: 406.
    const refused = await request(server, `${base}/htj2k/1`, { headers: { Accept: 'image/jpeg' } });
    expect(refused.status).toBe(406);
    expect((refused.json() as { error: string }).error).toBe('not_acceptable');
  });

  it('a 64 KiB range then the rest give the whole frame; the prefix decodes at reduced resolution', async () => {
    const url = `${base}/htj2k/1?accept=image/jhc`;
    const whole = await request(server, url);
    expect(whole.body.length).toBeGreaterThan(65536);
    const etag = whole.headers.get('etag')!;
    expect(etag).toMatch(/^"[^"]+"$/);
    expect(whole.headers.get('cache-control')).toBe('public, max-age=86400');
    const first = await request(server, url, { headers: { Range: 'bytes=0-65535' } });
    expect(first.status).toBe(206);
    expect(first.headers.get('content-range')).toBe(`bytes 0-65535/${whole.body.length}`);
    const rest = await request(server, url, { headers: { Range: 'bytes=65536-', 'If-Range': etag } });
    expect(rest.status).toBe(206);
    expect(Buffer.concat([first.body, rest.body]).equals(whole.body)).toBe(true);
    // The deepest level whose tile-parts all lie in the prefix decodes from it, exactly as from the whole.
    const cs = parseJ2kCodestream(whole.body);
    const complete = cs.tileParts.filter((p) => p.offset + p.length <= 65536).length;
    expect(complete).toBeGreaterThanOrEqual(3);
    const level = cs.decompositions + 1 - complete;
    const partial = await decodeHtj2k(first.body, level);
    expect([partial.width, partial.height]).toEqual([512 >> level, 512 >> level]);
    expect(partial.samples).toEqual((await decodeHtj2k(whole.body, level)).samples);
    // Revalidation: same validator, 304.
    const again = await request(server, url, { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
  });

  it('concurrent first requests for a frame cost one storage read; later ones none', async () => {
    const url = `${base.replace(SOPS[0], SOPS[1])}/htj2k/1?accept=image/jhc`;
    const before = await reads();
    const answers = await Promise.all(Array.from({ length: 5 }, () => request(server, url)));
    expect(await reads()).toBe(before + 1);
    expect(new Set(answers.map((a) => a.body.toString('base64'))).size).toBe(1);
    expect(new Set(answers.map((a) => a.headers.get('etag'))).size).toBe(1);
    await request(server, url);
    expect(await reads()).toBe(before + 1);
  });

  it('a frame that cannot be decoded is a typed error on every path, and is not cached', async () => {
    for (const kind of ['htj2k', 'htj2kThumbnail', 'jls', 'jlsThumbnail', 'lossy']) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const before = await reads();
        const res = await request(server, `${genUrl('1.2.3.8.1')}/${kind}/1`);
        expect(res.status, kind).toBe(500);
        expect(res.json(), kind).toMatchObject({ error: 'decode_error' });
        expect(await reads(), kind).toBeGreaterThan(before); // read again: nothing was cached
      }
    }
    const viaAccept = await request(server, `${genUrl('1.2.3.8.1')}/frames/1?accept=image/jhc`);
    expect(viaAccept.json()).toMatchObject({ error: 'decode_error' });
    const missing = await request(server, `${base}/htj2k/2`);
    expect(missing.status).toBe(404);
  });

  it('an encoder failure is typed and does not poison later requests', async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await request(server, `${genUrl('1.2.3.8.2')}/jls/1`);
      expect(res.status).toBe(415);
      expect(res.json()).toMatchObject({ error: 'unsupported_format' });
    }
    const ok = await request(server, `${base.replace(SOPS[0], SOPS[1])}/jls/1`, {
      headers: { Accept: 'image/jls' },
    });
    expect(ok.status).toBe(200);
    expect((await decodeJls(ok.body)).width).toBe(512);
    // HTJ2K takes the same 1-bit frame.
    const htj2k = await request(server, `${genUrl('1.2.3.8.2')}/htj2k/1`, {
      headers: { Accept: 'image/jphc' },
    });
    expect((await decodeHtj2k(htj2k.body)).samples).toEqual(Array.from({ length: 16 }, (_, i) => i & 1));
  });
});
