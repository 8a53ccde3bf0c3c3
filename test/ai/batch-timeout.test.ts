// A per-batch time limit over HTTP: a slow model (a generated convolution graph) whose limit (model.json batching.timeoutMs) is far below one batch's time answers 504
// model_timeout, counts it in /metrics, and its model process comes back for the next request;
// the server itself keeps serving throughout.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { convClassifier } from '../support/onnx-writer.js';
import { metric, request, startTestServer } from '../support/server.js';
import { modelsDir, png } from './model-dir.js';

const SIZE = 128;
let server: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;

beforeAll(async () => {
  models = await modelsDir({
    slow: {
      onnx: convClassifier({ size: SIZE, filters: 32, classes: 2 }),
      json: {
        task: 'classification',
        input: { name: 'image', width: SIZE, height: SIZE, channels: 3 },
        labels: ['a', 'b'],
        output: { name: 'scores', activation: 'none' },
        // One image is ~0.17 G multiply-adds: tens of milliseconds at the least, never 1 ms.
        batching: { maxBatch: 1, timeoutMs: 1 },
      },
    },
  });
  server = await startTestServer(fixture('wsi'), ['--models-dir', models.dir, '--ai-threads', '1']);
});

afterAll(async () => {
  await server?.close();
  await models?.cleanup();
});

describe('--ai-batch-timeout / batching.timeoutMs', () => {
  it('answers 504 model_timeout past the limit, restarts the model process, and keeps serving', async () => {
    const image = await png(
      Array.from({ length: SIZE * SIZE * 3 }, (_, i) => i % 251),
      SIZE,
      SIZE,
    );
    for (let attempt = 1; attempt <= 2; attempt++) {
      const res = await request(server, '/ai/models/slow/infer', {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: new Uint8Array(image),
      });
      const body = res.json() as { error: string; message: string };
      expect([res.status, body.error]).toEqual([504, 'model_timeout']);
      expect(body.message).toContain('limit of 1 ms');
      expect(await metric(server, 'medstream_ai_timeouts_total{model="slow"}')).toBe(attempt);
    }
    expect((await request(server, '/ai/models')).status).toBe(200);
    expect((await request(server, '/health')).status).toBe(200);
  });
});
