// POST /ai/models/{name}/infer on radiology data the catalog indexed: a DICOM instance's frame
// (the fixture CT study, with and without 3D geometry), a whole DICOM series slice by slice, and
// a NIfTI volume. Models with known weights, so scores, masks and maps are asserted exactly,
// windowing (request, declared, VOI) included; series results come back per slice as PNG, as
// NIfTI in the source geometry and as DICOM SEG read back by pydicom.

import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { LocalStorage } from '../../src/storage/local.js';
import { openSeriesSources, readDicomSeries } from '../../src/volumes/dicom-series.js';
import { FrameSampleDecoder } from '../../src/volumes/frame-samples.js';
import { readNiftiVolume } from '../../src/volumes/nifti.js';
import type { Volume } from '../../src/volumes/volume.js';
import { writeDicomFile } from '../support/dicom-writer.js';
import { linearClassifier, pointwiseConvSigmoid } from '../support/onnx-writer.js';
import { STUDIES, instanceElements, instancesOf, writeStudies } from '../support/radiology-studies.js';
import { request, startIndexedServer } from '../support/server.js';
import { fixture } from '../support/fixtures.js';
import { python } from '../volumes/python.js';
import { modelsDir, softmax } from './model-dir.js';

const CT = STUDIES[0];
const AXIAL = CT.series[0];
const CHEST = STUDIES[2];
/** HU of pixel i (0..15) of instance n (1..3): never 0, so no threshold sits on a tie. */
const hu = (n: number, i: number) => (i - 8) * 20 + n * 10 + 5;
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const clamp = (v: number) => Math.min(1, Math.max(0, v));
const W_CLS = [[2], [-1]];
const B_CLS = [0, 0.5];

let dir: string;
let server: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;
let source: Volume;
let nifti: { study: string; series: string; values: number[] };
/** The fixture CT series (JPEG 2000, no UIDs in the files: the catalog derives them). */
let j2k: { study: string; series: string };

/** The fixture CT's axial series with 3D geometry, VOI 40/400 and HU = stored - 1024. */
async function writeAxialSeries(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (const instance of instancesOf(CT).filter((i) => i.seriesUid === AXIAL.uid)) {
    const n = instance.instanceNumber;
    const pixels = new Uint8Array(32);
    const view = new DataView(pixels.buffer);
    for (let i = 0; i < 16; i++) view.setUint16(2 * i, hu(n, i) + 1024, true);
    await writeDicomFile(path.join(folder, `${n}.dcm`), {
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      elements: [
        ...instanceElements(CT, AXIAL, instance),
        // Instance 1 lies highest: sorted along the normal, the volume's slices run 3, 2, 1.
        { tag: tag(0x0020, 0x0032), vr: 'DS', value: `-1\\-2\\${10 - 3 * n}` },
        { tag: tag(0x0020, 0x0037), vr: 'DS', value: '1\\0\\0\\0\\1\\0' },
        { tag: tag(0x0020, 0x0052), vr: 'UI', value: '1.2.826.0.1.3680043.9.7777.99' },
        { tag: Tag.PixelSpacing, vr: 'DS', value: '0.5\\0.75' },
        { tag: tag(0x0028, 0x1050), vr: 'DS', value: '40' },
        { tag: tag(0x0028, 0x1051), vr: 'DS', value: '400' },
        { tag: tag(0x0028, 0x1052), vr: 'DS', value: '-1024' },
        { tag: tag(0x0028, 0x1053), vr: 'DS', value: '1' },
      ],
      pixel: { kind: 'native', frames: [pixels] },
    });
  }
}

/** A 4x3x2 int16 NIfTI-1 volume with an sform: value(i, j, k) = (i + 4j + 12k) * 50 - 400. */
function niftiVolume(): { bytes: Buffer; values: number[] } {
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  [3, 4, 3, 2, 1, 1, 1, 1].forEach((d, i) => header.writeInt16LE(d, 40 + 2 * i));
  header.writeInt16LE(4, 70);
  header.writeInt16LE(16, 72);
  [1, 2, 2, 3, 1, 0, 0, 0].forEach((p, i) => header.writeFloatLE(p, 76 + 4 * i));
  header.writeFloatLE(352, 108);
  header.writeFloatLE(1, 112);
  header.writeInt16LE(1, 254);
  [2, 0, 0, -10, 0, 2, 0, 5, 0, 0, 3, 7].forEach((v, i) => header.writeFloatLE(v, 280 + 4 * i));
  header.write('n+1\0', 344, 'latin1');
  const values = Array.from({ length: 24 }, (_, v) => v * 50 - 400);
  const data = Buffer.alloc(48);
  values.forEach((v, i) => data.writeInt16LE(v, 2 * i));
  return { bytes: gzipSync(Buffer.concat([header, data])), values };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ai-radiology-'));
  const store = path.join(dir, 'store');
  await writeAxialSeries(path.join(store, 'P1', '1'));
  await writeStudies(path.join(store, 'studies'), [CHEST]);
  await mkdir(path.join(store, 'nifti'));
  const vol = niftiVolume();
  await writeFile(path.join(store, 'nifti', 'vol.nii.gz'), vol.bytes);
  await cp(fixture('volumes/ct-dicom-j2k'), path.join(store, 'ct-j2k'), { recursive: true });
  const oneChannel = { name: 'image', width: 4, height: 4, channels: 1 };
  models = await modelsDir({
    cls: {
      onnx: linearClassifier({ channels: 1, size: 4, weights: W_CLS, bias: B_CLS }),
      json: {
        task: 'classification',
        input: oneChannel,
        preprocess: { scaling: { type: 'window' } },
        labels: ['low', 'high'],
        output: { name: 'scores', activation: 'none' },
      },
    },
    seg: {
      onnx: pointwiseConvSigmoid({ channels: 1, size: 4, weights: [1], bias: -0.5 }),
      json: {
        task: 'segmentation',
        input: oneChannel,
        preprocess: { scaling: { type: 'window', center: 0, width: 200 } },
        labels: ['background', 'dense'],
        output: { name: 'map', activation: 'none' },
      },
    },
    heat: {
      onnx: pointwiseConvSigmoid({ channels: 1, size: 2, weights: [1], bias: -0.5 }),
      json: {
        task: 'heatmap',
        input: { ...oneChannel, width: 2, height: 2 },
        preprocess: { scaling: { type: 'minmax' } },
        output: { name: 'map', activation: 'none' },
      },
    },
    rgb: {
      onnx: linearClassifier({ channels: 3, size: 4, weights: [[1, 1, 1]], bias: [0], softmax: false }),
      json: {
        task: 'classification',
        input: { ...oneChannel, channels: 3 },
        preprocess: { scaling: { type: 'fixed', min: -1000, max: 1000 } },
        labels: ['only'],
        output: { name: 'scores', activation: 'none' },
      },
    },
  });
  server = await startIndexedServer(store, ['--models-dir', models.dir]);
  const local = await LocalStorage.create(path.join(store, 'P1', '1'));
  const decoder = new FrameSampleDecoder({ workers: 1 });
  source = await readDicomSeries(await openSeriesSources(local, ''), decoder);
  await decoder.close();
  await local.close();
  const series = (await request(server, '/dicomweb/series')).json() as Record<string, { Value: string[] }>[];
  const others = series.filter(
    (s) => s['0020000D'].Value[0] !== CT.uid && s['0020000D'].Value[0] !== CHEST.uid,
  );
  const count = (s: Record<string, { Value: string[] }>) => Number(s['00201209'].Value[0]);
  const niftiSeries = others.find((s) => count(s) === 2);
  const ctSeries = others.find((s) => count(s) === 20);
  if (!ctSeries) throw new Error('the fixture CT was not indexed');
  j2k = { study: ctSeries['0020000D'].Value[0], series: ctSeries['0020000E'].Value[0] };
  if (!niftiSeries) throw new Error('the NIfTI volume was not indexed');
  nifti = {
    study: niftiSeries['0020000D'].Value[0],
    series: niftiSeries['0020000E'].Value[0],
    values: vol.values,
  };
});

afterAll(async () => {
  await server?.close();
  await models?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const post = (model: string, body: object) =>
  request(server, `/ai/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

async function gray(url: string): Promise<{ data: number[]; width: number; height: number }> {
  const res = await request(server, url);
  expect(res.status, url).toBe(200);
  const { data, info } = await sharp(res.body).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: [...data], width: info.width, height: info.height };
}

/** The classifier's scores for one slice of HU values under a window. */
function clsScores(values: number[], center: number, width: number): number[] {
  const mean = values.reduce((s, v) => s + clamp((v - (center - width / 2)) / width), 0) / values.length;
  return softmax(W_CLS.map((w, k) => w[0] * mean + B_CLS[k]));
}

const sopOf = (n: number) => `${AXIAL.uid}.${n}`;
const slice = (n: number) => Array.from({ length: 16 }, (_, i) => hu(n, i));

describe('inference on radiology data from the catalog', () => {
  it('scores one instance windowed by its VOI, by the request, or replicated to three channels', async () => {
    const base = { study: CT.uid, series: AXIAL.uid, instance: sopOf(2) };
    const voi = await post('cls', base);
    expect(voi.status).toBe(200);
    const body = voi.json() as {
      scores: { label: string; score: number }[];
      source: Record<string, unknown>;
    };
    expect(body.source).toMatchObject({ kind: 'dicom', frame: 1, columns: 4, rows: 4 });
    clsScores(slice(2), 40, 400).forEach((p, k) => expect(body.scores[k].score).toBeCloseTo(p, 6));

    const asked = await post('cls', { ...base, window: { center: -50, width: 100 } });
    const scores = (asked.json() as { scores: { score: number }[] }).scores;
    clsScores(slice(2), -50, 100).forEach((p, k) => expect(scores[k].score).toBeCloseTo(p, 6));

    // Fixed scaling -1000..1000 of every channel: the score is 3 * mean, unactivated.
    const rgb = (await post('rgb', base)).json() as { scores: { score: number }[] };
    const mean = slice(2).reduce((s, v) => s + (v + 1000) / 2000, 0) / 16;
    expect(rgb.scores[0].score).toBeCloseTo(3 * mean, 5);
  });

  it('reads the fixture CT instance without 3D geometry as one frame (no VOI: min-max)', async () => {
    const chest = instancesOf(CHEST)[0];
    const res = await post('cls', {
      study: CHEST.uid,
      series: chest.seriesUid,
      instance: chest.sopUid,
      frame: 1,
    });
    expect(res.status).toBe(200);
    // A flat frame (every pixel 1): min-max maps it to 0.
    const expected = softmax(B_CLS);
    (res.json() as { scores: { score: number }[] }).scores.forEach((s, k) =>
      expect(s.score).toBeCloseTo(expected[k], 6),
    );
    // The series cannot be placed in 3D: a typed refusal, not a crash.
    const series = await post('seg', { study: CHEST.uid, series: chest.seriesUid });
    expect([series.status, (series.json() as { error: string }).error]).toEqual([415, 'unsupported_format']);
  });

  it('segments a DICOM series per slice: PNG per slice, NIfTI in the source geometry, DICOM SEG', async () => {
    const res = await post('seg', { study: CT.uid, series: AXIAL.uid });
    expect(res.status).toBe(200);
    const body = res.json() as {
      fractions: { label: string; fraction: number }[];
      source: Record<string, unknown>;
      result: {
        slices: { slice: number; instance: string; png: string }[];
        nifti: string;
        seg: { label: string; class: number; url: string }[];
      };
    };
    expect(body.source).toMatchObject({ columns: 4, rows: 4, slices: 3, format: 'dicom' });
    // Sorted along the normal: slice k is instance 3 - k.
    expect(body.result.slices.map((s) => s.instance)).toEqual([sopOf(3), sopOf(2), sopOf(1)]);
    const expected = [3, 2, 1].map((n) => slice(n).map((v) => (v >= 0 ? 1 : 0)));
    for (const [k, s] of body.result.slices.entries()) {
      const png = await gray(s.png);
      expect([png.width, png.height]).toEqual([4, 4]);
      expect(png.data).toEqual(expected[k]);
    }
    const fg = expected.flat().filter((v) => v === 1).length;
    expect(body.fractions).toEqual([
      { label: 'background', fraction: (48 - fg) / 48 },
      { label: 'dense', fraction: fg / 48 },
    ]);

    const nii = await request(server, body.result.nifti);
    expect(nii.status).toBe(200);
    const mask = readNiftiVolume(nii.body);
    expect(mask.dims).toEqual(source.dims);
    mask.affine.forEach((v, i) => expect(v).toBeCloseTo(source.affine[i], 4));
    expect([...mask.data]).toEqual(expected.flat());

    expect(body.result.seg).toEqual([
      { label: 'dense', class: 1, url: expect.stringMatching(/\.dcm\?class=1$/) },
    ]);
    const seg = await request(server, body.result.seg[0].url);
    expect([seg.status, seg.headers.get('content-type')]).toEqual([200, 'application/dicom']);
    const segPath = path.join(dir, 'mask.dcm');
    await writeFile(segPath, seg.body);
    const read = python<{ sop: string; frames: number; refs: string[]; series: string; pixels: number[][] }>(
      `import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
print(json.dumps({"sop": ds.SOPClassUID, "frames": int(ds.NumberOfFrames),
  "series": ds.ReferencedSeriesSequence[0].SeriesInstanceUID,
  "refs": [f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID for f in ds.PerFrameFunctionalGroupsSequence],
  "pixels": [[int(v) for v in f.flatten()] for f in ds.pixel_array.reshape(int(ds.NumberOfFrames), 4, 4)]}))`,
      [segPath],
    );
    expect(read.sop).toBe('1.2.840.10008.5.1.4.1.1.66.4');
    expect(read.series).toBe(AXIAL.uid);
    const nonEmpty = expected.map((m, k) => ({ m, k })).filter(({ m }) => m.some((v) => v === 1));
    expect(read.frames).toBe(nonEmpty.length);
    expect(read.refs).toEqual(nonEmpty.map(({ k }) => sopOf(3 - k)));
    expect(read.pixels).toEqual(nonEmpty.map(({ m }) => m));
  });

  it('runs a heat map over a NIfTI volume: min-max per slice, resized to the model and back', async () => {
    const res = await post('heat', { study: nifti.study, series: nifti.series });
    expect(res.status).toBe(200);
    const body = res.json() as {
      source: Record<string, unknown>;
      result: { slices: { png: string }[]; nifti: string; seg?: unknown };
      min: number;
    };
    expect(body.source).toMatchObject({ columns: 4, rows: 3, slices: 2, format: 'nifti' });
    expect(body.result.seg).toBeUndefined();
    const expectedVolume: number[] = [];
    for (let k = 0; k < 2; k++) {
      const values = nifti.values.slice(k * 12, (k + 1) * 12);
      // Bilinear 4x3 -> 2x2 (pixel centres aligned): x = 2u + 0.5, y = 1.5v + 0.25.
      const at = (x: number, y: number) => {
        const x0 = Math.floor(x);
        const y0 = Math.floor(y);
        const fx = x - x0;
        const fy = y - y0;
        const v = (xx: number, yy: number) => values[Math.min(yy, 2) * 4 + Math.min(xx, 3)];
        return (
          (v(x0, y0) * (1 - fx) + v(x0 + 1, y0) * fx) * (1 - fy) +
          (v(x0, y0 + 1) * (1 - fx) + v(x0 + 1, y0 + 1) * fx) * fy
        );
      };
      const input = [0, 1].map((vv) => [0, 1].map((u) => at(2 * u + 0.5, 1.5 * vv + 0.25)));
      // Min-max over the model's input (the resized slice), as for every image.
      const lo = Math.min(...input.flat());
      const hi = Math.max(...input.flat());
      const map = input.map((row) => row.map((v) => sigmoid((v - lo) / (hi - lo) - 0.5)));
      // Back onto 4x3, nearest: column x -> floor((x + 0.5) / 2), row y -> floor((y + 0.5) * 2 / 3).
      const plane: number[] = [];
      for (let y = 0; y < 3; y++)
        for (let x = 0; x < 4; x++)
          plane.push(Math.round(255 * map[Math.floor(((y + 0.5) * 2) / 3)][Math.floor((x + 0.5) / 2)]));
      const png = await gray(body.result.slices[k].png);
      expect([png.width, png.height]).toEqual([4, 3]);
      expect(png.data).toEqual(plane);
      expectedVolume.push(...plane);
    }
    const nii = readNiftiVolume((await request(server, body.result.nifti)).body);
    expect(nii.dims).toEqual([4, 3, 2]);
    expect(nii.affine.slice(0, 12)).toEqual([2, 0, 0, -10, 0, 2, 0, 5, 0, 0, 3, 7]);
    expect([...nii.data]).toEqual(expectedVolume);
    // No SEG for a NIfTI source or a heat map.
    const id = body.result.nifti.split('/')[3].replace('.nii.gz', '');
    const seg = await request(server, `/ai/results/${id}.dcm`);
    expect([seg.status, (seg.json() as { error: string }).error]).toEqual([400, 'bad_request']);
  });

  it('classifies every slice of a series, sharing batches', async () => {
    const res = await post('cls', { study: CT.uid, series: AXIAL.uid, window: { center: 0, width: 300 } });
    expect(res.status).toBe(200);
    const body = res.json() as { slices: { slice: number; instance: string; scores: { score: number }[] }[] };
    expect(body.slices.map((s) => s.instance)).toEqual([sopOf(3), sopOf(2), sopOf(1)]);
    body.slices.forEach((s, k) =>
      clsScores(slice(3 - k), 0, 300).forEach((p, c) => expect(s.scores[c].score).toBeCloseTo(p, 6)),
    );
  });

  it('segments the fixture CT (JPEG 2000, UIDs derived by the catalog): NIfTI and a SEG that references the served UIDs', async () => {
    const res = await post('seg', { study: j2k.study, series: j2k.series });
    expect(res.status).toBe(200);
    const body = res.json() as {
      source: Record<string, unknown>;
      result: { slices: { instance: string }[]; nifti: string; seg: { url: string }[] };
    };
    expect(body.source).toMatchObject({ columns: 512, rows: 512, slices: 20, format: 'dicom' });
    const served = (
      (
        await request(server, `/dicomweb/studies/${j2k.study}/series/${j2k.series}/instances`)
      ).json() as Record<string, { Value: string[] }>[]
    ).map((i) => i['00080018'].Value[0]);
    expect([...body.result.slices.map((s) => s.instance)].sort()).toEqual([...served].sort());
    const mask = readNiftiVolume((await request(server, body.result.nifti)).body);
    expect(mask.dims).toEqual([512, 512, 20]);
    const nonEmpty = Array.from({ length: 20 }, (_, k) =>
      mask.data.subarray(k * 512 * 512, (k + 1) * 512 * 512).some((v) => v === 1),
    );
    expect(body.result.seg).toHaveLength(1);
    const segPath = path.join(dir, 'ct-mask.dcm');
    await writeFile(segPath, (await request(server, body.result.seg[0].url)).body);
    const read = python<{ series: string; study: string; frames: number; refs: string[] }>(
      `import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
print(json.dumps({"series": ds.ReferencedSeriesSequence[0].SeriesInstanceUID, "study": ds.StudyInstanceUID,
  "frames": int(ds.NumberOfFrames),
  "refs": [f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID for f in ds.PerFrameFunctionalGroupsSequence]}))`,
      [segPath],
    );
    expect([read.study, read.series]).toEqual([j2k.study, j2k.series]);
    expect(read.frames).toBe(nonEmpty.filter(Boolean).length);
    expect(read.refs).toEqual(body.result.slices.filter((_, k) => nonEmpty[k]).map((s) => s.instance));
  });

  it('answers bad radiology requests with typed errors', async () => {
    const cases: [string, object, number, string][] = [
      ['cls', { study: CT.uid }, 400, 'bad_request'],
      ['cls', { study: 'x', series: AXIAL.uid }, 400, 'bad_request'],
      ['cls', { study: CT.uid, series: AXIAL.uid, frame: 1 }, 400, 'bad_request'],
      ['cls', { study: CT.uid, series: AXIAL.uid, instance: sopOf(1), frame: 0 }, 400, 'bad_request'],
      ['cls', { study: CT.uid, series: AXIAL.uid, instance: sopOf(1), frame: 2 }, 404, 'not_found'],
      ['cls', { study: CT.uid, series: AXIAL.uid, instance: '1.2.3' }, 404, 'not_found'],
      ['cls', { study: CT.uid, series: '1.2.3' }, 404, 'not_found'],
      ['cls', { study: CT.uid, series: AXIAL.uid, window: { center: 0, width: 0 } }, 400, 'bad_request'],
      ['rgb', { study: CT.uid, series: AXIAL.uid, window: { center: 0, width: 10 } }, 400, 'bad_request'],
      ['tissue', { study: CT.uid, series: AXIAL.uid }, 400, 'bad_request'],
    ];
    for (const [model, body, status, code] of cases) {
      const res = await post(model, body);
      expect([res.status, (res.json() as { error: string }).error], JSON.stringify(body)).toEqual([
        status,
        code,
      ]);
    }
    expect(
      (await request(server, '/ai/results/00000000-0000-0000-0000-000000000000/slices/0.png')).status,
    ).toBe(404);
    expect((await request(server, '/ai/results/x/slices/0.png')).status).toBe(400);
  });
});
