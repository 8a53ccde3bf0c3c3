// The model registry at start: declarations checked against the ONNX graph, every mismatch a
// ConfigError naming the model and the tensor or field; the CLI exits 2 with that message.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/ai/registry.js';
import { ConfigError } from '../../src/errors.js';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';
import {
  floatValue,
  linearClassifier,
  node,
  onnxModel,
  pointwiseConvSigmoid,
} from '../support/onnx-writer.js';
import { modelsDir } from './model-dir.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const classifierJson = (over: Record<string, unknown> = {}) => ({
  task: 'classification',
  input: { name: 'image', layout: 'NCHW', width: 4, height: 4, channels: 3 },
  labels: ['a', 'b'],
  output: { name: 'scores' },
  ...over,
});
const classifier = linearClassifier({
  channels: 3,
  size: 4,
  weights: [
    [1, 0, 0],
    [0, 1, 0],
  ],
  bias: [0, 0],
});

async function load(json: Record<string, unknown>, onnx: Buffer = classifier, maxBatch = 8) {
  const dir = await modelsDir({ m1: { onnx, json } });
  cleanups.push(dir.cleanup);
  const registry = await ModelRegistry.load({
    modelsDir: dir.dir,
    batching: { maxBatch, maxWaitMs: 5, maxQueue: 8 },
    intraOpThreads: 1,
  });
  cleanups.push(() => registry.close());
  return registry;
}

async function refusal(json: Record<string, unknown>, onnx?: Buffer, maxBatch?: number): Promise<string> {
  const error = await load(json, onnx, maxBatch).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return (error as Error).message;
}

describe('ModelRegistry', () => {
  it('loads a model whose declaration matches its graph', async () => {
    const registry = await load(classifierJson());
    const model = registry.get('m1');
    expect(model.graph.inputs).toEqual([{ name: 'image', type: 'float32', shape: ['N', 3, 4, 4] }]);
    expect(model.graph.outputs).toEqual([{ name: 'scores', type: 'float32', shape: ['N', 2] }]);
    expect(model.batcher.options).toEqual({ maxBatch: 8, maxWaitMs: 5, maxQueue: 8, eager: true });
  });

  it('names the model and the tensor on a mismatch', async () => {
    expect(await refusal(classifierJson({ input: { name: 'pixels', width: 4, height: 4 } }))).toMatch(
      /model "m1": input tensor "pixels" is not in model.onnx \(its inputs: "image"\)/,
    );
    expect(await refusal(classifierJson({ output: { name: 'probabilities' } }))).toMatch(
      /model "m1": output tensor "probabilities" is not in model.onnx \(its outputs: "scores"\)/,
    );
    expect(await refusal(classifierJson({ input: { name: 'image', width: 8, height: 4 } }))).toMatch(
      /model "m1": input tensor "image" has width 4 .*declares 8/,
    );
    expect(
      await refusal(classifierJson({ input: { name: 'image', width: 4, height: 4, channels: 1 } })),
    ).toMatch(/input tensor "image" has channels 3/);
    expect(
      await refusal(
        classifierJson({ input: { name: 'image', layout: 'NHWC', width: 4, height: 4, channels: 3 } }),
      ),
    ).toMatch(/input tensor "image" has height 3/);
    expect(await refusal(classifierJson({ labels: ['a', 'b', 'c'] }))).toMatch(
      /output tensor "scores" has 2 classes, model.json names 3 labels/,
    );
    expect(await refusal(classifierJson({ task: 'heatmap' }))).toMatch(
      /output tensor "scores" has shape \[N, 2\]; a heatmap/,
    );
    expect(
      await refusal(
        { ...classifierJson(), task: 'classification' },
        pointwiseConvSigmoid({ channels: 3, size: 4, weights: [1, 1, 1], bias: 0 }),
      ),
    ).toMatch(/input tensor "image" is not in|output tensor "scores" is not in/);
  });

  it('refuses a fixed batch smaller than the batch size, and accepts it when maxBatch fits', async () => {
    const fixed = onnxModel({
      inputs: [floatValue('image', [1, 3, 4, 4])],
      outputs: [floatValue('scores', [1, 3, 1, 1])],
      nodes: [node('GlobalAveragePool', ['image'], ['scores'])],
    });
    const json = {
      task: 'segmentation',
      input: { name: 'image', width: 4, height: 4 },
      output: { name: 'scores' },
    };
    expect(await refusal(json, fixed)).toMatch(/input tensor "image" has a fixed batch of 1 .*maxBatch to 1/);
    await expect(load({ ...json, batching: { maxBatch: 1 } }, fixed)).resolves.toBeDefined();
  });

  it('names the field of a bad declaration', async () => {
    expect(await refusal({ ...classifierJson(), task: 'detection' })).toMatch(
      /model "m1": model.json task must be one of "classification", "segmentation", "heatmap"/,
    );
    expect(await refusal(classifierJson({ preprocess: { mean: [1, 2] } }))).toMatch(
      /model.json preprocess.mean has 2 values for 3 input channels/,
    );
    expect(
      await refusal(classifierJson({ preprocess: { scaling: { type: 'window', center: 40 } } })),
    ).toMatch(/model.json preprocess.scaling.width must be a number/);
    expect(await refusal(classifierJson({ labels: [] }))).toMatch(/labels must name the classes/);
    expect(await refusal(classifierJson({ batching: { maxBatch: 0 } }))).toMatch(
      /batching.maxBatch must be an integer/,
    );
  });

  it('refuses a folder with only one of the two files, a broken model.onnx, and a missing directory', async () => {
    const dir = await modelsDir({});
    cleanups.push(dir.cleanup);
    await mkdir(path.join(dir.dir, 'half'));
    await writeFile(path.join(dir.dir, 'half', 'model.json'), JSON.stringify(classifierJson()));
    const options = {
      modelsDir: dir.dir,
      batching: { maxBatch: 1, maxWaitMs: 1, maxQueue: 1 },
      intraOpThreads: 1,
    };
    await expect(ModelRegistry.load(options)).rejects.toThrow(
      /model "half": .* has model.json but no model.onnx/,
    );
    await writeFile(path.join(dir.dir, 'half', 'model.onnx'), 'not protobuf at all');
    await expect(ModelRegistry.load(options)).rejects.toThrow(/model "half": model.onnx does not load/);
    await expect(ModelRegistry.load({ ...options, modelsDir: path.join(dir.dir, 'nope') })).rejects.toThrow(
      /--models-dir: cannot read/,
    );
  });

  it('stops `medstream serve` with exit code 2 and the message', async () => {
    const dir = await modelsDir({
      broken: { onnx: classifier, json: classifierJson({ output: { name: 'logits' } }) },
    });
    cleanups.push(dir.cleanup);
    const run = await runMedstream(['serve', fixture('wsi'), '--port', '0', '--models-dir', dir.dir], {
      timeoutMs: 30_000,
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/medstream: model "broken": output tensor "logits" is not in model.onnx/);
  });
});
