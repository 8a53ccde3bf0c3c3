// POST /ai/models/{name}/infer end to end on a real server: exact scores and maps from models
// with known weights (preprocessing included), on uploaded PNGs and on whole-slide regions read
// by level and by mpp; the model list; and bad requests answered as typed JSON errors.

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { linearClassifier, pointwiseConvSigmoid } from '../support/onnx-writer.js';
import { request, startTestServer } from '../support/server.js';
import { modelsDir, png, softmax } from './model-dir.js';

const WEIGHTS = [
  [1, -1, 0.5],
  [-0.5, 2, 0],
  [0, 0, -1],
];
const BIAS = [0.1, -0.2, 0.3];
const MEAN = [0.5, 0.4, 0.3];
const STD = [0.25, 0.5, 2];
const SVS = 'svs/CMU-1-Small-Region.svs';

let server: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;

beforeAll(async () => {
  models = await modelsDir({
    classifier: {
      onnx: linearClassifier({ channels: 3, size: 4, weights: WEIGHTS, bias: BIAS }),
      json: {
        task: 'classification',
        description: 'mean colour classifier',
        input: { name: 'image', layout: 'NCHW', width: 4, height: 4, channels: 3 },
        preprocess: { scaling: { type: 'fixed', min: 0, max: 255 }, range: [0, 1], mean: MEAN, std: STD },
        labels: ['a', 'b', 'c'],
        output: { name: 'scores', activation: 'none' },
      },
    },
    windowed: {
      onnx: linearClassifier({ channels: 3, size: 4, weights: WEIGHTS, bias: BIAS }),
      json: {
        task: 'classification',
        input: { name: 'image', width: 4, height: 4, channels: 3 },
        preprocess: { scaling: { type: 'window', center: 100, width: 100 }, range: [-1, 1] },
        labels: ['a', 'b', 'c'],
        output: { name: 'scores', activation: 'none' },
      },
    },
    heat: {
      onnx: pointwiseConvSigmoid({ channels: 3, size: 4, weights: [1, 0, 0], bias: -0.5 }),
      json: {
        task: 'heatmap',
        input: { name: 'image', width: 4, height: 4, channels: 3 },
        preprocess: { resize: 'letterbox', pad: 0 },
        output: { name: 'map', activation: 'none' },
      },
    },
    seg: {
      onnx: pointwiseConvSigmoid({ channels: 3, size: 4, weights: [0, 0, 1], bias: -0.5 }),
      json: {
        task: 'segmentation',
        input: { name: 'image', width: 4, height: 4, channels: 3 },
        labels: ['background', 'blue'],
        output: { name: 'map', activation: 'none', threshold: 0.5 },
      },
    },
  });
  server = await startTestServer(fixture('wsi'), ['--models-dir', models.dir]);
});

afterAll(async () => {
  await server?.close();
  await models?.cleanup();
});

/** What the `classifier` model answers for RGB pixels of a 4x4 image, computed by hand. */
function expectedScores(rgb: ArrayLike<number>, scale: (v: number, c: number) => number): number[] {
  const means = [0, 1, 2].map((c) => {
    let sum = 0;
    for (let i = 0; i < 16; i++) sum += scale(rgb[i * 3 + c], c);
    return sum / 16;
  });
  const logits = WEIGHTS.map((w, k) => w[0] * means[0] + w[1] * means[1] + w[2] * means[2] + BIAS[k]);
  return softmax(logits);
}

const post = (path: string, body: Buffer | object, type = 'image/png') =>
  request(server, path, {
    method: 'POST',
    headers: { 'content-type': Buffer.isBuffer(body) ? type : 'application/json' },
    body: Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body),
  });

describe('POST /ai/models/{name}/infer', () => {
  it('lists the models with their declarations and the built-in tissue model', async () => {
    const res = await request(server, '/ai/models');
    expect(res.status).toBe(200);
    const { models: list } = res.json() as { models: { name: string; task: string; builtIn: boolean }[] };
    expect(list.map((m) => m.name)).toEqual(['tissue', 'classifier', 'heat', 'seg', 'windowed']);
    const classifier = list.find((m) => m.name === 'classifier') as unknown as Record<string, unknown>;
    expect(classifier).toMatchObject({
      task: 'classification',
      labels: ['a', 'b', 'c'],
      input: { name: 'image', layout: 'NCHW', width: 4, height: 4, channels: 3 },
      preprocess: { mean: MEAN, std: STD, resize: 'stretch' },
      batching: { maxBatch: 8, maxWaitMs: 5, maxQueue: 64, eager: true },
    });
    expect(list[0]).toMatchObject({ name: 'tissue', builtIn: true, task: 'segmentation' });
    expect((await request(server, '/ai/models/nope')).status).toBe(404);
  });

  it('scores an uploaded PNG exactly: fixed scaling, range, mean and std per channel', async () => {
    const rgb = Array.from({ length: 48 }, (_, i) => (i * 37) % 256);
    const res = await post('/ai/models/classifier/infer', await png(rgb, 4, 4));
    expect(res.status).toBe(200);
    const body = res.json() as { scores: { label: string; score: number }[]; top: { label: string } };
    const expected = expectedScores(rgb, (v, c) => (v / 255 - MEAN[c]) / STD[c]);
    expect(body.scores.map((s) => s.label)).toEqual(['a', 'b', 'c']);
    body.scores.forEach((s, k) => expect(s.score).toBeCloseTo(expected[k], 5));
    expect(body.top.label).toBe(['a', 'b', 'c'][expected.indexOf(Math.max(...expected))]);
  });

  it('windows a gray JPEG-free PNG and replicates it to three channels', async () => {
    const gray = Array.from({ length: 16 }, (_, i) => i * 13);
    const res = await post('/ai/models/windowed/infer', await png(gray, 4, 4, 1));
    expect(res.status).toBe(200);
    const rgb = gray.flatMap((v) => [v, v, v]);
    const window = (v: number) => Math.min(1, Math.max(0, (v - 50) / 100));
    const expected = expectedScores(rgb, (v) => -1 + 2 * window(v));
    (res.json() as { scores: { score: number }[] }).scores.forEach((s, k) =>
      expect(s.score).toBeCloseTo(expected[k], 5),
    );
  });

  it('letterboxes into a heat map whose PNG holds round(255 * sigmoid(r / 255 - 0.5))', async () => {
    // 4x2 image: letterboxed into 4x4 it keeps its scale, with one padded row above and below.
    const rgb = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? i * 10 : 7));
    const res = await post('/ai/models/heat/infer', await png(rgb, 4, 2));
    expect(res.status).toBe(200);
    const body = res.json() as {
      result: { map: string; width: number; height: number };
      min: number;
      max: number;
    };
    expect(body.result).toMatchObject({ width: 4, height: 4 });
    const map = await request(server, body.result.map);
    expect(map.status).toBe(200);
    expect(map.headers.get('content-type')).toBe('image/png');
    const { data, info } = await sharp(map.body)
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(map.body[25]).toBe(0); // PNG colour type 0: grayscale
    expect(info.channels).toBe(1);
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    const red = (row: number, col: number) => (row === 0 || row === 3 ? 0 : rgb[((row - 1) * 4 + col) * 3]);
    const expected = Array.from({ length: 16 }, (_, i) =>
      Math.round(255 * sig(red(i >> 2, i & 3) / 255 - 0.5)),
    );
    expect([...data]).toEqual(expected);
    expect(body.min).toBeCloseTo(sig(-0.5), 6);
  });

  it('thresholds a one-channel segmentation into a class-index mask with fractions', async () => {
    // Blue 255 in 6 of 16 pixels: sigmoid(1 - 0.5) >= 0.5; elsewhere blue 0: sigmoid(-0.5) < 0.5.
    const rgb = Array.from({ length: 16 }, (_, i) => [10, 20, i < 6 ? 255 : 0]).flat();
    const res = await post('/ai/models/seg/infer', await png(rgb, 4, 4));
    const body = res.json() as { fractions: { label: string; fraction: number }[]; result: { mask: string } };
    expect(body.fractions).toEqual([
      { label: 'background', fraction: 10 / 16 },
      { label: 'blue', fraction: 6 / 16 },
    ]);
    const { data } = await sharp((await request(server, body.result.mask)).body)
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([...data]).toEqual(Array.from({ length: 16 }, (_, i) => (i < 6 ? 1 : 0)));
  });

  it('reads a whole-slide region by level through the tile service', async () => {
    const region = { x: 1000, y: 800, width: 4, height: 4 };
    const raw = await request(
      server,
      `/slides/${encodeURIComponent(SVS)}/region?x=1000&y=800&width=4&height=4&level=0&format=raw`,
    );
    expect(raw.status).toBe(200);
    const res = await post('/ai/models/classifier/infer', { slide: SVS, level: 0, ...region });
    expect(res.status).toBe(200);
    const body = res.json() as { scores: { score: number }[]; source: Record<string, unknown> };
    expect(body.source).toMatchObject({ kind: 'region', slide: SVS, level: 0, ...region });
    const expected = expectedScores(raw.body, (v, c) => (v / 255 - MEAN[c]) / STD[c]);
    body.scores.forEach((s, k) => expect(s.score).toBeCloseTo(expected[k], 5));
  });

  it('reads a whole-slide region at a target mpp', async () => {
    const raw = await request(
      server,
      `/slides/${encodeURIComponent(SVS)}/region?x=500&y=500&width=4&height=4&mpp=2&format=raw`,
    );
    expect(raw.status).toBe(200);
    const res = await post('/ai/models/classifier/infer', {
      slide: SVS,
      mpp: 2,
      x: 500,
      y: 500,
      width: 4,
      height: 4,
    });
    expect(res.status).toBe(200);
    const expected = expectedScores(raw.body, (v, c) => (v / 255 - MEAN[c]) / STD[c]);
    (res.json() as { scores: { score: number }[] }).scores.forEach((s, k) =>
      expect(s.score).toBeCloseTo(expected[k], 5),
    );
  });

  it('answers bad input with typed JSON errors', async () => {
    const cases: [string, Buffer | object, string, number, string][] = [
      ['/ai/models/classifier/infer', Buffer.from('GIF89a...'), 'image/png', 415, 'unsupported_format'],
      [
        '/ai/models/classifier/infer',
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 1, 2]),
        'image/png',
        400,
        'bad_request',
      ],
      ['/ai/models/classifier/infer', { slide: SVS, x: 0, y: 0, width: 4 }, '', 400, 'bad_request'],
      [
        '/ai/models/classifier/infer',
        { slide: SVS, x: 0, y: 0, width: 4, height: 4, level: 0, mpp: 1 },
        '',
        400,
        'bad_request',
      ],
      [
        '/ai/models/classifier/infer',
        { slide: SVS, x: 0, y: 0, width: 4, height: 4, level: 9 },
        '',
        400,
        'invalid_level',
      ],
      [
        '/ai/models/classifier/infer',
        { slide: 'nope.svs', x: 0, y: 0, width: 4, height: 4 },
        '',
        404,
        'not_found',
      ],
      [
        '/ai/models/classifier/infer',
        { slide: '../etc/passwd', x: 0, y: 0, width: 4, height: 4 },
        '',
        400,
        'invalid_id',
      ],
      ['/ai/models/nope/infer', { slide: SVS }, '', 404, 'not_found'],
      ['/ai/models/classifier/infer', [1, 2], '', 400, 'bad_request'],
    ];
    for (const [path, body, type, status, code] of cases) {
      const res = await post(path, body, type);
      expect(
        [res.status, (res.json() as { error: string }).error],
        JSON.stringify(body).slice(0, 60),
      ).toEqual([status, code]);
    }
    const text = await request(server, '/ai/models/classifier/infer', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'x',
    });
    expect([text.status, (text.json() as { error: string }).error]).toEqual([400, 'bad_request']);
    expect((await request(server, '/ai/results/0000.png')).status).toBe(400);
    expect((await request(server, '/ai/results/00000000-0000-0000-0000-000000000000.png')).status).toBe(404);
  });
});

describe('/ai/ with signed URLs required', () => {
  it('refuses unsigned model listing and inference', async () => {
    const secured = await startTestServer(fixture('wsi'), [
      '--models-dir',
      models.dir,
      '--auth-enabled',
      '--auth-secret',
      'x'.repeat(40),
    ]);
    try {
      const list = await request(secured, '/ai/models');
      expect(list.status).toBe(401);
      const infer = await request(secured, '/ai/models/classifier/infer', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ slide: SVS, x: 0, y: 0, width: 4, height: 4 }),
      });
      expect([infer.status, (infer.json() as { error: string }).error]).toEqual([401, 'missing_signature']);
    } finally {
      await secured.close();
    }
  });
});
